// The key-block loader shared by the FP8 logits kernels (indexer_kernels.cu: mma.sync; indexer_logits_wgmma.cu:
// wgmma): a 128-thread CTA gathers one 64-key block of a query row (positions 64 b .. 64 b + 63, slots through
// key_slots) into shared memory with cp.async: 128-byte key rows with their 16-byte chunks XOR-swizzled by
// (row & 7) (the wgmma 128-byte swizzle, bank-conflict free for the mma.sync fragment loads), and the f32 scales.
// Positions past the row's limit are zero-filled and never read from global memory. The wgmma kernels' query
// staging and head sum are here too.
#pragma once

#include <cstdint>

#include "backend/cuda/indexer_common.cuh"
#include "backend/cuda/indexer_kernels.h"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/wgmma_util.cuh"

namespace dsa::backend::cuda {
namespace {

constexpr int kLogitsThreads = 128;
constexpr int kBlockKeys = 64;
constexpr int kBlockKeyBytes = kBlockKeys * kDim;                          // 8192
constexpr int kChunksPerThread = kBlockKeys * kDim / 16 / kLogitsThreads;  // 4

// Marks a position the CTA does not score (past the limit); it is zero-filled instead of copied.
constexpr int32_t kInvisible = -2147483647 - 1;

// Chunk c (16 bytes, c < 8) of key row r sits at chunk c ^ (r & 7).
__device__ __forceinline__ int swizzled(int r, int c) { return r * kDim + ((c ^ (r & 7)) << 4); }

__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool valid) {
    const int src_bytes = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes)
                 : "memory");
}

// ---- The slot pipeline. A CTA scores blocks first, first + m, ... of its query row. The slots of a block reach
// shared memory 2 (S - 1) blocks ahead of its keys' issue, inside the cp.async group of an earlier block, so no
// iteration waits for a global load of slots. (With the slots one block ahead in registers, every iteration stalled
// for one load latency: 1.92 TB/s at B = 64 / 64K.)
template <int kStages>
struct KeyPipe {
    static constexpr int kLead = kStages - 1;   // key blocks in flight ahead of the one being scored
    static constexpr int kEntries = 2 * kLead;  // slot rows in the ring: blocks i + 1 .. i + 2 kLead
    static constexpr int kSlotBytes = kEntries * kBlockKeys * 4;

    const int32_t* slot_row;
    int32_t* ring;  // kSlotBytes of shared memory
    int64_t first, limit;
    int m, iters, tid;

    __device__ __forceinline__ int64_t block_of(int i) const { return first + static_cast<int64_t>(i) * m; }
    __device__ __forceinline__ int32_t* entry(int i) const { return ring + (i % kEntries) * kBlockKeys; }

    // Slots of block i into its ring entry: one 4-byte copy by each of the first 64 threads; positions past the
    // limit are zero-filled (never read as slots).
    __device__ __forceinline__ void prefetch(int i) const {
        const int64_t pos = block_of(i) * kBlockKeys + tid;
        if (tid < kBlockKeys) cp_async4(entry(i) + tid, slot_row + (pos <= limit ? pos : 0), pos <= limit);
    }
    // This thread's slots (keys tid / 8 + 16 j) of block i from the ring; kInvisible past the limit.
    __device__ __forceinline__ void slots_of(int i, int32_t (&slots)[kChunksPerThread]) const {
        const int32_t* e = entry(i);
#pragma unroll
        for (int j = 0; j < kChunksPerThread; ++j) {
            const int r = (tid >> 3) + 16 * j;
            slots[j] = block_of(i) * kBlockKeys + r <= limit ? e[r] : kInvisible;
        }
    }
    // Prologue: the slots of blocks 0 .. 2 kLead - 1 (the one exposed slot latency), then the keys of blocks
    // 0 .. kLead - 1, one commit group each. issue_at(stage, i) issues block i's copies into ring stage `stage`.
    template <typename IssueAt>
    __device__ __forceinline__ void start_at(IssueAt&& issue_at) const {
#pragma unroll
        for (int s = 0; s < kEntries; ++s) {
            if (s < iters) prefetch(s);
        }
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
#pragma unroll
        for (int s = 0; s < kLead; ++s) {
            if (s < iters) issue_at(s, s);
            cp_async_commit();
        }
    }
    // Iteration i, after its wait and barrier (block i landed; every thread is done with block i - 1): the keys of
    // block i + kLead and the slots of block i + 2 kLead (into block i's entry, read at i - kLead), one group.
    template <typename IssueAt>
    __device__ __forceinline__ void advance_at(int i, IssueAt&& issue_at) const {
        const int ahead = i + kLead;
        if (ahead < iters) issue_at(ahead % kStages, ahead);
        if (ahead + kLead < iters) prefetch(ahead + kLead);
        cp_async_commit();
    }
    // The same with issue(stage, slots): the block's slots (slots_of) handed to the gather.
    template <typename Issue>
    __device__ __forceinline__ void start(Issue&& issue) const {
        start_at([&](int st, int i) { issue_slots(st, i, issue); });
    }
    template <typename Issue>
    __device__ __forceinline__ void advance(int i, Issue&& issue) const {
        advance_at(i, [&](int st, int b) { issue_slots(st, b, issue); });
    }

private:
    template <typename Issue>
    __device__ __forceinline__ void issue_slots(int st, int i, Issue& issue) const {
        int32_t slots[kChunksPerThread];
        slots_of(i, slots);
        issue(st, slots);
    }
};

