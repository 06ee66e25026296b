// The lean form of the FP8 stream GEMM's wgmma kernel (fp8_wgmma_lean.cu; DSA_FP8_WGMMA_LEAN): dense plans on the
// wgmma kernel (single weights and the joint multi launch, not stream-K) run the same CTA, ring, k order and sums as
// fp8_wgmma_kernel (the same bits) with a shorter per-128-K-block chain; by default (auto) the plans without a global
// split-K workspace (unsplit or cluster plans), where the H200 measured it faster.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/fp8_stream_gemm.h"

namespace dsa::backend::cuda {

// DSA_FP8_WGMMA_LEAN on first use (auto / 1 / 0), or the last set: later launches follow (tests and benches).
constexpr int kFp8WgmmaLeanOff = 0, kFp8WgmmaLeanAll = 1, kFp8WgmmaLeanAuto = 2;
int fp8_wgmma_lean_mode();
void set_fp8_wgmma_lean_mode(int mode);
bool fp8_wgmma_lean();             // mode == all
void set_fp8_wgmma_lean(bool on);  // mode all or off
// Whether a launch with this plan takes the lean kernel (mode all, or auto and no global split-K workspace; wgmma
// kernel, dense, not stream-K).
bool fp8_wgmma_lean_applies(const Fp8StreamPlan& plan, bool dense);
// The launchers' lean branches (arguments checked by launch_fp8_stream_gemm / launch_fp8_stream_multi).
void launch_fp8_wgmma_lean(const Fp8StreamParams& p, const Fp8StreamPlan& plan, cudaStream_t stream);
void launch_fp8_wgmma_lean_multi(const Fp8StreamParams& p, const Fp8StreamMulti& m, int64_t ctas,
                                 cudaStream_t stream);

}  // namespace dsa::backend::cuda
