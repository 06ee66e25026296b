// PageAllocator: the free list of page ids 1..num_pages (page 0 is reserved and never handed out). Allocation
// is all-or-nothing and deterministic (lowest free ids first); freeing a page that is already free, or an id
// out of range, is a bug and aborts. Invariant: num_free() + num_used() == num_pages(). Single-threaded (the
// engine loop owns it).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <span>
#include <vector>

#include "kvcache/types.h"

namespace dsa::kvcache {

class PageAllocator {
  public:
    explicit PageAllocator(int64_t num_pages);

    int64_t num_pages() const { return num_pages_; }
    int64_t num_free() const { return static_cast<int64_t>(free_heap_.size()); }
    int64_t num_used() const { return num_pages_ - num_free(); }
    bool is_free(PageId page) const;

    // `num` pages, lowest ids first, or nullopt (and nothing taken) when fewer than `num` are free.
    std::optional<std::vector<PageId>> alloc(int64_t num);
    // Returns pages to the free list. Aborts on a double free, on page 0 or on an id out of range.
    void free(std::span<const PageId> pages);
    void free(PageId page) { free(std::span<const PageId>(&page, 1)); }
    // Every page back to the free list (only when nothing references any page).
    void reset();

  private:
    void check_id(PageId page) const;

    int64_t num_pages_;
    std::priority_queue<PageId, std::vector<PageId>, std::greater<PageId>> free_heap_;
    std::vector<uint8_t> is_free_;  // indexed by page id; [0] unused
};

}  // namespace dsa::kvcache
