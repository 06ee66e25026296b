// Device code shared by the two sparse MLA kernel families (mla_attention.cu: mma.sync; mla_sparse_wgmma.cu:
// wgmma): the split-K epilogue that writes a CTA's unnormalized output rows and their running max / sum into the
// FP32 partial buffers that launch_mla_sparse_combine reduces.
#pragma once

#include <cstdint>

#include "backend/cuda/mla_kernels.h"

namespace dsa::backend::cuda::mla_sparse {

constexpr int kPartialLatent = 512;  // latent (output) width of a partial row

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
