// ReqToPages: page table bookkeeping for one request.
#include "kvcache/req_to_pages.h"

#include "base/check.h"

namespace dsa::kvcache {

ReqToPages::ReqToPages(int page_size) : page_size_(page_size) { DSA_CHECK_GT(page_size, 0); }

std::span<const PageId> ReqToPages::owned_pages() const {
    return std::span<const PageId>(pages_).subspan(static_cast<size_t>(num_cached_pages_));
}

int64_t ReqToPages::slot(int64_t pos) const {
    DSA_CHECK(pos >= 0 && pos < capacity_tokens()) << "position " << pos << " outside " << capacity_tokens();
    return int64_t{pages_[static_cast<size_t>(pos / page_size_)]} * page_size_ + pos % page_size_;
}

void ReqToPages::append_slots(int64_t begin, int64_t end, std::vector<int64_t>* out) const {
    DSA_CHECK(0 <= begin && begin <= end && end <= capacity_tokens()) << begin << ".." << end;
    for (int64_t p = begin; p < end; ++p) out->push_back(slot(p));
}

void ReqToPages::adopt_cached_prefix(std::span<const PageId> pages, NodeHandle node, ExtraKey extra_key) {
    DSA_CHECK(pages_.empty()) << "adopt_cached_prefix on a table with " << pages_.size() << " pages";
    pages_.assign(pages.begin(), pages.end());
    num_cached_pages_ = num_pages();
    cache_node_ = node;
    cache_extra_key_ = extra_key;
}

void ReqToPages::replace_cached_prefix(std::span<const PageId> pages, NodeHandle node) {
    auto n = static_cast<int64_t>(pages.size());
    DSA_CHECK_GE(n, num_cached_pages_) << "the cached prefix never shrinks";
    DSA_CHECK_LE(n, num_pages());
    for (int64_t i = 0; i < n; ++i) pages_[static_cast<size_t>(i)] = pages[static_cast<size_t>(i)];
    num_cached_pages_ = n;
    cache_node_ = node;
}

bool ReqToPages::extend(int64_t num_tokens, PageAllocator& allocator) {
    int64_t num_new = page_ceil(num_tokens, page_size_) - num_pages();
    if (num_new <= 0) return true;
    auto fresh = allocator.alloc(num_new);
    if (!fresh) return false;
    pages_.insert(pages_.end(), fresh->begin(), fresh->end());
    return true;
}

int64_t ReqToPages::truncate(int64_t num_tokens, PageAllocator& allocator) {
    DSA_CHECK_GE(num_tokens, 0);
    int64_t keep = page_ceil(num_tokens, page_size_);
    if (keep >= num_pages()) return 0;
    DSA_CHECK_GE(keep, num_cached_pages_) << "truncate would drop pages owned by the prefix cache";
    int64_t num_freed = num_pages() - keep;
    allocator.free(std::span<const PageId>(pages_).subspan(static_cast<size_t>(keep)));
    pages_.resize(static_cast<size_t>(keep));
    return num_freed;
}

int64_t ReqToPages::release_owned(PageAllocator& allocator) {
    auto owned = owned_pages();
    auto num_freed = static_cast<int64_t>(owned.size());
    allocator.free(owned);
    detach();
    return num_freed;
}

void ReqToPages::detach() {
    pages_.clear();
    num_cached_pages_ = 0;
    cache_node_ = nullptr;
    cache_extra_key_ = 0;
}

}  // namespace dsa::kvcache
