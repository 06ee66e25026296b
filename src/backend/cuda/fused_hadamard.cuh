// The indexer's per-warp pieces of one 128-vector (lane l: elements 4l .. 4l+3), shared by the key writes and the
// q preparation: the bf16 load, the RoPE of the first 64 dims, the reference's Hadamard butterflies (every value
// gets the same float operations as on the CPU), act_quant.cuh's scale and code rule (one scale per 128-vector) and
// the key's page write (indexer_common.cuh layout). Included by .cu files only.
#pragma once

#include <cstdint>

#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/indexer_common.cuh"

namespace dsa::backend::cuda {

// The lane's 4 bf16 values (16-byte aligned row) widened to float.
__device__ __forceinline__ void load4_bf16(const uint16_t* p, float (&v)[4]) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    v[0] = bf16_bits_to_f32(static_cast<uint16_t>(u.x));
    v[1] = bf16_bits_to_f32(static_cast<uint16_t>(u.x >> 16));
    v[2] = bf16_bits_to_f32(static_cast<uint16_t>(u.y));
    v[3] = bf16_bits_to_f32(static_cast<uint16_t>(u.y >> 16));
}

constexpr int kRope64Pairs = 32;  // cos / sin values per position of a 64-dim RoPE table

// RoPE on elements [0, 64) with the row's 32 cos / sin values (apply_rope's arithmetic, bf16 rounding): interleaved
// pairs (2i, 2i+1) sit in one lane, NeoX pairs (i, i + 32) in lanes l, l ^ 8. Every lane of the warp must call it.
__device__ __forceinline__ void rope64_lanes(float (&v)[4], int lane, const float* c, const float* s,
                                             bool interleaved) {
    if (interleaved) {
        if (lane >= 16) return;
#pragma unroll
        for (int j = 0; j < 4; j += 2) {
            const int i = 2 * lane + j / 2;
            float ra, rb;
            rope_rotate(v[j], v[j + 1], c[i], s[i], ra, rb);
            v[j] = round_bf16(ra), v[j + 1] = round_bf16(rb);
        }
        return;
    }
    float o[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) o[j] = __shfl_xor_sync(0xffffffffu, v[j], 8);
    if (lane >= 16) return;
    const bool upper = lane >= 8;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int i = 4 * (lane & 7) + j;
        float ra, rb;
        rope_rotate(upper ? o[j] : v[j], upper ? v[j] : o[j], c[i], s[i], ra, rb);
        v[j] = round_bf16(upper ? rb : ra);
    }
}

// Stage h: x[j] = a + b, x[j + h] = a - b for the lower index j; then * scale and the bf16 activation rounding.
__device__ __forceinline__ void hadamard128_lanes(float (&v)[4], int lane, float scale) {
    float a = v[0], b = v[1];
    v[0] = __fadd_rn(a, b);
    v[1] = __fsub_rn(a, b);
    a = v[2];
    b = v[3];
    v[2] = __fadd_rn(a, b);
    v[3] = __fsub_rn(a, b);
    a = v[0];
    b = v[2];
    v[0] = __fadd_rn(a, b);
    v[2] = __fsub_rn(a, b);
    a = v[1];
    b = v[3];
    v[1] = __fadd_rn(a, b);
    v[3] = __fsub_rn(a, b);
#pragma unroll
    for (int m = 1; m < 32; m <<= 1) {  // stage h = 4m: the partner element lives in lane ^ m
        const bool upper = (lane & m) != 0;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const float o = __shfl_xor_sync(0xffffffffu, v[j], m);
            v[j] = upper ? __fsub_rn(o, v[j]) : __fadd_rn(v[j], o);
        }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = round_bf16(__fmul_rn(v[j], scale));
}

// act_quant of the warp's 128-vector: the scale (returned) and the lane's 4 codes packed low element first.
__device__ __forceinline__ float act_quant_lanes(const float (&v)[4], bool ue8m0, uint32_t& packed) {
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) amax = fmaxf(amax, fabsf(v[j]));
    const float s = act_quant_scale(warp_max(amax), ue8m0);
    packed = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) packed |= static_cast<uint32_t>(act_quant_code(v[j], s)) << (8 * j);
    return s;
}

namespace {

// The warp's key (lane: 4 values) into its slot's page row: f32 values, or Hadamard + act_quant (e4m3 + scale).
__device__ __forceinline__ void store_indexer_key(uint8_t* pages, int64_t slot, int lane, float (&v)[4], bool fp8,
                                                  float hadamard_scale, bool ue8m0) {
    const int64_t page = slot / kPageTokens, row = slot % kPageTokens;
    if (!fp8) {
        *reinterpret_cast<float4*>(pages + page * kF32PageBytes + row * kDim * 4 + lane * 16) =
            make_float4(v[0], v[1], v[2], v[3]);
        return;
    }
    hadamard128_lanes(v, lane, hadamard_scale);
    uint32_t packed;
    const float s = act_quant_lanes(v, ue8m0, packed);
    uint8_t* base = pages + page * kFp8PageBytes;
    *reinterpret_cast<uint32_t*>(base + row * kDim + lane * 4) = packed;
    if (lane == 0) *reinterpret_cast<float*>(base + kFp8ScaleOffset + row * 4) = s;
}

}  // namespace
}  // namespace dsa::backend::cuda
