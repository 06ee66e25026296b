// Assembling ModelWeights from a checkpoint: global tensors, then each decoder layer (norms, MLA, indexer, dense
// MLP or MoE), then the MTP layers when requested. Names follow the Hugging Face checkpoints (MODEL_SPEC §2.2).
#include "model/weights.h"

#include <algorithm>

#include "model/weights_loader.h"

namespace dsa::model {
namespace {

std::string layer_prefix(int64_t layer) { return fmt::format("model.layers.{}.", layer); }

// Loads the tensors of one model from the checkpoint through a TensorLoader.
class ModelAssembler {
  public:
    ModelAssembler(const Checkpoint& ckpt, const ModelConfig& config) : config_(config), loader_(ckpt) {}

    Status load_globals(ModelWeights* w);
    StatusOr<LayerWeights> load_layer(int64_t layer);
    StatusOr<MtpWeights> load_mtp(int64_t layer, const ModelWeights& main);
    const TensorLoader& loader() const { return loader_; }

  private:
    StatusOr<AttentionWeights> load_attention(const std::string& p, int64_t layer);
    StatusOr<IndexerWeights> load_indexer(const std::string& p);
    StatusOr<MlpWeights> load_mlp(const std::string& p, int64_t width, std::string_view width_name);
    StatusOr<MoeWeights> load_moe(const std::string& p);

