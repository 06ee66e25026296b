// RMSNorm's device pieces (norm_kernels.cu's rms_norm kernel and the fused decode-writes kernel in
// fused_kernels.cu): the residual slice, the one-barrier block sum, 1 / rms, the scaled output and the act_quant of
// a normed row held 8 per thread, and the one-pass row in registers. One definition, so both kernels make the same
// bits. Included by .cu files only.
#pragma once

#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace dsa::backend::cuda::norm_row {

// Loads VEC f32 norm parameters at i (zeros past the row: never used).
template <int VEC>
__device__ __forceinline__ void load_param(const float* w, int64_t i, int64_t dim, float (&out)[VEC]) {
#pragma unroll
    for (int j = 0; j < VEC; ++j) out[j] = i < dim ? w[i + j] : 0.0f;
}

// act_quant of the normed row held 8 per thread: a 128-column block is 16 consecutive threads. The block sees
// the bf16-rounded outputs (what act_quant would read back) and uses act_quant.cuh's scale and code rule.
__device__ __forceinline__ void quantize_slice(const RmsNormParams& p, const float (&v)[8], bool mine, int64_t i,
                                               int64_t row) {
    float r[8];
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        r[j] = round_bf16(v[j]);
        amax = fmaxf(amax, fabsf(r[j]));
    }
    amax = half_warp_max(mine ? amax : 0.0f);
    const float s = act_quant_scale(amax, p.ue8m0);
    if (!mine) return;
    if ((threadIdx.x & 15) == 0) p.q8_scales[(i / 128) * p.rows + row] = s;
    uint8_t q[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) q[j] = act_quant_code(r[j], s);
    *reinterpret_cast<uint2*>(p.q8 + row * p.dim + i) = pack_e4m3x8(q);
}

// block_sum for a kernel that reduces once (RMSNorm): one barrier instead of three. Every warp adds the per-warp
// partials itself with block_sum's final warp reduction, so each gets block_sum's value; the partials are written
// once per launch.
__device__ __forceinline__ float block_sum_once(float v) {
    __shared__ float partial[32];
    const int lane = threadIdx.x & 31;
    v = warp_sum(v);
    if (lane == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    return warp_sum(lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : 0.0f);
}

// RMSNorm's pieces, shared by the one-pass and the two-pass kernel (the same operations in the same order):
// the residual slice at i (+ delta, rounded to bf16 and written back) with its squares added to ss ...
template <int VEC>
__device__ __forceinline__ void residual_slice(uint16_t* r, const uint16_t* d, int64_t i, float (&v)[VEC], float& ss) {
    load_bf16<VEC>(r + i, v);
    if (d != nullptr) {
        float dv[VEC];
        load_bf16<VEC>(d + i, dv);
#pragma unroll
        for (int j = 0; j < VEC; ++j) v[j] = round_bf16(v[j] + dv[j]);
        store_bf16<VEC>(r + i, v);
    }
#pragma unroll
    for (int j = 0; j < VEC; ++j) ss += v[j] * v[j];
}

// ... 1 / rms of the row from the block's sum of squares ...
__device__ __forceinline__ float rms_inv(const RmsNormParams& p, float ss) {
    return 1.0f / sqrtf(ss / static_cast<float>(p.dim) + p.eps);
}

// ... and the output w * (v * inv).
template <int VEC>
__device__ __forceinline__ void scale_slice(const float (&w)[VEC], float inv, float (&v)[VEC]) {
#pragma unroll
    for (int j = 0; j < VEC; ++j) v[j] = w[j] * (v[j] * inv);
}

// Rows of at most blockDim.x * VEC: each thread's slice stays in registers between the passes, and the weights
// are loaded with the row (not after the reduction). The same arithmetic in the same order as the loop below.
template <int VEC>
__device__ __forceinline__ void rms_norm_row_in_registers(const RmsNormParams& p, uint16_t* r, const uint16_t* d,
                                                          uint16_t* y, int64_t row) {
    const int64_t i = threadIdx.x * VEC;
    const bool mine = i < p.dim;
    float v[VEC], w[VEC];
    load_param<VEC>(p.weight, i, p.dim, w);
    float ss = 0.0f;
    if (mine) residual_slice<VEC>(r, d, i, v, ss);
    const float inv = rms_inv(p, block_sum_once(ss));
    if (mine) {
        scale_slice<VEC>(w, inv, v);
        store_bf16<VEC>(y + i, v);
    }
    if constexpr (VEC == 8) {
        if (p.q8 != nullptr) quantize_slice(p, v, mine, i, row);  // block-uniform; every lane takes part
    }
}

}  // namespace dsa::backend::cuda::norm_row
