// PrefixCache: the interface the scheduler uses for prefix sharing, with two implementations: RadixCache
// (radix_cache.h) and the no-op cache of --disable-radix-cache. Ownership rule (RUNTIME_NOTES §3.3): every
// page in 1..num_pages is owned by exactly one of the allocator's free list, one cache node, or one live
// request (ReqToPages::owned_pages()). Only whole pages are cached: a prompt's partial last page always stays
// with its request. A page id covers the latent AND indexer entries of every layer, so a hit reuses both
// caches (ANCHORS trap 8). With MTP the tree is keyed by token pairs (CacheKeyMode::kBigram) so a hit never
// claims draft-layer KV it does not have; extra_key namespaces never share nodes. Single-threaded: the
// engine loop owns the cache, its allocator and the tables.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "kvcache/page_allocator.h"
#include "kvcache/req_to_pages.h"
#include "kvcache/types.h"

namespace dsa::kvcache {

enum class PrefixCacheMode : uint8_t { kRadix, kDisabled };  // kDisabled = --disable-radix-cache
enum class EvictionPolicy : uint8_t { kLru, kLfu };          // --radix-eviction-policy
// What keys KV position i in the tree. The MTP layer's KV at position i is computed from token i + 1, so
// with speculative decoding a cached position must also fix its next token: the key of position i is the
// pair (token i, token i + 1) and n tokens yield n - 1 keyed positions (SGLang's "bigram view").
enum class CacheKeyMode : uint8_t { kTokens, kBigram };

struct PrefixCacheConfig {
    int page_size = 64;
    PrefixCacheMode mode = PrefixCacheMode::kRadix;
    EvictionPolicy eviction_policy = EvictionPolicy::kLru;
    CacheKeyMode key_mode = CacheKeyMode::kTokens;  // kBigram when the MTP layer is on
    Status validate() const;
};
StatusOr<EvictionPolicy> parse_eviction_policy(std::string_view name);  // "lru" | "lfu"

struct MatchResult {
    int64_t num_tokens = 0;     // KV positions served from the cache: a multiple of page_size
    std::vector<PageId> pages;  // num_tokens / page_size pages, owned by the cache
    NodeHandle node = nullptr;  // last node of the match: lock it (inc_ref) before the next evict()
};

struct InsertResult {
    int64_t num_present_tokens = 0;  // leading tokens the cache held before this insert
    int64_t num_freed_pages = 0;     // given pages that duplicated cached ones and were freed
    NodeHandle node = nullptr;       // node that ends the inserted key
};

struct PrefixCacheStats {
    int64_t num_prompt_tokens = 0;  // prompts seen by attach_prefix (HitAccounting::kCount)
    int64_t num_hit_tokens = 0;     // of which served from the cache
    int64_t num_evicted_pages = 0;
    double hit_rate() const;  // hit / prompt tokens, 0 when no prompt was seen
};

enum class HitAccounting : uint8_t { kCount, kSkip };  // kSkip: re-prefill of a retracted request

class PrefixCache {
  public:
    PrefixCache(const PrefixCacheConfig& config, PageAllocator& allocator)
        : page_size_(config.page_size), key_mode_(config.key_mode), allocator_(allocator) {}
    virtual ~PrefixCache() = default;
    PrefixCache(const PrefixCache&) = delete;
    PrefixCache& operator=(const PrefixCache&) = delete;

    int page_size() const { return page_size_; }
    CacheKeyMode key_mode() const { return key_mode_; }
    // KV positions of `num_tokens` tokens that the key mode can cache: n (kTokens) or n - 1 (kBigram).
    int64_t num_keyed_positions(int64_t num_tokens) const;
    PageAllocator& allocator() { return allocator_; }
    const PageAllocator& allocator() const { return allocator_; }
    virtual bool enabled() const = 0;