    const ModelConfig& config_;
    TensorLoader loader_;
};

Status ModelAssembler::load_globals(ModelWeights* w) {
    const int64_t vocab = config_.vocab_size;
    const int64_t hidden = config_.hidden_size;
    const std::initializer_list<DType> kFloat = {DType::kBF16, DType::kF32};
    DSA_ASSIGN_OR_RETURN(w->embed_tokens, loader_.plain("model.embed_tokens.weight", {vocab, hidden}, kFloat,
                                                        "vocab_size, hidden_size"));
    DSA_ASSIGN_OR_RETURN(w->final_norm, loader_.vector_f32("model.norm.weight", hidden, "hidden_size"));
    if (config_.tie_word_embeddings && !loader_.has("lm_head.weight")) {
        w->lm_head = w->embed_tokens;
        return Status::ok();
    }
    DSA_ASSIGN_OR_RETURN(w->lm_head,
                         loader_.plain("lm_head.weight", {vocab, hidden}, kFloat, "vocab_size, hidden_size"));
    return Status::ok();
}

StatusOr<IndexerWeights> ModelAssembler::load_indexer(const std::string& p) {
    const int64_t hidden = config_.hidden_size;
    const int64_t head_dim = config_.index_head_dim;
    // The indexer queries come from the q LoRA output; without q LoRA, from the normalized hidden state.
    const int64_t q_in = config_.q_lora_rank > 0 ? config_.q_lora_rank : hidden;
    IndexerWeights ix;
    DSA_ASSIGN_OR_RETURN(ix.wq_b, loader_.linear(p + "wq_b", config_.index_n_heads * head_dim, q_in,
                                                 "index_n_heads * index_head_dim, q_lora_rank"));
    DSA_ASSIGN_OR_RETURN(ix.wk, loader_.linear(p + "wk", head_dim, hidden, "index_head_dim, hidden_size"));
    DSA_ASSIGN_OR_RETURN(ix.k_norm_weight, loader_.vector_f32(p + "k_norm.weight", head_dim, "index_head_dim"));
    DSA_ASSIGN_OR_RETURN(ix.k_norm_bias, loader_.vector_f32(p + "k_norm.bias", head_dim, "index_head_dim"));
    DSA_ASSIGN_OR_RETURN(ix.weights_proj, loader_.plain(p + "weights_proj.weight", {config_.index_n_heads, hidden},
                                                        {DType::kBF16, DType::kF32}, "index_n_heads, hidden_size"));
    return ix;
}

StatusOr<AttentionWeights> ModelAssembler::load_attention(const std::string& p, int64_t layer) {
    const ModelConfig& c = config_;
    const int64_t heads = c.num_attention_heads;
    AttentionWeights a;
    if (c.q_lora_rank > 0) {
        DSA_ASSIGN_OR_RETURN(a.q_a_proj,
                             loader_.linear(p + "q_a_proj", c.q_lora_rank, c.hidden_size, "q_lora_rank, hidden_size"));
        DSA_ASSIGN_OR_RETURN(a.q_a_layernorm,
                             loader_.vector_f32(p + "q_a_layernorm.weight", c.q_lora_rank, "q_lora_rank"));
        DSA_ASSIGN_OR_RETURN(a.q_b_proj, loader_.linear(p + "q_b_proj", heads * c.qk_head_dim(), c.q_lora_rank,
                                                        "num_attention_heads * qk_head_dim, q_lora_rank"));
    } else {
        DSA_ASSIGN_OR_RETURN(a.q_proj, loader_.linear(p + "q_proj", heads * c.qk_head_dim(), c.hidden_size,
                                                      "num_attention_heads * qk_head_dim, hidden_size"));
    }
    DSA_ASSIGN_OR_RETURN(a.kv_a_proj_with_mqa,
                         loader_.linear(p + "kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, c.hidden_size,
                                        "kv_lora_rank + qk_rope_head_dim, hidden_size"));
    DSA_ASSIGN_OR_RETURN(a.kv_a_layernorm,
                         loader_.vector_f32(p + "kv_a_layernorm.weight", c.kv_lora_rank, "kv_lora_rank"));
    DSA_ASSIGN_OR_RETURN(a.kv_b_proj,
                         loader_.linear(p + "kv_b_proj", heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank,
                                        "num_attention_heads * (qk_nope_head_dim + v_head_dim), "
                                        "kv_lora_rank"));
    DSA_ASSIGN_OR_RETURN(a.o_proj, loader_.linear(p + "o_proj", c.hidden_size, heads * c.v_head_dim,
                                                  "hidden_size, num_attention_heads * v_head_dim"));
    // Full layers (and MTP layers) must carry an indexer; IndexCache Shared layers may or may not.
    const std::string ip = p + "indexer.";
    if (c.layer_has_own_indexer(layer) || loader_.has(ip + "wk.weight") || loader_.has(ip + "wq_b.weight")) {
        DSA_ASSIGN_OR_RETURN(a.indexer, load_indexer(ip));
    }
    return a;
}

StatusOr<MlpWeights> ModelAssembler::load_mlp(const std::string& p, int64_t width, std::string_view width_name) {
    const int64_t hidden = config_.hidden_size;
    const std::string in_dims = fmt::format("{}, hidden_size", width_name);
    const std::string out_dims = fmt::format("hidden_size, {}", width_name);
    MlpWeights m;
    DSA_ASSIGN_OR_RETURN(m.gate_proj, loader_.linear(p + "gate_proj", width, hidden, in_dims));
    DSA_ASSIGN_OR_RETURN(m.up_proj, loader_.linear(p + "up_proj", width, hidden, in_dims));
    DSA_ASSIGN_OR_RETURN(m.down_proj, loader_.linear(p + "down_proj", hidden, width, out_dims));
    return m;
}

StatusOr<MoeWeights> ModelAssembler::load_moe(const std::string& p) {
    const ModelConfig& c = config_;
    MoeWeights moe;
    DSA_ASSIGN_OR_RETURN(moe.router_weight,
                         loader_.plain(p + "gate.weight", {c.n_routed_experts, c.hidden_size},
                                       {DType::kBF16, DType::kF32}, "n_routed_experts, hidden_size"));
    DSA_ASSIGN_OR_RETURN(moe.e_score_correction_bias, loader_.vector_f32(p + "gate.e_score_correction_bias",
                                                                         c.n_routed_experts, "n_routed_experts"));
    moe.experts.reserve(static_cast<size_t>(c.n_routed_experts));
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        DSA_ASSIGN_OR_RETURN(MlpWeights expert, load_mlp(fmt::format("{}experts.{}.", p, e), c.moe_intermediate_size,
                                                         "moe_intermediate_size"));
        moe.experts.push_back(std::move(expert));
    }
    if (c.n_shared_experts > 0) {
        DSA_ASSIGN_OR_RETURN(moe.shared_experts,
                             load_mlp(p + "shared_experts.", c.moe_intermediate_size * c.n_shared_experts,
                                      "moe_intermediate_size * n_shared_experts"));
    }
    return moe;
}

StatusOr<LayerWeights> ModelAssembler::load_layer(int64_t layer) {
    const std::string p = layer_prefix(layer);
    LayerWeights w;
    w.layer_index = layer;
    DSA_ASSIGN_OR_RETURN(w.input_layernorm,
                         loader_.vector_f32(p + "input_layernorm.weight", config_.hidden_size, "hidden_size"));
    DSA_ASSIGN_OR_RETURN(w.post_attention_layernorm,
                         loader_.vector_f32(p + "post_attention_layernorm.weight", config_.hidden_size, "hidden_size"));
    DSA_ASSIGN_OR_RETURN(w.attn, load_attention(p + "self_attn.", layer));
    if (config_.is_moe_layer(layer)) {
        DSA_ASSIGN_OR_RETURN(w.moe, load_moe(p + "mlp."));
    } else {
        DSA_ASSIGN_OR_RETURN(w.dense_mlp, load_mlp(p + "mlp.", config_.intermediate_size, "intermediate_size"));
    }
    return w;
}

StatusOr<MtpWeights> ModelAssembler::load_mtp(int64_t layer, const ModelWeights& main) {
    const std::string p = layer_prefix(layer);
    const int64_t hidden = config_.hidden_size;
    const Shape vocab_shape{config_.vocab_size, hidden};
    const std::initializer_list<DType> kFloat = {DType::kBF16, DType::kF32};
    MtpWeights m;
    DSA_ASSIGN_OR_RETURN(m.enorm, loader_.vector_f32(p + "enorm.weight", hidden, "hidden_size"));
    DSA_ASSIGN_OR_RETURN(m.hnorm, loader_.vector_f32(p + "hnorm.weight", hidden, "hidden_size"));
    DSA_ASSIGN_OR_RETURN(m.eh_proj, loader_.linear(p + "eh_proj", hidden, 2 * hidden, "hidden_size, 2 * hidden_size"));
    DSA_ASSIGN_OR_RETURN(m.shared_head_norm, loader_.vector_f32(p + "shared_head.norm.weight", hidden, "hidden_size"));
    m.has_own_head = loader_.has(p + "shared_head.head.weight");
    m.has_own_embed = loader_.has(p + "embed_tokens.weight");
    m.shared_head_head = main.lm_head;
    m.embed_tokens = main.embed_tokens;
    if (m.has_own_head) {
        DSA_ASSIGN_OR_RETURN(m.shared_head_head, loader_.plain(p + "shared_head.head.weight", vocab_shape, kFloat,
                                                               "vocab_size, hidden_size"));
    }
    if (m.has_own_embed) {
        DSA_ASSIGN_OR_RETURN(m.embed_tokens,
                             loader_.plain(p + "embed_tokens.weight", vocab_shape, kFloat, "vocab_size, hidden_size"));
    }
    DSA_ASSIGN_OR_RETURN(m.layer, load_layer(layer));
    return m;
}

// The MTP layer index a tensor name belongs to, or -1.
int64_t mtp_layer_of(const std::string& name, const ModelConfig& config) {
    constexpr std::string_view kPrefix = "model.layers.";
    if (name.rfind(kPrefix, 0) != 0) return -1;
    const int64_t layer = std::atoll(name.c_str() + kPrefix.size());
    return layer >= config.num_hidden_layers ? layer : -1;
}

std::vector<std::string> find_unused(const Checkpoint& ckpt, const ModelConfig& config, const TensorLoader& loader,
                                     const WeightLoadOptions& options) {
    std::vector<std::string> unused;
    for (const std::string& name : ckpt.tensor_names()) {
        if (loader.consumed().count(name) != 0) continue;
        if (options.mtp == MtpLoad::kSkip && mtp_layer_of(name, config) >= 0) continue;
        unused.push_back(name);
    }
    return unused;
}

void visit_layer(const LayerWeights& layer, const std::function<void(const std::string&, const LinearWeight&)>& fn) {
    auto visit = [&](const LinearWeight& w) {
        if (w.defined()) fn(w.weight.name(), w);
    };
    auto visit_mlp = [&](const MlpWeights& m) {
        visit(m.gate_proj);
        visit(m.up_proj);
        visit(m.down_proj);
    };
    const AttentionWeights& a = layer.attn;
    for (const LinearWeight* w :
         {&a.q_a_proj, &a.q_b_proj, &a.q_proj, &a.kv_a_proj_with_mqa, &a.kv_b_proj, &a.o_proj}) {
        visit(*w);
    }
    if (a.indexer) {
        visit(a.indexer->wq_b);
        visit(a.indexer->wk);
    }
    if (layer.dense_mlp) visit_mlp(*layer.dense_mlp);
    if (layer.moe) {
        for (const MlpWeights& e : layer.moe->experts) visit_mlp(e);
        if (layer.moe->shared_experts) visit_mlp(*layer.moe->shared_experts);
    }
}

}  // namespace

