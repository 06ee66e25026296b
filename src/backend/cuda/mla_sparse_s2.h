// Host entry points of the opt-in sparse MLA kernel "s2" (DSA_MLA_KERNEL=s2, mla_sparse_s2.cu) and the parameter
// checks it shares with s1 (mla_sparse_wgmma.cu). Same parameters, semantics, split-K partials and combine as
// launch_mla_sparse_wgmma (mla_kernels.h).
#pragma once

#include <cuda_runtime_api.h>

#include "backend/cuda/mla_kernels.h"

namespace dsa::backend::cuda {

// Alignment, grid and split checks of the wgmma sparse kernels (s1, s2); fails loudly on bad parameters.
void check_mla_sparse_wgmma_params(const MlaSparseKernelParams& p);
// Kernel s2: warpgroup 0 computes S, the softmax and O[:, :256] while warpgroup 1 computes O[:, 256:] of the
// previous tile and gathers the tiles; hand-overs by mbarriers instead of CTA-wide barriers.
void launch_mla_sparse_s2(const MlaSparseKernelParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
