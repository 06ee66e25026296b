// Shared pieces of the sampling kernels (sampling_greedy.cu, sampling_legacy.cu, sampling_sampled.cu): launch
// constants, block / cluster reductions, a CTA's chunk of a row with its edited (penalised, masked, biased) logits,
// the greedy partial state and its merge, the dynamic shared memory helper, and the per-file launchers. Device
// helpers sit in an unnamed namespace: each kernel file compiles its own copy (no relocatable device code).
#pragma once

#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/sampling_kernels.h"

namespace dsa::backend::cuda::sampling {
namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 256;
constexpr int kCluster = kSampleCluster;
constexpr int kBins = kThreads * kCluster;  // radix bins; CTA q reduces bins [q * kThreads, (q + 1) * kThreads)
constexpr int kLevels = 6;                  // digits of the 64-bit key
constexpr int kDrawItems = 8;               // consecutive ids per thread in the id-order scans
constexpr int kGreedyUnroll = 8;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr uint64_t kNone = ~0ull;
static_assert(kBins == 2048, "11-bit digits");

__device__ __forceinline__ double neg_inf() {
    return __longlong_as_double(static_cast<long long>(0xfff0000000000000ull));
}
__device__ __forceinline__ float sanitized(float x) { return isnan(x) ? -INFINITY : x; }

// ---- block-wide helpers (each instantiation has its own scratch; every thread gets the result) ----
template <class T, class Op>
__device__ T block_reduce(T v, Op op) {
    using R = cub::BlockReduce<T, kThreads>;
    __shared__ typename R::TempStorage tmp;
    __shared__ T result;
    T r = R(tmp).Reduce(v, op);
    if (threadIdx.x == 0) result = r;
    __syncthreads();
    T out = result;
    __syncthreads();
    return out;
}

struct SumOp {
    template <class T>
    __device__ T operator()(const T& a, const T& b) const {
        return a + b;
    }
};
struct MinOp {
    template <class T>
    __device__ T operator()(const T& a, const T& b) const {
        return b < a ? b : a;
    }
};

__device__ uint64_t block_exclusive_sum(uint64_t v, uint64_t& total) {
    using S = cub::BlockScan<uint64_t, kThreads>;
    __shared__ typename S::TempStorage tmp;
    uint64_t out;
    S(tmp).ExclusiveSum(v, out, total);
    __syncthreads();
    return out;
}

// Thread 0 stores v into slot `rank` of `slots` in every CTA of the cluster (read after the next cluster.sync).
template <class T>
__device__ void put_all(cg::cluster_group& cl, T* slots, const T& v) {
    if (threadIdx.x != 0) return;
    for (unsigned q = 0; q < kCluster; ++q) *cl.map_shared_rank(&slots[cl.block_rank()], q) = v;
}

// ---- this CTA's chunk of one row and the row's edited values (API_SPEC §8.2 order, as engine::apply_penalties) ----
struct Chunk {
    const float* x;               // the row (global)
    const float* vals;            // x[begin, end): the shared-memory copy or the global row
    const uint32_t* bitmap;       // bit i: token begin + i has an edit
    const SampleEditDesc* edits;  // the chunk's edits are [e_begin, e_end), sorted by token
    int64_t begin, end;
    int32_t e_begin, e_end;
    const SampleRowDesc* r;  // the row's parameters (global)
    double inv_t;            // 1 / temperature (1 for greedy rows)
};

__device__ int32_t lower_bound_token(const SampleEditDesc* e, int32_t lo, int32_t hi, int64_t t) {
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        if (e[mid].token < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

__device__ void stage_chunk(float* dst, const float* src, int64_t n) {
    if ((reinterpret_cast<uintptr_t>(src) & 15) == 0) {
        const int64_t n4 = n / 4;
#pragma unroll 4
        for (int64_t i = threadIdx.x; i < n4; i += kThreads) {
            reinterpret_cast<float4*>(dst)[i] = __ldcs(reinterpret_cast<const float4*>(src) + i);
        }
        for (int64_t i = n4 * 4 + threadIdx.x; i < n; i += kThreads) dst[i] = src[i];
    } else {
        for (int64_t i = threadIdx.x; i < n; i += kThreads) dst[i] = src[i];
    }
}

// Sets up ids [begin, end) of row r: its edits, the bitmap of edited ids (`words` words) and (stage != null) the copy.
__device__ Chunk setup_range(const SamplingKernelParams& p, const SampleRowDesc& r, int64_t begin, int64_t end,
                             int64_t words, uint32_t* bitmap, float* stage) {
    Chunk c;
    c.x = p.logits + r.logits_row * p.vocab;
    c.begin = begin;
    c.end = end;
    c.edits = p.edits;
    c.e_begin = lower_bound_token(p.edits, r.edit_begin, r.edit_end, c.begin);
    c.e_end = lower_bound_token(p.edits, c.e_begin, r.edit_end, c.end);
    c.r = &r;
    c.inv_t = r.greedy ? 1.0 : __ddiv_rn(1.0, r.temperature);
    for (int64_t w = threadIdx.x; w < words; w += kThreads) bitmap[w] = 0;
    if (stage != nullptr) stage_chunk(stage, c.x + c.begin, c.end - c.begin);
    __syncthreads();
    for (int32_t e = c.e_begin + static_cast<int32_t>(threadIdx.x); e < c.e_end; e += kThreads) {
        const int64_t i = p.edits[e].token - c.begin;
        atomicOr(&bitmap[i >> 5], 1u << (i & 31));
    }
    __syncthreads();
    c.bitmap = bitmap;
    c.vals = stage != nullptr ? stage : c.x + c.begin;
    return c;
}

// Cluster CTA `rank`'s chunk of row r.
__device__ Chunk setup_chunk(const SamplingKernelParams& p, const SampleRowDesc& r, unsigned rank, uint32_t* bitmap,
                             float* stage) {
    const int64_t begin = min(p.vocab, static_cast<int64_t>(rank) * p.chunk);
    return setup_range(p, r, begin, min(p.vocab, begin + p.chunk), p.chunk / 32, bitmap, stage);
}

__device__ __forceinline__ bool is_edited(const Chunk& c, int64_t i) { return (c.bitmap[i >> 5] >> (i & 31)) & 1u; }

__device__ double edited_z(const Chunk& c, const SampleEditDesc& e) {
    double z = static_cast<double>(sanitized(c.vals[e.token - c.begin]));
    const double n = static_cast<double>(e.count);
    if (e.count > 0) z = __dsub_rn(z, __dmul_rn(c.r->frequency_penalty, n));
    if (e.masked) z = neg_inf();
    if (e.count > 0) z = __dsub_rn(z, c.r->presence_penalty);
    if (e.count > 0 && c.r->repetition_penalty != 1.0) {
        z = z > 0 ? __ddiv_rn(z, c.r->repetition_penalty) : __dmul_rn(z, c.r->repetition_penalty);
    }
    return __dadd_rn(z, e.bias);
}

// The edited logit of token t of this chunk (any thread).
__device__ double z_at(const Chunk& c, int64_t t) {
    const int64_t i = t - c.begin;
    if (is_edited(c, i)) return edited_z(c, c.edits[lower_bound_token(c.edits, c.e_begin, c.e_end, t)]);
    return static_cast<double>(sanitized(c.vals[i]));
}

// f(valid, t, z, edited) over the chunk's ids, unedited first; every thread of the block calls f the same number
// of times (warp-collective callbacks), with valid = false on padding.
template <class F>
__device__ void for_each_z(const Chunk& c, F f) {
    const int64_t n = c.end - c.begin;
    for (int64_t i0 = 0; i0 < n; i0 += kThreads) {
        const int64_t i = i0 + threadIdx.x;
        const bool valid = i < n && !is_edited(c, i);
        f(valid, c.begin + i, valid ? static_cast<double>(sanitized(c.vals[i])) : 0.0, false);
    }
    for (int32_t e0 = c.e_begin; e0 < c.e_end; e0 += kThreads) {
        const int32_t e = e0 + static_cast<int32_t>(threadIdx.x);
        const bool valid = e < c.e_end;
        f(valid, valid ? static_cast<int64_t>(c.edits[e].token) : 0, valid ? edited_z(c, c.edits[e]) : 0.0, true);
    }
}

// ==== greedy partial state (split and cluster paths) ====
struct SumState {
    double m;     // maximum
    double cnt;   // ids at the maximum
    double rest;  // sum of exp(z - m) over the other ids
    int64_t id;   // lowest id at the maximum
};

__device__ SumState merge(const SumState& a, const SumState& b) {
    if (a.m == b.m) return SumState{a.m, a.cnt + b.cnt, a.rest + b.rest, a.id < b.id ? a.id : b.id};
    const bool a_hi = a.m > b.m;
    const double lo_m = a_hi ? b.m : a.m, lo_w = a_hi ? b.cnt + b.rest : a.cnt + a.rest;
    const double hi_m = a_hi ? a.m : b.m, hi_cnt = a_hi ? a.cnt : b.cnt, hi_rest = a_hi ? a.rest : b.rest;
    return SumState{hi_m, hi_cnt, hi_rest + lo_w * exp(lo_m - hi_m), a_hi ? a.id : b.id};
}
struct MergeOp {
    __device__ SumState operator()(const SumState& a, const SumState& b) const { return merge(a, b); }
};


// The row's result from its merged state.
__device__ void finish_greedy(const SumState& all, SampleOutDesc& out) {
    if (!isfinite(all.m)) {  // every logit masked, or +inf present: the CPU sampler decides
        out = SampleOutDesc{0, 1, 0.0};
        return;
    }
    // logprob = z_best - (m + log(cnt + rest)) with z_best = m; log1p keeps the small sums of peaked rows exact.
    out = SampleOutDesc{static_cast<int32_t>(all.id), 0, -log1p((all.cnt - 1.0) + all.rest)};
}

// Greedy split path: kGreedyChunk ids per CTA.
constexpr int kGreedyChunk = 4096;
constexpr int kGreedyVec = kGreedyChunk / (4 * kThreads);  // float4 loads per thread
static_assert(kGreedyVec * 4 * kThreads == kGreedyChunk, "whole float4s per thread");

}  // namespace

inline int ceil_log2(int64_t v) {
    int b = 0;
    while ((int64_t{1} << b) < v) ++b;
    return b;
}

// Raises a kernel's dynamic shared memory limit on the current device only when a launch needs more than it was
// last given there (granted: one slot per device; devices past the table are set on every launch).
constexpr int kMaxDevices = 64;
inline void ensure_smem(const void* kernel, int64_t bytes, int64_t (&granted)[kMaxDevices]) {
    int device = 0;
    DSA_CUDA_CHECK(cudaGetDevice(&device));
    const bool known = device >= 0 && device < kMaxDevices;
    if (known && bytes <= granted[device]) return;
    DSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    if (known) granted[device] = bytes;
}

inline int64_t greedy_splits(int64_t vocab) { return (vocab + kGreedyChunk - 1) / kGreedyChunk; }

// sampling_greedy.cu: greedy rows (split path; the cluster path of sampling_legacy.cu without workspace / legacy).
void launch_greedy(SamplingKernelParams p, cudaStream_t stream);
// sampling_legacy.cu: the round-1 greedy kernel, a cluster of kCluster CTAs per row.
void launch_greedy_cluster(const SamplingKernelParams& p, cudaStream_t stream);
// sampling_sampled.cu: sampled rows.
void launch_sampled(SamplingKernelParams p, cudaStream_t stream);

}  // namespace dsa::backend::cuda::sampling
