// Host entry point of the sparse MLA kernel "w3" (mla_sparse_w3.cu; the default from kW3MinTokens query tokens,
// mla_ops.cpp): three warp-specialized warpgroups per (token, 64-head group), S + softmax / P V / gather, with the
// two head groups of a token in a cluster of 2 sharing the gather at 128 heads (FP8 store; the bf16 store runs s1).
// Same parameters, semantics, split-K partials and combine as launch_mla_sparse_wgmma.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "backend/cuda/mla_kernels.h"

namespace dsa::backend::cuda {

// Whether w3 runs these parameters (FP8 store, a non-empty store); otherwise the launcher runs s1.
bool mla_sparse_w3_applies(const MlaSparseKernelParams& p);
void launch_mla_sparse_w3(const MlaSparseKernelParams& p, cudaStream_t stream);
// DSA_MLA_W3_CLOCKS (read on every launch): 0 / unset = the kernel, 1 = the kernel with per-step clock sums
// (profiling, the same output bits); anything else fails naming the variable.
bool mla_sparse_w3_clocks();

// DSA_MLA_W3_CLOCKS=1 (profiling): the step clocks summed over the launches since the last report, per tile and
// per CTA, as one line; clears them (synchronizes the device).
std::string mla_sparse_w3_clock_report();

// The slots of those sums (cycles, or counts: *Tiles, Ctas).
// clang-format off
enum W3Clock {
    kClkWg0Tiles, kClkWg0Full, kClkWg0S, kClkWg0PFree, kClkWg0Softmax, kClkWg0PvIssue, kClkWg0PvWait,
    kClkWg1Tiles, kClkWg1Full, kClkWg1PReady, kClkWg1Pv,
    kClkProdTiles, kClkProdFree, kClkProdStore, kClkProdLoad,
    kClkCtas, kClkPrologue, kClkTotal, kW3ClockSlots
};
// clang-format on

}  // namespace dsa::backend::cuda
