// Device pieces of the lean top-k (indexer_topk_lean.cu), also run by the fast kernel on rows that fit one CTA:
// thread t holds the row's positions [t V, t V + V) in registers (scores and slots, one read of each); extremes,
// value-bin histogram, the threshold bin's keys ranked, one block scan of the selected counts, every thread writes
// its selected positions in place. Anonymous namespace: one copy per .cu.
#pragma once

#include <cstdint>

#include "backend/cuda/indexer_topk_smem.cuh"

namespace dsa::backend::cuda {
namespace {

constexpr int64_t kLeanMaxLen = 16384;

// This thread's V positions of the row: scores and slots (kSlots; else the slots are in shared memory); valid bit
// j: position first + j < n.
template <int V, bool kSlots = true>
struct LeanValues {
    float v[V];
    int32_t slot[kSlots ? V : 1];
    uint32_t valid;
};

// Loads the thread's positions [first, first + V) below n (16-byte loads: the row and its slots 16-byte aligned,
// max_len a multiple of 4, so a group of 4 starting below n lies inside the row); folds them into lo / hi. Without
// kSlots the slots go to slot_smem[first..] (16-byte aligned) instead of registers.
template <int V, bool kSlots = true>
__device__ __forceinline__ LeanValues<V, kSlots> lean_load(const float* row, const int32_t* slot_row, int first, int n,
                                                           uint32_t& lo, uint32_t& hi, int32_t* slot_smem = nullptr) {
    LeanValues<V, kSlots> x;
    x.valid = 0;
#pragma unroll
    for (int g = 0; g < V / 4; ++g) {
        const int i = first + 4 * g;
        float4 f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        int4 s = make_int4(0, 0, 0, 0);
        if (i < n) {
            f = *reinterpret_cast<const float4*>(row + i);
            s = *reinterpret_cast<const int4*>(slot_row + i);
        }
        x.v[4 * g] = f.x;
        x.v[4 * g + 1] = f.y;
        x.v[4 * g + 2] = f.z;
        x.v[4 * g + 3] = f.w;
        if constexpr (kSlots) {
            x.slot[4 * g] = s.x;
            x.slot[4 * g + 1] = s.y;
            x.slot[4 * g + 2] = s.z;
            x.slot[4 * g + 3] = s.w;
        } else if (i < n) {
            *reinterpret_cast<int4*>(slot_smem + i) = s;
        }
    }
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if (first + j >= n) continue;
        x.valid |= 1u << j;
        key_range(x.v[j], lo, hi);
    }
    return x;
}

// Appends this thread's keys of value bin d0 (composite keys, position first + j) to the candidate buffer: one
// shared atomic per warp with candidates, the first cap kept (sh.count goes on past cap).
template <int V, bool kSlots>
__device__ __forceinline__ void lean_append(TopkShared& sh, uint64_t* cand, uint32_t cap,
                                            const LeanValues<V, kSlots>& x, ValueBins bins, uint32_t d0, int first) {
    uint32_t mine = 0;
#pragma unroll
    for (int j = 0; j < V; ++j) mine |= ((x.valid >> j) & 1u) != 0 && bins(x.v[j]) == d0 ? 1u << j : 0u;
    if (__ballot_sync(kFull, mine != 0) == 0) return;
    const int lane = threadIdx.x & 31;
    const uint32_t cnt = __popc(mine);
    uint32_t incl = warp_inclusive_sum(cnt, lane);
    uint32_t base = 0;
    if (lane == 31) base = atomicAdd(&sh.count, incl);
    uint32_t at = __shfl_sync(kFull, base, 31) + incl - cnt;
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if (((mine >> j) & 1u) == 0) continue;
        if (at < cap) cand[at] = composite_key(order_key(x.v[j]), first + j);
        ++at;
    }
}

