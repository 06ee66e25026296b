// ModelConfig: the architecture of a DSA model (DeepSeek-V3.2 / V3.2-Exp, GLM-5) parsed from its config.json,
// with --json-model-override-args merged on top. Immutable after parsing; validate() states what our kernels
// require. Derived quantities (softmax scale, YaRN-corrected RoPE frequencies, which layers are MoE and which run
// their own indexer) are pure functions of the fields, so they are unit-testable without a checkpoint.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/status.h"

namespace dsa::model {

enum class ModelFamily : uint8_t {
    kDeepSeekV32,  // model_type deepseek_v32 (V3.2, V3.2-Speciale) or deepseek_v3 with DSA fields (V3.2-Exp)
    kGlmMoeDsa,    // model_type glm_moe_dsa (GLM-5)
};
const char* model_family_name(ModelFamily family);

enum class RopeType : uint8_t { kDefault, kYarn };

// RoPE parameters, from either spelling: top-level rope_theta + rope_scaling {type|rope_type, ...} (DeepSeek,
// transformers v4) or the v5 rope_parameters dict (GLM-5).
struct RopeConfig {
    RopeType type = RopeType::kDefault;
    double theta = 10000.0;
    // YaRN only:
    double factor = 1.0;
    int64_t original_max_position_embeddings = 0;
    double beta_fast = 32.0;
    double beta_slow = 1.0;
    double mscale = 1.0;
    double mscale_all_dim = 0.0;  // 0 when absent (then no mscale on the softmax scale, as in transformers)
};

enum class QuantMethod : uint8_t { kNone, kFp8 };

// quantization_config (MODEL_SPEC §1.5, §7). FP8-or-not is decided per tensor from the checkpoint dtype; this
// records what the config promises (block size, UE8M0 activation scales).
struct QuantConfig {
    QuantMethod method = QuantMethod::kNone;
    std::string quant_method;  // verbatim; empty when there is no quantization_config
    std::string fmt;           // "e4m3"
    std::string activation_scheme;
    std::string scale_fmt;  // "ue8m0" or empty
    int64_t weight_block_rows = 128;
    int64_t weight_block_cols = 128;
    std::vector<std::string> modules_to_not_convert;

    bool scale_fmt_ue8m0() const { return scale_fmt == "ue8m0"; }
};

// Where the per-layer Full/Shared indexer split came from (MODEL_SPEC §8.2).
enum class IndexerPatternSource : uint8_t { kIndexerTypes, kTopkPattern, kFreqOffset };

struct ModelConfig {
    ModelFamily family = ModelFamily::kDeepSeekV32;
    std::string model_type;
    std::vector<std::string> architectures;

    // Sizes.
    int64_t hidden_size = 0;
    int64_t num_hidden_layers = 0;
    int64_t num_nextn_predict_layers = 0;  // MTP layers live at model.layers.{num_hidden_layers + k}
    int64_t vocab_size = 0;
    int64_t max_position_embeddings = 0;

    // MLA.
    int64_t num_attention_heads = 0;
    int64_t q_lora_rank = 0;  // 0 when the config has null: a single q_proj instead of q_a/q_b
    int64_t kv_lora_rank = 0;
    int64_t qk_nope_head_dim = 0;
    int64_t qk_rope_head_dim = 0;
    int64_t v_head_dim = 0;
    bool attention_bias = false;

    // DSA lightning indexer.
    int64_t index_n_heads = 0;
    int64_t index_head_dim = 0;
    int64_t index_topk = 0;

    // FFN: dense layers [0, first_k_dense_replace), MoE after (every moe_layer_freq-th layer).
    int64_t intermediate_size = 0;
    int64_t moe_intermediate_size = 0;
    int64_t n_routed_experts = 0;
    int64_t n_shared_experts = 0;
    int64_t num_experts_per_tok = 0;
    int64_t n_group = 1;
    int64_t topk_group = 1;
    int64_t first_k_dense_replace = 0;
    int64_t moe_layer_freq = 1;
    double routed_scaling_factor = 1.0;
    std::string scoring_func;  // "sigmoid"
    std::string topk_method;   // "noaux_tc": e_score_correction_bias exists and is used for selection only
    bool norm_topk_prob = true;
    std::string hidden_act;  // "silu"

