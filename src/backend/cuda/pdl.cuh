// Programmatic dependent launch (PDL): a kernel launched with launch_pdl() may start while the kernel before it
// on the stream is still running, so its prologue (weight prefetch, shared-memory setup) hides that kernel's
// tail and the launch gap. Contract for every kernel launched this way: before pdl_wait() it reads only data no
// earlier kernel writes (weights, constants) and writes no global memory; every path through the kernel calls
// pdl_wait() before it exits. pdl_trigger() lets the next PDL kernel be scheduled early. Both are no-ops when
// the kernel was launched without the attribute. DSA_PDL=0 turns the attribute off (for A/B timing and triage).
#pragma once

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <cuda_runtime.h>

#include "backend/cuda/cuda_check.h"

namespace dsa::backend::cuda {

// Blocks until every kernel this one depends on has finished and its writes are visible.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

// Allows the next kernel on the stream (if launched with PDL) to be scheduled before this one finishes.
__device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }

}  // namespace dsa::backend::cuda

namespace dsa::backend::cuda::host {

// Whether launch_pdl sets the attribute (env DSA_PDL, default on; read once).
inline bool pdl_enabled() {
    static const bool on = [] {
        const char* v = std::getenv("DSA_PDL");
        return v == nullptr || std::strcmp(v, "0") != 0;
    }();
    return on;
}

// kernel<<<grid, block, smem, stream>>>(args...) with the programmatic-stream-serialization attribute.
template <typename... Params, typename... Args>
void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                Args&&... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl_enabled() ? 1 : 0;
    DSA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

// kernel on `grid` CTAs of `block` threads in clusters of `cluster` CTAs, with PDL unless the runtime refuses the
// attribute on a cluster launch: then without it from then on (`pdl_ok`: one flag per call site; the first call
// must be eager, before any graph capture). Sizes above 8 need cudaFuncAttributeNonPortableClusterSizeAllowed.
template <typename... Params, typename... Args>
void launch_pdl_cluster_grid(void (*kernel)(Params...), dim3 grid, dim3 block, dim3 cluster, size_t smem,
                             cudaStream_t stream, std::atomic<bool>& pdl_ok, const Args&... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[2];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = cluster.x;
    attr[0].val.clusterDim.y = cluster.y;
    attr[0].val.clusterDim.z = cluster.z;
    attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[1].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl_enabled() && pdl_ok.load(std::memory_order_relaxed) ? 2 : 1;
    cudaError_t err = cudaLaunchKernelEx(&cfg, kernel, args...);
    if (err != cudaSuccess && cfg.numAttrs == 2) {
        (void)cudaGetLastError();
        pdl_ok.store(false, std::memory_order_relaxed);
        cfg.numAttrs = 1;
        err = cudaLaunchKernelEx(&cfg, kernel, args...);
    }
    DSA_CUDA_CHECK(err);
}

// The 1-D form: `ctas` CTAs of `threads` in clusters of `cluster` CTAs along x.
template <typename... Params, typename... Args>
void launch_pdl_cluster(void (*kernel)(Params...), int64_t ctas, int threads, int cluster, size_t smem,
                        cudaStream_t stream, std::atomic<bool>& pdl_ok, const Args&... args) {
    launch_pdl_cluster_grid(kernel, dim3(static_cast<unsigned>(ctas)), dim3(static_cast<unsigned>(threads)),
                            dim3(static_cast<unsigned>(cluster)), smem, stream, pdl_ok, args...);
}

}  // namespace dsa::backend::cuda::host
