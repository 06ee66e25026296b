// Cluster split-K for the FP8 stream GEMM's staged / wgmma kernels (fp8_stream_gemm.cu; plans with cluster > 1,
// DSA_FP8_STREAM_CLUSTER): the K splits of a 128-row block are the consecutive CTAs of one thread-block cluster.
// Each CTA leaves its warps' partials in its own shared memory (the free stage ring); after a cluster barrier every
// CTA sums a share of the block's (warp, n-tile) fragments over all ranks in rank order through distributed shared
// memory and stores them; a second barrier keeps every CTA alive until the others have read it. Also the host-side
// cluster launch (with PDL where the runtime accepts it). Included by fp8_stream_gemm.cu only.
#pragma once

#include <cooperative_groups.h>

#include <atomic>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_stream_common.cuh"
#include "backend/cuda/fp8_stream_gemm.h"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda::fp8s {

// Fragment nt of a warp's accumulators (mma.sync layout: rows row0 + g, + 8; tokens 8 nt + 2t, + 1) to the output.
__device__ __forceinline__ void store_fragment(const float4& v, const Fp8StreamParams& p, const WarpJob& j, int nt,
                                               int lane) {
    const int g = lane >> 2, t = lane & 3;
    const float c[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int64_t row = j.row0 + g + (i >= 2 ? 8 : 0);
        const int tok = nt * 8 + 2 * t + (i & 1);
        if (row >= p.n || tok >= j.count) continue;
        const int64_t orow = p.experts != nullptr ? p.groups.rows[j.start + j.tok0 + tok] : j.tok0 + tok;
        p.out[orow * p.n + row] = f32_to_bf16_bits(c[i]);
    }
}

// The cluster's finish of 128-row block rb (tiles rb * 8 + w, w = 0..7): `acc` this warp's partial, `j` its job
// (count / start / tok0 shared by the CTA), `part` the CTA's free shared memory (>= 8 * NT * 512 bytes). Every
// thread of every CTA of the cluster calls it (no early exit): it holds two cluster barriers.
template <int NT>
__device__ __forceinline__ void cluster_finish(const float (&acc)[NT][4], const Fp8StreamParams& p,
                                               const Fp8StreamPlan& plan, int64_t rb, WarpJob j, uint8_t* part_smem,
                                               int warp, int lane) {
    namespace cg = cooperative_groups;
    cg::cluster_group cl = cg::this_cluster();
    float4* part = reinterpret_cast<float4*>(part_smem);
    __syncthreads();  // every warp of this CTA is done reading the ring
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        part[(warp * NT + nt) * 32 + lane] = make_float4(acc[nt][0], acc[nt][1], acc[nt][2], acc[nt][3]);
    }
    cl.sync();  // every rank's partials are in place (release / acquire at cluster scope)
    const int cs = plan.cluster, rank = static_cast<int>(cl.block_rank());
    for (int u = rank + cs * warp; u < 8 * NT; u += cs * 8) {  // fragment u = (warp slot u / NT, n-tile u % NT)
        float4 v[kFp8StreamMaxCluster];
#pragma unroll
        for (int s = 0; s < kFp8StreamMaxCluster; ++s) {
            if (s < cs) v[s] = cl.map_shared_rank(part, s)[u * 32 + lane];
        }
        float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int s = 0; s < kFp8StreamMaxCluster; ++s) {
            if (s < cs) sum.x += v[s].x, sum.y += v[s].y, sum.z += v[s].z, sum.w += v[s].w;
        }
        const int64_t tile = rb * 8 + u / NT;
        if (tile >= plan.tiles) continue;
        j.row0 = tile * kFp8StreamTileRows;
        store_fragment(sum, p, j, u % NT, lane);
    }
    cl.sync();  // no CTA exits (freeing its shared memory) while another still reads it
}

}  // namespace dsa::backend::cuda::fp8s

namespace dsa::backend::cuda::host {

// kernel on `ctas` CTAs of `threads` in clusters of `cluster` (> 8: non-portable, allowed here), with PDL where the
// runtime accepts it on a cluster launch (pdl.cuh: launch_pdl_cluster; one flag per kernel).
template <typename... Params, typename... Args>
void launch_fp8_cluster(void (*kernel)(Params...), int64_t ctas, int threads, int cluster, int smem,
                        cudaStream_t stream, const Args&... args) {
    static std::atomic<bool> pdl_ok{true};
    DSA_CHECK(cluster >= 2 && cluster <= kFp8StreamMaxCluster && ctas % cluster == 0 && ctas <= 0x7fffffff)
        << "fp8 stream cluster launch: " << ctas << " CTAs in clusters of " << cluster;
    DSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    if (cluster > 8) DSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    launch_pdl_cluster(kernel, ctas, threads, cluster, static_cast<size_t>(smem), stream, pdl_ok, args...);
}

}  // namespace dsa::backend::cuda::host
