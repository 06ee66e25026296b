// Page-ownership partition check over the allocator, the prefix cache and the live requests.
#include "kvcache/invariants.h"

#include <fmt/format.h>

#include <vector>

namespace dsa::kvcache {
namespace {

enum Owner : uint8_t { kNone = 0, kFree = 1, kCache = 2, kRequest = 3 };

// Records `owner` for `page`; an error when the page already has one.
std::string claim(std::vector<uint8_t>& owners, PageId page, Owner owner) {
    if (page < 1 || page >= static_cast<PageId>(owners.size())) return fmt::format("page {} out of range", page);
    if (owners[page] != kNone) return fmt::format("page {} has two owners ({} and {})", page, owners[page], +owner);
    owners[page] = owner;
    return {};
}

std::string check_request(const ReqToPages& req, std::vector<uint8_t>& owners, std::vector<uint8_t>& seen) {
    for (PageId p : req.pages()) {
        if (p < 1 || p >= static_cast<PageId>(seen.size())) return fmt::format("request page {} out of range", p);
        if (seen[p]++) return fmt::format("page {} appears twice in one page table", p);
    }
    for (int64_t i = 0; i < req.num_cached_pages(); ++i) {
        PageId p = req.pages()[static_cast<size_t>(i)];
        if (owners[p] != kCache) return fmt::format("request borrows page {} which the cache does not own", p);
    }
    for (PageId p : req.owned_pages()) {
        if (std::string err = claim(owners, p, kRequest); !err.empty()) return err;
    }
    for (PageId p : req.pages()) seen[p] = 0;
    return {};
}

}  // namespace

std::string check_page_partition(const PageAllocator& allocator, const PrefixCache& cache,
                                 std::span<const ReqToPages* const> live_requests) {
    int64_t num_pages = allocator.num_pages();
    std::vector<uint8_t> owners(static_cast<size_t>(num_pages + 1), kNone);
    for (PageId p = 1; p <= num_pages; ++p) {
        if (allocator.is_free(p)) owners[p] = kFree;
    }
    std::vector<PageId> cached;
    cache.collect_pages(&cached);
    for (PageId p : cached) {
        if (std::string err = claim(owners, p, kCache); !err.empty()) return "cache: " + err;
    }
    if (static_cast<int64_t>(cached.size()) != cache.num_cached_pages()) {
        return fmt::format("cache holds {} pages but counts {}", cached.size(), cache.num_cached_pages());
    }
    std::vector<uint8_t> seen(owners.size(), 0);
    for (const ReqToPages* req : live_requests) {
        if (std::string err = check_request(*req, owners, seen); !err.empty()) return "request: " + err;
    }
    for (PageId p = 1; p <= num_pages; ++p) {
        if (owners[p] == kNone) return fmt::format("page {} is leaked: not free, cached or owned by a request", p);
    }
    return {};
}

}  // namespace dsa::kvcache
