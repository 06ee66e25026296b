// Builds tiny DeepSeek-V3.2-like and GLM-5-like checkpoints for loader tests: the real tensor names, dtypes
// and FP8 pairing of MODEL_SPEC §2, with the per-head dims our kernels need (latent 512, rope 64, indexer 128)
// and small everything else. Tensors are listed first (so a test can drop or alter one), then written round-robin
// over shards, so a weight and its weight_scale_inv land in different shards, with an index.json.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "base/json.h"
#include "model/config.h"
#include "model/safetensors_writer.h"
#include "tensor/dtype.h"

namespace dsa::model::testing {

struct TinySpec {
    ModelFamily family = ModelFamily::kDeepSeekV32;
    bool fp8 = true;
    int num_shards = 3;  // 0: a single model.safetensors without index
    bool mtp = true;
    bool mtp_embed_head_copies = true;
    std::string index_topk_pattern;  // empty: every layer Full; S layers get no indexer tensors
    DType norm_dtype = DType::kF32;
    bool q_lora = true;
};

struct TinyTensor {
    std::string name;
    DType dtype;
    Shape shape;
    std::vector<float> values;
};

constexpr int64_t kTinyHidden = 256;
constexpr int64_t kTinyVocab = 300;
constexpr int64_t kTinyLayers = 3;

inline Json tiny_config_json(const TinySpec& spec) {
    const bool glm = spec.family == ModelFamily::kGlmMoeDsa;
    Json j = {
        {"architectures", {glm ? "GlmMoeDsaForCausalLM" : "DeepseekV32ForCausalLM"}},
        {"model_type", glm ? "glm_moe_dsa" : "deepseek_v32"},
        {"hidden_size", kTinyHidden},
        {"num_hidden_layers", kTinyLayers},
        {"num_nextn_predict_layers", spec.mtp ? 1 : 0},
        {"vocab_size", kTinyVocab},
        {"max_position_embeddings", 4096},
        {"num_attention_heads", 2},
        {"q_lora_rank", spec.q_lora ? Json(192) : Json(nullptr)},
        {"kv_lora_rank", 512},
        {"qk_nope_head_dim", glm ? 192 : 128},
        {"qk_rope_head_dim", 64},
        {"v_head_dim", glm ? 256 : 128},
        {"index_n_heads", 2},
        {"index_head_dim", 128},
        {"index_topk", 64},
        {"intermediate_size", 320},
        {"moe_intermediate_size", 64},
        {"n_routed_experts", 4},
        {"n_shared_experts", 1},
        {"num_experts_per_tok", 2},
        {"n_group", glm ? 1 : 2},
        {"topk_group", 1},
        {"first_k_dense_replace", 1},
        {"moe_layer_freq", 1},
        {"routed_scaling_factor", 2.5},
        {"scoring_func", "sigmoid"},
        {"topk_method", "noaux_tc"},
        {"norm_topk_prob", true},
        {"hidden_act", "silu"},
        {"rms_norm_eps", glm ? 1e-5 : 1e-6},
        {"tie_word_embeddings", false},
        {"bos_token_id", 0},
        {"eos_token_id", glm ? Json::array({1, 2}) : Json(1)},
    };
    if (glm) {
        j["rope_parameters"] = {{"rope_theta", 1000000}, {"rope_type", "default"}};
        j["indexer_rope_interleave"] = true;
    } else {
        j["rope_theta"] = 10000;
        j["rope_scaling"] = {{"type", "yarn"},       {"factor", 40},   {"original_max_position_embeddings", 4096},
                             {"beta_fast", 32},      {"beta_slow", 1}, {"mscale", 1.0},
                             {"mscale_all_dim", 1.0}};
    }
    if (spec.fp8) {
        j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                    {"fmt", "e4m3"},
                                    {"quant_method", "fp8"},
                                    {"weight_block_size", {128, 128}}};
    }
    if (!spec.index_topk_pattern.empty()) j["index_topk_pattern"] = spec.index_topk_pattern;
    return j;
}

