// ModelConfig: the real DeepSeek-V3.2 and GLM-5 config.json files (tests/unit/model/data), both RoPE spellings,
// YaRN frequencies and the softmax scale, eos int/list, IndexCache precedence, overrides, and validation errors
// that name the field.
#include "model/config.h"

#include <gtest/gtest.h>

#include <cmath>

#include "base/mapped_file.h"

namespace dsa::model {
namespace {

std::string data_path(const std::string& name) {
    return std::string(DSA_SOURCE_DIR) + "/tests/unit/model/data/" + name;
}

Json load_json(const std::string& name) {
    auto text = read_file(data_path(name));
    EXPECT_TRUE(text.is_ok()) << text.status().to_string();
    return Json::parse(*text);
}

Json deepseek_json() { return load_json("deepseek_v32_config.json"); }
Json glm_json() { return load_json("glm5_config.json"); }

ModelConfig parse_ok(const Json& j) {
    auto c = parse_model_config(j);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    EXPECT_TRUE(c->validate().is_ok()) << c->validate().to_string();
    return *c;
}

// Parses + validates and returns the failure (expects one).
Status first_error(const Json& j) {
    auto c = parse_model_config(j);
    if (!c.is_ok()) return c.status();
    return c->validate();
}

TEST(ModelConfig, DeepSeekV32RealConfig) {
    auto loaded = load_model_config(data_path("deepseek_v32_config.json"));
    ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
    const ModelConfig& c = *loaded;
    EXPECT_EQ(c.family, ModelFamily::kDeepSeekV32);
    EXPECT_EQ(c.architectures, std::vector<std::string>{"DeepseekV32ForCausalLM"});
    EXPECT_EQ(c.hidden_size, 7168);
    EXPECT_EQ(c.num_hidden_layers, 61);
    EXPECT_EQ(c.num_nextn_predict_layers, 1);
    EXPECT_EQ(c.mtp_layer_index(), 61);
    EXPECT_EQ(c.num_attention_heads, 128);
    EXPECT_EQ(c.q_lora_rank, 1536);
    EXPECT_EQ(c.qk_head_dim(), 192);
    EXPECT_EQ(c.v_head_dim, 128);
    EXPECT_EQ(c.index_n_heads, 64);
    EXPECT_EQ(c.index_topk, 2048);
    EXPECT_EQ(c.intermediate_size, 18432);
    EXPECT_EQ(c.moe_intermediate_size, 2048);
    EXPECT_EQ(c.n_routed_experts, 256);
    EXPECT_EQ(c.n_group, 8);
    EXPECT_EQ(c.topk_group, 4);
    EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
    EXPECT_EQ(c.vocab_size, 129280);
    EXPECT_EQ(c.max_position_embeddings, 163840);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_TRUE(c.rope_interleave);
    EXPECT_FALSE(c.indexer_rope_interleave);  // absent: DeepSeek default is half-split
    EXPECT_EQ(c.rope.type, RopeType::kYarn);
    EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
    EXPECT_DOUBLE_EQ(c.rope.factor, 40.0);
    EXPECT_EQ(c.rope.original_max_position_embeddings, 4096);
    EXPECT_EQ(c.bos_token_id, std::optional<int64_t>(0));
    EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{1});
    EXPECT_EQ(c.quant.method, QuantMethod::kFp8);
    EXPECT_TRUE(c.quant.scale_fmt_ue8m0());
    EXPECT_EQ(c.quant.weight_block_rows, 128);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_EQ(c.torch_dtype, "bfloat16");
    EXPECT_FALSE(c.is_moe_layer(2));
    EXPECT_TRUE(c.is_moe_layer(3));
    EXPECT_TRUE(c.is_moe_layer(61));  // the MTP layer is MoE
    EXPECT_EQ(c.num_full_indexer_layers(), 61);
    EXPECT_TRUE(c.layer_has_own_indexer(61));
    EXPECT_NEAR(c.softmax_scale(), 0.1352338, 1e-7);
    EXPECT_NE(c.summary().find("deepseek_v32: 61 layers (+1 MTP), hidden 7168, 128 heads"), std::string::npos)
        << c.summary();
}

TEST(ModelConfig, Glm5RealConfig) {
    const ModelConfig c = parse_ok(glm_json());
    EXPECT_EQ(c.family, ModelFamily::kGlmMoeDsa);
    EXPECT_EQ(c.hidden_size, 6144);
    EXPECT_EQ(c.num_hidden_layers, 78);
    EXPECT_EQ(c.mtp_layer_index(), 78);
    EXPECT_EQ(c.num_attention_heads, 64);
    EXPECT_EQ(c.q_lora_rank, 2048);
    EXPECT_EQ(c.qk_nope_head_dim, 192);
    EXPECT_EQ(c.qk_head_dim(), 256);
    EXPECT_EQ(c.v_head_dim, 256);
    EXPECT_EQ(c.index_n_heads, 32);
    EXPECT_EQ(c.n_group, 1);
    EXPECT_EQ(c.topk_group, 1);
    EXPECT_EQ(c.vocab_size, 154880);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
    EXPECT_TRUE(c.rope_interleave);
    EXPECT_TRUE(c.indexer_rope_interleave);
    EXPECT_EQ(c.rope.type, RopeType::kDefault);
    EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
    EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{154820, 154827, 154829}));
    EXPECT_FALSE(c.bos_token_id.has_value());
    EXPECT_EQ(c.pad_token_id, std::optional<int64_t>(154820));
    EXPECT_EQ(c.quant.method, QuantMethod::kNone);
    EXPECT_EQ(c.torch_dtype, "bfloat16");  // v5 spelling "dtype"
    EXPECT_DOUBLE_EQ(c.softmax_scale(), 0.0625);
    EXPECT_EQ(c.num_full_indexer_layers(), 78);
    EXPECT_EQ(c.max_position_embeddings, 202752);
}

