// KvCacheConfig: what the KV pools hold per token and per layer, and how many bytes that costs. A token's
// slot covers the MLA latent of every layer (main + MTP) and the indexer keys of every layer that runs its own
// indexer (IndexCache "F" layers and all MTP layers; "S" layers keep no indexer cache). bytes_per_token()
// counts both stores, so no budget can forget the indexer (ANCHORS trap 2).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "kvcache/kv_layout.h"
#include "tensor/tensor.h"

namespace dsa::kvcache {

// Whether a decoder layer runs its own indexer (and so keeps an indexer key cache).
enum class IndexerMode : uint8_t {
    kFull,    // "F": own indexer, own indexer cache
    kShared,  // "S": reuses the previous F layer's top-k; no indexer cache
};

struct KvCacheConfig {
    int page_size = kDefaultPageSize;
    int num_layers = 0;      // main decoder layers
    int num_mtp_layers = 0;  // draft (MTP) layers in the same slot space; they always keep an indexer cache
    // One entry per main layer; empty means every layer is kFull.
    std::vector<IndexerMode> layer_indexer_modes;
    MlaKvFormat mla_format = MlaKvFormat::kBF16;
    IndexerKeyFormat indexer_format = IndexerKeyFormat::kFp8;
    Device device = Device::kCPU;

    Status validate() const;

    // Layers are numbered 0..num_layers-1 (main), then num_layers..num_total_layers()-1 (MTP).
    int num_total_layers() const { return num_layers + num_mtp_layers; }
    bool has_indexer_cache(int layer) const;
    int num_indexer_layers() const;  // main F layers + MTP layers

    int64_t mla_bytes_per_token_per_layer() const { return mla_bytes_per_token(mla_format); }
    int64_t indexer_bytes_per_token_per_layer() const { return indexer_bytes_per_token(indexer_format); }
    int64_t indexer_bytes_per_page_per_layer() const { return page_size * indexer_bytes_per_token_per_layer(); }

    // Both stores, all layers (main + MTP).
    int64_t bytes_per_token() const;
    int64_t bytes_per_page() const { return bytes_per_token() * page_size; }
    // Usable pages a pool fits in `budget_bytes`. The pool also holds the reserved page 0 (KvPool), which is
    // charged to the budget, so pool_bytes(num_pages_for_budget(b)) <= b.
    int64_t num_pages_for_budget(int64_t budget_bytes) const;
    // Bytes of a pool with `num_pages` usable pages (plus page 0).
    int64_t pool_bytes(int64_t num_pages) const { return (num_pages + 1) * bytes_per_page(); }
};

// Parses an IndexCache pattern ("FFSF..."), one character per main layer. Must start with 'F'.
StatusOr<std::vector<IndexerMode>> indexer_modes_from_pattern(std::string_view pattern);

}  // namespace dsa::kvcache
