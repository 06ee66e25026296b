// ModelConfig::validate(): ranges that make no sense, plus the few fixed sizes our kernels are built for
// (latent 512 + rope 64 = the 576-dim MLA cache, indexer head 128 = the Hadamard size, 128x128 FP8 blocks).
// Every message names the field and the value found.
#include "model/config.h"

namespace dsa::model {
namespace {

Status require_positive(std::string_view field, int64_t value) {
    if (value > 0) return Status::ok();
    return invalid_argument("config field '{}' must be > 0, got {}", field, value);
}

Status require_equal(std::string_view field, int64_t value, int64_t required, std::string_view why) {
    if (value == required) return Status::ok();
    return unimplemented("config field '{}' is {}, but {} requires {}", field, value, why, required);
}

Status validate_sizes(const ModelConfig& c) {
    DSA_RETURN_IF_ERROR(require_positive("hidden_size", c.hidden_size));
    DSA_RETURN_IF_ERROR(require_positive("num_hidden_layers", c.num_hidden_layers));
    DSA_RETURN_IF_ERROR(require_positive("vocab_size", c.vocab_size));
    DSA_RETURN_IF_ERROR(require_positive("max_position_embeddings", c.max_position_embeddings));
    if (c.num_nextn_predict_layers < 0) {
        return invalid_argument("config field 'num_nextn_predict_layers' must be >= 0, got {}",
                                c.num_nextn_predict_layers);
    }
    if (!(c.rms_norm_eps > 0.0))
        return invalid_argument("config field 'rms_norm_eps' must be > 0, got {}", c.rms_norm_eps);
    for (int64_t id : c.eos_token_ids) {
        if (id < 0 || id >= c.vocab_size) {
            return invalid_argument("config field 'eos_token_id' has {}, outside the vocabulary [0, {})", id,
                                    c.vocab_size);
        }
    }
    return Status::ok();
}

Status validate_attention(const ModelConfig& c) {
    DSA_RETURN_IF_ERROR(require_positive("num_attention_heads", c.num_attention_heads));
    if (c.q_lora_rank < 0)
        return invalid_argument("config field 'q_lora_rank' must be >= 0 or null, got {}", c.q_lora_rank);
    DSA_RETURN_IF_ERROR(require_positive("qk_nope_head_dim", c.qk_nope_head_dim));
    DSA_RETURN_IF_ERROR(require_positive("v_head_dim", c.v_head_dim));
    DSA_RETURN_IF_ERROR(require_equal("kv_lora_rank", c.kv_lora_rank, 512, "the 576-dim sparse MLA cache"));
    DSA_RETURN_IF_ERROR(require_equal("qk_rope_head_dim", c.qk_rope_head_dim, 64, "the 576-dim sparse MLA cache"));
    if (c.attention_bias) return unimplemented("config field 'attention_bias' is true; DSA attention has no biases");
    DSA_RETURN_IF_ERROR(require_positive("index_n_heads", c.index_n_heads));
    DSA_RETURN_IF_ERROR(require_equal("index_head_dim", c.index_head_dim, 128,
                                      "the indexer (Hadamard 128, FP8 "
                                      "block 128)"));
    DSA_RETURN_IF_ERROR(require_positive("index_topk", c.index_topk));
    return Status::ok();
}

Status validate_moe(const ModelConfig& c) {
    DSA_RETURN_IF_ERROR(require_positive("intermediate_size", c.intermediate_size));
    if (c.first_k_dense_replace < 0) {
        return invalid_argument("config field 'first_k_dense_replace' must be >= 0, got {}", c.first_k_dense_replace);
    }
    DSA_RETURN_IF_ERROR(require_positive("moe_layer_freq", c.moe_layer_freq));
    if (c.n_routed_experts < 0)
        return invalid_argument("config field 'n_routed_experts' must be >= 0, got {}", c.n_routed_experts);
    if (c.n_routed_experts == 0) return Status::ok();
    DSA_RETURN_IF_ERROR(require_positive("moe_intermediate_size", c.moe_intermediate_size));
    DSA_RETURN_IF_ERROR(require_positive("num_experts_per_tok", c.num_experts_per_tok));
    DSA_RETURN_IF_ERROR(require_positive("n_group", c.n_group));
    if (c.n_shared_experts < 0)
        return invalid_argument("config field 'n_shared_experts' must be >= 0, got {}", c.n_shared_experts);
    if (c.num_experts_per_tok > c.n_routed_experts) {
        return invalid_argument("config field 'num_experts_per_tok' is {}, more than n_routed_experts {}",
                                c.num_experts_per_tok, c.n_routed_experts);
    }
    if (c.n_routed_experts % c.n_group != 0) {
        return invalid_argument("config field 'n_group' is {}, which does not divide n_routed_experts {}", c.n_group,
                                c.n_routed_experts);
    }
    if (c.topk_group < 1 || c.topk_group > c.n_group) {
        return invalid_argument("config field 'topk_group' is {}, must be in [1, n_group = {}]", c.topk_group,
                                c.n_group);
    }
    if (c.scoring_func != "sigmoid") {
        return unimplemented("config field 'scoring_func' is '{}'; only 'sigmoid' is supported", c.scoring_func);
    }
    if (c.topk_method != "noaux_tc") {
        return unimplemented("config field 'topk_method' is '{}'; only 'noaux_tc' is supported", c.topk_method);
    }
    return Status::ok();
}

Status validate_rope_and_quant(const ModelConfig& c) {
    if (!(c.rope.theta > 0.0)) return invalid_argument("rope_theta must be > 0, got {}", c.rope.theta);
    if (c.rope.type == RopeType::kYarn) {
        if (!(c.rope.factor >= 1.0))
            return invalid_argument("rope scaling 'factor' must be >= 1, got {}", c.rope.factor);
        DSA_RETURN_IF_ERROR(
            require_positive("rope_scaling.original_max_position_embeddings", c.rope.original_max_position_embeddings));
        if (!(c.rope.beta_fast > 0.0 && c.rope.beta_slow > 0.0)) {
            return invalid_argument("rope scaling beta_fast/beta_slow must be > 0, got {}/{}", c.rope.beta_fast,
                                    c.rope.beta_slow);
        }
    }
    if (c.hidden_act != "silu") {
        return unimplemented("config field 'hidden_act' is '{}'; only 'silu' is supported", c.hidden_act);
    }
    if (!c.quant.quant_method.empty() && c.quant.method != QuantMethod::kFp8) {
        return unimplemented("config field 'quantization_config.quant_method' is '{}'; only 'fp8' is supported",
                             c.quant.quant_method);
    }
    if (c.quant.method == QuantMethod::kFp8) {
        if (c.quant.weight_block_rows != 128 || c.quant.weight_block_cols != 128) {
            return unimplemented(
                "config field 'quantization_config.weight_block_size' is [{}, {}]; only [128, 128] "
                "is supported",
                c.quant.weight_block_rows, c.quant.weight_block_cols);
        }
        if (!c.quant.fmt.empty() && c.quant.fmt != "e4m3") {
            return unimplemented("config field 'quantization_config.fmt' is '{}'; only 'e4m3' is supported",
                                 c.quant.fmt);
        }
        if (!c.quant.scale_fmt.empty() && c.quant.scale_fmt != "ue8m0") {
            return unimplemented("config field 'quantization_config.scale_fmt' is '{}'; only 'ue8m0' is supported",
                                 c.quant.scale_fmt);
        }
    }
    return Status::ok();
}

}  // namespace

Status ModelConfig::validate() const {
    DSA_RETURN_IF_ERROR(validate_sizes(*this));
    DSA_RETURN_IF_ERROR(validate_attention(*this));
    DSA_RETURN_IF_ERROR(validate_moe(*this));
    DSA_RETURN_IF_ERROR(validate_rope_and_quant(*this));
    if (static_cast<int64_t>(is_full_indexer.size()) != num_hidden_layers) {
        return invalid_argument("IndexCache pattern has {} layers, num_hidden_layers is {}", is_full_indexer.size(),
                                num_hidden_layers);
    }
    return Status::ok();
}

}  // namespace dsa::model
