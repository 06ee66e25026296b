// Greedy rows, split path (default): kGreedyChunk ids per CTA, no cluster; each CTA reads its ids once (float4,
// exact f32 max, ties -> lowest id, f32 exp terms relative to the thread's max), writes its partial state to the
// workspace, and one warp per row merges the row's states in double (a second small kernel). A CTA issues its
// loads before it builds the bitmap of edited ids, so the two overlap. Both kernels use programmatic dependent
// launch (pdl.cuh): each waits for its inputs first thing and lets the next kernel's launch start right away.
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/sampling_common.cuh"

namespace dsa::backend::cuda::sampling {
namespace {

constexpr int kGreedyItems = kGreedyVec * 4;  // ids per thread

// This thread's ids of the chunk vals[0, n) (float4-strided; 0 past the end).
__device__ __forceinline__ void load_split(const float* vals, int64_t n, float (&v)[kGreedyItems]) {
    const bool vec = (reinterpret_cast<uintptr_t>(vals) & 15) == 0;
#pragma unroll
    for (int j = 0; j < kGreedyVec; ++j) {
        const int64_t i = (static_cast<int64_t>(j) * kThreads + threadIdx.x) * 4;
        if (vec && i + 3 < n) {
            const float4 q = __ldcs(reinterpret_cast<const float4*>(vals + i));
            v[4 * j] = q.x, v[4 * j + 1] = q.y, v[4 * j + 2] = q.z, v[4 * j + 3] = q.w;
        } else {
#pragma unroll
            for (int e = 0; e < 4; ++e) v[4 * j + e] = i + e < n ? __ldcs(vals + i + e) : 0.0f;
        }
    }
}

// This thread's unedited ids of the chunk (loaded by load_split): exact f32 max, ties counted, lowest id, f32 exp
// terms relative to the thread's max.
__device__ SumState greedy_dense_split(const Chunk& c, float (&v)[kGreedyItems]) {
    const int64_t n = c.end - c.begin;
    uint32_t valid = 0;
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < kGreedyVec * 4; ++k) {
        const int64_t i = (static_cast<int64_t>(k / 4) * kThreads + threadIdx.x) * 4 + k % 4;
        v[k] = sanitized(v[k]);
        if (i < n && !is_edited(c, i)) valid |= 1u << k, m = fmaxf(m, v[k]);
    }
    uint32_t cnt = 0;
    float rest = 0.0f;
    int64_t id = INT64_MAX;
#pragma unroll
    for (int k = 0; k < kGreedyVec * 4; ++k) {
        if (!((valid >> k) & 1u)) continue;
        const int64_t i = (static_cast<int64_t>(k / 4) * kThreads + threadIdx.x) * 4 + k % 4;
        if (v[k] == m) {
            ++cnt;
            id = min(id, c.begin + i);
        } else {
            rest += expf(v[k] - m);
        }
    }
    return SumState{static_cast<double>(m), static_cast<double>(cnt), static_cast<double>(rest), id};
}

__global__ void __launch_bounds__(kThreads) greedy_split_kernel(SamplingKernelParams p, SumState* parts) {
    __shared__ uint32_t bitmap[kGreedyChunk / 32];
    pdl_wait();  // the logits, row descriptors and edits are written upstream
    pdl_trigger();
    const int64_t row = blockIdx.x / p.greedy_splits, part = blockIdx.x % p.greedy_splits;
    const SampleRowDesc& r = p.greedy_rows[row];
    const int64_t begin = part * kGreedyChunk, end = min(p.vocab, begin + kGreedyChunk);
    float v[kGreedyItems];
    load_split(p.logits + r.logits_row * p.vocab + begin, end - begin, v);  // in flight during the bitmap setup
    const Chunk c = setup_range(p, r, begin, end, kGreedyChunk / 32, bitmap, nullptr);
    SumState s = greedy_dense_split(c, v);
    for (int32_t e = c.e_begin + static_cast<int32_t>(threadIdx.x); e < c.e_end; e += kThreads) {
        s = merge(s, SumState{edited_z(c, c.edits[e]), 1.0, 0.0, c.edits[e].token});
    }
    s = block_reduce(s, MergeOp());
    if (threadIdx.x == 0) parts[blockIdx.x] = s;
}

__device__ SumState shfl_xor(const SumState& s, int off) {
    return SumState{__shfl_xor_sync(kFullMask, s.m, off), __shfl_xor_sync(kFullMask, s.cnt, off),
                    __shfl_xor_sync(kFullMask, s.rest, off),
                    static_cast<int64_t>(__shfl_xor_sync(kFullMask, static_cast<long long>(s.id), off))};
}

// One warp per row: merges the row's greedy_splits partial states.
__global__ void __launch_bounds__(kThreads) greedy_merge_kernel(SamplingKernelParams p, const SumState* parts) {
    pdl_wait();  // the split kernel's partial states
    pdl_trigger();
    const int64_t row = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) / 32;
    if (row >= p.num_greedy) return;  // whole warps leave together
    const int lane = static_cast<int>(threadIdx.x & 31);
    SumState s{neg_inf(), 0.0, 0.0, INT64_MAX};
    for (int64_t q = lane; q < p.greedy_splits; q += 32) s = merge(s, parts[row * p.greedy_splits + q]);
    for (int off = 16; off > 0; off >>= 1) s = merge(s, shfl_xor(s, off));
    if (lane == 0) finish_greedy(s, p.out[p.greedy_rows[row].out_index]);
}

}  // namespace

void launch_greedy(SamplingKernelParams p, cudaStream_t stream) {
    if (p.legacy || p.workspace_bytes < sampling_workspace_bytes(p.num_greedy, p.vocab)) {
        launch_greedy_cluster(p, stream);  // round-1 path: a cluster of CTAs per row
        return;
    }
    p.greedy_splits = greedy_splits(p.vocab);
    auto* parts = static_cast<SumState*>(p.workspace);
    host::launch_pdl(greedy_split_kernel, dim3(static_cast<unsigned>(p.num_greedy * p.greedy_splits)), dim3(kThreads),
                     0, stream, p, parts);
    const int64_t merge_blocks = (p.num_greedy * 32 + kThreads - 1) / kThreads;
    host::launch_pdl(greedy_merge_kernel, dim3(static_cast<unsigned>(merge_blocks)), dim3(kThreads), 0, stream, p,
                     static_cast<const SumState*>(parts));
}

}  // namespace dsa::backend::cuda::sampling
