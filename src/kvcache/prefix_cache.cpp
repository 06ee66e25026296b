// PrefixCache: the request lifecycle on top of the primitive operations, and the no-op cache used with
// --disable-radix-cache (it matches nothing and keeps nothing: pages handed to it are freed at once).
#include "kvcache/prefix_cache.h"

#include "base/check.h"
#include "kvcache/radix_cache.h"

namespace dsa::kvcache {
namespace {

class NoPrefixCache final : public PrefixCache {
public:
    using PrefixCache::PrefixCache;
    bool enabled() const override { return false; }
    MatchResult match_prefix(std::span<const TokenId>) override { return {}; }
    void inc_ref(NodeHandle node) override { DSA_CHECK(node == nullptr) << "the disabled cache has no nodes"; }
    void dec_ref(NodeHandle node) override { DSA_CHECK(node == nullptr) << "the disabled cache has no nodes"; }
    InsertResult insert(std::span<const TokenId> tokens, std::span<const PageId> pages) override {
        DSA_CHECK_EQ(static_cast<int64_t>(pages.size()), static_cast<int64_t>(tokens.size()) / page_size());
        allocator().free(pages);
        return InsertResult{.num_freed_pages = static_cast<int64_t>(pages.size())};
    }
    int64_t evict(int64_t) override { return 0; }
    int64_t num_evictable_pages() const override { return 0; }
    int64_t num_protected_pages() const override { return 0; }
    void collect_pages(std::vector<PageId>*) const override {}
    void check_invariants() const override {}
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

int64_t PrefixCache::attach_prefix(std::span<const TokenId> prompt, ReqToPages& req, HitAccounting accounting) {
    DSA_CHECK_EQ(req.num_pages(), 0) << "attach_prefix needs an empty page table";
    DSA_CHECK_EQ(req.page_size(), page_size_);
    size_t max_len = prompt.empty() ? 0 : prompt.size() - 1;
    MatchResult match = match_prefix(prompt.first(max_len));
    inc_ref(match.node);
    req.adopt_cached_prefix(match.pages, match.node);
    if (accounting == HitAccounting::kCount) {
        stats_.num_prompt_tokens += static_cast<int64_t>(prompt.size());
        stats_.num_hit_tokens += match.num_tokens;
    }
    return match.num_tokens;
}

void PrefixCache::cache_unfinished(std::span<const TokenId> tokens, ReqToPages& req) {
    if (!enabled()) return;  // the request keeps every page
    int64_t num_full = static_cast<int64_t>(tokens.size()) / page_size_;
    DSA_CHECK_LE(num_full, req.num_pages());
    if (num_full <= req.num_cached_pages()) return;
    auto key = tokens.first(static_cast<size_t>(num_full * page_size_));
    std::vector<PageId> handed(req.pages().begin(), req.pages().begin() + num_full);
    InsertResult inserted = insert(key, handed);
    DSA_CHECK_GE(inserted.num_present_tokens, req.num_cached_tokens()) << "tokens differ from the cached prefix";
    MatchResult canonical = match_prefix(key);
    DSA_CHECK_EQ(canonical.num_tokens, num_full * page_size_);
    NodeHandle old_node = req.cache_node();
    inc_ref(canonical.node);
    dec_ref(old_node);
    req.replace_cached_prefix(canonical.pages, canonical.node);
}

void PrefixCache::cache_finished(std::span<const TokenId> tokens, ReqToPages& req) {
    if (!enabled()) {
        release_request(req);
        return;
    }
    auto num_tokens = static_cast<int64_t>(tokens.size());
    int64_t num_full = num_tokens / page_size_;
    DSA_CHECK_LE(num_tokens, req.capacity_tokens());
    DSA_CHECK_GE(num_full, req.num_cached_pages()) << "fewer committed tokens than the cached prefix";
    req.truncate(num_full * page_size_, allocator_);  // the partial tail page and over-allocation
    auto key = tokens.first(static_cast<size_t>(num_full * page_size_));
    InsertResult inserted = insert(key, req.pages());
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
    if (config.mode == PrefixCacheMode::kDisabled) return std::make_unique<NoPrefixCache>(config.page_size, allocator);
    return std::make_unique<RadixCache>(config.page_size, allocator, config.eviction_policy);
}

}  // namespace dsa::kvcache
