// Device code shared by the two sparse MLA kernel families (mla_attention.cu: mma.sync; mla_sparse_wgmma.cu:
// wgmma): the softmax's P pairs and O rescale, and the split-K epilogue that writes a CTA's unnormalized output
// rows and their running max / sum into the FP32 partial buffers that launch_mla_sparse_combine reduces.
#pragma once

#include <cstdint>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/mla_kernels.h"
#include "backend/cuda/mma_util.cuh"

namespace dsa::backend::cuda::mla_sparse {

constexpr int kPartialLatent = 512;  // latent (output) width of a partial row

// P of two keys of a row, bf16(exp2(s - m)) (s1's rounding), added to the row's running sum; packed bf16x2.
__device__ __forceinline__ uint32_t softmax_pair(float s0, float s1, float m, float& l) {
    const float p0 = round_bf16(exp2f(s0 - m));
    const float p1 = round_bf16(exp2f(s1 - m));
    l += p0 + p1;
    return pack_bf16x2(p0, p1);
}

// O *= the rows' factors (rows g: alpha[0], g + 8: alpha[1]).
__device__ __forceinline__ void rescale_o(float (&o)[32][4], const float (&alpha)[2]) {
#pragma unroll
    for (int i = 0; i < 32; ++i) {
        o[i][0] *= alpha[0];
        o[i][1] *= alpha[0];
        o[i][2] *= alpha[1];
        o[i][3] *= alpha[1];
    }
}

// This thread's unnormalized O (rows `row` and row + 8, columns col + 8 i, i < 32) and, from one thread per row
// pair (`write_ml`), the rows' running max and sum (sm.row_sum[0][r] + sm.row_sum[1][r]) into the partials.
template <class Smem>
__device__ __forceinline__ void write_partials(const MlaSparseKernelParams& p, const Smem& sm, const float (&o)[32][4],
                                               const float (&m_run)[2], int64_t tok, int64_t h0, int row, int col,
                                               bool write_ml) {
    const int64_t z = blockIdx.z;
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        const int r = row + 8 * hlf;
        const int64_t head = h0 + r;
        if (head >= p.heads) continue;
        const int64_t base = (z * p.num_tokens + tok) * p.heads + head;
        float* out = p.part_o + base * kPartialLatent + col;
#pragma unroll
        for (int i = 0; i < 32; ++i) {
            *reinterpret_cast<float2*>(out + i * 8) = make_float2(o[i][2 * hlf], o[i][2 * hlf + 1]);
        }
        if (write_ml) {
            p.part_ml[2 * base] = m_run[hlf];
            p.part_ml[2 * base + 1] = sm.row_sum[0][r] + sm.row_sum[1][r];
        }
    }
}

}  // namespace dsa::backend::cuda::mla_sparse