// A deterministic value for element i of a tensor with seed s: small, exactly representable in e4m3 and bf16.
inline float tiny_value(size_t seed, size_t i) {
    const int v = static_cast<int>((seed * 131 + i * 7) % 15) - 7;  // -7..7
    return static_cast<float>(v) * 0.25f;
}

inline std::vector<float> tiny_values(size_t seed, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[i] = tiny_value(seed, static_cast<size_t>(i));
    return out;
}

class TinyTensorList {
  public:
    explicit TinyTensorList(const TinySpec& spec) : spec_(spec) {}

    void plain(const std::string& name, DType dtype, const Shape& shape) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        tensors.push_back(TinyTensor{name, dtype, shape, tiny_values(tensors.size(), n)});
    }
    void norm(const std::string& name, int64_t size) {
        std::vector<float> values(static_cast<size_t>(size));
        for (int64_t i = 0; i < size; ++i) values[i] = 1.0f + 0.5f * static_cast<float>(i % 4);
        tensors.push_back(TinyTensor{name, spec_.norm_dtype, {size}, values});
    }
    // FP8 weight + power-of-two block scales, or BF16.
    void linear(const std::string& prefix, int64_t out, int64_t in) {
        if (!spec_.fp8) return plain(prefix + ".weight", DType::kBF16, {out, in});
        plain(prefix + ".weight", DType::kF8E4M3, {out, in});
        const Shape scale_shape{(out + 127) / 128, (in + 127) / 128};
        std::vector<float> scales(static_cast<size_t>(scale_shape[0] * scale_shape[1]));
        for (size_t i = 0; i < scales.size(); ++i) scales[i] = std::ldexp(1.0f, -static_cast<int>(i % 5));
        tensors.push_back(TinyTensor{prefix + ".weight_scale_inv", DType::kF32, scale_shape, scales});
    }

    std::vector<TinyTensor> tensors;

  private:
    const TinySpec& spec_;
};