TEST(ModelConfig, GlmIndexerInterleaveDefaultsToTrueWhenAbsent) {
    Json j = glm_json();
    j.erase("indexer_rope_interleave");
    EXPECT_TRUE(parse_ok(j).indexer_rope_interleave);
    j = deepseek_json();
    j["indexer_rope_interleave"] = true;
    EXPECT_TRUE(parse_ok(j).indexer_rope_interleave);
}

TEST(ModelConfig, YarnCorrectionRangeAndFrequencies) {
    const ModelConfig c = parse_ok(deepseek_json());
    const YarnCorrectionRange range = yarn_correction_range(c.rope, 64);
    EXPECT_EQ(range.low, 10);
    EXPECT_EQ(range.high, 23);
    const std::vector<float> freqs = c.rope_inv_freq();
    ASSERT_EQ(freqs.size(), 32u);
    for (int i = 0; i <= 10; ++i) EXPECT_FLOAT_EQ(freqs[i], std::pow(10000.0, -2.0 * i / 64)) << i;
    for (int i = 23; i < 32; ++i) EXPECT_FLOAT_EQ(freqs[i], std::pow(10000.0, -2.0 * i / 64) / 40.0) << i;
    // theta_16 = 1e-2 blends to 1e-2/40 * 6/13 + 1e-2 * 7/13 = 5.5e-3.
    EXPECT_NEAR(freqs[16], 5.5e-3, 1e-6);
    EXPECT_FLOAT_EQ(freqs[16], static_cast<float>(0.01 / 40 * 6.0 / 13 + 0.01 * 7.0 / 13));
}

TEST(ModelConfig, DefaultRopeFrequencies) {
    const ModelConfig c = parse_ok(glm_json());
    const std::vector<float> freqs = c.rope_inv_freq();
    ASSERT_EQ(freqs.size(), 32u);
    for (int i = 0; i < 32; ++i) EXPECT_FLOAT_EQ(freqs[i], std::pow(1e6, -2.0 * i / 64)) << i;
}

TEST(ModelConfig, MscaleValues) {
    EXPECT_NEAR(yarn_get_mscale(40.0, 1.0), 1.3688879, 1e-6);
    EXPECT_DOUBLE_EQ(yarn_get_mscale(1.0, 1.0), 1.0);
    Json j = deepseek_json();
    j["rope_scaling"].erase("mscale_all_dim");  // transformers: no mscale_all_dim, no softmax correction
    EXPECT_DOUBLE_EQ(parse_ok(j).softmax_scale(), 1.0 / std::sqrt(192.0));
}

TEST(ModelConfig, BothRopeSpellingsAgree) {
    const ModelConfig reference = parse_ok(deepseek_json());
    Json rope_type_key = deepseek_json();
    rope_type_key["rope_scaling"].erase("type");
    rope_type_key["rope_scaling"]["rope_type"] = "yarn";
    Json v5 = deepseek_json();
    Json params = v5["rope_scaling"];
    params.erase("type");
    params["rope_type"] = "yarn";
    params["rope_theta"] = 10000;
    v5.erase("rope_scaling");
    v5.erase("rope_theta");
    v5["rope_parameters"] = params;
    for (const Json& j : {rope_type_key, v5}) {
        const ModelConfig c = parse_ok(j);
        EXPECT_EQ(c.rope.type, RopeType::kYarn);
        EXPECT_EQ(c.rope_inv_freq(), reference.rope_inv_freq());
        EXPECT_DOUBLE_EQ(c.softmax_scale(), reference.softmax_scale());
    }
    Json old_glm = glm_json();  // GLM with the older spelling
    old_glm.erase("rope_parameters");
    old_glm["rope_theta"] = 1000000;
    old_glm["rope_scaling"] = nullptr;
    EXPECT_EQ(parse_ok(old_glm).rope_inv_freq(), parse_ok(glm_json()).rope_inv_freq());
}

