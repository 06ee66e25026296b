// Setup for the decoder-layer benchmark (layer_bench.cpp): the model config (full DeepSeek-V3.2 shapes or the
// tiny fixture shapes), random weights in the checkpoint formats (FP8 e4m3 + power-of-two 128x128 scales, BF16
// router / indexer weights_proj) built straight into model::ModelWeights on the backend's device, and KV stores
// filled with random finite rows for a given context, without running a prefill. Weight byte counts feed the
// HBM floor of the report.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/forward_batch.h"
#include "model/weights.h"

namespace dsa::layer_bench {

// DeepSeek-V3.2 (tiny = false) or the tiny fixture's sizes, with `layers` decoder layers of which the first
// `dense_layers` are dense, and the given vocabulary (the benchmark keeps the lm_head out of the step timing).
StatusOr<model::ModelConfig> make_config(bool tiny, int64_t layers, int64_t dense_layers, int64_t vocab);

// Byte copies into tensor memory on either device (CUDA: cudaMemcpy; CPU: memcpy).
void copy_to(const Tensor& dst, int64_t dst_offset, const void* src, Device src_device, int64_t bytes);

// Fills tensor memory from random patterns: each weight is its own allocation, filled from a random offset of
// a random e4m3 (or bf16) pattern held once on the device, so every weight has different contents.
class WeightFiller {
  public:
    WeightFiller(Device device, int64_t pattern_bytes, uint32_t seed);

    // FP8 e4m3 [out, in] on the device with f32 power-of-two scale_inv (host) of about 1/sqrt(in).
    backend::LinearWeight fp8(int64_t out, int64_t in, const std::string& name);
    // BF16 [rows, cols] on the device, values ~ N(0, 1) (for timing only: the lm_head).
    Tensor bf16(int64_t rows, int64_t cols, const std::string& name);
    // Host f32 vectors (norm weights near 1, biases near 0): the backend uploads them once.
    Tensor f32_vector(int64_t n, float mean, float stddev, const std::string& name);
    std::mt19937& rng() { return rng_; }
    Device device() const { return device_; }

  private:
    void fill(const Tensor& dst, const Tensor& pattern);

    Device device_;
    std::mt19937 rng_;
    Tensor fp8_pattern_, bf16_pattern_;  // on device_
};

// Weights of every layer of `config` (dense or MoE per config.is_moe_layer), embedding / lm_head of its vocab.
model::ModelWeights make_weights(const model::ModelConfig& config, WeightFiller& filler);

// Bytes that one decode step must read of a layer's weights, split as the report prints them.
struct LayerWeightBytes {
    int64_t attention = 0;  // MLA projections + indexer (+ norms) + router
    int64_t expert = 0;     // one routed expert (gate + up + down, with scales)
    int64_t shared = 0;     // shared expert(s)
    int64_t dense = 0;      // dense MLP (dense layers)
};
LayerWeightBytes layer_weight_bytes(const model::LayerWeights& layer);

// The KV pages of a decode step: `batch` sequences of `context` cached tokens plus the new one, sequence b on
// pages [1 + b * pages_per_seq, ...) (page 0 unused, as in the engine), page size 64.
struct KvPlan {
    int64_t batch = 0, context = 0, pages_per_seq = 0, num_pages = 0;
};
KvPlan plan_kv(int64_t batch, int64_t context);
// Device bytes of the stores of `layers` layers for `plan` in the backend's formats.
int64_t kv_store_bytes(const KvPlan& plan, int64_t layers, const backend::Numerics& numerics);

// Stores for every layer of `config`, on the backend's device, every row random and finite (FP8 rows hold
// e4m3 values and power-of-two scales). Rows repeat with a period longer than the longest context benchmarked;
// the period is made once per format and size and reused by later calls (not thread-safe).
model::KvStores make_filled_kv(const model::ModelConfig& config, const backend::Numerics& numerics, Device device,
                               const KvPlan& plan, std::mt19937& rng);

// The decode-step batch: every sequence adds one random token at position `context`.
struct DecodeBatch {
    std::vector<std::vector<int32_t>> tokens, pages;
    model::ForwardBatch batch;
};
std::unique_ptr<DecodeBatch> make_decode_batch(const KvPlan& plan, int64_t vocab, std::mt19937& rng);

}  // namespace dsa::layer_bench
