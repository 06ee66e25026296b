// Test helper: loads a golden fixture (tests/golden/<name>: checkpoint + reference.safetensors made by
// tools/gen_golden.py from a float32 transformers run) and builds a CPU model over it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/sequence_runner.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace dsa::model::testing {

struct GoldenPrompt {
    std::vector<int32_t> ids;
    Tensor logits;            // [m, V] f32, positions logits_pos0 .. logits_pos0 + m - 1
    int64_t logits_pos0 = 0;
    std::vector<int32_t> greedy;
    std::vector<Tensor> topk;  // per layer (undefined where the layer shares), [n, 64] i32
    std::vector<Tensor> topk_gap;
    Tensor mtp_logits;        // [m', V] (n >= 2 only)
    int64_t mtp_logits_pos0 = 0;
    Tensor mtp_topk, mtp_topk_gap;
};

class GoldenFixture {
public:
    explicit GoldenFixture(const std::string& name, backend::Numerics numerics = backend::Numerics::fp32());

    const ModelConfig& config() const { return config_; }
    DsaModel& model() { return *model_; }
    const ModelWeights& weights() const { return weights_; }
    backend::Backend& backend() { return *backend_; }
    const std::vector<GoldenPrompt>& prompts() const { return prompts_; }
    // Fresh KV stores (all layers + MTP) and a runner over them.
    KvStores new_kv(int64_t num_pages = 24) const;

private:
    ModelConfig config_;
    std::unique_ptr<Checkpoint> ckpt_;
    ModelWeights weights_;
    std::unique_ptr<backend::Backend> backend_;
    std::unique_ptr<DsaModel> model_;
    std::vector<GoldenPrompt> prompts_;
    backend::Numerics numerics_;
};

std::string golden_dir(const std::string& name);

// ||a - b|| / ||b|| over all elements (f32 tensors of equal shape).
double relative_l2(const Tensor& a, const Tensor& b);
// Rows [begin, end) of a [R, V] f32 tensor as a new tensor.
Tensor rows_of(const Tensor& t, int64_t begin, int64_t end);

}  // namespace dsa::model::testing
