// KvPool: allocation of the per-layer latent and indexer stores.
#include "kvcache/kv_pool.h"

#include <string>

namespace dsa::kvcache {
namespace {

Tensor make_store(const Shape& shape, Device device, std::string name) {
    // Host stores are zeroed so tests and the CPU backend start from a known state; device stores are
    // initialised by the backend if it needs to.
    if (device == Device::kCPU) return Tensor::zeros(shape, DType::kU8, device, std::move(name));
    return Tensor::empty(shape, DType::kU8, device, std::move(name));
}

}  // namespace

KvPool::KvPool(const KvCacheConfig& config, int64_t num_pages) : config_(config), num_pages_(num_pages) {
    Status st = config.validate();
    DSA_CHECK(st.is_ok()) << st.to_string();
    DSA_CHECK_GE(num_pages, 1);
    int64_t num_indexer_rows = num_pages + 1;
    for (int l = 0; l < num_layers(); ++l) {
        std::string tag = std::to_string(l);
        latent_.push_back(
            make_store({num_slots(), config.mla_bytes_per_token_per_layer()}, config.device, "kv_latent." + tag));
        indexer_.push_back(has_indexer(l) ? make_store({num_indexer_rows, config.indexer_bytes_per_page_per_layer()},
                                                       config.device, "kv_indexer." + tag)
                                          : Tensor());
    }
}

const Tensor& KvPool::latent(int layer) const {
    DSA_CHECK(layer >= 0 && layer < num_layers()) << "layer " << layer << " of " << num_layers();
    return latent_[static_cast<size_t>(layer)];
}

const Tensor& KvPool::indexer(int layer) const {
    DSA_CHECK(has_indexer(layer)) << "layer " << layer << " keeps no indexer cache (IndexCache S layer)";
    return indexer_[static_cast<size_t>(layer)];
}

int64_t KvPool::mla_bytes() const {
    int64_t n = 0;
    for (const Tensor& t : latent_) n += static_cast<int64_t>(t.nbytes());
    return n;
}

int64_t KvPool::indexer_bytes() const {
    int64_t n = 0;
    for (const Tensor& t : indexer_) n += t.defined() ? static_cast<int64_t>(t.nbytes()) : 0;
    return n;
}

}  // namespace dsa::kvcache
