// Scalar conversions between fp32 and the narrow formats, bit-exact with PyTorch / CUDA:
//  - bf16: round-to-nearest-even, NaN preserved.
//  - fp8 e4m3fn: round-to-nearest-even with saturation to +-448 (what the reference gets by clamping before
//    the cast, and what CUDA's __NV_SATFINITE does); NaN stays NaN; subnormals down to 2^-9.
//  - ue8m0: a power-of-two scale stored as its biased exponent byte.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace dsa {

struct bf16 {
    uint16_t bits = 0;
};

inline float bf16_to_f32(uint16_t b) {
    uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return static_cast<uint16_t>(u >> 16);
}

// Rounds an fp32 value to the nearest bf16 and back (the value a bf16 tensor would hold).
inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (h >> 15) & 1u, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    float v;
    if (exp == 0) v = std::ldexp(static_cast<float>(man), -24);
    else if (exp == 31) v = man ? NAN : INFINITY;
    else v = std::ldexp(static_cast<float>(man | 0x400u), static_cast<int>(exp) - 25);
    return sign ? -v : v;
}

constexpr float kFp8E4M3Max = 448.0f;

float fp8e4m3_to_f32(uint8_t b);   // table lookup
uint8_t f32_to_fp8e4m3(float f);   // RNE, saturating to +-448, NaN -> 0x7f (sign kept)

inline float round_fp8e4m3(float f) { return fp8e4m3_to_f32(f32_to_fp8e4m3(f)); }

// UE8M0: value = 2^(byte - 127); byte 255 is NaN.
inline float ue8m0_to_f32(uint8_t b) { return b == 255 ? NAN : std::ldexp(1.0f, static_cast<int>(b) - 127); }

// Power-of-two scale used by DeepSeek's act_quant with scale_fmt "ue8m0": 2^ceil(log2(x)).
float pow2_ceil(float x);

}  // namespace dsa
