// Bit-exact checks of the bf16 and fp8 e4m3 conversions against their definitions.
#include "tensor/numeric.h"

#include <cmath>

#include <gtest/gtest.h>

namespace dsa {
namespace {

TEST(Bf16, RoundNearestEven) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
    // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
    EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
    // 1 + 3*2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even): rounds up.
    EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
    EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
    EXPECT_EQ(bf16_to_f32(f32_to_bf16(-2.5f)), -2.5f);
}

TEST(Fp8E4M3, EveryCodeRoundTrips) {
    for (int b = 0; b < 256; ++b) {
        float v = fp8e4m3_to_f32(static_cast<uint8_t>(b));
        if (std::isnan(v)) continue;
        uint8_t back = f32_to_fp8e4m3(v);
        if (v == 0.0f) {
            EXPECT_EQ(back & 0x7f, 0) << b;
        } else {
            EXPECT_EQ(back, b) << "value " << v;
        }
    }
}

TEST(Fp8E4M3, KnownValues) {
    EXPECT_EQ(fp8e4m3_to_f32(0x7e), 448.0f);
    EXPECT_EQ(fp8e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
    EXPECT_EQ(fp8e4m3_to_f32(0x08), std::ldexp(1.0f, -6));  // smallest normal
    EXPECT_TRUE(std::isnan(fp8e4m3_to_f32(0x7f)));
    EXPECT_TRUE(std::isnan(fp8e4m3_to_f32(0xff)));
}

TEST(Fp8E4M3, SaturatesAndKeepsNan) {
    EXPECT_EQ(f32_to_fp8e4m3(1000.0f), 0x7e);
    EXPECT_EQ(f32_to_fp8e4m3(-1e9f), 0xfe);
    EXPECT_EQ(f32_to_fp8e4m3(INFINITY), 0x7e);
    EXPECT_EQ(f32_to_fp8e4m3(NAN) & 0x7f, 0x7f);
}

TEST(Fp8E4M3, RoundsToNearestEven) {
    // Between 1.0 (0x38) and 1.125 (0x39): the midpoint 1.0625 ties to even (1.0).
    EXPECT_EQ(f32_to_fp8e4m3(1.0625f), 0x38);
    // Between 1.125 (odd mantissa) and 1.25: midpoint 1.1875 ties to 1.25.
    EXPECT_EQ(f32_to_fp8e4m3(1.1875f), 0x3a);
    EXPECT_EQ(f32_to_fp8e4m3(1.07f), 0x39);
    // Subnormal midpoint 1.5 * 2^-9 ties to 2 * 2^-9.
    EXPECT_EQ(f32_to_fp8e4m3(1.5f * std::ldexp(1.0f, -9)), 0x02);
    // Below half the smallest subnormal: zero.
    EXPECT_EQ(f32_to_fp8e4m3(0.4f * std::ldexp(1.0f, -9)), 0x00);
    // 464 is halfway between 448 and 480 (which does not exist): saturates.
    EXPECT_EQ(f32_to_fp8e4m3(447.0f), 0x7e);
}

TEST(Ue8m0, Pow2Ceil) {
    EXPECT_EQ(pow2_ceil(1.0f), 1.0f);
    EXPECT_EQ(pow2_ceil(1.01f), 2.0f);
    EXPECT_EQ(pow2_ceil(0.3f), 0.5f);
    EXPECT_EQ(pow2_ceil(0.25f), 0.25f);
    EXPECT_EQ(ue8m0_to_f32(127), 1.0f);
    EXPECT_EQ(ue8m0_to_f32(130), 8.0f);
}

}  // namespace
}  // namespace dsa
