// ModelEngine: what `dsaserve serve` needs to serve one checkpoint, owned in a destruction-safe order
// (checkpoint -> weights -> backend -> DsaModel -> runner + Engine; the Engine's loop stops first). load()
// reads the config (with --json-model-override-args), maps the weights, builds the CPU backend with the given
// numerics, sizes the KV pool from EngineConfig::kv_budget_bytes (both stores counted) and creates the Engine,
// not yet started. EngineConfig fields left at 0 / empty take the model's values (context length, EOS ids).
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "base/status.h"
#include "engine/engine.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace dsa::engine {

struct ModelEngineOptions {
    std::string model_path;
    std::string json_model_override_args;  // --json-model-override-args
    backend::Numerics numerics = backend::Numerics::fp32();
    EngineConfig engine;  // context_length 0: max_position_embeddings; eos_token_ids empty: the config's
};

class ModelEngine {
  public:
    static StatusOr<std::unique_ptr<ModelEngine>> load(const ModelEngineOptions& options);
    ~ModelEngine();

    Engine& engine() { return *engine_; }
    const model::ModelConfig& model_config() const { return config_; }

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
