// ReqToPages: one request's page table. Position p lives at slot pages()[p / page_size] * page_size +
// p % page_size (requests start on a page boundary and only extend their own tail page). The first
// num_cached_pages() pages belong to the prefix cache (the request holds a lock on cache_node()); the rest
// are owned by the request and are the only pages truncate()/release_owned() give back. A page appears at
// most once in a table.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kvcache/page_allocator.h"
#include "kvcache/types.h"

namespace dsa::kvcache {

class ReqToPages {
  public:
    explicit ReqToPages(int page_size);

    int page_size() const { return page_size_; }
    int64_t num_pages() const { return static_cast<int64_t>(pages_.size()); }
    int64_t capacity_tokens() const { return num_pages() * page_size_; }
    const std::vector<PageId>& pages() const { return pages_; }
    int64_t num_cached_pages() const { return num_cached_pages_; }
    int64_t num_cached_tokens() const { return num_cached_pages_ * page_size_; }
    std::span<const PageId> owned_pages() const;
    NodeHandle cache_node() const { return cache_node_; }
    ExtraKey cache_extra_key() const { return cache_extra_key_; }  // the namespace its prefix is cached under

    // Slot of position `pos` (< capacity_tokens()).
    int64_t slot(int64_t pos) const;
    // Appends the slots of positions [begin, end) to `out` (the cache-write locations of new tokens).
    void append_slots(int64_t begin, int64_t end, std::vector<int64_t>* out) const;

    // Admission: the table is empty; `pages` (from PrefixCache::match_prefix) become its cache-owned prefix.
    void adopt_cached_prefix(std::span<const PageId> pages, NodeHandle node, ExtraKey extra_key = 0);
    // After the cache took pages [0, pages.size()): they replace the table's first entries (the cache's copies
    // where it already had them) and become the cache-owned prefix. Never shrinks the cached prefix.
    void replace_cached_prefix(std::span<const PageId> pages, NodeHandle node);

    // Grows the table to cover `num_tokens` positions. All-or-nothing: false (and no change) when the allocator
    // has too few free pages.
    bool extend(int64_t num_tokens, PageAllocator& allocator);
    // Keeps page_ceil(num_tokens) pages and frees the rest (rollback of rejected speculative tokens, finish).
    // Must not cut into the cache-owned prefix. Returns the number of pages freed.
    int64_t truncate(int64_t num_tokens, PageAllocator& allocator);
    // Frees every request-owned page and empties the table, cache_node() included: read cache_node() first and
    // release its lock (PrefixCache::release_request does both).
    int64_t release_owned(PageAllocator& allocator);
    // Empties the table without freeing anything: every page in it now belongs to the prefix cache.
    void detach();

  private:
    int page_size_;
    std::vector<PageId> pages_;
    int64_t num_cached_pages_ = 0;
    NodeHandle cache_node_ = nullptr;
    ExtraKey cache_extra_key_ = 0;
};

// Pages needed for `num_tokens` tokens.
constexpr int64_t page_ceil(int64_t num_tokens, int64_t page_size) { return (num_tokens + page_size - 1) / page_size; }

}  // namespace dsa::kvcache