// One row of n > k positions (position order) on this CTA alone: sh initialised as the kernels do (kmin = cmin =
// ~0, kmax = cmax = 0, count = 0, hist[0] zeroed) and visible to every thread (a block barrier since); cand: cap u64
// (a power of two >= k) of shared memory. row / slot_row: the row's scores and key slots, 16-byte aligned; n <=
// 1024 V. pos / slots: the row's outputs. Seven block barriers; the radix fallback where the threshold bin holds
// more than cap keys.
// Bit j set: this thread's value j (position pos0 + j) is selected (bin above the threshold bin d0, or in d0 with a
// composite key >= thc). `before`: the block's selected values ahead of this thread's (thread order = position
// order; sh.warp_ties is the scratch, one __syncthreads).
template <int V, bool kSlots, class Pos>
__device__ __forceinline__ uint32_t lean_take(TopkShared& sh, const LeanValues<V, kSlots>& x, const ValueBins& bins,
                                              uint32_t d0, uint64_t thc, Pos pos0, int lane, int warp,
                                              uint32_t& before) {
    uint32_t take = 0;
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if (((x.valid >> j) & 1u) == 0) continue;
        const uint32_t b = bins(x.v[j]);
        const bool sel = b > d0 || (b == d0 && composite_key(order_key(x.v[j]), pos0 + j) >= thc);
        take |= sel ? 1u << j : 0u;
    }
    const uint32_t cnt = __popc(take);
    uint32_t incl = warp_inclusive_sum(cnt, lane);
    if (lane == 31) sh.warp_ties[warp] = incl;  // warp_ties: unused by find_digit and not read by other CTAs
    __syncthreads();
    before = incl - cnt + __reduce_add_sync(kFull, lane < warp ? sh.warp_ties[lane] : 0u);
    return take;
}

template <int V>
__device__ __forceinline__ void lean_row(TopkShared& sh, uint64_t* cand, int cap, const float* row,
                                         const int32_t* slot_row, int n, uint32_t k, int32_t* pos, int32_t* slots) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int first = tid * V;
    uint32_t lo = 0xffffffffu, hi = 0;
    const LeanValues<V> x = lean_load<V>(row, slot_row, first, n, lo, hi);
    lo = __reduce_min_sync(kFull, lo);
    hi = __reduce_max_sync(kFull, hi);
    if (lane == 0) {
        atomicMin(&sh.kmin, lo);
        atomicMax(&sh.kmax, hi);
    }
    __syncthreads();                                    // (1) the row's extremes
    const ValueBins bins = row_bins(sh.kmin, sh.kmax);  // one value (kmin == kmax): every key in bin 0
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if ((x.valid >> j) & 1u) atomicAdd(&sh.hist[0][bins(x.v[j])], 1u);
    }
    __syncthreads();                // (2) the histogram
    find_digit(sh, sh.hist[0], k);  // (3) inside
    __syncthreads();                // (4) digit, above, in_bin
    const uint32_t d0 = sh.digit, need = k - sh.above;
    const bool whole = sh.in_bin == need;  // the same in every thread
    uint64_t thc = 0;                      // below every composite key: bin d0 taken whole
    if (!whole) {
        lean_append<V>(sh, cand, static_cast<uint32_t>(cap), x, bins, d0, first);
        __syncthreads();  // (5) the candidates
        const uint32_t m = sh.count;
        if (m > static_cast<uint32_t>(cap)) {  // the same decision in every thread
            // Inlined where the main path leaves registers to spare (no spills either way).
            if constexpr (V <= 8) {
                radix_fallback_inline(&sh, cand, true, row, 0, n, k, slot_row, pos, slots);
            } else {
                radix_fallback(&sh, cand, true, row, 0, n, k, slot_row, pos, slots);
            }
            return;
        }
        ballot_candidate_threshold(sh, cand, m, need);
        __syncthreads();  // (6) thc
        thc = sh.thc;
    }
    uint32_t out;  // (7) every warp's count
    const uint32_t take = lean_take(sh, x, bins, d0, thc, first, lane, warp, out), cnt = __popc(take);
    if (tid == kTopkThreads - 1 && out + cnt != k) __trap();  // unreachable: the rule selects exactly k
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if (((take >> j) & 1u) == 0) continue;
        pos[out] = first + j;
        slots[out] = x.slot[j];
        ++out;
    }
}

// lean_row with V from n: 4 up to 4096 positions, 8 up to 8192, else 16.
__device__ __forceinline__ void lean_row_any(TopkShared& sh, uint64_t* cand, int cap, const float* row,
                                             const int32_t* slot_row, int n, uint32_t k, int32_t* pos, int32_t* slots) {
    if (n <= 4 * kTopkThreads) {
        lean_row<4>(sh, cand, cap, row, slot_row, n, k, pos, slots);
    } else if (n <= 8 * kTopkThreads) {
        lean_row<8>(sh, cand, cap, row, slot_row, n, k, pos, slots);
    } else {
        lean_row<16>(sh, cand, cap, row, slot_row, n, k, pos, slots);
    }
}

}  // namespace
}  // namespace dsa::backend::cuda
