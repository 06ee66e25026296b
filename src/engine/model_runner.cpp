// DsaModelRunner and the kvcache <-> backend store adapter. kvcache cannot include backend, so this file is
// where the two descriptions of the store layouts meet: the static_asserts below fail the build if a byte
// size ever differs, and the format mapping is the only place a backend format becomes a kvcache one.
#include "engine/model_runner.h"

#include <chrono>

#include "backend/kv_layout.h"
#include "base/check.h"
#include "base/env.h"
#include "base/logging.h"
#include "model/config.h"

namespace dsa::engine {
namespace {

using backend::IndexerKeyFormat;
using backend::MlaKvFormat;

static_assert(kvcache::mla_bytes_per_token(kvcache::MlaKvFormat::kF32) ==
              backend::mla_kv_bytes_per_token(MlaKvFormat::kF32));
static_assert(kvcache::mla_bytes_per_token(kvcache::MlaKvFormat::kBF16) ==
              backend::mla_kv_bytes_per_token(MlaKvFormat::kBF16));
static_assert(kvcache::mla_bytes_per_token(kvcache::MlaKvFormat::kFp8) ==
              backend::mla_kv_bytes_per_token(MlaKvFormat::kFp8));
static_assert(kvcache::kDefaultPageSize * kvcache::indexer_bytes_per_token(kvcache::IndexerKeyFormat::kFp8) ==
              backend::indexer_page_bytes(IndexerKeyFormat::kFp8));
static_assert(kvcache::kDefaultPageSize * kvcache::indexer_bytes_per_token(kvcache::IndexerKeyFormat::kF32) ==
              backend::indexer_page_bytes(IndexerKeyFormat::kF32));
static_assert(kvcache::kDefaultPageSize == backend::kIndexerPageSize);

kvcache::MlaKvFormat to_kvcache(MlaKvFormat f) {
    switch (f) {
        case MlaKvFormat::kF32:
            return kvcache::MlaKvFormat::kF32;
        case MlaKvFormat::kBF16:
            return kvcache::MlaKvFormat::kBF16;
        case MlaKvFormat::kFp8:
            return kvcache::MlaKvFormat::kFp8;
    }
    DSA_CHECK(false) << "unknown MLA KV format";
    return kvcache::MlaKvFormat::kBF16;
}

kvcache::IndexerKeyFormat to_kvcache(IndexerKeyFormat f) {
    return f == IndexerKeyFormat::kFp8 ? kvcache::IndexerKeyFormat::kFp8 : kvcache::IndexerKeyFormat::kF32;
}

}  // namespace

kvcache::KvCacheConfig kv_cache_config_for(const model::ModelConfig& config, const backend::Numerics& numerics,
                                           int page_size, Device device) {
    kvcache::KvCacheConfig kv;
    kv.page_size = page_size;
    kv.num_layers = static_cast<int>(config.num_hidden_layers);
    kv.num_mtp_layers = 0;
    for (bool full : config.is_full_indexer) {
        kv.layer_indexer_modes.push_back(full ? kvcache::IndexerMode::kFull : kvcache::IndexerMode::kShared);
    }
    kv.mla_format = to_kvcache(numerics.mla_kv_format());
    kv.indexer_format = to_kvcache(numerics.indexer_key_format());
    kv.device = device;
    return kv;
}

model::KvStores kv_stores_from_pool(const kvcache::KvPool& pool, const backend::Numerics& numerics) {
    model::KvStores stores;
    for (int l = 0; l < pool.num_layers(); ++l) {
        const Tensor& latent = pool.latent(l);
        DSA_CHECK_EQ(latent.dim(1), backend::mla_kv_bytes_per_token(numerics.mla_kv_format()));
        stores.mla.push_back(backend::MlaKvStore{latent, numerics.mla_kv_format()});
        backend::IndexerKeyStore ix;
        ix.format = numerics.indexer_key_format();
        if (pool.has_indexer(l)) {
            ix.data = pool.indexer(l);
            DSA_CHECK_EQ(ix.data.dim(1), backend::indexer_page_bytes(ix.format));
        }
        stores.indexer.push_back(ix);
    }
    return stores;
}

StatusOr<std::unique_ptr<DsaModelRunner>> DsaModelRunner::create(model::DsaModel& model,
                                                                 const backend::Numerics& numerics,
                                                                 int64_t kv_budget_bytes, int page_size) {
    if (page_size != backend::kIndexerPageSize) {
        return invalid_argument("--page-size must be {} for DSA models (paged indexer layout), got {}",
                                backend::kIndexerPageSize, page_size);
    }
    kvcache::KvCacheConfig kv = kv_cache_config_for(model.config(), numerics, page_size, model.device());
    if (Status st = kv.validate(); !st.is_ok()) return st;
    int64_t num_pages = kv.num_pages_for_budget(kv_budget_bytes);
    if (num_pages < 1) {
        return invalid_argument("KV budget of {} bytes holds no page ({} bytes per page with page 0 reserved)",
                                kv_budget_bytes, kv.bytes_per_page());
    }
    auto pool = std::make_unique<kvcache::KvPool>(kv, num_pages);
    return std::unique_ptr<DsaModelRunner>(new DsaModelRunner(model, numerics, std::move(pool)));
}

DsaModelRunner::DsaModelRunner(model::DsaModel& model, const backend::Numerics& numerics,
                               std::unique_ptr<kvcache::KvPool> pool)
    : model_(model),
      pool_(std::move(pool)),
      stores_(kv_stores_from_pool(*pool_, numerics)),
      device_sampling_(model.device() == Device::kCUDA &&
                       !env_bool("DSA_CPU_SAMPLING", false,
                                 "sample on the CPU even when the model runs on CUDA (downloads every logits row)")) {}

void DsaModelRunner::enable_device_decode(int64_t max_context, const DecodeGraphOptions& options) {
    if (model_.device() == Device::kCPU) return;
    decode_graphs_ = std::make_unique<DecodeGraphs>(model_, stores_, page_size(), max_context, options);
    if (options.enabled && options.max_bs > 0) {
        const auto start = std::chrono::steady_clock::now();
        decode_graphs_->capture_all();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        DSA_LOG(kInfo) << "captured " << decode_graphs_->graphs_captured() << " decode CUDA graphs (batch sizes up to "
                       << options.max_bs << ") in " << s << " s; graph pool "
                       << (model_.backend().graph_pool_bytes() >> 20) << " MiB";
    }
}

Tensor DsaModelRunner::run(std::span<const model::SequenceStep> steps, bool logits_on_device) {
    if (decode_graphs_ && DecodeGraphs::is_decode(steps)) {
        Tensor logits = decode_graphs_->run(steps);
        return logits_on_device ? logits : model_.backend().to_host(logits);
    }
    model::ForwardBatch batch = model::build_forward_batch(steps, page_size());
    model::ForwardOptions options;
    options.logits_on_device = logits_on_device;
    model::ForwardOutput out = model_.forward(batch, stores_, options);
    DSA_CHECK_EQ(out.logits.dim(0), static_cast<int64_t>(steps.size()));
    return out.logits;
}

Tensor DsaModelRunner::forward(std::span<const model::SequenceStep> steps) { return run(steps, false); }

Tensor DsaModelRunner::forward_on_device(std::span<const model::SequenceStep> steps) { return run(steps, true); }

StatusOr<std::vector<backend::SampledToken>> DsaModelRunner::sample_on_device(
    const Tensor& logits, std::span<const backend::SampleRow> rows) {
    return model_.backend().sample(logits, rows);
}

Tensor DsaModelRunner::logits_row_to_host(const Tensor& logits, int64_t row) {
    Tensor r = logits.select(row);
    return r.device() == Device::kCPU ? r : model_.backend().to_host(r);
}

}  // namespace dsa::engine