TEST(ModelConfig, EosIntListOrAbsent) {
    Json j = deepseek_json();
    j["eos_token_id"] = Json::array({1, 2});
    EXPECT_EQ(parse_ok(j).eos_token_ids, (std::vector<int64_t>{1, 2}));
    j.erase("eos_token_id");
    EXPECT_TRUE(parse_ok(j).eos_token_ids.empty());
    j["eos_token_id"] = Json::array({1, "two"});
    Status s = first_error(j);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("eos_token_id"), std::string::npos) << s.message();
    j["eos_token_id"] = 200000;
    s = first_error(j);
    EXPECT_NE(s.message().find("eos_token_id"), std::string::npos) << s.message();
}

TEST(ModelConfig, QLoraNullAndExpModelType) {
    Json j = deepseek_json();
    j["q_lora_rank"] = nullptr;
    EXPECT_EQ(parse_ok(j).q_lora_rank, 0);
    j = deepseek_json();
    j["model_type"] = "deepseek_v3";  // V3.2-Exp style
    EXPECT_EQ(parse_ok(j).family, ModelFamily::kDeepSeekV32);
    j.erase("index_n_heads");  // plain V3 has no indexer: not a DSA model
    Status s = first_error(j);
    EXPECT_NE(s.message().find("index_n_heads"), std::string::npos) << s.message();
}

TEST(ModelConfig, MoeLayerFrequency) {
    Json j = deepseek_json();
    j["moe_layer_freq"] = 2;
    const ModelConfig c = parse_ok(j);
    EXPECT_FALSE(c.is_moe_layer(0));
    EXPECT_FALSE(c.is_moe_layer(3));
    EXPECT_TRUE(c.is_moe_layer(4));
}

TEST(ModelConfig, IndexCacheFreqOffset) {
    Json j = glm_json();
    j["index_topk_freq"] = 4;
    j["index_skip_topk_offset"] = 3;
    const ModelConfig c = parse_ok(j);
    EXPECT_EQ(c.indexer_pattern_source, IndexerPatternSource::kFreqOffset);
    EXPECT_EQ(c.num_full_indexer_layers(), 21);
    std::vector<int64_t> full;
    for (int64_t i = 0; i < 78; ++i) {
        if (c.is_full_indexer[i]) full.push_back(i);
    }
    EXPECT_EQ(full.front(), 0);
    EXPECT_EQ(full[1], 1);
    EXPECT_EQ(full[2], 2);
    EXPECT_EQ(full[3], 6);
    EXPECT_EQ(full[4], 10);
    EXPECT_EQ(full.back(), 74);
    EXPECT_TRUE(c.layer_has_own_indexer(78));  // MTP
}

TEST(ModelConfig, IndexCachePatternAndPrecedence) {
    const std::string pattern = "FFSFSSSFSSFFFSSSFFFSFSSSSSSFFSFFSFFSSFFFFFFSFFFFFSFFSSSSSSFSFFFSFSSSFSFFSFFSSS";
    ASSERT_EQ(pattern.size(), 78u);
    Json j = glm_json();
    j["index_topk_freq"] = 4;  // lower precedence than the pattern
    j["index_topk_pattern"] = pattern;
    ModelConfig c = parse_ok(j);
    EXPECT_EQ(c.indexer_pattern_source, IndexerPatternSource::kTopkPattern);
    for (size_t i = 0; i < pattern.size(); ++i) EXPECT_EQ(c.is_full_indexer[i], pattern[i] == 'F') << i;
    Json types = Json::array();
    for (int i = 0; i < 78; ++i) types.push_back(i % 2 == 0 ? "full" : "shared");
    j["indexer_types"] = types;  // highest precedence
    c = parse_ok(j);
    EXPECT_EQ(c.indexer_pattern_source, IndexerPatternSource::kIndexerTypes);
    EXPECT_TRUE(c.is_full_indexer[2]);
    EXPECT_FALSE(c.is_full_indexer[3]);
    EXPECT_EQ(c.num_full_indexer_layers(), 39);
}

TEST(ModelConfig, IndexCacheErrorsNameTheField) {
    Json j = glm_json();
    j["index_topk_pattern"] = "S" + std::string(77, 'F');
    EXPECT_NE(first_error(j).message().find("layer 0"), std::string::npos) << first_error(j).message();
    j["index_topk_pattern"] = std::string(77, 'F') + "X";
    EXPECT_NE(first_error(j).message().find("index_topk_pattern"), std::string::npos);
    j["index_topk_pattern"] = std::string(10, 'F');
    Status s = first_error(j);
    EXPECT_NE(s.message().find("index_topk_pattern' has 10 entries"), std::string::npos) << s.message();
    j.erase("index_topk_pattern");
    j["indexer_types"] = Json::array({"full", "sometimes"});
    EXPECT_NE(first_error(j).message().find("indexer_types"), std::string::npos);
}