inline void add_tiny_layer(TinyTensorList& t, const ModelConfig& c, int64_t layer, bool with_indexer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    const int64_t d = c.hidden_size;
    const int64_t heads = c.num_attention_heads;
    t.norm(p + "input_layernorm.weight", d);
    t.norm(p + "post_attention_layernorm.weight", d);
    const std::string a = p + "self_attn.";
    if (c.q_lora_rank > 0) {
        t.linear(a + "q_a_proj", c.q_lora_rank, d);
        t.norm(a + "q_a_layernorm.weight", c.q_lora_rank);
        t.linear(a + "q_b_proj", heads * c.qk_head_dim(), c.q_lora_rank);
    } else {
        t.linear(a + "q_proj", heads * c.qk_head_dim(), d);
    }
    t.linear(a + "kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, d);
    t.norm(a + "kv_a_layernorm.weight", c.kv_lora_rank);
    t.linear(a + "kv_b_proj", heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
    t.linear(a + "o_proj", d, heads * c.v_head_dim);
    if (with_indexer) {
        const int64_t q_in = c.q_lora_rank > 0 ? c.q_lora_rank : d;
        t.linear(a + "indexer.wq_b", c.index_n_heads * c.index_head_dim, q_in);
        t.linear(a + "indexer.wk", c.index_head_dim, d);
        t.norm(a + "indexer.k_norm.weight", c.index_head_dim);
        t.plain(a + "indexer.k_norm.bias", DType::kF32, {c.index_head_dim});
        t.plain(a + "indexer.weights_proj.weight", DType::kBF16, {c.index_n_heads, d});
    }
    auto mlp = [&](const std::string& m, int64_t width) {
        t.linear(m + "gate_proj", width, d);
        t.linear(m + "up_proj", width, d);
        t.linear(m + "down_proj", d, width);
    };
    if (!c.is_moe_layer(layer)) return mlp(p + "mlp.", c.intermediate_size);
    t.plain(p + "mlp.gate.weight", DType::kBF16, {c.n_routed_experts, d});
    t.plain(p + "mlp.gate.e_score_correction_bias", DType::kF32, {c.n_routed_experts});
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
        mlp(p + "mlp.experts." + std::to_string(e) + ".", c.moe_intermediate_size);
    mlp(p + "mlp.shared_experts.", c.moe_intermediate_size * c.n_shared_experts);
}

inline std::vector<TinyTensor> tiny_tensors(const TinySpec& spec, const ModelConfig& c) {
    TinyTensorList t(spec);
    t.plain("model.embed_tokens.weight", DType::kBF16, {c.vocab_size, c.hidden_size});
    t.norm("model.norm.weight", c.hidden_size);
    t.plain("lm_head.weight", DType::kBF16, {c.vocab_size, c.hidden_size});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) add_tiny_layer(t, c, i, c.is_full_indexer[i]);
    if (spec.mtp) {
        const int64_t m = c.num_hidden_layers;
        const std::string p = "model.layers." + std::to_string(m) + ".";
        add_tiny_layer(t, c, m, /*with_indexer=*/true);
        t.norm(p + "enorm.weight", c.hidden_size);
        t.norm(p + "hnorm.weight", c.hidden_size);
        t.plain(p + "eh_proj.weight", DType::kBF16, {c.hidden_size, 2 * c.hidden_size});
        t.norm(p + "shared_head.norm.weight", c.hidden_size);
        if (spec.mtp_embed_head_copies) {
            t.plain(p + "shared_head.head.weight", DType::kBF16, {c.vocab_size, c.hidden_size});
            t.plain(p + "embed_tokens.weight", DType::kBF16, {c.vocab_size, c.hidden_size});
        }
    }
    return t.tensors;
}

inline void add_to_writer(SafetensorsWriter& w, const TinyTensor& t) {
    switch (t.dtype) {
        case DType::kF8E4M3:
            return w.add_fp8(t.name, t.shape, t.values);
        case DType::kBF16:
            return w.add_bf16(t.name, t.shape, t.values);
        case DType::kF32:
            return w.add_f32(t.name, t.shape, t.values);
        default: {
            int64_t n = 1;
            for (int64_t d : t.shape) n *= d;
            return w.add(t.name, t.dtype, t.shape, std::vector<uint8_t>(n * dtype_size(t.dtype), 0));
        }
    }
}

// Writes config.json and the tensors (after `edit`, which may drop or alter entries) into `dir`.
inline Status write_tiny_checkpoint(const std::string& dir, const TinySpec& spec,
                                    const std::function<void(std::vector<TinyTensor>&)>& edit = nullptr) {
    const Json config_json = tiny_config_json(spec);
    DSA_RETURN_IF_ERROR(write_text_file(dir + "/config.json", config_json.dump(2)));
    DSA_ASSIGN_OR_RETURN(ModelConfig config, parse_model_config(config_json));
    std::vector<TinyTensor> tensors = tiny_tensors(spec, config);
    if (edit) edit(tensors);
    if (spec.num_shards == 0) {
        SafetensorsWriter single;
        for (const TinyTensor& t : tensors) add_to_writer(single, t);
        return single.write(dir + "/model.safetensors");
    }
    std::vector<SafetensorsWriter> shards(static_cast<size_t>(spec.num_shards));
    std::map<std::string, std::string> weight_map;
    auto shard_name = [&](size_t k) {
        return fmt::format("model-{:05d}-of-{:06d}.safetensors", k + 1, spec.num_shards);
    };
    for (size_t i = 0; i < tensors.size(); ++i) {
        add_to_writer(shards[i % shards.size()], tensors[i]);
        weight_map[tensors[i].name] = shard_name(i % shards.size());
    }
    uint64_t total = 0;
    for (size_t k = 0; k < shards.size(); ++k) {
        DSA_RETURN_IF_ERROR(shards[k].write(dir + "/" + shard_name(k)));
        total += shards[k].total_data_bytes();
    }
    return write_safetensors_index(dir, weight_map, total);
}

inline TinyTensor* find_tiny(std::vector<TinyTensor>& tensors, const std::string& name) {
    for (TinyTensor& t : tensors) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

inline void drop_tiny(std::vector<TinyTensor>& tensors, const std::string& name) {
    std::erase_if(tensors, [&](const TinyTensor& t) { return t.name == name; });
}

}  // namespace dsa::model::testing
