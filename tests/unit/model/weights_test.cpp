// ModelWeights from tiny checkpoints written in the real layout: DeepSeek-like FP8 sharded (scales in other
// shards), GLM-like BF16 with BF16 norms, MTP with and without embed/head copies, IndexCache Shared layers without
// indexer tensors, and every mismatch reported with the tensor, its shard and expected vs actual.
#include "model/weights.h"

#include <gtest/gtest.h>

#include "model/fp8_dequant.h"
#include "test_files.h"
#include "tiny_checkpoint.h"

namespace dsa::model {
namespace {

using testing::expect_error;
using testing::TempDir;
using testing::TinySpec;
using testing::TinyTensor;

struct Loaded {
    ModelConfig config;
    Checkpoint ckpt;
    StatusOr<ModelWeights> weights;
};

// Writes a tiny checkpoint, then loads config, checkpoint and weights (the checkpoint must open).
Loaded write_and_load(const TempDir& dir, const TinySpec& spec, MtpLoad mtp = MtpLoad::kSkip,
                      const std::function<void(std::vector<TinyTensor>&)>& edit = nullptr) {
    const Status written = testing::write_tiny_checkpoint(dir.path(), spec, edit);
    EXPECT_TRUE(written.is_ok()) << written.to_string();
    auto config = load_model_config(dir.path());
    EXPECT_TRUE(config.is_ok()) << config.status().to_string();
    auto ckpt = Checkpoint::open(dir.path());
    EXPECT_TRUE(ckpt.is_ok()) << ckpt.status().to_string();
    WeightLoadOptions options;
    options.mtp = mtp;
    auto weights = load_model_weights(*ckpt, *config, options);
    return Loaded{*config, std::move(*ckpt), std::move(weights)};
}

TEST(ModelWeights, DeepSeekFp8ShardedWithScalesInOtherShards) {
    TempDir dir;
    Loaded l = write_and_load(dir, TinySpec{});
    ASSERT_TRUE(l.weights.is_ok()) << l.weights.status().to_string();
    const ModelWeights& w = *l.weights;
    EXPECT_EQ(w.embed_tokens.shape(), (Shape{300, 256}));
    EXPECT_EQ(w.lm_head.dtype(), DType::kBF16);
    EXPECT_EQ(w.final_norm.dtype(), DType::kF32);
    ASSERT_EQ(w.layers.size(), 3u);
    EXPECT_TRUE(w.mtp.empty());
    EXPECT_TRUE(w.unused_tensor_names.empty());

    const AttentionWeights& a = w.layers[0].attn;
    EXPECT_TRUE(a.q_a_proj.is_fp8());
    EXPECT_EQ(a.q_a_proj.scale_inv.shape(), (Shape{2, 2}));
    EXPECT_EQ(a.q_b_proj.weight.shape(), (Shape{2 * 192, 192}));
    EXPECT_EQ(a.kv_a_proj_with_mqa.weight.shape(), (Shape{576, 256}));
    EXPECT_EQ(a.kv_a_proj_with_mqa.scale_inv.shape(), (Shape{5, 2}));  // partial last row block
    EXPECT_EQ(a.kv_b_proj.weight.shape(), (Shape{2 * 256, 512}));
    EXPECT_EQ(a.o_proj.weight.shape(), (Shape{256, 2 * 128}));
    EXPECT_EQ(a.q_a_layernorm.shape(), Shape{192});
    EXPECT_FALSE(a.q_proj.defined());
    ASSERT_TRUE(a.indexer.has_value());
    EXPECT_EQ(a.indexer->wq_b.weight.shape(), (Shape{256, 192}));
    EXPECT_EQ(a.indexer->wk.scale_inv.shape(), (Shape{1, 2}));
    EXPECT_EQ(a.indexer->weights_proj.dtype(), DType::kBF16);
    EXPECT_EQ(a.indexer->k_norm_bias.dtype(), DType::kF32);
    // Weight and scale sit in different shards, and the pairing still holds.
    EXPECT_NE(l.ckpt.file_of("model.layers.0.self_attn.q_a_proj.weight"),
              l.ckpt.file_of("model.layers.0.self_attn.q_a_proj.weight_scale_inv"));

    ASSERT_TRUE(w.layers[0].dense_mlp.has_value());
    EXPECT_FALSE(w.layers[0].is_moe());
    EXPECT_EQ(w.layers[0].dense_mlp->gate_proj.scale_inv.shape(), (Shape{3, 2}));  // 320 rows
    EXPECT_EQ(w.layers[0].dense_mlp->down_proj.weight.shape(), (Shape{256, 320}));
    ASSERT_TRUE(w.layers[2].moe.has_value());
    const MoeWeights& moe = *w.layers[2].moe;
    EXPECT_EQ(moe.experts.size(), 4u);
    EXPECT_EQ(moe.router_weight.shape(), (Shape{4, 256}));
    EXPECT_EQ(moe.e_score_correction_bias.dtype(), DType::kF32);
    ASSERT_TRUE(moe.shared_experts.has_value());
    EXPECT_EQ(moe.experts[3].down_proj.weight.name(), "model.layers.2.mlp.experts.3.down_proj.weight");
}

TEST(ModelWeights, ValuesMatchWhatWasWritten) {
    TempDir dir;
    Loaded l = write_and_load(dir, TinySpec{});
    ASSERT_TRUE(l.weights.is_ok()) << l.weights.status().to_string();
    const std::vector<TinyTensor> written = testing::tiny_tensors(TinySpec{}, l.config);
    auto find = [&](const std::string& name) -> const TinyTensor& {
        for (const TinyTensor& t : written) {
            if (t.name == name) return t;
        }
        ADD_FAILURE() << name;
        return written.front();
    };
    const TinyTensor& norm = find("model.layers.1.input_layernorm.weight");
    for (int64_t i = 0; i < 256; ++i) EXPECT_EQ(l.weights->layers[1].input_layernorm.data<float>()[i], norm.values[i]);
    const std::string kv_a = "model.layers.1.self_attn.kv_a_proj_with_mqa";
    const TinyTensor& w8 = find(kv_a + ".weight");
    const TinyTensor& scale = find(kv_a + ".weight_scale_inv");
    const Tensor deq = linear_weight_to_f32(l.weights->layers[1].attn.kv_a_proj_with_mqa);
    for (int64_t r : {0, 127, 128, 511, 512, 575}) {
        for (int64_t c : {0, 128, 255}) {
            const float expected = w8.values[r * 256 + c] * scale.values[(r / 128) * 2 + c / 128];
            EXPECT_EQ(deq.data<float>()[r * 256 + c], expected) << r << "," << c;
        }
    }
}

TEST(ModelWeights, MtpWithEmbedAndHeadCopies) {
    TempDir dir;
    Loaded l = write_and_load(dir, TinySpec{}, MtpLoad::kLoad);
    ASSERT_TRUE(l.weights.is_ok()) << l.weights.status().to_string();
    ASSERT_EQ(l.weights->mtp.size(), 1u);
    const MtpWeights& m = l.weights->mtp[0];
    EXPECT_TRUE(m.has_own_head);
    EXPECT_TRUE(m.has_own_embed);
    EXPECT_EQ(m.shared_head_head.name(), "model.layers.3.shared_head.head.weight");
    EXPECT_NE(m.embed_tokens.raw_data(), l.weights->embed_tokens.raw_data());
    EXPECT_EQ(m.eh_proj.weight.shape(), (Shape{256, 512}));
    EXPECT_EQ(m.layer.layer_index, 3);
    EXPECT_TRUE(m.layer.is_moe());
    EXPECT_TRUE(m.layer.attn.indexer.has_value());
    EXPECT_TRUE(l.weights->unused_tensor_names.empty());
}

TEST(ModelWeights, MtpSkippedIsNotReportedUnused) {
    TempDir dir;
    Loaded l = write_and_load(dir, TinySpec{}, MtpLoad::kSkip);
    ASSERT_TRUE(l.weights.is_ok());
    EXPECT_TRUE(l.weights->mtp.empty());
    EXPECT_TRUE(l.weights->unused_tensor_names.empty());
}

TEST(ModelWeights, GlmBf16WithBf16NormsAndMtpWithoutCopies) {
    TempDir dir;
    TinySpec spec;
    spec.family = ModelFamily::kGlmMoeDsa;
    spec.fp8 = false;
    spec.norm_dtype = DType::kBF16;
    spec.mtp_embed_head_copies = false;
    spec.num_shards = 2;
    Loaded l = write_and_load(dir, spec, MtpLoad::kLoad);
    ASSERT_TRUE(l.weights.is_ok()) << l.weights.status().to_string();
    const ModelWeights& w = *l.weights;
    EXPECT_EQ(w.layers[1].input_layernorm.dtype(), DType::kF32);  // converted from BF16
    EXPECT_EQ(w.layers[1].input_layernorm.data<float>()[1], 1.5f);
    EXPECT_FALSE(w.layers[0].attn.kv_b_proj.is_fp8());
    EXPECT_FALSE(w.layers[0].attn.kv_b_proj.scale_inv.defined());
    EXPECT_EQ(w.layers[0].attn.kv_b_proj.weight.shape(), (Shape{2 * (192 + 256), 512}));
    EXPECT_EQ(w.layers[0].attn.o_proj.weight.shape(), (Shape{256, 2 * 256}));
    ASSERT_EQ(w.mtp.size(), 1u);
    EXPECT_FALSE(w.mtp[0].has_own_head);
    EXPECT_FALSE(w.mtp[0].has_own_embed);
    EXPECT_EQ(w.mtp[0].shared_head_head.raw_data(), w.lm_head.raw_data());
    EXPECT_EQ(w.mtp[0].embed_tokens.raw_data(), w.embed_tokens.raw_data());
}

TEST(ModelWeights, IndexCacheSharedLayersWithoutIndexerTensors) {
    TempDir dir;
    TinySpec spec;
    spec.family = ModelFamily::kGlmMoeDsa;
    spec.index_topk_pattern = "FSF";
    Loaded l = write_and_load(dir, spec, MtpLoad::kLoad);
    ASSERT_TRUE(l.weights.is_ok()) << l.weights.status().to_string();
    EXPECT_TRUE(l.weights->layers[0].attn.indexer.has_value());
    EXPECT_FALSE(l.weights->layers[1].attn.indexer.has_value());
    EXPECT_TRUE(l.weights->layers[2].attn.indexer.has_value());
    EXPECT_TRUE(l.weights->mtp[0].layer.attn.indexer.has_value());
    EXPECT_FALSE(l.ckpt.contains("model.layers.1.self_attn.indexer.wk.weight"));
}

TEST(ModelWeights, FullLayerWithoutIndexerIsAnError) {
    TempDir dir;
    TinySpec spec;
    spec.family = ModelFamily::kGlmMoeDsa;
    spec.index_topk_pattern = "FSF";
    ASSERT_TRUE(testing::write_tiny_checkpoint(dir.path(), spec).is_ok());
    auto config = load_model_config(dir.path(), R"({"index_topk_pattern": "FFF"})");
    ASSERT_TRUE(config.is_ok());
    auto ckpt = Checkpoint::open(dir.path());
    ASSERT_TRUE(ckpt.is_ok());
    expect_error(load_model_weights(*ckpt, *config), StatusCode::kNotFound,
                 {"model.layers.1.self_attn.indexer.wq_b.weight", "missing"});
}

TEST(ModelWeights, SingleFileWithoutIndexAndNoQLora) {
    TempDir dir;
    TinySpec spec;
    spec.num_shards = 0;
    spec.q_lora = false;
    Loaded l = write_and_load(dir, spec);
    ASSERT_TRUE(l.weights.is_ok()) << l.weights.status().to_string();
    EXPECT_EQ(l.ckpt.source(), kSingleSafetensorsFile);
    const AttentionWeights& a = l.weights->layers[0].attn;
    EXPECT_FALSE(a.q_a_proj.defined());
    EXPECT_EQ(a.q_proj.weight.shape(), (Shape{2 * 192, 256}));
    EXPECT_EQ(a.indexer->wq_b.weight.shape(), (Shape{256, 256}));
}

TEST(ModelWeights, TiedEmbeddingsWithoutLmHead) {
    TempDir dir;
    ASSERT_TRUE(testing::write_tiny_checkpoint(dir.path(), TinySpec{}, [](std::vector<TinyTensor>& t) {
                    testing::drop_tiny(t, "lm_head.weight");
                }).is_ok());
    auto ckpt = Checkpoint::open(dir.path());
    ASSERT_TRUE(ckpt.is_ok());
    auto untied = load_model_config(dir.path());
    expect_error(load_model_weights(*ckpt, *untied), StatusCode::kNotFound, {"lm_head.weight"});
    auto tied = load_model_config(dir.path(), R"({"tie_word_embeddings": true})");
    auto w = load_model_weights(*ckpt, *tied);
    ASSERT_TRUE(w.is_ok()) << w.status().to_string();
    EXPECT_EQ(w->lm_head.raw_data(), w->embed_tokens.raw_data());
}

TEST(ModelWeights, MtpRequestedWithoutMtpLayers) {
    TempDir dir;
    TinySpec spec;
    spec.mtp = false;
    Loaded l = write_and_load(dir, spec, MtpLoad::kLoad);
    expect_error(l.weights, StatusCode::kInvalidArgument, {"num_nextn_predict_layers"});
}

TEST(ModelWeights, UnknownTensorIsReportedUnused) {
    TempDir dir;
    Loaded l = write_and_load(dir, TinySpec{}, MtpLoad::kSkip, [](std::vector<TinyTensor>& t) {
        t.push_back(TinyTensor{"model.layers.0.self_attn.q_a_proj.bias", DType::kF32, {192}, std::vector<float>(192)});
    });
    ASSERT_TRUE(l.weights.is_ok());
    EXPECT_EQ(l.weights->unused_tensor_names, std::vector<std::string>{"model.layers.0.self_attn.q_a_proj.bias"});
}

// One broken checkpoint per case: the edit, the status code, and message parts.
struct BrokenCase {
    const char* what;
    std::function<void(std::vector<TinyTensor>&)> edit;
    StatusCode code;
    std::vector<std::string> expect;
};

TEST(ModelWeights, MismatchesNameTensorShardAndExpectation) {
    const std::string kv_a = "model.layers.1.self_attn.kv_a_proj_with_mqa";
    const std::string q_b = "model.layers.0.self_attn.q_b_proj";
    const std::vector<BrokenCase> cases = {
        {"missing expert",
         [](auto& t) { testing::drop_tiny(t, "model.layers.1.mlp.experts.2.up_proj.weight"); },
         StatusCode::kNotFound,
         {"'model.layers.1.mlp.experts.2.up_proj.weight'", "missing", kSafetensorsIndexFile}},
        {"shape",
         [&](auto& t) {
             auto* w = testing::find_tiny(t, q_b + ".weight");
             w->shape = {2 * 192, 191};
             w->values.resize(2 * 192 * 191);
         },
         StatusCode::kDataLoss,
         {"'" + q_b + ".weight'", "model-0000", "shape [384, 191], expected [384, 192]", "q_lora_rank"}},
        {"dtype",
         [](auto& t) {
             testing::find_tiny(t, "model.layers.2.self_attn.indexer.weights_proj.weight")->dtype = DType::kF8E4M3;
         },
         StatusCode::kDataLoss,
         {"weights_proj.weight'", "dtype F8_E4M3, expected BF16 or F32"}},
        {"norm dtype",
         [](auto& t) { testing::find_tiny(t, "model.norm.weight")->dtype = DType::kI32; },
         StatusCode::kDataLoss,
         {"'model.norm.weight'", "dtype I32"}},
        {"missing scale",
         [&](auto& t) { testing::drop_tiny(t, kv_a + ".weight_scale_inv"); },
         StatusCode::kDataLoss,
         {"'" + kv_a + ".weight'", "model-0000", "needs '" + kv_a + ".weight_scale_inv'"}},
        {"scale shape",
         [&](auto& t) {
             auto* s = testing::find_tiny(t, kv_a + ".weight_scale_inv");
             s->shape = {4, 2};
             s->values.resize(8);
         },
         StatusCode::kDataLoss,
         {"'" + kv_a + ".weight_scale_inv'", "shape [4, 2], expected [5, 2]", "[576, 256]"}},
        {"scale dtype",
         [&](auto& t) { testing::find_tiny(t, kv_a + ".weight_scale_inv")->dtype = DType::kBF16; },
         StatusCode::kDataLoss,
         {"'" + kv_a + ".weight_scale_inv'", "dtype BF16, expected F32"}},
        {"router shape",
         [](auto& t) {
             auto* r = testing::find_tiny(t, "model.layers.2.mlp.gate.weight");
             r->shape = {3, 256};
             r->values.resize(3 * 256);
         },
         StatusCode::kDataLoss,
         {"'model.layers.2.mlp.gate.weight'", "expected [4, 256]", "n_routed_experts"}},
    };
    for (const BrokenCase& c : cases) {
        SCOPED_TRACE(c.what);
        TempDir dir;
        Loaded l = write_and_load(dir, TinySpec{}, MtpLoad::kSkip, c.edit);
        std::vector<std::string> parts = c.expect;
        ASSERT_FALSE(l.weights.is_ok());
        EXPECT_EQ(l.weights.status().code(), c.code) << l.weights.status().to_string();
        for (const std::string& p : parts) {
            EXPECT_NE(l.weights.status().message().find(p), std::string::npos)
                << p << " not in: " << l.weights.status().message();
        }
    }
}

TEST(ModelWeights, ForEachLinearVisitsEveryProjection) {
    TempDir dir;
    Loaded l = write_and_load(dir, TinySpec{}, MtpLoad::kLoad);
    ASSERT_TRUE(l.weights.is_ok());
    int64_t num_linears = 0;
    int64_t num_fp8 = 0;
    for_each_linear(*l.weights, [&](const std::string& name, const LinearWeight& w) {
        ++num_linears;
        num_fp8 += w.is_fp8() ? 1 : 0;
        EXPECT_EQ(name, w.weight.name());
    });
    // Per layer: 5 attention + 2 indexer; dense: 3; MoE: 4 experts * 3 + shared 3. MTP adds eh_proj (BF16).
    const int64_t attention = 7;
    EXPECT_EQ(num_linears, (attention + 3) + 3 * (attention + 15) + 1);
    EXPECT_EQ(num_fp8, num_linears - 1);
}

}  // namespace
}  // namespace dsa::model