TEST(ModelConfig, OverrideMergesTopLevelKeys) {
    auto merged = merge_model_override(deepseek_json(), R"({"num_hidden_layers": 4, "rope_scaling": {"type": "yarn",
        "factor": 4, "original_max_position_embeddings": 4096}, "index_topk": 64})");
    ASSERT_TRUE(merged.is_ok()) << merged.status().to_string();
    const ModelConfig c = parse_ok(*merged);
    EXPECT_EQ(c.num_hidden_layers, 4);
    EXPECT_EQ(c.index_topk, 64);
    EXPECT_DOUBLE_EQ(c.rope.factor, 4.0);
    EXPECT_DOUBLE_EQ(c.rope.mscale_all_dim, 0.0);  // the dict is replaced whole, as SGLang's update() does
    EXPECT_EQ(c.hidden_size, 7168);
    EXPECT_EQ(c.is_full_indexer.size(), 4u);
    auto same = merge_model_override(deepseek_json(), "");
    ASSERT_TRUE(same.is_ok());
    EXPECT_EQ(*same, deepseek_json());
}

TEST(ModelConfig, OverrideThroughLoadAndBadOverrides) {
    auto c = load_model_config(data_path("glm5_config.json"), R"({"index_topk_freq": 4, "index_skip_topk_offset": 3})");
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    EXPECT_EQ(c->num_full_indexer_layers(), 21);
    auto bad = merge_model_override(deepseek_json(), "{not json");
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find("--json-model-override-args"), std::string::npos);
    EXPECT_FALSE(merge_model_override(deepseek_json(), "[1, 2]").is_ok());
    auto invalid = load_model_config(data_path("glm5_config.json"), R"({"kv_lora_rank": 256})");
    EXPECT_EQ(invalid.status().code(), StatusCode::kUnimplemented);
    EXPECT_NE(invalid.status().message().find("glm5_config.json"), std::string::npos);
}

struct BadField {
    const char* field;
    Json value;          // null: erase the field
    const char* expect;  // substring of the message
};

TEST(ModelConfig, ValidationNamesFieldAndValue) {
    const std::vector<BadField> cases = {
        {"hidden_size", nullptr, "'hidden_size' is required but missing"},
        {"hidden_size", "7168", "'hidden_size' must be an integer, got \"7168\" (string)"},
        {"num_attention_heads", 0, "'num_attention_heads' must be > 0, got 0"},
        {"kv_lora_rank", 256, "'kv_lora_rank' is 256, but the 576-dim sparse MLA cache requires 512"},
        {"qk_rope_head_dim", 32, "'qk_rope_head_dim' is 32"},
        {"index_head_dim", 64, "'index_head_dim' is 64"},
        {"num_experts_per_tok", 300, "'num_experts_per_tok' is 300"},
        {"n_group", 7, "'n_group' is 7"},
        {"rms_norm_eps", "small", "'rms_norm_eps' must be a number"},
        {"tie_word_embeddings", 1, "'tie_word_embeddings' must be a boolean"},
        {"model_type", "llama", "'model_type' is 'llama'"},
        {"scoring_func", "softmax", "'scoring_func' is 'softmax'"},
        {"hidden_act", "gelu", "'hidden_act' is 'gelu'"},
        {"rope_scaling", Json{{"type", "linear"}, {"factor", 2}}, "rope type 'linear'"},
        {"rope_scaling", Json{{"type", "yarn"}}, "'rope_scaling.factor' is required but missing"},
        {"quantization_config", Json{{"quant_method", "fp8"}, {"weight_block_size", {64, 64}}},
         "weight_block_size' is [64, 64]"},
        {"quantization_config", Json{{"quant_method", "awq"}}, "quant_method' is 'awq'"},
        {"qk_head_dim", 200, "'qk_head_dim' is 200 but qk_nope_head_dim + qk_rope_head_dim = 192"},
    };
    for (const BadField& bad : cases) {
        Json j = deepseek_json();
        if (bad.value.is_null()) {
            j.erase(bad.field);
        } else {
            j[bad.field] = bad.value;
        }
        const Status s = first_error(j);
        EXPECT_FALSE(s.is_ok()) << bad.field;
        EXPECT_NE(s.message().find(bad.expect), std::string::npos) << bad.field << ": " << s.message();
    }
}

TEST(ModelConfig, InvalidJsonTextIsDataLoss) {
    auto c = parse_model_config_text("{\"hidden_size\": ", "config.json");
    EXPECT_EQ(c.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(c.status().message().find("config.json"), std::string::npos);
    auto missing = load_model_config(data_path("no_such_dir"));
    EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace dsa::model
