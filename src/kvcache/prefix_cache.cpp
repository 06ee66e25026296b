// PrefixCache: the request lifecycle on top of the primitive operations, and the no-op cache used with
// --disable-radix-cache (it matches nothing and keeps nothing: pages handed to it are freed at once).
#include "kvcache/prefix_cache.h"

#include <algorithm>

#include "base/check.h"
#include "kvcache/radix_cache.h"

namespace dsa::kvcache {
namespace {

class NoPrefixCache final : public PrefixCache {
  public:
    using PrefixCache::PrefixCache;
    bool enabled() const override { return false; }
    void inc_ref(NodeHandle node) override { DSA_CHECK(node == nullptr) << "the disabled cache has no nodes"; }
    void dec_ref(NodeHandle node) override { DSA_CHECK(node == nullptr) << "the disabled cache has no nodes"; }
    int64_t evict(int64_t) override { return 0; }
    int64_t num_evictable_pages() const override { return 0; }
    int64_t num_protected_pages() const override { return 0; }
    void collect_pages(std::vector<PageId>*) const override {}
    void check_invariants() const override {}

  private:
    MatchResult do_match_prefix(std::span<const TokenId>, ExtraKey) override { return {}; }
    InsertResult do_insert(std::span<const TokenId> tokens, std::span<const PageId> pages, ExtraKey) override {
        auto num_tokens = static_cast<int64_t>(tokens.size());
        DSA_CHECK_EQ(static_cast<int64_t>(pages.size()), num_keyed_positions(num_tokens) / page_size());
        allocator().free(pages);
        return InsertResult{.num_freed_pages = static_cast<int64_t>(pages.size())};
    }
};

}  // namespace

Status PrefixCacheConfig::validate() const {
    if (page_size <= 0) return invalid_argument("prefix cache: page_size must be positive, got {}", page_size);
    return Status::ok();
}

StatusOr<EvictionPolicy> parse_eviction_policy(std::string_view name) {
    if (name == "lru") return EvictionPolicy::kLru;
    if (name == "lfu") return EvictionPolicy::kLfu;
    return invalid_argument("--radix-eviction-policy: unknown policy '{}' (supported: lru, lfu)", name);
}

double PrefixCacheStats::hit_rate() const {
    if (num_prompt_tokens == 0) return 0.0;
    return static_cast<double>(num_hit_tokens) / static_cast<double>(num_prompt_tokens);
}

int64_t PrefixCache::num_keyed_positions(int64_t num_tokens) const {
    if (key_mode_ == CacheKeyMode::kTokens) return num_tokens;
    return std::max<int64_t>(num_tokens - 1, 0);
}

std::span<const TokenId> PrefixCache::tokens_for_positions(std::span<const TokenId> tokens,
                                                           int64_t num_positions) const {
    int64_t n = num_positions + (key_mode_ == CacheKeyMode::kBigram && num_positions > 0 ? 1 : 0);
    DSA_CHECK_LE(n, static_cast<int64_t>(tokens.size()));
    return tokens.first(static_cast<size_t>(n));
}

int64_t PrefixCache::attach_prefix(std::span<const TokenId> prompt, ReqToPages& req, HitAccounting accounting,
                                   ExtraKey extra_key) {
    DSA_CHECK_EQ(req.num_pages(), 0) << "attach_prefix needs an empty page table";
    DSA_CHECK_EQ(req.page_size(), page_size_);
    auto num_prompt = static_cast<int64_t>(prompt.size());
    int64_t max_positions = std::min(num_keyed_positions(num_prompt), std::max<int64_t>(num_prompt - 1, 0));
    MatchResult match = match_prefix(tokens_for_positions(prompt, max_positions), extra_key);
    inc_ref(match.node);
    req.adopt_cached_prefix(match.pages, match.node, extra_key);
    if (accounting == HitAccounting::kCount) {
        stats_.num_prompt_tokens += static_cast<int64_t>(prompt.size());
        stats_.num_hit_tokens += match.num_tokens;
    }
    return match.num_tokens;
}

void PrefixCache::cache_unfinished(std::span<const TokenId> tokens, ReqToPages& req) {
    if (!enabled()) return;  // the request keeps every page
    int64_t num_full = num_keyed_positions(static_cast<int64_t>(tokens.size())) / page_size_;
    DSA_CHECK_LE(num_full, req.num_pages());
    if (num_full <= req.num_cached_pages()) return;
    auto key = tokens_for_positions(tokens, num_full * page_size_);
    std::vector<PageId> handed(req.pages().begin(), req.pages().begin() + num_full);
    InsertResult inserted = insert(key, handed, req.cache_extra_key());
    DSA_CHECK_GE(inserted.num_present_tokens, req.num_cached_tokens()) << "tokens differ from the cached prefix";
    MatchResult canonical = match_prefix(key, req.cache_extra_key());
    DSA_CHECK_EQ(canonical.num_tokens, num_full * page_size_);
    NodeHandle old_node = req.cache_node();
    inc_ref(canonical.node);
    dec_ref(old_node);
    req.replace_cached_prefix(canonical.pages, canonical.node);  // keeps the extra key
}

void PrefixCache::cache_finished(std::span<const TokenId> tokens, ReqToPages& req) {
    if (!enabled()) {
        release_request(req);
        return;
    }
    auto num_tokens = static_cast<int64_t>(tokens.size());
    int64_t num_full = num_keyed_positions(num_tokens) / page_size_;
    DSA_CHECK_LE(num_tokens, req.capacity_tokens());
    DSA_CHECK_GE(num_full, req.num_cached_pages()) << "fewer committed tokens than the cached prefix";
    req.truncate(num_full * page_size_, allocator_);  // the partial tail page and over-allocation
    auto key = tokens_for_positions(tokens, num_full * page_size_);
    InsertResult inserted = insert(key, req.pages(), req.cache_extra_key());
    DSA_CHECK_GE(inserted.num_present_tokens, req.num_cached_tokens()) << "tokens differ from the cached prefix";
    dec_ref(req.cache_node());
    req.detach();
}

void PrefixCache::release_request(ReqToPages& req) {
    NodeHandle node = req.cache_node();
    req.release_owned(allocator_);
    dec_ref(node);
}

bool PrefixCache::ensure_free(int64_t num_pages) {
    int64_t shortage = num_pages - allocator_.num_free();
    if (shortage > 0) evict(shortage);
    return allocator_.num_free() >= num_pages;
}

std::unique_ptr<PrefixCache> make_prefix_cache(const PrefixCacheConfig& config, PageAllocator& allocator) {
    Status st = config.validate();
    DSA_CHECK(st.is_ok()) << st.to_string();
    if (config.mode == PrefixCacheMode::kDisabled) return std::make_unique<NoPrefixCache>(config, allocator);
    return std::make_unique<RadixCache>(config, allocator);
}

}  // namespace dsa::kvcache
