// Host entry points of the opt-in sparse MLA kernel "s3" (DSA_MLA_KERNEL=s3, mla_sparse_s3.cu) and the parameter
// checks it shares with s1 (mla_sparse_wgmma.cu). Same parameters, semantics, split-K partials and combine as
// launch_mla_sparse_wgmma (mla_kernels.h).
#pragma once

#include <cuda_runtime_api.h>

#include "backend/cuda/mla_kernels.h"

namespace dsa::backend::cuda {

// Alignment, grid and split checks of the wgmma sparse kernels (s1, s3); fails loudly on bad parameters.
void check_mla_sparse_wgmma_params(const MlaSparseKernelParams& p);
// Kernel s3: warpgroup 0 holds Q in registers and computes S and the softmax, warpgroups 1 and 2 accumulate the
// output halves and gather the tiles (three buffers); S of tile i + 1 runs beside P V of tile i.
void launch_mla_sparse_s3(const MlaSparseKernelParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
