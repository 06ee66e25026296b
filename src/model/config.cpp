// Parsing config.json into ModelConfig: model dispatch, sizes, RoPE (both spellings), quantization_config,
// special tokens, IndexCache, and the --json-model-override-args merge. Family defaults follow the transformers
// config classes (DeepseekV32Config, GlmMoeDsaConfig) and MODEL_SPEC §1.
#include "model/config.h"

#include "base/mapped_file.h"
#include "model/config_json.h"

namespace dsa::model {
namespace {

using config_json::find_field;
using config_json::Need;
using config_json::read_bool;
using config_json::read_double;
using config_json::read_int;
using config_json::read_string;

constexpr Need kReq = Need::kRequired;
constexpr Need kOpt = Need::kOptional;

StatusOr<ModelFamily> family_from_model_type(const std::string& model_type) {
    if (model_type == "deepseek_v32" || model_type == "deepseek_v3") return ModelFamily::kDeepSeekV32;
    if (model_type == "glm_moe_dsa") return ModelFamily::kGlmMoeDsa;
    return unimplemented(
        "config field 'model_type' is '{}': not supported (supported: deepseek_v32, deepseek_v3 with the DSA "
        "indexer fields, glm_moe_dsa)",
        model_type);
}

// Defaults that differ per family, applied before the fields are read.
void apply_family_defaults(ModelConfig* c) {
    const bool glm = c->family == ModelFamily::kGlmMoeDsa;
    c->n_group = glm ? 1 : 8;
    c->topk_group = glm ? 1 : 4;
    c->indexer_rope_interleave = glm;  // MODEL_SPEC §1.1 / §3.4
    c->rope_interleave = true;
    c->rms_norm_eps = glm ? 1e-5 : 1e-6;
    c->max_position_embeddings = glm ? 202752 : 4096;
    c->rope.theta = glm ? 1000000.0 : 10000.0;
    c->first_k_dense_replace = 3;
    c->moe_layer_freq = 1;
    c->n_shared_experts = 1;
    c->routed_scaling_factor = 2.5;
    c->scoring_func = "sigmoid";
    c->topk_method = "noaux_tc";
    c->norm_topk_prob = true;
    c->hidden_act = "silu";
}

Status parse_string_list(const Json& obj, std::string_view key, std::vector<std::string>* out,
                         std::string_view parent = {}) {
    const Json* v = find_field(obj, key);
    if (v == nullptr) return Status::ok();
    if (!v->is_array()) {
        return invalid_argument("config field '{}' must be a list of strings, got {}",
                                config_json::field_path(parent, key), config_json::describe_value(*v));
    }
    out->clear();
    for (const Json& item : *v) {
        if (!item.is_string()) {
            return invalid_argument("config field '{}' must be a list of strings, has element {}",
                                    config_json::field_path(parent, key), config_json::describe_value(item));
        }
        out->push_back(item.get<std::string>());
    }
    return Status::ok();
}

Status parse_sizes(const Json& j, ModelConfig* c) {
    DSA_RETURN_IF_ERROR(read_int(j, "hidden_size", &c->hidden_size, kReq));
    DSA_RETURN_IF_ERROR(read_int(j, "num_hidden_layers", &c->num_hidden_layers, kReq));
    DSA_RETURN_IF_ERROR(read_int(j, "num_nextn_predict_layers", &c->num_nextn_predict_layers, kOpt));
    DSA_RETURN_IF_ERROR(read_int(j, "vocab_size", &c->vocab_size, kReq));
    DSA_RETURN_IF_ERROR(read_int(j, "max_position_embeddings", &c->max_position_embeddings, kOpt));
    DSA_RETURN_IF_ERROR(read_double(j, "rms_norm_eps", &c->rms_norm_eps, kOpt));
    DSA_RETURN_IF_ERROR(read_bool(j, "tie_word_embeddings", &c->tie_word_embeddings, kOpt));
    DSA_RETURN_IF_ERROR(read_string(j, "torch_dtype", &c->torch_dtype, kOpt));
    return read_string(j, "dtype", &c->torch_dtype, kOpt);  // transformers v5 spelling
}

Status parse_attention(const Json& j, ModelConfig* c) {
    DSA_RETURN_IF_ERROR(read_int(j, "num_attention_heads", &c->num_attention_heads, kReq));
    DSA_RETURN_IF_ERROR(read_int(j, "q_lora_rank", &c->q_lora_rank, kOpt));  // null: no q LoRA
    DSA_RETURN_IF_ERROR(read_int(j, "kv_lora_rank", &c->kv_lora_rank, kReq));
    DSA_RETURN_IF_ERROR(read_int(j, "qk_nope_head_dim", &c->qk_nope_head_dim, kReq));
    DSA_RETURN_IF_ERROR(read_int(j, "qk_rope_head_dim", &c->qk_rope_head_dim, kReq));
    DSA_RETURN_IF_ERROR(read_int(j, "v_head_dim", &c->v_head_dim, kReq));
    DSA_RETURN_IF_ERROR(read_bool(j, "attention_bias", &c->attention_bias, kOpt));
    DSA_RETURN_IF_ERROR(read_int(j, "index_n_heads", &c->index_n_heads, kReq));
    DSA_RETURN_IF_ERROR(read_int(j, "index_head_dim", &c->index_head_dim, kReq));
    DSA_RETURN_IF_ERROR(read_int(j, "index_topk", &c->index_topk, kReq));
    DSA_RETURN_IF_ERROR(read_bool(j, "rope_interleave", &c->rope_interleave, kOpt));
    DSA_RETURN_IF_ERROR(read_bool(j, "indexer_rope_interleave", &c->indexer_rope_interleave, kOpt));
    // GLM writes qk_head_dim explicitly; it must agree with nope + rope.
    int64_t explicit_qk_head_dim = c->qk_head_dim();
    DSA_RETURN_IF_ERROR(read_int(j, "qk_head_dim", &explicit_qk_head_dim, kOpt));
    if (explicit_qk_head_dim != c->qk_head_dim()) {
        return invalid_argument("config field 'qk_head_dim' is {} but qk_nope_head_dim + qk_rope_head_dim = {}",
                                explicit_qk_head_dim, c->qk_head_dim());
    }
    return Status::ok();
}

Status parse_ffn(const Json& j, ModelConfig* c) {
    DSA_RETURN_IF_ERROR(read_int(j, "intermediate_size", &c->intermediate_size, kReq));
    DSA_RETURN_IF_ERROR(read_int(j, "n_routed_experts", &c->n_routed_experts, kOpt));  // null: dense model
    if (c->n_routed_experts > 0) {
        DSA_RETURN_IF_ERROR(read_int(j, "moe_intermediate_size", &c->moe_intermediate_size, kReq));
        DSA_RETURN_IF_ERROR(read_int(j, "num_experts_per_tok", &c->num_experts_per_tok, kReq));
    }
    DSA_RETURN_IF_ERROR(read_int(j, "n_shared_experts", &c->n_shared_experts, kOpt));
    DSA_RETURN_IF_ERROR(read_int(j, "n_group", &c->n_group, kOpt));
    DSA_RETURN_IF_ERROR(read_int(j, "topk_group", &c->topk_group, kOpt));
    DSA_RETURN_IF_ERROR(read_int(j, "first_k_dense_replace", &c->first_k_dense_replace, kOpt));
    DSA_RETURN_IF_ERROR(read_int(j, "moe_layer_freq", &c->moe_layer_freq, kOpt));
    DSA_RETURN_IF_ERROR(read_double(j, "routed_scaling_factor", &c->routed_scaling_factor, kOpt));
    DSA_RETURN_IF_ERROR(read_string(j, "scoring_func", &c->scoring_func, kOpt));
    DSA_RETURN_IF_ERROR(read_string(j, "topk_method", &c->topk_method, kOpt));
    DSA_RETURN_IF_ERROR(read_bool(j, "norm_topk_prob", &c->norm_topk_prob, kOpt));
    return read_string(j, "hidden_act", &c->hidden_act, kOpt);
}

// One RoPE dict: rope_scaling {type|rope_type, factor, ...} or rope_parameters {rope_type, rope_theta, ...}.
Status parse_rope_dict(const Json& d, std::string_view where, int64_t max_position_embeddings, RopeConfig* rope) {
    if (!d.is_object()) {
        return invalid_argument("config field '{}' must be an object, got {}", where, config_json::describe_value(d));
    }
    DSA_RETURN_IF_ERROR(read_double(d, "rope_theta", &rope->theta, kOpt, where));
    std::string type = "default";
    DSA_RETURN_IF_ERROR(read_string(d, "type", &type, kOpt, where));
    DSA_RETURN_IF_ERROR(read_string(d, "rope_type", &type, kOpt, where));
    if (type == "default" || type == "none") {
        rope->type = RopeType::kDefault;
        return Status::ok();
    }
    if (type != "yarn" && type != "deepseek_yarn") {
        return unimplemented("config field '{}' has rope type '{}': not supported (supported: default, yarn)", where,
                             type);
    }
    rope->type = RopeType::kYarn;
    DSA_RETURN_IF_ERROR(read_double(d, "factor", &rope->factor, kReq, where));
    rope->original_max_position_embeddings = max_position_embeddings;  // transformers' fallback
    DSA_RETURN_IF_ERROR(
        read_int(d, "original_max_position_embeddings", &rope->original_max_position_embeddings, kOpt, where));
    DSA_RETURN_IF_ERROR(read_double(d, "beta_fast", &rope->beta_fast, kOpt, where));
    DSA_RETURN_IF_ERROR(read_double(d, "beta_slow", &rope->beta_slow, kOpt, where));
    DSA_RETURN_IF_ERROR(read_double(d, "mscale", &rope->mscale, kOpt, where));
    return read_double(d, "mscale_all_dim", &rope->mscale_all_dim, kOpt, where);
}

Status parse_rope(const Json& j, ModelConfig* c) {
    DSA_RETURN_IF_ERROR(read_double(j, "rope_theta", &c->rope.theta, kOpt));
    if (const Json* params = find_field(j, "rope_parameters")) {
        return parse_rope_dict(*params, "rope_parameters", c->max_position_embeddings, &c->rope);
    }
    if (const Json* scaling = find_field(j, "rope_scaling")) {
        return parse_rope_dict(*scaling, "rope_scaling", c->max_position_embeddings, &c->rope);
    }
    return Status::ok();
}

Status parse_token_ids(const Json& j, ModelConfig* c) {
    int64_t id = 0;
    if (find_field(j, "bos_token_id") != nullptr) {
        DSA_RETURN_IF_ERROR(read_int(j, "bos_token_id", &id, kReq));
        c->bos_token_id = id;
    }
    if (find_field(j, "pad_token_id") != nullptr) {
        DSA_RETURN_IF_ERROR(read_int(j, "pad_token_id", &id, kReq));
        c->pad_token_id = id;
    }
    c->eos_token_ids.clear();
    const Json* eos = find_field(j, "eos_token_id");
    if (eos == nullptr) return Status::ok();
    if (!eos->is_array()) {
        DSA_RETURN_IF_ERROR(read_int(j, "eos_token_id", &id, kReq));
        c->eos_token_ids.push_back(id);
        return Status::ok();
    }
    for (const Json& item : *eos) {
        if (!config_json::json_to_int(item, &id)) {
            return invalid_argument(
                "config field 'eos_token_id' must be an integer or a list of integers, has "
                "element {}",
                config_json::describe_value(item));
        }
        c->eos_token_ids.push_back(id);
    }
    return Status::ok();
}

Status parse_quantization(const Json& j, QuantConfig* q) {
    const Json* qc = find_field(j, "quantization_config");
    if (qc == nullptr) return Status::ok();
    constexpr std::string_view kWhere = "quantization_config";
    if (!qc->is_object()) {
        return invalid_argument("config field 'quantization_config' must be an object, got {}",
                                config_json::describe_value(*qc));
    }
    DSA_RETURN_IF_ERROR(read_string(*qc, "quant_method", &q->quant_method, kReq, kWhere));
    q->method = q->quant_method == "fp8" ? QuantMethod::kFp8 : QuantMethod::kNone;
    DSA_RETURN_IF_ERROR(read_string(*qc, "fmt", &q->fmt, kOpt, kWhere));
    DSA_RETURN_IF_ERROR(read_string(*qc, "activation_scheme", &q->activation_scheme, kOpt, kWhere));
    DSA_RETURN_IF_ERROR(read_string(*qc, "scale_fmt", &q->scale_fmt, kOpt, kWhere));
    DSA_RETURN_IF_ERROR(parse_string_list(*qc, "modules_to_not_convert", &q->modules_to_not_convert, kWhere));
    const Json* block = find_field(*qc, "weight_block_size");
    if (block == nullptr) return Status::ok();
    if (!block->is_array() || block->size() != 2 || !config_json::json_to_int((*block)[0], &q->weight_block_rows) ||
        !config_json::json_to_int((*block)[1], &q->weight_block_cols)) {
        return invalid_argument("config field 'quantization_config.weight_block_size' must be [rows, cols], got {}",
                                config_json::describe_value(*block));
    }
    return Status::ok();
}

Status parse_index_cache(const Json& j, ModelConfig* c) {
    DSA_RETURN_IF_ERROR(read_bool(j, "index_share_for_mtp_iteration", &c->index_share_for_mtp_iteration, kOpt));
    DSA_ASSIGN_OR_RETURN(c->is_full_indexer, indexer_full_layers(j, c->num_hidden_layers, &c->indexer_pattern_source));
    return Status::ok();
}

}  // namespace

const char* model_family_name(ModelFamily family) {
    switch (family) {
        case ModelFamily::kDeepSeekV32:
            return "deepseek_v32";
        case ModelFamily::kGlmMoeDsa:
            return "glm_moe_dsa";
    }
    return "?";
}

StatusOr<ModelConfig> parse_model_config(const Json& j) {
    if (!j.is_object()) return invalid_argument("config.json must be a JSON object, got {}", j.type_name());
    ModelConfig c;
    DSA_RETURN_IF_ERROR(read_string(j, "model_type", &c.model_type, kReq));
    DSA_ASSIGN_OR_RETURN(c.family, family_from_model_type(c.model_type));
    apply_family_defaults(&c);
    DSA_RETURN_IF_ERROR(parse_string_list(j, "architectures", &c.architectures));
    DSA_RETURN_IF_ERROR(parse_sizes(j, &c));
    DSA_RETURN_IF_ERROR(parse_attention(j, &c));
    DSA_RETURN_IF_ERROR(parse_ffn(j, &c));
    DSA_RETURN_IF_ERROR(parse_rope(j, &c));
    DSA_RETURN_IF_ERROR(parse_token_ids(j, &c));
    DSA_RETURN_IF_ERROR(parse_quantization(j, &c.quant));
    DSA_RETURN_IF_ERROR(parse_index_cache(j, &c));
    c.raw = j;
    return c;
}

StatusOr<ModelConfig> parse_model_config_text(std::string_view text, std::string_view origin) {
    Json j = Json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return data_loss("{}: invalid JSON", origin);
    auto parsed = parse_model_config(j);
    if (!parsed.is_ok())
        return Status(parsed.status().code(), fmt::format("{}: {}", origin, parsed.status().message()));
    return parsed;
}

StatusOr<Json> merge_model_override(Json config, std::string_view override_json) {
    if (override_json.empty()) return config;
    Json patch = Json::parse(override_json, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (patch.is_discarded()) {
        return invalid_argument("--json-model-override-args is not valid JSON: {}", override_json);
    }
    if (!patch.is_object()) {
        return invalid_argument("--json-model-override-args must be a JSON object, got {}", patch.type_name());
    }
    if (!config.is_object()) return invalid_argument("config.json must be a JSON object, got {}", config.type_name());
    for (auto it = patch.begin(); it != patch.end(); ++it) config[it.key()] = it.value();
    return config;
}

StatusOr<ModelConfig> load_model_config(const std::string& model_path, std::string_view override_json) {
    const bool is_json_file = model_path.size() >= 5 && model_path.substr(model_path.size() - 5) == ".json";
    const std::string path = is_json_file ? model_path : join_path(model_path, "config.json");
    DSA_ASSIGN_OR_RETURN(std::string text, read_file(path));
    Json j = Json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return data_loss("{}: invalid JSON", path);
    DSA_ASSIGN_OR_RETURN(Json merged, merge_model_override(std::move(j), override_json));
    auto parsed = parse_model_config(merged);
    if (!parsed.is_ok()) return Status(parsed.status().code(), fmt::format("{}: {}", path, parsed.status().message()));
    Status valid = parsed->validate();
    if (!valid.is_ok()) return Status(valid.code(), fmt::format("{}: {}", path, valid.message()));
    return parsed;
}

}  // namespace dsa::model
