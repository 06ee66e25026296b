// MoE: the sigmoid router with correction bias and group limit on hand-built cases (the limit changes the
// selection; top-2-sum vs max group score; GLM's n_group = 1; weights from unbiased scores), the routed
// experts' weighted sum and the dense SwiGLU MLP against direct definitions.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "test_util.h"

namespace dsa::backend {
namespace {

using testing::random_f32;

float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// A router whose logits equal `z` for the single token x = [1].
struct Router {
    Tensor x = Tensor::empty({1, 1}, DType::kF32);
    Tensor weight;
    explicit Router(const std::vector<float>& z) : weight(Tensor::empty({(int64_t)z.size(), 1}, DType::kF32)) {
        x.data<float>()[0] = 1.0f;
        for (size_t e = 0; e < z.size(); ++e) weight.data<float>()[e] = z[e];
    }
};

std::vector<int32_t> ids_of(const RouterResult& r) {
    return std::vector<int32_t>(r.ids.data<int32_t>(), r.ids.data<int32_t>() + r.ids.numel());
}

TEST(MoeRoute, GroupLimitChangesSelection) {
    // Groups of 2: {0,1} has the single best expert but a weak partner; {2,3} and {4,5} have better sums.
    const std::vector<float> z = {3.0f, -5.0f, 1.0f, 1.0f, 0.8f, 0.8f, 0.0f, 0.0f};
    Router rt(z);
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor zero_bias = Tensor::zeros({8}, DType::kF32);
    RouterResult limited = be->moe_route({rt.x, rt.weight, zero_bias, /*num_groups=*/4, /*topk_groups=*/2,
                                          /*top_k=*/2, /*routed_scaling_factor=*/2.5f, true});
    EXPECT_EQ(ids_of(limited), (std::vector<int32_t>{2, 3}));  // equal scores: lower id first
    EXPECT_NEAR(limited.weights.data<float>()[0], 1.25f, 1e-6);
    EXPECT_NEAR(limited.weights.data<float>()[1], 1.25f, 1e-6);
    RouterResult free = be->moe_route({rt.x, rt.weight, zero_bias, 1, 1, 2, 2.5f, true});
    EXPECT_EQ(ids_of(free), (std::vector<int32_t>{0, 2}));
    const float s0 = sigmoid(3.0f), s2 = sigmoid(1.0f);
    EXPECT_NEAR(free.weights.data<float>()[0], s0 / (s0 + s2) * 2.5f, 1e-6);
}

TEST(MoeRoute, GroupScoreIsTopTwoSumWithBiasAndMaxWithout) {
    // Group {0,1}: 0.9 + 0.1 (max 0.9); group {2,3}: 0.6 + 0.6 (sum 1.2 wins with the top-2 rule).
    const std::vector<float> z = {std::log(0.9f / 0.1f), std::log(0.1f / 0.9f), std::log(0.6f / 0.4f),
                                  std::log(0.6f / 0.4f)};
    Router rt(z);
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor zero_bias = Tensor::zeros({4}, DType::kF32);
    EXPECT_EQ(ids_of(be->moe_route({rt.x, rt.weight, zero_bias, 2, 1, 1, 1.0f, true})), (std::vector<int32_t>{2}));
    EXPECT_EQ(ids_of(be->moe_route({rt.x, rt.weight, {}, 2, 1, 1, 1.0f, true})), (std::vector<int32_t>{0}));
}

TEST(MoeRoute, GlmBiasSelectsButWeightsAreUnbiased) {
    // n_group = topk_group = 1: no group limit. A large bias pulls expert 3 in; its weight uses sigmoid only.
    const std::vector<float> z = {2.0f, 1.0f, 0.5f, -1.0f, 0.0f};
    Router rt(z);
    Tensor bias = Tensor::zeros({5}, DType::kF32);
    bias.data<float>()[3] = 5.0f;
    auto be = make_cpu_backend(Numerics::fp32());
    RouterResult r = be->moe_route({rt.x, rt.weight, bias, 1, 1, 3, 2.5f, true});
    EXPECT_EQ(ids_of(r), (std::vector<int32_t>{3, 0, 1}));
    const float s3 = sigmoid(-1.0f), s0 = sigmoid(2.0f), s1 = sigmoid(1.0f), sum = s3 + s0 + s1;
    EXPECT_NEAR(r.weights.data<float>()[0], s3 / sum * 2.5f, 1e-6);
    EXPECT_NEAR(r.weights.data<float>()[1], s0 / sum * 2.5f, 1e-6);
    EXPECT_NEAR(r.weights.data<float>()[2], s1 / sum * 2.5f, 1e-6);
    // Without normalization: raw sigmoid scores times the scaling factor.
    RouterResult raw = be->moe_route({rt.x, rt.weight, bias, 1, 1, 3, 2.5f, false});
    EXPECT_NEAR(raw.weights.data<float>()[0], s3 * 2.5f, 1e-6);
}

TEST(MoeRoute, Bf16WeightLogitsInFp32AndRandomRowsSumToScale) {
    std::mt19937 rng(70);
    Tensor x = random_f32({6, 32}, rng);
    Tensor w = testing::to_bf16(random_f32({16, 32}, rng));
    Tensor bias = random_f32({16}, rng, 0.1f);
    auto be = make_cpu_backend(Numerics::bf16());  // activation rounding must not touch the router
    RouterResult r = be->moe_route({x, w, bias, 4, 2, 4, 2.5f, true});
    for (int t = 0; t < 6; ++t) {
        float sum = 0.0f;
        for (int k = 0; k < 4; ++k) {
            const int e = r.ids.data<int32_t>()[t * 4 + k];
            double z = 0.0;
            for (int i = 0; i < 32; ++i) z += x.data<float>()[t * 32 + i] * bf16_to_f32(w.data<uint16_t>()[e * 32 + i]);
            EXPECT_NEAR(r.scores.data<float>()[t * 16 + e], 1.0 / (1.0 + std::exp(-z)), 1e-6);
            sum += r.weights.data<float>()[t * 4 + k];
        }
        EXPECT_NEAR(sum, 2.5f, 1e-5);
    }
}

// silu(gate x) * (up x) then down, in double.
std::vector<double> naive_mlp(const float* x, int64_t d, const MlpWeights& w) {
    const int64_t f = w.gate.out_features();
    std::vector<double> h(f), y(d, 0.0);
    for (int64_t j = 0; j < f; ++j) {
        double g = 0.0, u = 0.0;
        for (int64_t i = 0; i < d; ++i) {
            g += x[i] * w.gate.weight.data<float>()[j * d + i];
            u += x[i] * w.up.weight.data<float>()[j * d + i];
        }
        h[j] = g / (1.0 + std::exp(-g)) * u;
    }
    for (int64_t i = 0; i < d; ++i) {
        for (int64_t j = 0; j < f; ++j) y[i] += h[j] * w.down.weight.data<float>()[i * f + j];
    }
    return y;
}

MlpWeights random_mlp(int64_t d, int64_t f, std::mt19937& rng) {
    return {LinearWeight{random_f32({f, d}, rng, 0.3f), {}}, LinearWeight{random_f32({f, d}, rng, 0.3f), {}},
            LinearWeight{random_f32({d, f}, rng, 0.3f), {}}};
}

TEST(Mlp, DenseSwiGluMatchesDefinition) {
    std::mt19937 rng(71);
    MlpWeights w = random_mlp(24, 40, rng);
    Tensor x = random_f32({3, 24}, rng);
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor y = be->dense_mlp(x, w);
    for (int t = 0; t < 3; ++t) {
        const std::vector<double> e = naive_mlp(x.data<float>() + t * 24, 24, w);
        for (int i = 0; i < 24; ++i) EXPECT_NEAR(y.data<float>()[t * 24 + i], e[i], 1e-4 * (1 + std::fabs(e[i])));
    }
}

TEST(Moe, ExpertsWeightedSumMatchesDefinition) {
    std::mt19937 rng(72);
    std::vector<MlpWeights> experts;
    for (int e = 0; e < 5; ++e) experts.push_back(random_mlp(16, 8, rng));
    Tensor x = random_f32({4, 16}, rng);
    Tensor ids = testing::i32_tensor({0, 3, 3, 1, 4, 0, 2, 3}, {4, 2});
    Tensor weights = random_f32({4, 2}, rng);
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor y = be->moe_experts({x, ids, weights, experts});
    for (int t = 0; t < 4; ++t) {
        std::vector<double> e(16, 0.0);
        for (int k = 0; k < 2; ++k) {
            const auto ye = naive_mlp(x.data<float>() + t * 16, 16, experts[ids.data<int32_t>()[t * 2 + k]]);
            for (int i = 0; i < 16; ++i) e[i] += weights.data<float>()[t * 2 + k] * ye[i];
        }
        for (int i = 0; i < 16; ++i) EXPECT_NEAR(y.data<float>()[t * 16 + i], e[i], 1e-4 * (1 + std::fabs(e[i])));
    }
}

}  // namespace
}  // namespace dsa::backend
