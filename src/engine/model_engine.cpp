// ModelEngine::load: config -> checkpoint -> weights -> backend -> model -> runner -> Engine.
#include "engine/model_engine.h"

#include "base/logging.h"
#include "engine/model_runner.h"

namespace dsa::engine {

StatusOr<std::unique_ptr<ModelEngine>> ModelEngine::load(const ModelEngineOptions& options) {
    std::unique_ptr<ModelEngine> me(new ModelEngine());
    auto config = model::load_model_config(options.model_path, options.json_model_override_args);
    if (!config.is_ok()) return config.status();
    me->config_ = std::move(config).value();
    auto ckpt = model::Checkpoint::open(options.model_path);
    if (!ckpt.is_ok()) return ckpt.status();
    me->ckpt_ = std::make_unique<model::Checkpoint>(std::move(ckpt).value());
    auto weights = model::load_model_weights(*me->ckpt_, me->config_);
    if (!weights.is_ok()) return weights.status();
    me->weights_ = std::move(weights).value();

    EngineConfig cfg = options.engine;
    if (cfg.context_length <= 0) cfg.context_length = me->config_.max_position_embeddings;
    if (cfg.eos_token_ids.empty()) {
        for (int64_t id : me->config_.eos_token_ids) cfg.eos_token_ids.push_back(static_cast<int32_t>(id));
    }
    if (Status st = cfg.validate(); !st.is_ok()) return st;
    me->backend_ = backend::make_cpu_backend(options.numerics);
    me->model_ = std::make_unique<model::DsaModel>(me->config_, me->weights_, *me->backend_,
                                                   model::ModelOptions{.max_positions = cfg.context_length});
    auto runner = DsaModelRunner::create(*me->model_, options.numerics, cfg.kv_budget_bytes, cfg.page_size);
    if (!runner.is_ok()) return runner.status();
    DSA_LOG(kInfo) << "KV pool: " << (*runner)->num_pages() << " pages of " << cfg.page_size << " tokens, "
                   << (*runner)->pool().total_bytes() << " bytes (latent " << (*runner)->pool().mla_bytes()
                   << ", indexer " << (*runner)->pool().indexer_bytes() << ")";
    auto engine = Engine::create(cfg, std::move(runner).value());
    if (!engine.is_ok()) return engine.status();
    me->engine_ = std::move(engine).value();
    return me;
}

ModelEngine::~ModelEngine() {
    if (engine_) engine_->stop();
}

}  // namespace dsa::engine
