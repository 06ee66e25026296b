// Host entry point of the opt-in sparse MLA kernel "x2" (DSA_MLA_KERNEL=x2, mla_sparse_x2.cu): s1 with the two
// 64-head groups of a token in one cluster of 2 CTAs that split the gather and dequantization of every tile (FP8
// store, 128 heads). Same parameters, semantics, split-K partials and combine as launch_mla_sparse_wgmma.
#pragma once

#include <cuda_runtime_api.h>

#include "backend/cuda/mla_kernels.h"

namespace dsa::backend::cuda {

// Whether x2 runs these parameters (FP8 store, exactly 128 heads, a non-empty store); otherwise the launcher runs s1.
bool mla_sparse_x2_applies(const MlaSparseKernelParams& p);
void launch_mla_sparse_x2(const MlaSparseKernelParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
