// The split-K merge of the sparse MLA partials, written once for mla_sparse_combine_kernel (mla_attention.cu) and
// the fused combine of absorb_o (mla_absorb_fp8.cu): row weights 2^(m_z - M) from the splits' (max, sum) pairs, the
// weighted sums of the f32 partials as four chains (split z goes to chain z % 4, each in split order, explicit FMAs,
// zero terms padding the last batch of 8) added as ((c0 + c1) + c2) + c3, then times 1 / sum (0 for a row without
// valid slots) and rounded to bf16. Both callers use these functions, so their bf16 outputs are the same bits.
#pragma once

#include <cstdint>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/mma_util.cuh"

namespace dsa::backend::cuda {

inline constexpr float kCombineNoMax = -1e30f;  // the sparse kernels' running-max start
inline constexpr int kCombineChains = 4;
inline constexpr int kCombineChainBatch = 8;  // the combine kernel's batch: splits c, c + 4, .. (8) of chain c

// Whether the combine kernel adds zero terms (0 * 0: -0 becomes +0, nothing else changes) to chain c after its
// last split: its batches cover splits c + 4 i, i < 8 n, n = max(1, ceil((splits - c) / 32)).
__host__ __device__ __forceinline__ bool combine_chain_padded(int64_t splits, int c) {
    constexpr int64_t per = kCombineChains * kCombineChainBatch;
    const int64_t n = splits - c <= 0 ? 1 : (splits - c + per - 1) / per;
    return c + per * n - kCombineChains >= splits;
}

// The combine kernel's padding terms of a chain (fmaf(0, 0, acc)).
__device__ __forceinline__ void combine_pad(float4& acc) {
    acc.x = __fadd_rn(acc.x, 0.0f), acc.y = __fadd_rn(acc.y, 0.0f), acc.z = __fadd_rn(acc.z, 0.0f),
    acc.w = __fadd_rn(acc.w, 0.0f);
}

// Warp-collective: the weights 2^(m_z - M) of row `row` (of `rows` = tokens * heads) into w[z] and its splits'
// sums into sums[z] (lane z % 32 writes and reads z); returns sum_z l_z w_z (the same bits in every lane).
__device__ __forceinline__ float combine_row_weights(const float* part_ml, int64_t rows, int64_t row, int64_t splits,
                                                     float* w, float* sums) {
    const int lane = threadIdx.x & 31;
    float m = kCombineNoMax;
    for (int64_t z = lane; z < splits; z += 32) {
        const float2 ml = *reinterpret_cast<const float2*>(part_ml + 2 * (z * rows + row));
        w[z] = ml.x;
        sums[z] = ml.y;
        m = fmaxf(m, ml.x);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    float l = 0.0f;
    for (int64_t z = lane; z < splits; z += 32) {
        w[z] = exp2f(w[z] - m);
        l = fmaf(sums[z], w[z], l);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) l += __shfl_xor_sync(0xffffffffu, l, off);
    return l;
}

__device__ __forceinline__ float combine_inv(float l) { return l > 0.0f ? 1.0f / l : 0.0f; }

// One split's term of a chain: acc += v * w (four FMAs).
__device__ __forceinline__ void combine_fma(float4& acc, const float4& v, float w) {
    acc.x = fmaf(v.x, w, acc.x), acc.y = fmaf(v.y, w, acc.y), acc.z = fmaf(v.z, w, acc.z), acc.w = fmaf(v.w, w, acc.w);
}

__device__ __forceinline__ void combine_add(float4& acc, const float4& o) {
    acc.x += o.x, acc.y += o.y, acc.z += o.z, acc.w += o.w;
}

// The merged row's four columns as bf16 (two packed pairs).
__device__ __forceinline__ uint2 combine_round(const float4& acc, float inv) {
    return make_uint2(pack_bf16x2(acc.x * inv, acc.y * inv), pack_bf16x2(acc.z * inv, acc.w * inv));
}

}  // namespace dsa::backend::cuda