    // RoPE.
    RopeConfig rope;
    bool rope_interleave = true;           // MLA RoPE pairs (2i, 2i+1); both models
    bool indexer_rope_interleave = false;  // DeepSeek: half-split (default false); GLM-5: interleaved (true)

    double rms_norm_eps = 1e-6;
    bool tie_word_embeddings = false;
    std::string torch_dtype;  // "bfloat16"

    // Special tokens.
    std::optional<int64_t> bos_token_id;
    std::vector<int64_t> eos_token_ids;  // int or list in the file
    std::optional<int64_t> pad_token_id;

    QuantConfig quant;

    // IndexCache: one entry per main layer; true = Full (runs its own indexer), false = Shared (reuses the
    // top-k of the nearest preceding Full layer). MTP layers are always Full.
    std::vector<bool> is_full_indexer;
    IndexerPatternSource indexer_pattern_source = IndexerPatternSource::kFreqOffset;
    bool index_share_for_mtp_iteration = false;

    Json raw;  // the merged config.json (overrides applied), for fields nobody has typed yet

    // Derived.
    int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
    int64_t mtp_layer_index(int64_t k = 0) const { return num_hidden_layers + k; }
    bool is_moe_layer(int64_t layer) const;           // layer may be an MTP layer index
    bool layer_has_own_indexer(int64_t layer) const;  // Full layers and MTP layers
    int64_t num_full_indexer_layers() const;
    double softmax_scale() const;              // qk_head_dim^-0.5, times mscale^2 under YaRN with mscale_all_dim
    std::vector<float> rope_inv_freq() const;  // qk_rope_head_dim / 2 frequencies, YaRN-corrected if YaRN

    // Checks ranges and what the kernels require; the message names the field and its value.
    Status validate() const;
    // One line for logs: family, layers, widths, MoE, indexer, RoPE, quantization.
    std::string summary() const;
};

// Parses a config.json object. Missing required fields and wrong JSON types are kInvalidArgument naming the field.
// Does not call validate().
StatusOr<ModelConfig> parse_model_config(const Json& config);

// Parses config text; `origin` (a file name) prefixes error messages. Invalid JSON is kDataLoss.
StatusOr<ModelConfig> parse_model_config_text(std::string_view text, std::string_view origin);

// Merges --json-model-override-args on top of a config object: top-level keys replace the config's keys, as
// SGLang's `config.update(json.loads(...))` does (a nested dict such as rope_scaling is replaced whole).
// An empty override string is a no-op.
StatusOr<Json> merge_model_override(Json config, std::string_view override_json);

// Reads <model_dir>/config.json (or a path to a .json file), merges the override, parses and validates.
StatusOr<ModelConfig> load_model_config(const std::string& model_path, std::string_view override_json = {});

// --- Pure helpers (MODEL_SPEC §3.4) -------------------------------------------------------------------------

// YaRN attention-magnitude factor: 0.1 * mscale * ln(scale) + 1 for scale > 1, else 1.
double yarn_get_mscale(double scale, double mscale);

// The YaRN correction range [low, high] of rotation dims for a rope of `rope_dim` dims.
struct YarnCorrectionRange {
    int64_t low = 0;
    int64_t high = 0;
};
YarnCorrectionRange yarn_correction_range(const RopeConfig& rope, int64_t rope_dim);

// theta_i = base^(-2i/rope_dim), i < rope_dim/2, then (YaRN) blended towards theta_i/factor over [low, high].
// Computed in float32 in transformers' order: bit-identical to its inv_freq (checked against the golden fixtures).
std::vector<float> rope_inverse_frequencies(const RopeConfig& rope, int64_t rope_dim);

// Full/Shared per layer from the IndexCache fields of a config (indexer_types > index_topk_pattern >
// index_topk_freq/index_skip_topk_offset). Errors name the field.
StatusOr<std::vector<bool>> indexer_full_layers(const Json& config, int64_t num_hidden_layers,
                                                IndexerPatternSource* source = nullptr);

}  // namespace dsa::model
