// Ids shared by the kvcache classes. A page id names page_size consecutive slots in EVERY store of the pool
// (the MLA latent of all layers and the indexer keys of all F and MTP layers); page 0 is reserved for padded
// and dummy rows and is never allocated.
#pragma once

#include <cstdint>

namespace dsa::kvcache {

using PageId = int32_t;   // page tables are int32 on the device
using TokenId = int32_t;  // token ids key the prefix cache

constexpr PageId kReservedPage = 0;

// Namespace of a cached sequence (LoRA adapter, cache salt): sequences with different extra keys never share.
using ExtraKey = uint64_t;

// An opaque handle to a prefix-cache node (the last node of a cached prefix). Valid while locked with
// PrefixCache::inc_ref; an unlocked handle may be invalidated by evict() or flush(). nullptr means "no node".
struct RadixNode;
using NodeHandle = RadixNode*;

}  // namespace dsa::kvcache
