// FP8 quantization rules shared by the kernels that quantize activations: DeepSeek act_quant (per token per
// 128 channels, s = max(amax, 1e-4) / 448, a power of two with ue8m0, e4m3 saturating) and the MLA FP8 latent
// tile rule (s = 2^ceil(log2(max(amax / 448, 1e-4))), clamp, NaN kept), and the RoPE pair rotation. One
// definition each, so a fused kernel (a norm that quantizes its output, the latent write) makes exactly the bytes
// the separate kernels would. Included by .cu files only.
#pragma once

#include <cuda_fp8.h>

#include <cstdint>

namespace dsa::backend::cuda {

constexpr float kActQuantFp8Max = 448.0f;
constexpr float kActQuantMinAmax = 1e-4f;

// 2^ceil(log2(x)) for x > 0 (the reference's pow2_ceil).
__device__ __forceinline__ float fp8_pow2_ceil(float x) {
    int e;
    const float m = frexpf(x, &e);
    return m == 0.5f ? ldexpf(1.0f, e - 1) : ldexpf(1.0f, e);
}

__device__ __forceinline__ uint8_t f32_to_e4m3_sat(float f) {
    return static_cast<uint8_t>(__nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3));
}

// act_quant's scale of a block whose largest magnitude is amax.
__device__ __forceinline__ float act_quant_scale(float amax, bool ue8m0) {
    const float s = fmaxf(amax, kActQuantMinAmax) / kActQuantFp8Max;
    return ue8m0 ? fp8_pow2_ceil(s) : s;
}

// act_quant's e4m3 code of v in a block of scale s.
__device__ __forceinline__ uint8_t act_quant_code(float v, float s) { return f32_to_e4m3_sat(v / s); }

// The MLA FP8 latent store's scale of a 128-element c_kv tile whose largest magnitude is amax.
__device__ __forceinline__ float mla_kv_tile_scale(float amax) {
    return fp8_pow2_ceil(fmaxf(amax / kActQuantFp8Max, kActQuantMinAmax));
}

// The MLA FP8 latent store's e4m3 code of v in a tile of scale s (clamped; NaN stays NaN).
__device__ __forceinline__ uint8_t mla_kv_tile_code(float v, float s) {
    const float x = fminf(fmaxf(v / s, -kActQuantFp8Max), kActQuantFp8Max);
    return f32_to_e4m3_sat(isnan(v) ? v : x);
}

// Max of v over the 16 aligned consecutive lanes of a half warp (every lane of the warp must call it).
__device__ __forceinline__ float half_warp_max(float v) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Eight e4m3 codes (element 0 in the low byte) as one 8-byte word.
__device__ __forceinline__ uint2 pack_e4m3x8(const uint8_t (&q)[8]) {
    uint2 u;
    u.x = q[0] | (uint32_t{q[1]} << 8) | (uint32_t{q[2]} << 16) | (uint32_t{q[3]} << 24);
    u.y = q[4] | (uint32_t{q[5]} << 8) | (uint32_t{q[6]} << 16) | (uint32_t{q[7]} << 24);
    return u;
}

// The RoPE rotation of one pair: (a c - b s, a s + b c) with __fmul_rn / __fsub_rn / __fadd_rn (no FMA
// contraction: the same two roundings as the CPU's float expression).
__device__ __forceinline__ void rope_rotate(float a, float b, float c, float s, float& ra, float& rb) {
    ra = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    rb = __fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c));
}

}  // namespace dsa::backend::cuda
