// Quantities derived from ModelConfig fields, as pure functions: MoE layer placement, the IndexCache Full/Shared
// split (MODEL_SPEC §8.2), the attention softmax scale and YaRN-corrected RoPE frequencies (MODEL_SPEC §3.4,
// following DeepSeek's precompute_freqs_cis and transformers' yarn mscale rule).
#include <algorithm>
#include <cmath>
#include <numbers>

#include "model/config.h"
#include "model/config_json.h"

namespace dsa::model {
namespace {

using config_json::describe_value;
using config_json::find_field;

// A per-layer pattern may list the main layers only, or the main layers followed by the MTP layers.
Status check_pattern_length(std::string_view field, size_t length, int64_t num_hidden_layers,
                            int64_t num_nextn_layers) {
    const auto main = static_cast<size_t>(num_hidden_layers);
    if (length == main || length == main + static_cast<size_t>(num_nextn_layers)) return Status::ok();
    return invalid_argument("config field '{}' has {} entries but num_hidden_layers is {}", field, length,
                            num_hidden_layers);
}

StatusOr<std::vector<bool>> from_indexer_types(const Json& types, int64_t num_layers, int64_t num_nextn) {
    if (!types.is_array()) {
        return invalid_argument("config field 'indexer_types' must be a list of \"full\"/\"shared\", got {}",
                                describe_value(types));
    }
    DSA_RETURN_IF_ERROR(check_pattern_length("indexer_types", types.size(), num_layers, num_nextn));
    std::vector<bool> full;
    for (const Json& t : types) {
        if (!t.is_string() || (t != "full" && t != "shared")) {
            return invalid_argument("config field 'indexer_types' entries must be \"full\" or \"shared\", got {}",
                                    describe_value(t));
        }
        full.push_back(t == "full");
    }
    return full;
}

StatusOr<std::vector<bool>> from_topk_pattern(const Json& pattern, int64_t num_layers, int64_t num_nextn) {
    std::string letters;
    if (pattern.is_string()) {
        letters = pattern.get<std::string>();
    } else if (pattern.is_array()) {
        for (const Json& p : pattern) {
            if (!p.is_string() || p.get<std::string>().size() != 1) {
                return invalid_argument("config field 'index_topk_pattern' entries must be \"F\" or \"S\", got {}",
                                        describe_value(p));
            }
            letters += p.get<std::string>();
        }
    } else {
        return invalid_argument("config field 'index_topk_pattern' must be a string of F/S, got {}",
                                describe_value(pattern));
    }
    DSA_RETURN_IF_ERROR(check_pattern_length("index_topk_pattern", letters.size(), num_layers, num_nextn));
    std::vector<bool> full;
    for (char ch : letters) {
        if (ch != 'F' && ch != 'S') {
            return invalid_argument("config field 'index_topk_pattern' may contain only F and S, found '{}'", ch);
        }
        full.push_back(ch == 'F');
    }
    return full;
}

StatusOr<std::vector<bool>> from_freq_offset(const Json& j, int64_t num_layers) {
    int64_t freq = 1;
    int64_t offset = 2;
    DSA_RETURN_IF_ERROR(config_json::read_int(j, "index_topk_freq", &freq, config_json::Need::kOptional));
    DSA_RETURN_IF_ERROR(config_json::read_int(j, "index_skip_topk_offset", &offset, config_json::Need::kOptional));
    if (freq < 1) return invalid_argument("config field 'index_topk_freq' must be >= 1, got {}", freq);
    std::vector<bool> full;
    for (int64_t i = 0; i < num_layers; ++i) full.push_back(std::max<int64_t>(i - offset + 1, 0) % freq == 0);
    return full;
}

}  // namespace

StatusOr<std::vector<bool>> indexer_full_layers(const Json& j, int64_t num_hidden_layers,
                                                IndexerPatternSource* source) {
    int64_t num_nextn = 0;
    DSA_RETURN_IF_ERROR(config_json::read_int(j, "num_nextn_predict_layers", &num_nextn, config_json::Need::kOptional));
    StatusOr<std::vector<bool>> full = std::vector<bool>{};
    IndexerPatternSource from = IndexerPatternSource::kFreqOffset;
    if (const Json* types = find_field(j, "indexer_types")) {
        from = IndexerPatternSource::kIndexerTypes;
        full = from_indexer_types(*types, num_hidden_layers, num_nextn);
    } else if (const Json* pattern = find_field(j, "index_topk_pattern")) {
        from = IndexerPatternSource::kTopkPattern;
        full = from_topk_pattern(*pattern, num_hidden_layers, num_nextn);
    } else {
        full = from_freq_offset(j, num_hidden_layers);
    }
    if (!full.is_ok()) return full.status();
    full->resize(static_cast<size_t>(std::max<int64_t>(num_hidden_layers, 0)));  // MTP entries: always Full
    if (!full->empty() && !full->front()) {
        return invalid_argument("IndexCache pattern ({}) makes layer 0 Shared; the first layer must be Full",
                                from == IndexerPatternSource::kIndexerTypes ? "indexer_types"
                                : from == IndexerPatternSource::kTopkPattern
                                    ? "index_topk_pattern"
                                    : "index_topk_freq/index_skip_topk_offset");
    }
    if (source != nullptr) *source = from;
    return full;
}

bool ModelConfig::is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && moe_layer_freq > 0 && layer % moe_layer_freq == 0;
}

