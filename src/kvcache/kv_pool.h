// KvPool: the KV memory itself. Per layer (main layers, then MTP layers) one MLA latent store
// [num_slots, mla_bytes_per_token] u8 and, for layers that run their own indexer, one indexer store
// [num_pages + 1, page_size * indexer_bytes_per_token] u8. Both are indexed by the SAME slot space: slot s is
// latent row s and indexer page s / page_size, row s % page_size, so one page id covers both stores of every
// layer and every feature that moves pages must move both (ANCHORS trap 8). Page 0 (slots 0..page_size-1)
// is the reserved padding page; usable pages are 1..num_pages. Allocated once, never resized.
#pragma once

#include <cstdint>
#include <vector>

#include "kvcache/kv_config.h"
#include "tensor/tensor.h"

namespace dsa::kvcache {

class KvPool {
  public:
    // Aborts on an invalid config (validate() first to report it as a user error).
    KvPool(const KvCacheConfig& config, int64_t num_pages);

    const KvCacheConfig& config() const { return config_; }
    int64_t num_pages() const { return num_pages_; }                            // usable pages, ids 1..num_pages
    int64_t num_slots() const { return (num_pages_ + 1) * config_.page_size; }  // page 0 included
    int num_layers() const { return config_.num_total_layers(); }

    // [num_slots, mla_bytes_per_token] u8, for layer in [0, num_layers()).
    const Tensor& latent(int layer) const;
    bool has_indexer(int layer) const { return config_.has_indexer_cache(layer); }
    // [num_pages + 1, page_size * indexer_bytes_per_token] u8; aborts for a layer without an indexer cache.
    const Tensor& indexer(int layer) const;

    int64_t mla_bytes() const;
    int64_t indexer_bytes() const;
    int64_t total_bytes() const { return mla_bytes() + indexer_bytes(); }

  private:
    KvCacheConfig config_;
    int64_t num_pages_;
    std::vector<Tensor> latent_;   // one per layer
    std::vector<Tensor> indexer_;  // one per layer; undefined where the layer has no indexer cache
};

}  // namespace dsa::kvcache
