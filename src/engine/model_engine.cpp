// ModelEngine::load: config -> checkpoint -> weights -> backend -> model -> KV budget -> runner -> Engine.
// The device KV budget follows SGLang: (weights + KV) = mem_fraction_static x free memory before loading, the
// reserve for activations and workspaces kept out (kvcache::plan_kv_memory).
#include "engine/model_engine.h"

#include <algorithm>

#include "base/env.h"
#include "base/logging.h"
#include "engine/model_runner.h"
#include "kvcache/memory_planner.h"

namespace dsa::engine {
namespace {

model::ModelOptions model_options(const EngineConfig& cfg) {
    model::ModelOptions mo;
    mo.max_positions = cfg.context_length;
    mo.dense_prefill_max_kv = env_int("SGLANG_NSA_PREFILL_DENSE_ATTN_KV_LEN_THRESHOLD", mo.dense_prefill_max_kv,
                                      "prefill runs dense MHA while every prefilling sequence has at most this many "
                                      "keys, sparse absorbed MLA beyond");
    return mo;
}

int64_t tensor_bytes(const Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }

StatusOr<std::unique_ptr<backend::Backend>> make_backend(const ModelEngineOptions& options) {
    if (!options.backend.make) return backend::make_cpu_backend(options.numerics);
    return options.backend.make(options.numerics);
}

kvcache::ActivationInput activation_input(const model::ModelConfig& mc, const EngineConfig& cfg) {
    kvcache::ActivationInput a;
    a.hidden = mc.hidden_size;
    a.vocab = mc.vocab_size;
    a.num_heads = mc.num_attention_heads;
    a.qk_head_dim = mc.qk_head_dim();
    a.v_head_dim = mc.v_head_dim;
    a.latent_dim = mc.kv_lora_rank;
    a.kv_dim = mc.kv_lora_rank + mc.qk_rope_head_dim;
    a.q_lora_rank = mc.q_lora_rank;
    a.index_heads = mc.index_n_heads;
    a.index_head_dim = mc.index_head_dim;
    a.index_topk = mc.index_topk;
    a.moe_width = mc.moe_intermediate_size;
    a.experts_per_token = mc.num_experts_per_tok;
    a.dense_width = mc.intermediate_size;
    a.context_tokens = cfg.context_length;
    a.chunk_tokens = cfg.chunked_prefill_size > 0 ? cfg.chunked_prefill_size : cfg.context_length;
    a.max_running = cfg.max_running_requests;
    a.dense_prefill_max_kv = model_options(cfg).dense_prefill_max_kv;
    return a;
}

// The largest decode batch captured in a CUDA graph (0: none).
int64_t graph_max_bs(const DecodeGraphOptions& g, const EngineConfig& cfg) {
    if (!g.enabled) return 0;
    int64_t bs = g.batch_sizes.empty() ? g.max_bs : *std::max_element(g.batch_sizes.begin(), g.batch_sizes.end());
    return std::min(bs, cfg.max_running_requests);
}

// The KV byte budget: the explicit one, or on a device the memory plan.
StatusOr<int64_t> kv_budget(const ModelEngineOptions& options, const EngineConfig& cfg, const model::ModelConfig& mc,
                            const model::ModelWeights& weights, Device device) {
    if (cfg.kv_budget_bytes > 0) return cfg.kv_budget_bytes;
    if (device == Device::kCPU || !options.backend.memory) {
        return invalid_argument("no KV cache budget: set EngineConfig::kv_budget_bytes (device memory is unknown)");
    }
    DSA_ASSIGN_OR_RETURN(DeviceMemoryInfo mem, options.backend.memory());
    kvcache::ReserveInput reserve;
    reserve.chunked_prefill_size = cfg.chunked_prefill_size > 0 ? cfg.chunked_prefill_size : 8192;
    const int64_t graph_bs = graph_max_bs(options.graphs, cfg);
    reserve.cuda_graph_max_bs = static_cast<int>(graph_bs);
    kvcache::MemoryPlanInput in;
    in.total_device_bytes = mem.total_bytes;
    in.free_before_load_bytes = mem.free_bytes;
    in.weight_bytes = device_weight_bytes(weights);
    // The reserve: SGLang's estimate, or what our own step buffers need (+1 GiB for library workspaces and
    // fragmentation) when that is more (long contexts: the indexer's scores grow with chunk x context).
    const kvcache::ActivationInput ai = activation_input(mc, cfg);
    const kvcache::ActivationEstimate act = kvcache::estimate_activation_bytes(ai);
    const int64_t graphs = kvcache::estimate_graph_bytes(ai, graph_bs, cfg.page_size);
    in.reserve_bytes = std::max(kvcache::default_reserve_bytes(reserve, mem.total_bytes),
                                act.total() + graphs + (int64_t{1} << 30));
    // The plan measures the fraction against the memory free before loading (the CUDA context already holds
    // some), so the default is taken against the same base.
    const int64_t base = mem.free_bytes > 0 ? mem.free_bytes : mem.total_bytes;
    in.mem_fraction_static =
        options.mem_fraction_static.value_or(kvcache::default_mem_fraction_static(base, in.reserve_bytes));
    kvcache::KvCacheConfig kv = kv_cache_config_for(mc, options.numerics, cfg.page_size, device);
    DSA_ASSIGN_OR_RETURN(kvcache::MemoryPlan plan, kvcache::plan_kv_memory(kv, in));
    DSA_LOG(kInfo) << "device memory: " << mem.free_bytes << " of " << mem.total_bytes << " bytes free, "
                   << "mem_fraction_static " << in.mem_fraction_static << "; reserve " << (in.reserve_bytes >> 20)
                   << " MiB for " << kvcache::describe_activations(act) << " and CUDA graphs up to batch " << graph_bs
                   << " (" << (graphs >> 20) << " MiB); "
                   << kvcache::describe_plan(kv, plan, in.weight_bytes);
    return plan.kv_budget_bytes;
}

}  // namespace

int64_t device_weight_bytes(const model::ModelWeights& weights) {
    int64_t n = 0;
    model::for_each_linear(weights, [&](const std::string&, const backend::LinearWeight& w) {
        n += tensor_bytes(w.weight) + tensor_bytes(w.scale_inv);
        if (w.is_fp8()) n += w.weight.numel() * 2;  // the BF16 dequantized copy
    });
    auto layer_extras = [&](const model::LayerWeights& lw) {
        n += tensor_bytes(lw.input_layernorm) + tensor_bytes(lw.post_attention_layernorm);
        n += tensor_bytes(lw.attn.q_a_layernorm) + tensor_bytes(lw.attn.kv_a_layernorm);
        if (lw.attn.indexer) {
            n += tensor_bytes(lw.attn.indexer->weights_proj) + tensor_bytes(lw.attn.indexer->k_norm_weight) +
                 tensor_bytes(lw.attn.indexer->k_norm_bias);
        }
        if (lw.moe) n += tensor_bytes(lw.moe->router_weight) + tensor_bytes(lw.moe->e_score_correction_bias);
    };
    n += tensor_bytes(weights.embed_tokens) + tensor_bytes(weights.final_norm);
    if (weights.lm_head.raw_data() != weights.embed_tokens.raw_data()) n += tensor_bytes(weights.lm_head);
    for (const model::LayerWeights& lw : weights.layers) layer_extras(lw);
    for (const model::MtpWeights& m : weights.mtp) {
        layer_extras(m.layer);
        n += tensor_bytes(m.enorm) + tensor_bytes(m.hnorm) + tensor_bytes(m.shared_head_norm);
        if (m.has_own_head) n += tensor_bytes(m.shared_head_head);
        if (m.has_own_embed) n += tensor_bytes(m.embed_tokens);
    }
    return n;
}

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
    // The budget is resolved below; validate() sees a positive placeholder when it is planned.
    const bool planned = cfg.kv_budget_bytes <= 0;
    if (planned) cfg.kv_budget_bytes = 1;
    if (Status st = cfg.validate(); !st.is_ok()) return st;
    DSA_ASSIGN_OR_RETURN(me->backend_, make_backend(options));
    if (planned) cfg.kv_budget_bytes = 0;
    DSA_ASSIGN_OR_RETURN(cfg.kv_budget_bytes,
                         kv_budget(options, cfg, me->config_, me->weights_, me->backend_->device()));
    me->model_ = std::make_unique<model::DsaModel>(me->config_, me->weights_, *me->backend_,
                                                   model_options(cfg));
    auto runner = DsaModelRunner::create(*me->model_, options.numerics, cfg.kv_budget_bytes, cfg.page_size);
    if (!runner.is_ok()) return runner.status();
    DSA_LOG(kInfo) << "KV pool on " << device_name(me->backend_->device()) << ": " << (*runner)->num_pages()
                   << " pages of " << cfg.page_size << " tokens, " << (*runner)->pool().total_bytes()
                   << " bytes (latent " << (*runner)->pool().mla_bytes() << ", indexer "
                   << (*runner)->pool().indexer_bytes() << ")";
    DecodeGraphOptions graphs = options.graphs;
    graphs.max_bs = graph_max_bs(graphs, cfg);
    std::erase_if(graphs.batch_sizes, [&](int64_t b) { return b > graphs.max_bs; });
    (*runner)->enable_device_decode(cfg.context_length, graphs);
    auto engine = Engine::create(cfg, std::move(runner).value());
    if (!engine.is_ok()) return engine.status();
    me->engine_ = std::move(engine).value();
    return me;
}

ModelEngine::~ModelEngine() {
    if (engine_) engine_->stop();
}

}  // namespace dsa::engine