bool ModelConfig::layer_has_own_indexer(int64_t layer) const {
    if (layer >= num_hidden_layers) return true;  // MTP layers always run a full indexer
    return layer >= 0 && static_cast<size_t>(layer) < is_full_indexer.size() && is_full_indexer[layer];
}

int64_t ModelConfig::num_full_indexer_layers() const {
    return static_cast<int64_t>(std::count(is_full_indexer.begin(), is_full_indexer.end(), true));
}

std::string ModelConfig::summary() const {
    std::string rope_text = rope.type == RopeType::kYarn ? fmt::format("yarn x{} theta {}", rope.factor, rope.theta)
                                                         : fmt::format("theta {}", rope.theta);
    return fmt::format(
        "{}: {} layers (+{} MTP), hidden {}, {} heads (qk {} v {}), q_lora {}, MoE {}x{} top-{} groups {}/{} from "
        "layer {}, dense {}, indexer {}x{} top-{} ({} full layers), rope {}, {}",
        model_family_name(family), num_hidden_layers, num_nextn_predict_layers, hidden_size, num_attention_heads,
        qk_head_dim(), v_head_dim, q_lora_rank, n_routed_experts, moe_intermediate_size, num_experts_per_tok, n_group,
        topk_group, first_k_dense_replace, intermediate_size, index_n_heads, index_head_dim, index_topk,
        num_full_indexer_layers(), rope_text,
        quant.method == QuantMethod::kFp8 ? (quant.scale_fmt_ue8m0() ? "fp8 ue8m0" : "fp8") : "no quantization");
}

double yarn_get_mscale(double scale, double mscale) {
    if (scale <= 1.0) return 1.0;
    return 0.1 * mscale * std::log(scale) + 1.0;
}

double ModelConfig::softmax_scale() const {
    double scale = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
    if (rope.type == RopeType::kYarn && rope.mscale_all_dim != 0.0) {
        const double m = yarn_get_mscale(rope.factor, rope.mscale_all_dim);
        scale *= m * m;
    }
    return scale;
}

std::vector<float> ModelConfig::rope_inv_freq() const { return rope_inverse_frequencies(rope, qk_rope_head_dim); }

YarnCorrectionRange yarn_correction_range(const RopeConfig& rope, int64_t rope_dim) {
    const double dim = static_cast<double>(rope_dim);
    const double original = static_cast<double>(rope.original_max_position_embeddings);
    auto correction_dim = [&](double num_rotations) {
        return dim * std::log(original / (num_rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(rope.theta));
    };
    YarnCorrectionRange range;
    range.low = std::max<int64_t>(static_cast<int64_t>(std::floor(correction_dim(rope.beta_fast))), 0);
    range.high = std::min<int64_t>(static_cast<int64_t>(std::ceil(correction_dim(rope.beta_slow))), rope_dim - 1);
    return range;
}

std::vector<float> rope_inverse_frequencies(const RopeConfig& rope, int64_t rope_dim) {
    // Float32 throughout, in the order transformers evaluates it (_compute_default/yarn_rope_parameters), so that
    // the values are bit-identical to the reference frequencies on the same libm.
    const int64_t num_freqs = std::max<int64_t>(rope_dim / 2, 0);
    const auto base = static_cast<float>(rope.theta);
    std::vector<float> pos_freqs(static_cast<size_t>(num_freqs));
    for (int64_t i = 0; i < num_freqs; ++i) {
        pos_freqs[i] = std::pow(base, static_cast<float>(2 * i) / static_cast<float>(rope_dim));
    }
    std::vector<float> freqs(pos_freqs.size());
    for (size_t i = 0; i < freqs.size(); ++i) freqs[i] = 1.0f / pos_freqs[i];
    if (rope.type != RopeType::kYarn) return freqs;
    const YarnCorrectionRange range = yarn_correction_range(rope, rope_dim);
    const auto low = static_cast<float>(range.low);
    const float high = range.low == range.high ? low + 0.001f : static_cast<float>(range.high);
    const auto factor = static_cast<float>(rope.factor);
    for (size_t i = 0; i < freqs.size(); ++i) {
        const float ramp = std::clamp((static_cast<float>(i) - low) / (high - low), 0.0f, 1.0f);
        const float extrapolation = 1.0f - ramp;  // weight of the unscaled frequency
        const float interpolated = 1.0f / (factor * pos_freqs[i]);
        freqs[i] = interpolated * (1.0f - extrapolation) + freqs[i] * extrapolation;
    }
    return freqs;
}

}  // namespace dsa::model
