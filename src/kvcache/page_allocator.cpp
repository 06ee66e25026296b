// PageAllocator: a min-heap of free page ids plus a free bitmap for double-free detection.
#include "kvcache/page_allocator.h"

#include "base/check.h"

namespace dsa::kvcache {

PageAllocator::PageAllocator(int64_t num_pages) : num_pages_(num_pages) {
    DSA_CHECK_GE(num_pages, 0);
    DSA_CHECK_LT(num_pages, int64_t{INT32_MAX}) << "page ids are int32";
    reset();
}

void PageAllocator::reset() {
    std::vector<PageId> ids;
    ids.reserve(static_cast<size_t>(num_pages_));
    for (int64_t p = 1; p <= num_pages_; ++p) ids.push_back(static_cast<PageId>(p));
    free_heap_ = decltype(free_heap_)(std::greater<PageId>(), std::move(ids));  // sorted input is a valid heap
    is_free_.assign(static_cast<size_t>(num_pages_ + 1), 1);
    is_free_[0] = 0;
}

void PageAllocator::check_id(PageId page) const {
    DSA_CHECK(page >= 1 && page <= num_pages_) << "page id " << page << " outside [1, " << num_pages_ << "]";
}

bool PageAllocator::is_free(PageId page) const {
    check_id(page);
    return is_free_[page] != 0;
}

std::optional<std::vector<PageId>> PageAllocator::alloc(int64_t num) {
    DSA_CHECK_GE(num, 0);
    if (num > num_free()) return std::nullopt;
    std::vector<PageId> pages;
    pages.reserve(static_cast<size_t>(num));
    for (int64_t i = 0; i < num; ++i) {
        PageId p = free_heap_.top();
        free_heap_.pop();
        is_free_[p] = 0;
        pages.push_back(p);
    }
    return pages;
}

void PageAllocator::free(std::span<const PageId> pages) {
    for (PageId p : pages) {
        check_id(p);
        DSA_CHECK(!is_free_[p]) << "double free of page " << p;
        is_free_[p] = 1;
        free_heap_.push(p);
    }
}

}  // namespace dsa::kvcache
