// Host entry point of the sparse MLA kernel "w3" (mla_sparse_w3.cu; the default from 16 query tokens): three
// warp-specialized warpgroups per (token, 64-head group), S + softmax / P V / gather, with the two head groups of a
// token in a cluster of 2 sharing the gather at 128 heads (FP8 store; the bf16 store runs s1). Same parameters,
// semantics, split-K partials and combine as launch_mla_sparse_wgmma.
#pragma once

#include <cuda_runtime_api.h>

#include "backend/cuda/mla_kernels.h"

namespace dsa::backend::cuda {

// Whether w3 runs these parameters (FP8 store, a non-empty store); otherwise the launcher runs s1.
bool mla_sparse_w3_applies(const MlaSparseKernelParams& p);
void launch_mla_sparse_w3(const MlaSparseKernelParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