    // ---- Primitive operations ----
    // Longest cached prefix of `tokens`, in whole pages. Refreshes access times along the path.
    MatchResult match_prefix(std::span<const TokenId> tokens, ExtraKey extra_key = 0) {
        return do_match_prefix(tokens, extra_key);
    }
    // Lock / unlock the path from `node` to the root; locked nodes are never evicted. nullptr is a no-op.
    virtual void inc_ref(NodeHandle node) = 0;
    virtual void dec_ref(NodeHandle node) = 0;
    // Hands `pages` to the cache: exactly num_keyed_positions(tokens.size()) / page_size of them, one per
    // whole page of keyed positions. Pages the cache already holds for the same keys under another id are
    // freed; the cache keeps the rest.
    InsertResult insert(std::span<const TokenId> tokens, std::span<const PageId> pages, ExtraKey extra_key = 0) {
        return do_insert(tokens, pages, extra_key);
    }
    // Frees up to `num_pages` unlocked pages, least recently used leaves first (tails of leaves first).
    // Returns the number freed: exactly num_pages unless fewer were evictable.
    virtual int64_t evict(int64_t num_pages) = 0;
    // Frees every unlocked page (/flush_cache). Returns the number freed.
    int64_t flush() { return evict(INT64_MAX); }

    virtual int64_t num_evictable_pages() const = 0;  // held by unlocked nodes
    virtual int64_t num_protected_pages() const = 0;  // held by locked nodes
    int64_t num_cached_pages() const { return num_evictable_pages() + num_protected_pages(); }
    // Appends every page the cache owns (for invariant checks).
    virtual void collect_pages(std::vector<PageId>* out) const = 0;
    // Recomputes structure and counters from scratch; aborts on a mismatch.
    virtual void check_invariants() const = 0;

    // ---- Request lifecycle (RUNTIME_NOTES §3.3) ----
    // Admission: reuses the cached prefix of the prompt's first size - 1 positions (at least one token is
    // always computed), locks it and records it and `extra_key` in `req` (empty). Returns the cached tokens.
    int64_t attach_prefix(std::span<const TokenId> prompt, ReqToPages& req,
                          HitAccounting accounting = HitAccounting::kCount, ExtraKey extra_key = 0);
    // After a prefill chunk: `tokens` are the tokens whose KV is written. Their whole pages go to the cache,
    // the table is rewritten with the cache's pages (duplicates freed) and the lock moves to the new last node.
    void cache_unfinished(std::span<const TokenId> tokens, ReqToPages& req);
    // Finish: `tokens` are the committed tokens (prompt + output with valid KV). Whole pages go to the
    // cache, the rest of the table is freed, the lock is released and `req` is emptied.
    void cache_finished(std::span<const TokenId> tokens, ReqToPages& req);
    // Retraction / abort without caching: frees the request's own pages, releases its lock, empties `req`.
    void release_request(ReqToPages& req);
    // Evicts until the allocator has `num_pages` free pages; false when even that is not enough.
    bool ensure_free(int64_t num_pages);

    const PrefixCacheStats& stats() const { return stats_; }
    void reset_stats() { stats_ = PrefixCacheStats{}; }

  protected:
    virtual MatchResult do_match_prefix(std::span<const TokenId> tokens, ExtraKey extra_key) = 0;
    virtual InsertResult do_insert(std::span<const TokenId> tokens, std::span<const PageId> pages,
                                   ExtraKey extra_key) = 0;
    void count_evicted(int64_t num_pages) { stats_.num_evicted_pages += num_pages; }

  private:
    // The leading tokens whose keys cover exactly `num_positions` KV positions.
    std::span<const TokenId> tokens_for_positions(std::span<const TokenId> tokens, int64_t num_positions) const;

    int page_size_;
    CacheKeyMode key_mode_;
    PageAllocator& allocator_;
    PrefixCacheStats stats_;
};

// The cache for `config` (validated by the caller; aborts when invalid).
std::unique_ptr<PrefixCache> make_prefix_cache(const PrefixCacheConfig& config, PageAllocator& allocator);

}  // namespace dsa::kvcache
