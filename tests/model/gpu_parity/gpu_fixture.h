// Helpers of the GPU model-parity tests: a golden fixture (tests/golden/<name>) loaded once with one DsaModel
// on the CPU backend and one on the CUDA backend over the same weights and Numerics, the reference prompts,
// greedy decoding through SequenceRunner, and the relative-L2 metric. Construct only when a GPU is present.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/sequence_runner.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace dsa::model::gpu_testing {

struct RefPrompt {
    std::vector<int32_t> ids;
    std::vector<int32_t> greedy;  // the reference's 8-token greedy continuation
    std::vector<Tensor> topk;     // per main layer with its own indexer (else undefined), [n, 64] i32 positions
    Tensor mtp_topk;              // [n - 1, 64] i32 (n >= 2)
};

class TwoBackendFixture {
  public:
    TwoBackendFixture(const std::string& name, const backend::Numerics& numerics);

    const ModelConfig& config() const { return config_; }
    const std::vector<RefPrompt>& prompts() const { return prompts_; }
    DsaModel& cpu() { return *cpu_model_; }
    DsaModel& gpu() { return *gpu_model_; }
    // The same weights on the CPU with FP32 numerics: the yardstick for both BF16/FP8 runs (their rounding
    // differs in order, so each is judged by its distance from this model, not only from the other).
    DsaModel& ref() { return *ref_model_; }
    backend::Backend& backend_of(const DsaModel& m);
    // Fresh zeroed KV stores (main + MTP layers) on the model's device.
    KvStores new_kv(DsaModel& m, int64_t num_pages = 24);

  private:
    ModelConfig config_;
    std::unique_ptr<Checkpoint> ckpt_;
    ModelWeights weights_;
    std::unique_ptr<backend::Backend> cpu_be_, gpu_be_, ref_be_;
    std::unique_ptr<DsaModel> cpu_model_, gpu_model_, ref_model_;
    std::vector<RefPrompt> prompts_;
};

std::string golden_dir(const std::string& name);
// The reference prompts of a fixture (reference.safetensors).
std::vector<RefPrompt> load_ref_prompts(const std::string& dir, const ModelConfig& config);
// Prefill `prompt` in one step, then greedy-decode `num_tokens` tokens one step at a time.
std::vector<int32_t> greedy_decode(DsaModel& model, KvStores& kv, const std::vector<int32_t>& prompt,
                                   int64_t num_tokens);
// ||a - b|| / ||b|| over all elements (host f32 tensors of equal shape).
double relative_l2(const Tensor& a, const Tensor& b);
std::string ids_to_string(const std::vector<int32_t>& ids);

}  // namespace dsa::model::gpu_testing