// Issues the copies of one block: chunk tid % 8 of keys tid / 8 + 16 j into `keys` (swizzled), and the scale of
// each of those keys into `scales` (one thread per key).
__device__ __forceinline__ void issue_block(const IndexerLogitsParams& p, uint8_t* keys, uint8_t* scales,
                                            const int32_t (&slots)[kChunksPerThread], int tid) {
    const int c = tid & 7;
#pragma unroll
    for (int j = 0; j < kChunksPerThread; ++j) {
        const int r = (tid >> 3) + 16 * j;
        const int32_t slot = slots[j];
        const bool valid = slot != kInvisible;
        if (valid && (slot < 0 || slot >= p.num_slots)) __trap();
        const uint8_t* page = p.pages + (valid ? static_cast<int64_t>(slot / kPageTokens) * kFp8PageBytes : 0);
        const int row = valid ? slot % kPageTokens : 0;
        cp_async16(keys + swizzled(r, c), page + row * kDim + c * 16, valid);
        if (c == 0) cp_async4(scales + r * 4, page + kFp8ScaleOffset + row * 4, valid);
    }
}

// ---- the wgmma kernel's pieces (indexer_logits_wgmma.cu) ----

constexpr int kKSteps = kDim / 32;  // 4 e4m3 k-steps of 32 bytes inside one 128-byte swizzle row
constexpr int kScaleBytes = kBlockKeys * 4;

// The query's N prepared heads (e4m3 rows of 128 bytes) into the swizzled B tile: cp.async, 16-byte chunks.
template <int N>
__device__ __forceinline__ void issue_q(const IndexerLogitsParams& p, int64_t t, uint8_t* qs, int tid) {
#pragma unroll
    for (int i = tid; i < N * 8; i += kLogitsThreads) {
        const int h = i >> 3, c = i & 7;
        cp_async16(qs + swizzled(h, c), p.q8 + (t * N + h) * kDim + c * 16, true);
    }
}

// ra / rb: sum over the heads of wt_h ReLU(q_h . k) of keys g and g + 8 of the warp's 16 rows, from A
// accumulators (A = 4: one per k-step, summed here in f32; A = 1: the k-steps chained in the tensor core).
// Accumulator layout (m64nN f32): acc[a][4 i + e] is key 16 warp + g (e < 2) or + 8 (e >= 2), head 8 i + 2 tig +
// (e & 1).
template <int N, int A>
__device__ __forceinline__ void head_sum(const float (&acc)[A][N / 2], const float (&w)[N / 8][2], float& ra,
                                         float& rb) {
    ra = 0.0f;
    rb = 0.0f;
#pragma unroll
    for (int i = 0; i < N / 8; ++i) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            float da = acc[0][4 * i + e], db = acc[0][4 * i + 2 + e];
#pragma unroll
            for (int a = 1; a < A; ++a) {
                da += acc[a][4 * i + e];
                db += acc[a][4 * i + 2 + e];
            }
            ra = fmaf(fmaxf(da, 0.0f), w[i][e], ra);
            rb = fmaf(fmaxf(db, 0.0f), w[i][e], rb);
        }
    }
    ra += __shfl_xor_sync(kFull, ra, 1);
    rb += __shfl_xor_sync(kFull, rb, 1);
    ra += __shfl_xor_sync(kFull, ra, 2);
    rb += __shfl_xor_sync(kFull, rb, 2);
}

// The folded head weights of this lane's accumulator columns (heads 8 i + 2 tig + e) of row t.
template <int N>
__device__ __forceinline__ void load_head_weights(const IndexerLogitsParams& p, int64_t t, int tig,
                                                  float (&w)[N / 8][2]) {
#pragma unroll
    for (int i = 0; i < N / 8; ++i) {
        w[i][0] = __ldg(p.weights + t * N + 8 * i + 2 * tig);
        w[i][1] = __ldg(p.weights + t * N + 8 * i + 2 * tig + 1);
    }
}

// Issues the 4 k-steps of one 64-key block (keys at k_addr, swizzled) against the query tile at q_addr as one
// committed group: A = 4, each into its own zero-started accumulator; A = 1, chained into one.
template <int N, int A>
__device__ __forceinline__ void issue_block_mma(float (&acc)[A][N / 2], uint32_t k_addr, uint32_t q_addr) {
    static_assert(A == 1 || A == kKSteps, "one accumulator per k-step, or one for all");
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
        wgmma_e4m3<N>(acc[A == 1 ? 0 : ks], sw128_kmajor_desc(k_addr + ks * 32), sw128_kmajor_desc(q_addr + ks * 32),
                      A == 1 && ks > 0 ? 1 : 0);
    }
    wgmma_commit();
}

// Writes the scaled head sums of keys g and g + 8 of the warp's 16 rows (first = the block's first position +
// 16 warp), those up to the limit.
__device__ __forceinline__ void store_key_scores(float* srow, int64_t first, int64_t limit, int lane, float ra,
                                                 float rb, float sa, float sb) {
    const int g = lane >> 2, tig = lane & 3;
    if (tig == 0 && first + g <= limit) srow[first + g] = ra * sa;
    if (tig == 1 && first + g + 8 <= limit) srow[first + g + 8] = rb * sb;
}

}  // namespace
}  // namespace dsa::backend::cuda
