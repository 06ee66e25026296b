// FP8 reference math: e4m3 quantization (saturation, NaN, subnormals), act_quant and UE8M0 scales, the KV tile
// scale rule, 128x128 block dequantization with partial edge blocks, and the Hadamard rotation against its
// matrix definition.
#include "backend/cpu/quant.h"

#include <bit>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "test_util.h"

namespace dsa::backend::cpu {
namespace {

using testing::random_f32;

TEST(QuantizeE4m3, SaturatesKeepsNanAndSubnormals) {
    const float x[] = {1000.0f, -1000.0f, 448.0f, NAN, std::ldexp(1.0f, -9), 3 * std::ldexp(1.0f, -10), 0.0f, -0.0f};
    uint8_t q[8];
    quantize_e4m3(x, 8, 1.0f, q);
    EXPECT_EQ(q[0], 0x7e);  // +448
    EXPECT_EQ(q[1], 0xfe);  // -448
    EXPECT_EQ(q[2], 0x7e);
    EXPECT_TRUE(std::isnan(fp8e4m3_to_f32(q[3])));
    EXPECT_EQ(q[4], 0x01);  // smallest subnormal 2^-9
    EXPECT_EQ(q[5], 0x02);  // 1.5 * 2^-9 ties to even -> 2 * 2^-9
    EXPECT_EQ(q[6], 0x00);
    EXPECT_EQ(q[7], 0x80);
    // With a scale: x / s is quantized.
    const float y[] = {3.0f};
    quantize_e4m3(y, 1, 0.5f, q);
    EXPECT_EQ(fp8e4m3_to_f32(q[0]), 6.0f);
}

TEST(ActQuantScale, PlainAndUe8m0) {
    EXPECT_FLOAT_EQ(act_quant_scale(448.0f, false), 1.0f);
    EXPECT_FLOAT_EQ(act_quant_scale(0.0f, false), 1e-4f / 448.0f);  // amax clamped to 1e-4
    EXPECT_FLOAT_EQ(act_quant_scale(224.0f, false), 0.5f);
    EXPECT_EQ(act_quant_scale(300.0f, true), 1.0f);        // 0.67 -> 2^0
    EXPECT_EQ(act_quant_scale(56.0f, true), 0.125f);       // exactly 2^-3 stays
    EXPECT_EQ(act_quant_scale(56.001f, true), 0.25f);      // just above rounds up
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> amax(1e-6f, 1e4f);
    for (int i = 0; i < 1000; ++i) {
        const float a = amax(rng), s = act_quant_scale(a, true);
        int e;
        EXPECT_EQ(std::frexp(s, &e), 0.5f) << "not a power of two: " << s;
        EXPECT_GE(s, std::max(a, 1e-4f) / 448.0f);
        EXPECT_LT(s / 2, std::max(a, 1e-4f) / 448.0f);
        // UE8M0 byte representation round-trips.
        EXPECT_EQ(ue8m0_to_f32(static_cast<uint8_t>(e - 1 + 127)), s);
    }
}

TEST(KvFp8Scale, FlashMlaRule) {
    EXPECT_EQ(kv_fp8_scale(1.0f), std::ldexp(1.0f, -8));   // 1/448 = 2^-8.8 -> 2^-8
    EXPECT_EQ(kv_fp8_scale(448.0f), 1.0f);
    EXPECT_EQ(kv_fp8_scale(0.0f), std::ldexp(1.0f, -13));  // max(.., 1e-4) -> 2^-13
}

TEST(ActQuant, BlockMatchesDefinition) {
    std::mt19937 rng(2);
    for (bool ue8m0 : {false, true}) {
        Tensor x = random_f32({128}, rng, 3.0f);
        float amax = 0.0f;
        for (int i = 0; i < 128; ++i) amax = std::max(amax, std::fabs(x.data<float>()[i]));
        float s = amax / 448.0f;
        if (ue8m0) s = std::exp2(std::ceil(std::log2(s)));
        uint8_t q[128];
        EXPECT_EQ(act_quant_block(x.data<float>(), 128, ue8m0, q), s);
        for (int i = 0; i < 128; ++i) EXPECT_EQ(q[i], f32_to_fp8e4m3(x.data<float>()[i] / s)) << i;
    }
}

TEST(ActQuant, RowUsesOneScalePerBlockIncludingPartial) {
    std::mt19937 rng(3);
    Tensor x = random_f32({200}, rng);
    x.data<float>()[150] = 100.0f;  // a large value in the partial second block only
    Tensor y = x.clone();
    act_quant_dequant_row(y.data<float>(), 200, /*ue8m0=*/false);
    for (int b = 0; b < 2; ++b) {
        const int begin = b * 128, len = b == 0 ? 128 : 72;
        float amax = 0.0f;
        for (int i = begin; i < begin + len; ++i) amax = std::max(amax, std::fabs(x.data<float>()[i]));
        const float s = amax / 448.0f;
        for (int i = begin; i < begin + len; ++i) {
            EXPECT_EQ(y.data<float>()[i], round_fp8e4m3(x.data<float>()[i] / s) * s) << i;
        }
    }
}

TEST(BlockDequant, PartialEdgeBlocks576Rows) {
    std::mt19937 rng(4);
    LinearWeight w = testing::random_fp8_weight(576, 300, rng);  // 5 x 3 blocks; last row block 64, last col 44
    ASSERT_EQ(w.scale_inv.dim(0), 5);
    ASSERT_EQ(w.scale_inv.dim(1), 3);
    for (int bi = 0; bi < 5; ++bi) {
        for (int bj = 0; bj < 3; ++bj) w.scale_inv.data<float>()[bi * 3 + bj] = std::ldexp(1.0f, bi * 3 + bj - 8);
    }
    Tensor d = dequant_fp8_weight(w);
    ASSERT_EQ(d.shape(), (Shape{576, 300}));
    for (int64_t i = 0; i < 576; ++i) {
        for (int64_t j = 0; j < 300; ++j) {
            const float expect = fp8e4m3_to_f32(w.weight.data<uint8_t>()[i * 300 + j]) *
                                 std::ldexp(1.0f, static_cast<int>((i / 128) * 3 + j / 128) - 8);
            ASSERT_EQ(d.data<float>()[i * 300 + j], expect) << i << "," << j;
        }
    }
    // The last row block (rows 512..575) uses scale row 4.
    EXPECT_EQ(d.data<float>()[575 * 300 + 299],
              fp8e4m3_to_f32(w.weight.data<uint8_t>()[575 * 300 + 299]) * std::ldexp(1.0f, 14 - 8));
}

TEST(Hadamard128, MatchesMatrixDefinition) {
    std::mt19937 rng(5);
    Tensor x = random_f32({128}, rng);
    Tensor y = x.clone();
    hadamard128(y.data<float>());
    for (int i = 0; i < 128; ++i) {
        double expect = 0.0;
        for (int j = 0; j < 128; ++j) {
            const int sign = std::popcount(static_cast<unsigned>(i & j)) % 2 ? -1 : 1;
            expect += sign * static_cast<double>(x.data<float>()[j]);
        }
        expect /= std::sqrt(128.0);
        EXPECT_NEAR(y.data<float>()[i], expect, 1e-5) << i;
    }
}

TEST(Hadamard128, OrthonormalAndInvolution) {
    std::vector<std::vector<float>> cols(128, std::vector<float>(128, 0.0f));
    for (int k = 0; k < 128; ++k) {
        cols[k][k] = 1.0f;
        hadamard128(cols[k].data());
    }
    for (int a = 0; a < 128; ++a) {
        for (int b = 0; b < 128; ++b) {
            double d = 0.0;
            for (int i = 0; i < 128; ++i) d += cols[a][i] * cols[b][i];
            EXPECT_NEAR(d, a == b ? 1.0 : 0.0, 1e-6) << a << "," << b;
        }
    }
    std::mt19937 rng(6);
    Tensor x = random_f32({128}, rng);
    Tensor y = x.clone();
    hadamard128(y.data<float>());
    hadamard128(y.data<float>());
    EXPECT_LT(testing::rel_l2(y, x), 1e-6);
}

}  // namespace
}  // namespace dsa::backend::cpu
