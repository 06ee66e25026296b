// Whole-pool ownership check (RUNTIME_NOTES §12, invariant 1): every page in 1..num_pages is owned by exactly
// one of the free list, one prefix-cache node, or one live request's owned pages; every page a request
// borrows from the cache (its cached prefix) is cache-owned; no page appears twice in one table. Cheap enough
// to run after every step in debug builds and after every operation in the kvcache tests.
#pragma once

#include <span>
#include <string>

#include "kvcache/page_allocator.h"
#include "kvcache/prefix_cache.h"
#include "kvcache/req_to_pages.h"

namespace dsa::kvcache {

// An empty string when the partition holds, else a description of the first violation found.
std::string check_page_partition(const PageAllocator& allocator, const PrefixCache& cache,
                                 std::span<const ReqToPages* const> live_requests);

}  // namespace dsa::kvcache
