// Round-1 greedy kernel (DSA_SAMPLING_LEGACY=1, or no workspace): a cluster of kSampleCluster CTAs per row, each
// owning one vocab chunk; f32 online max / sum-exp per thread (exact compares, ties -> lowest id), merged in double
// through distributed shared memory (rank 0 writes the row's result). The fallback if the split path misbehaves.
#include "backend/cuda/sampling_common.cuh"

namespace dsa::backend::cuda::sampling {
namespace {

// This thread's unedited ids: f32 online max / sum-exp (compares exact; exp terms in f32 relative to the max).
__device__ SumState greedy_dense(const Chunk& c) {
    float m = -INFINITY, rest = 0.0f;
    uint32_t cnt = 0;
    int64_t id = INT64_MAX;
    const int64_t n = c.end - c.begin;
    for (int64_t i0 = threadIdx.x; i0 < n; i0 += kThreads * kGreedyUnroll) {
        float v[kGreedyUnroll];
#pragma unroll
        for (int j = 0; j < kGreedyUnroll; ++j) {
            const int64_t i = i0 + j * kThreads;
            v[j] = i < n && !is_edited(c, i) ? sanitized(__ldcs(c.vals + i)) : -INFINITY;
        }
#pragma unroll
        for (int j = 0; j < kGreedyUnroll; ++j) {
            const int64_t i = i0 + j * kThreads;
            if (i >= n || is_edited(c, i)) continue;
            if (v[j] > m) {
                rest = (rest + static_cast<float>(cnt)) * expf(m - v[j]);
                cnt = 1, m = v[j], id = c.begin + i;
            } else if (v[j] == m) {
                ++cnt;
                id = min(id, c.begin + i);
            } else {
                rest += expf(v[j] - m);
            }
        }
    }
    return SumState{static_cast<double>(m), static_cast<double>(cnt), static_cast<double>(rest), id};
}

__global__ void __cluster_dims__(kCluster, 1, 1) __launch_bounds__(kThreads) greedy_kernel(SamplingKernelParams p) {
    extern __shared__ uint32_t greedy_bitmap[];
    __shared__ SumState parts[kCluster];
    cg::cluster_group cl = cg::this_cluster();
    cl.sync();  // every CTA of the cluster has started before rank 0's shared memory is written
    const unsigned rank = cl.block_rank();
    const SampleRowDesc& r = p.greedy_rows[blockIdx.x / kCluster];
    const Chunk c = setup_chunk(p, r, rank, greedy_bitmap, nullptr);
    SumState s = greedy_dense(c);
    for (int32_t e = c.e_begin + static_cast<int32_t>(threadIdx.x); e < c.e_end; e += kThreads) {
        s = merge(s, SumState{edited_z(c, c.edits[e]), 1.0, 0.0, c.edits[e].token});
    }
    s = block_reduce(s, MergeOp());
    if (threadIdx.x == 0) *cl.map_shared_rank(&parts[rank], 0) = s;
    cl.sync();
    if (rank != 0 || threadIdx.x != 0) return;
    SumState all = parts[0];
    for (int q = 1; q < kCluster; ++q) all = merge(all, parts[q]);
    finish_greedy(all, p.out[r.out_index]);
}

}  // namespace

void launch_greedy_cluster(const SamplingKernelParams& p, cudaStream_t stream) {
    const int64_t bitmap_bytes = p.chunk / 32 * static_cast<int64_t>(sizeof(uint32_t));
    static int64_t granted[kMaxDevices] = {};
    ensure_smem(reinterpret_cast<const void*>(greedy_kernel), bitmap_bytes, granted);
    greedy_kernel<<<static_cast<unsigned>(p.num_greedy * kCluster), kThreads, static_cast<size_t>(bitmap_bytes),
                    stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH("greedy_kernel");
}

}  // namespace dsa::backend::cuda::sampling
