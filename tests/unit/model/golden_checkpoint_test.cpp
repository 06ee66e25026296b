// The committed golden fixtures (tests/golden/*: checkpoints written by the fixture generator in the real
// on-disk layout) load completely, and the derived config values agree with what transformers computed for the
// same config (meta.json: attention scaling, RoPE inverse frequencies bit for bit, indexer layer kinds, tensor
// counts).
#include <gtest/gtest.h>

#include <cmath>

#include "base/mapped_file.h"
#include "model/fp8_dequant.h"
#include "model/weights.h"

namespace dsa::model {
namespace {

class GoldenCheckpoint : public ::testing::TestWithParam<std::string> {
  protected:
    std::string dir() const { return std::string(DSA_SOURCE_DIR) + "/tests/golden/" + GetParam(); }
    Json meta() const {
        auto text = read_file(dir() + "/meta.json");
        EXPECT_TRUE(text.is_ok()) << text.status().to_string();
        return text.is_ok() ? Json::parse(*text) : Json::object();
    }
};

TEST_P(GoldenCheckpoint, DerivedConfigMatchesTransformers) {
    auto config = load_model_config(dir());
    ASSERT_TRUE(config.is_ok()) << config.status().to_string();
    const Json m = meta();
    EXPECT_NEAR(config->softmax_scale(), m["attn_scaling"].get<double>(), 1e-12);
    const std::vector<float> freqs = config->rope_inv_freq();
    const std::vector<double> expected = m["rope_inv_freq"].get<std::vector<double>>();
    ASSERT_EQ(freqs.size(), expected.size());
    for (size_t i = 0; i < freqs.size(); ++i) EXPECT_EQ(freqs[i], static_cast<float>(expected[i])) << i;
    std::string kinds;
    for (bool full : config->is_full_indexer) kinds += full ? 'F' : 'S';
    EXPECT_EQ(kinds, m["indexer_layer_kinds"].get<std::string>());
    EXPECT_DOUBLE_EQ(config->rms_norm_eps, m["input_layernorm_eps"].get<double>());
}

TEST_P(GoldenCheckpoint, LoadsEveryTensorWithMtp) {
    auto config = load_model_config(dir());
    ASSERT_TRUE(config.is_ok()) << config.status().to_string();
    auto ckpt = Checkpoint::open(dir());
    ASSERT_TRUE(ckpt.is_ok()) << ckpt.status().to_string();
    const Json m = meta();
    EXPECT_EQ(static_cast<int64_t>(ckpt->num_tensors()), m["n_tensors"].get<int64_t>());
    for (const Json& scale : m["checkpoint"]["cross_shard_scales"]) {
        const std::string scale_name = scale.get<std::string>();
        const std::string weight_name = scale_name.substr(0, scale_name.size() - 10);  // drop "_scale_inv"
        EXPECT_NE(ckpt->file_of(scale_name), ckpt->file_of(weight_name)) << scale_name;
    }
    WeightLoadOptions options;
    options.mtp = MtpLoad::kLoad;
    auto weights = load_model_weights(*ckpt, *config, options);
    ASSERT_TRUE(weights.is_ok()) << weights.status().to_string();
    EXPECT_TRUE(weights->unused_tensor_names.empty()) << weights->unused_tensor_names.front();
    ASSERT_EQ(weights->mtp.size(), 1u);
    const Fp8ScaleReport report = check_fp8_scales_power_of_two(*weights);
    EXPECT_EQ(report.num_fp8_weights, m["n_fp8_weights"].get<int64_t>());
    EXPECT_TRUE(report.all_powers_of_two()) << report.first_non_power_of_two;
    for (size_t i = 0; i < weights->layers.size(); ++i) {
        EXPECT_EQ(weights->layers[i].attn.indexer.has_value(), config->is_full_indexer[i]) << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenCheckpoint,
                         ::testing::Values("deepseek_v32_tiny", "glm5_tiny", "glm5_indexcache_tiny"));

}  // namespace
}  // namespace dsa::model
