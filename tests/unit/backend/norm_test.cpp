// CPU embedding, RMSNorm, fused add + RMSNorm, LayerNorm, add, narrow/concat, against direct definitions; and
// the bf16 rounding points selected by Numerics.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "test_util.h"

namespace dsa::backend {
namespace {

using testing::random_f32;

TEST(Embedding, Bf16AndF32Tables) {
    std::mt19937 rng(10);
    Tensor table = random_f32({50, 16}, rng);
    Tensor table_bf16 = testing::to_bf16(table);
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor ids = testing::i32_tensor({3, 0, 49, 3});
    Tensor a = be->embedding(table, ids);
    Tensor b = be->embedding(table_bf16, ids);
    ASSERT_EQ(a.shape(), (Shape{4, 16}));
    const int rows[] = {3, 0, 49, 3};
    for (int t = 0; t < 4; ++t) {
        for (int i = 0; i < 16; ++i) {
            EXPECT_EQ(a.data<float>()[t * 16 + i], table.data<float>()[rows[t] * 16 + i]);
            EXPECT_EQ(b.data<float>()[t * 16 + i], round_bf16(table.data<float>()[rows[t] * 16 + i]));
        }
    }
}

TEST(RmsNorm, MatchesDefinitionAndRoundsForBf16) {
    std::mt19937 rng(11);
    Tensor x = random_f32({3, 64}, rng, 2.0f);
    Tensor w = random_f32({64}, rng);
    const float eps = 1e-6f;
    auto fp32 = make_cpu_backend(Numerics::fp32());
    auto bf16 = make_cpu_backend(Numerics::bf16());
    Tensor y = fp32->rms_norm(x, w, eps);
    Tensor yb = bf16->rms_norm(x, w, eps);
    for (int t = 0; t < 3; ++t) {
        double ss = 0.0;
        for (int i = 0; i < 64; ++i) ss += x.data<float>()[t * 64 + i] * x.data<float>()[t * 64 + i];
        const double inv = 1.0 / std::sqrt(ss / 64 + eps);
        for (int i = 0; i < 64; ++i) {
            const double expect = w.data<float>()[i] * x.data<float>()[t * 64 + i] * inv;
            EXPECT_NEAR(y.data<float>()[t * 64 + i], expect, 1e-5 * std::fabs(expect) + 1e-7);
            const float vb = yb.data<float>()[t * 64 + i];
            EXPECT_EQ(vb, round_bf16(vb));
            EXPECT_NEAR(vb, expect, 1e-2 * std::fabs(expect) + 1e-6);
        }
    }
}

TEST(RmsNorm, AcceptsBf16Weight) {
    std::mt19937 rng(12);
    Tensor x = random_f32({2, 32}, rng);
    Tensor w = random_f32({32}, rng);
    Tensor wb = testing::to_bf16(w);
    Tensor w_rounded = Tensor::empty({32}, DType::kF32);
    for (int i = 0; i < 32; ++i) w_rounded.data<float>()[i] = round_bf16(w.data<float>()[i]);
    auto be = make_cpu_backend(Numerics::fp32());
    EXPECT_EQ(testing::rel_l2(be->rms_norm(x, wb, 1e-5f), be->rms_norm(x, w_rounded, 1e-5f)), 0.0);
}

TEST(AddRmsNorm, UpdatesResidualInPlace) {
    std::mt19937 rng(13);
    Tensor h = random_f32({4, 32}, rng);
    Tensor d = random_f32({4, 32}, rng);
    Tensor w = random_f32({32}, rng);
    auto be = make_cpu_backend(Numerics::bf16());
    Tensor h0 = h.clone();
    Tensor y = be->add_rms_norm(h, d, w, 1e-6f);
    for (int64_t i = 0; i < h.numel(); ++i) {
        EXPECT_EQ(h.data<float>()[i], round_bf16(h0.data<float>()[i] + d.data<float>()[i])) << i;
    }
    EXPECT_EQ(testing::rel_l2(y, be->rms_norm(h, w, 1e-6f)), 0.0);
}

TEST(LayerNorm, MatchesDefinition) {
    std::mt19937 rng(14);
    Tensor x = random_f32({5, 128}, rng, 3.0f);
    for (int i = 0; i < 128; ++i) x.data<float>()[i] += 10.0f;  // a large mean in row 0
    Tensor w = random_f32({128}, rng);
    Tensor b = random_f32({128}, rng);
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor y = be->layer_norm(x, w, b, 1e-6f);
    for (int t = 0; t < 5; ++t) {
        const float* xr = x.data<float>() + t * 128;
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < 128; ++i) mean += xr[i];
        mean /= 128;
        for (int i = 0; i < 128; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        var /= 128;
        for (int i = 0; i < 128; ++i) {
            const double expect = (xr[i] - mean) / std::sqrt(var + 1e-6) * w.data<float>()[i] + b.data<float>()[i];
            EXPECT_NEAR(y.data<float>()[t * 128 + i], expect, 1e-5 * (1 + std::fabs(expect)));
        }
    }
}

TEST(Elementwise, AddNarrowConcat) {
    std::mt19937 rng(15);
    Tensor a = random_f32({2, 3, 10}, rng);
    Tensor b = random_f32({2, 3, 10}, rng);
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor s = be->add(a, b);
    for (int64_t i = 0; i < s.numel(); ++i) EXPECT_EQ(s.data<float>()[i], a.data<float>()[i] + b.data<float>()[i]);
    Tensor left = be->narrow_last(a, 0, 4);
    Tensor right = be->narrow_last(a, 4, 10);
    ASSERT_EQ(left.shape(), (Shape{2, 3, 4}));
    EXPECT_EQ(right.data<float>()[0], a.data<float>()[4]);
    EXPECT_EQ(right.data<float>()[6], a.data<float>()[10 + 4]);
    const Tensor parts[] = {left, right};
    Tensor joined = be->concat_last(parts);
    EXPECT_EQ(testing::rel_l2(joined, a), 0.0);
}

}  // namespace
}  // namespace dsa::backend