StatusOr<ModelWeights> load_model_weights(const Checkpoint& ckpt, const ModelConfig& config,
                                          const WeightLoadOptions& options) {
    ModelAssembler assembler(ckpt, config);
    ModelWeights w;
    DSA_RETURN_IF_ERROR(assembler.load_globals(&w));
    w.layers.reserve(static_cast<size_t>(config.num_hidden_layers));
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
        DSA_ASSIGN_OR_RETURN(LayerWeights layer, assembler.load_layer(i));
        w.layers.push_back(std::move(layer));
    }
    if (options.mtp == MtpLoad::kLoad) {
        if (config.num_nextn_predict_layers == 0) {
            return invalid_argument("MTP weights requested, but config field 'num_nextn_predict_layers' is 0");
        }
        for (int64_t k = 0; k < config.num_nextn_predict_layers; ++k) {
            DSA_ASSIGN_OR_RETURN(MtpWeights mtp, assembler.load_mtp(config.mtp_layer_index(k), w));
            w.mtp.push_back(std::move(mtp));
        }
    }
    w.unused_tensor_names = find_unused(ckpt, config, assembler.loader(), options);
    return w;
}

void for_each_linear(const ModelWeights& weights,
                     const std::function<void(const std::string&, const LinearWeight&)>& fn) {
    for (const LayerWeights& layer : weights.layers) visit_layer(layer, fn);
    for (const MtpWeights& mtp : weights.mtp) {
        if (mtp.eh_proj.defined()) fn(mtp.eh_proj.weight.name(), mtp.eh_proj);
        visit_layer(mtp.layer, fn);
    }
}

}  // namespace dsa::model
