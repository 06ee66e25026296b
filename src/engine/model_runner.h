// ModelRunner: turns one scheduled step (each sequence's new tokens, cached length and page table) into
// logits, one row per sequence (its last new token). DsaModelRunner runs model::DsaModel over the KV memory
// of a kvcache::KvPool, seen as model::KvStores through an adapter; the pool is sized in bytes counting the
// latent AND indexer stores of every layer, in the formats backend::Numerics implies (the byte sizes are
// checked against backend/kv_layout.h at compile time) and allocated on the model's backend device. The
// engine owns page bookkeeping; the runner owns the memory. Logits come back on the host (the CPU sampler's
// side), or on a CUDA model stay on the GPU for the device sampler (forward_on_device / sample_on_device).
// Decode steps of a device model go through DecodeGraphs (CUDA graphs) once enable_device_decode() is called.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "backend/backend.h"
#include "base/status.h"
#include "engine/decode_graphs.h"
#include "kvcache/kv_config.h"
#include "kvcache/kv_pool.h"
#include "model/forward_batch.h"
#include "model/transformer.h"
#include "tensor/tensor.h"

namespace dsa::engine {

class ModelRunner {
  public:
    virtual ~ModelRunner() = default;
    virtual int64_t vocab_size() const = 0;
    virtual int64_t num_pages() const = 0;  // usable KV pages (ids 1..num_pages)
    virtual int64_t page_size() const = 0;
    // One forward over `steps`; returns [steps.size(), vocab] f32 host logits of each sequence's last new token.
    virtual Tensor forward(std::span<const model::SequenceStep> steps) = 0;

    // ---- sampling on the model's device; the defaults mean "not available" (the CPU sampler runs) ----
    // True when forward_on_device() / sample_on_device() / logits_row_to_host() may be used.
    virtual bool device_sampling() const { return false; }
    // forward() with the logits left where the model computed them.
    virtual Tensor forward_on_device(std::span<const model::SequenceStep> steps) { return forward(steps); }
    // Backend::sample over forward_on_device()'s logits: one result per row, in order.
    virtual StatusOr<std::vector<backend::SampledToken>> sample_on_device(const Tensor& logits,
                                                                          std::span<const backend::SampleRow> rows) {
        (void)logits;
        (void)rows;
        return unimplemented("this model runner has no device sampler");
    }
    // Row `row` of forward_on_device()'s logits as a host [vocab] f32 tensor (the CPU sampler's fallback input).
    virtual Tensor logits_row_to_host(const Tensor& logits, int64_t row) { return logits.select(row); }
};

// The KvCacheConfig for `config` under `numerics`, pools on `device` (no MTP layer: the engine does not
// speculate yet).
kvcache::KvCacheConfig kv_cache_config_for(const model::ModelConfig& config, const backend::Numerics& numerics,
                                           int page_size, Device device = Device::kCPU);
// model::KvStores views of the pool's tensors (no copy).
model::KvStores kv_stores_from_pool(const kvcache::KvPool& pool, const backend::Numerics& numerics);

class DsaModelRunner final : public ModelRunner {
  public:
    // `model` must outlive the runner. The pool gets as many pages as `kv_budget_bytes` holds, on the model's
    // device (device pools are not zeroed: the ops read only slots the batch has written).
    static StatusOr<std::unique_ptr<DsaModelRunner>> create(model::DsaModel& model, const backend::Numerics& numerics,
                                                            int64_t kv_budget_bytes, int page_size);

    int64_t vocab_size() const override { return model_.config().vocab_size; }
    int64_t num_pages() const override { return pool_->num_pages(); }
    int64_t page_size() const override { return pool_->config().page_size; }
    Tensor forward(std::span<const model::SequenceStep> steps) override;
    // On a CUDA model: logits stay on the GPU, rows are sampled there (Backend::sample), fallbacks download one row.
    // DSA_CPU_SAMPLING=1 keeps the CPU sampler (every logits row downloaded).
    bool device_sampling() const override { return device_sampling_; }
    Tensor forward_on_device(std::span<const model::SequenceStep> steps) override;
    StatusOr<std::vector<backend::SampledToken>> sample_on_device(const Tensor& logits,
                                                                  std::span<const backend::SampleRow> rows) override;
    Tensor logits_row_to_host(const Tensor& logits, int64_t row) override;
    const kvcache::KvPool& pool() const { return *pool_; }
    // Device models: decode steps (one token per sequence) run through DecodeGraphs — inputs in fixed device
    // buffers, CUDA graphs per options. Sequences never exceed max_context tokens. No-op on the CPU.
    void enable_device_decode(int64_t max_context, const DecodeGraphOptions& options);
    const DecodeGraphs* decode_graphs() const { return decode_graphs_.get(); }

  private:
    DsaModelRunner(model::DsaModel& model, const backend::Numerics& numerics, std::unique_ptr<kvcache::KvPool> pool);
    Tensor run(std::span<const model::SequenceStep> steps, bool logits_on_device);

    model::DsaModel& model_;
    std::unique_ptr<kvcache::KvPool> pool_;
    model::KvStores stores_;
    bool device_sampling_ = false;
    std::unique_ptr<DecodeGraphs> decode_graphs_;
};

}  // namespace dsa::engine
