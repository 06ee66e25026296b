// ModelEngine: what `dsaserve serve` needs to serve one checkpoint, owned in a destruction-safe order
// (checkpoint -> weights -> backend -> DsaModel -> runner + Engine; the Engine's loop stops first). load()
// reads the config (with --json-model-override-args), maps the weights, builds the backend (CPU, or the one
// the caller's BackendProvider makes: the engine links no device code), sizes the KV pool (both stores
// counted) from EngineConfig::kv_budget_bytes or, on a device with no explicit budget, from device memory and
// --mem-fraction-static through kvcache::plan_kv_memory, and creates the Engine, not yet started.
// EngineConfig fields left at 0 / empty take the model's values (context length, EOS ids).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "base/status.h"
#include "engine/decode_graphs.h"
#include "engine/engine.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace dsa::engine {

struct DeviceMemoryInfo {
    int64_t free_bytes = 0;   // free now (before any weight is uploaded)
    int64_t total_bytes = 0;  // the device's capacity
};

// How to build a non-CPU backend; both null: the CPU backend.
struct BackendProvider {
    std::function<StatusOr<std::unique_ptr<backend::Backend>>(const backend::Numerics&)> make;
    std::function<StatusOr<DeviceMemoryInfo>()> memory;  // required for a device backend without a KV budget
};

struct ModelEngineOptions {
    std::string model_path;
    std::string json_model_override_args;  // --json-model-override-args
    backend::Numerics numerics = backend::Numerics::fp32();
    EngineConfig engine;  // context_length 0: max_position_embeddings; eos_token_ids empty: the config's
    BackendProvider backend;
    // Device backends when engine.kv_budget_bytes <= 0: (weights + KV) / free device memory, as SGLang's
    // --mem-fraction-static; unset: SGLang's default for the device size (kvcache/memory_planner.h).
    std::optional<double> mem_fraction_static;
    // Decode steps on a device backend: CUDA graphs (--cuda-graph-max-bs, --cuda-graph-bs, --disable-cuda-graph).
    // max_bs is capped at engine.max_running_requests.
    DecodeGraphOptions graphs;
};

// Bytes the CUDA backend holds for `weights`: every tensor as stored plus, for FP8 linears,
// the BF16 dequantized copy its BF16 GEMM path keeps (an upper bound: it is made on first use).
int64_t device_weight_bytes(const model::ModelWeights& weights);

class ModelEngine {
  public:
    static StatusOr<std::unique_ptr<ModelEngine>> load(const ModelEngineOptions& options);
    ~ModelEngine();

    Engine& engine() { return *engine_; }
    const model::ModelConfig& model_config() const { return config_; }
    Device device() const { return backend_->device(); }

  private:
    ModelEngine() = default;

    model::ModelConfig config_;
    std::unique_ptr<model::Checkpoint> ckpt_;
    model::ModelWeights weights_;
    std::unique_ptr<backend::Backend> backend_;
    std::unique_ptr<model::DsaModel> model_;
    std::unique_ptr<Engine> engine_;  // declared last: destroyed (and stopped) first
};

}  // namespace dsa::engine
