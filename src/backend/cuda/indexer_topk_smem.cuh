// Device pieces of the shared-memory top-k kernel (indexer_topk_smem.cu) that the fast kernel (indexer_topk_fast.cu)
// reuses: the value bins over a row's [min, max], the 16-byte segment load, the threshold-bin gather, the histogram
// rounds over a cached (or global) segment, the exact threshold search (value bins, then radix rounds on the order
// keys of the threshold bin), the candidate ranking and the radix fallback of the position-order kernels. Anonymous
// namespace: one copy per .cu.
#pragma once

#include <cstdint>

#include "backend/cuda/indexer_topk_common.cuh"

namespace dsa::backend::cuda {
namespace {

// The float of an order key (inverse of order_key; -0 comes back as +0).
__device__ __forceinline__ float key_value(uint32_t u) {
    return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

// Equal-width bins over [lo, lo + kBins / scale]: non-decreasing in f (each rounded step is), so a higher bin
// holds only larger scores. scale = 0 puts everything into bin 0.
struct ValueBins {
    float lo, scale;
    __device__ __forceinline__ uint32_t operator()(float f) const {
        const float x = (f - lo) * scale;  // NaN (inf - inf, inf * 0) compares false: bin 0
        return x >= 1.0f ? (x < static_cast<float>(kBins - 1) ? static_cast<uint32_t>(x) : kBins - 1u) : 0u;
    }
};

// The value bins of a row whose extreme order keys are kmin, kmax.
__device__ __forceinline__ ValueBins row_bins(uint32_t kmin, uint32_t kmax) {
    const float lo = key_value(kmin), range = key_value(kmax) - lo;
    float scale = static_cast<float>(kBins) / range;
    if (!(range > 0.0f) || !(scale < 3.0e38f)) scale = 0.0f;  // range 0 / inf / NaN, or a tiny range
    return {lo, scale};
}

// Folds one score into the running extreme order keys.
__device__ __forceinline__ void key_range(float v, uint32_t& lo, uint32_t& hi) {
    const uint32_t k = order_key(v);
    lo = k < lo ? k : lo;
    hi = k > hi ? k : hi;
}

// The 16-byte loads of load_segment (the candidate path; src and vals 16-byte aligned): positions [0, len & ~3)
// in float4s, 4 per thread in flight (a 32K segment in two rounds instead of four), the tail one by one.
__device__ void load_segment_vec(const float* src, int len, float* vals, uint32_t& lo, uint32_t& hi) {
    constexpr int kUnroll = 4;
    const int tid = threadIdx.x, n4 = len >> 2;
    const float4* src4 = reinterpret_cast<const float4*>(src);
    float4* vals4 = reinterpret_cast<float4*>(vals);
    for (int base = 0; base < n4; base += kUnroll * kTopkThreads) {
        float4 v[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int i = base + u * kTopkThreads + tid;
            v[u] = i < n4 ? src4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int i = base + u * kTopkThreads + tid;
            if (i >= n4) continue;
            vals4[i] = v[u];
            key_range(v[u].x, lo, hi);
            key_range(v[u].y, lo, hi);
            key_range(v[u].z, lo, hi);
            key_range(v[u].w, lo, hi);
        }
    }
    const int i = (n4 << 2) + tid;
    if (i < len) {
        vals[i] = src[i];
        key_range(vals[i], lo, hi);
    }
}

// Appends a warp's candidates (ballot cb; this lane's key where `cand`) at *count's offset: the first cap into buf,
// the count goes on past cap.
__device__ __forceinline__ void append_candidates(uint32_t* count, uint64_t* buf, uint32_t cap, unsigned cb, bool cand,
                                                  uint64_t key) {
    const int lane = threadIdx.x & 31;
    uint32_t off = 0;
    if (lane == 0) off = atomicAdd(count, static_cast<uint32_t>(__popc(cb)));
    off = __shfl_sync(kFull, off, 0) + __popc(cb & ((1u << lane) - 1));
    if (cand && off < cap) buf[off] = key;
}

// This CTA's positions [begin, begin + len) of the row: the first `cached` in vals (shared memory), the rest read
// from src (global memory, the row from position begin).
struct TopkSeg {
    const float* src;
    const float* vals;
    int64_t begin;
    int len, cached;
    __device__ __forceinline__ float operator[](int i) const { return i < cached ? vals[i] : src[i]; }
};

// Per warp chunk of the segment: keys above value bin d0 (sh.warp_sum) and in it (warp_ties), their CTA totals
// (cta_greater, cta_ties); unless `whole`, bin d0's composite keys appended at *count's offset into sel (the first
// cap; the count goes on). gtm / cdm (not null): masks of the keys above bin d0 / in it, one u32 per 32 positions.
__device__ void gather_threshold_bin(TopkShared& sh, const TopkSeg& s, ValueBins bins, uint32_t d0, bool whole,
                                     uint32_t* count, uint64_t* sel, uint32_t cap, uint32_t* gtm, uint32_t* cdm) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const WarpChunk wc = warp_chunk(s.len);
    uint32_t greater = 0, eq = 0;
    for (int base = wc.w0; base < wc.w1; base += 32) {
        const int i = base + lane;
        const bool valid = i < wc.w1;
        const float v = valid ? s[i] : 0.0f;
        const uint32_t b = bins(v);
        const bool cand = valid && b == d0;
        const unsigned gb = __ballot_sync(kFull, valid && b > d0), cb = __ballot_sync(kFull, cand);
        greater += __popc(gb);
        eq += __popc(cb);
        if (gtm != nullptr && lane == 0) {
            gtm[base >> 5] = gb;
            cdm[base >> 5] = cb;
        }
        if (whole || cb == 0) continue;
        append_candidates(count, sel, cap, cb, cand, composite_key(order_key(v), s.begin + i));
    }
    if (lane == 0) {
        sh.warp_sum[warp] = greater;
        sh.warp_ties[warp] = eq;
        atomicAdd(&sh.cta_greater, greater);
        atomicAdd(&sh.cta_ties, eq);
    }
}

// Calls fn(i, vals[i], valid) for i = tid, tid + 1024, ... over the segment rounded up to the block (every thread
// the same number of times: fn may use warp collectives).
template <typename Fn>
__device__ __forceinline__ void scan_cached(const float* vals, int len, Fn&& fn) {
    for (int base = 0; base < len; base += kTopkThreads) {
        const int i = base + static_cast<int>(threadIdx.x);
        const bool valid = i < len;
        fn(i, valid ? vals[i] : 0.0f, valid);
    }
}

// One histogram round: every CTA counts its segment into its own hist[round & 1] (count(v) gives the bin, or
// kBins to skip), merged into rank 0's (merge_cluster_hist); returns rank 0's bins (complete in every CTA).
// kAggregate: one atomic per distinct bin of a warp (for rounds whose elements crowd into few bins).
template <bool kAggregate, typename BinFn>
__device__ const uint32_t* cluster_histogram(const TopkCluster& c, const float* vals, int len, int round,
                                             BinFn&& bin_of) {
    const int tid = threadIdx.x;
    uint32_t* hist = c.sh.hist[round & 1];
    for (int b = tid; b < kBins; b += kTopkThreads) hist[b] = 0;
    __syncthreads();
    scan_cached(vals, len, [&](int, float v, bool valid) {
        const uint32_t bin = valid ? bin_of(v) : static_cast<uint32_t>(kBins);
        if constexpr (kAggregate) {
            const bool in = bin < static_cast<uint32_t>(kBins);
            if (__ballot_sync(kFull, in) == 0) return;
            const unsigned peers = __match_any_sync(kFull, bin);
            if (in && static_cast<int>(tid & 31) == __ffs(peers) - 1) atomicAdd(&hist[bin], __popc(peers));
        } else {
            if (bin < static_cast<uint32_t>(kBins)) atomicAdd(&hist[bin], 1u);
        }
    });
    return merge_cluster_hist(c, round);
}

// find_digit on the cluster's bins; returns {digit, above, in_bin} to every thread.
struct DigitResult {
    uint32_t digit, above, in_bin;
};
__device__ DigitResult pick_digit(const TopkCluster& c, const uint32_t* hist, uint32_t need) {
    find_digit(c.sh, hist, need);
    __syncthreads();
    const DigitResult r{c.sh.digit, c.sh.above, c.sh.in_bin};
    __syncthreads();  // read by every thread before the next find_digit rewrites them
    return r;
}

// Rank 0 gets the extreme order keys of the elements in value bin `bin`.
__device__ void bin_key_range(const TopkCluster& c, const float* vals, int len, ValueBins bins, uint32_t bin) {
    uint32_t lo = 0xffffffffu, hi = 0;
    scan_cached(vals, len, [&](int, float v, bool valid) {
        if (!valid || bins(v) != bin) return;
        const uint32_t k = order_key(v);
        lo = k < lo ? k : lo;
        hi = k > hi ? k : hi;
    });
    lo = __reduce_min_sync(kFull, lo);
    hi = __reduce_max_sync(kFull, hi);
    if ((threadIdx.x & 31) == 0) {
        atomicMin(&c.sh0->cmin, lo);
        atomicMax(&c.sh0->cmax, hi);
    }
}

// The threshold of a row with n > k: value bins first, then 11-bit digits of the order keys of the threshold
// bin's elements, starting below the common prefix of their extreme keys. Selected = key > th.key, or key ==
// th.key among the first th.ties positions (kAllTies: all of them).
__device__ TopkThreshold smem_threshold(const TopkCluster& c, const float* vals, int len, uint32_t k) {
    const uint32_t kmin = c.sh0->kmin, kmax = c.sh0->kmax;
    if (kmin == kmax) return {kmin, k};  // one value: the first k positions
    const ValueBins bins = row_bins(kmin, kmax);
    const DigitResult d0 =
        pick_digit(c, cluster_histogram<false>(c, vals, len, 0, [&](float v) { return bins(v); }), k);
    uint32_t need = k - d0.above;
    bin_key_range(c, vals, len, bins, d0.digit);
    topk_sync(c);
    const uint32_t cmin = c.sh0->cmin, cmax = c.sh0->cmax;
    if (d0.in_bin == need) return {cmin, kAllTies};  // the whole bin
    if (cmin == cmax) return {cmin, need};
    const int common = __clz(cmin ^ cmax);  // < 32
    uint32_t known = common == 0 ? 0u : ~0u << (32 - common), prefix = cmin & known;
    int hi_bit = 31 - common;  // highest key bit not yet known
    for (int round = 1;; ++round) {
        const int shift = hi_bit >= kDigitBits - 1 ? hi_bit - (kDigitBits - 1) : 0;
        const uint32_t dmask = (2u << (hi_bit - shift)) - 1;
        const uint32_t bstar = d0.digit, kn = known, pre = prefix;
        const DigitResult d = pick_digit(c,
                                         cluster_histogram<true>(c, vals, len, round,
                                                                 [&](float v) {
                                                                     const uint32_t u = order_key(v);
                                                                     return bins(v) == bstar && (u & kn) == pre
                                                                                ? (u >> shift) & dmask
                                                                                : static_cast<uint32_t>(kBins);
                                                                 }),
                                         need);
        need -= d.above;
        prefix |= d.digit << shift;
        known |= dmask << shift;
        // Every key >= prefix of the bin, and nothing of a lower value bin (all below cmin).
        if (d.in_bin == need) return {prefix > cmin ? prefix : cmin, kAllTies};
        if (shift == 0) return {prefix, need};  // the k-th key: `need` of its ties by position
        hi_bit = shift - 1;
    }
}

// Rank 0: sh.thc = the need-th largest of the m (distinct) composite keys in sel (1 <= need <= m <= its
// capacity): for m <= kRankCountMax each thread counts the keys above its own (m^2 compares), else a bitonic sort.
constexpr uint32_t kRankCountMax = 128;
__device__ void candidate_threshold(TopkShared& sh, uint64_t* sel, uint32_t m, uint32_t need) {
    const uint32_t tid = threadIdx.x;
    if (m <= kRankCountMax) {
        if (tid >= m) return;
        const uint64_t x = sel[tid];
        uint32_t larger = 0;
        for (uint32_t j = 0; j < m; ++j) larger += sel[j] > x;
        if (larger == need - 1) sh.thc = x;
        return;
    }
    const int sort_n = 1 << (32 - __clz(static_cast<int>(m) - 1));
    for (int i = static_cast<int>(m + tid); i < sort_n; i += kTopkThreads) sel[i] = 0;  // below every real key
    __syncthreads();
    bitonic_sort_desc(sel, sort_n);
    if (tid == 0) sh.thc = sel[need - 1];
}

// sh.thc = the need-th largest of the m distinct composite keys (every thread calls): up to kBallotRankMax keys,
// warp w ranks keys w, w + 32, ... against 32 keys per ballot; more: candidate_threshold (a bitonic sort).
constexpr uint32_t kBallotRankMax = 256;
__device__ void ballot_candidate_threshold(TopkShared& sh, uint64_t* keys, uint32_t m, uint32_t need) {
    if (m > kBallotRankMax) {
        candidate_threshold(sh, keys, m, need);
        return;
    }
    const uint32_t lane = threadIdx.x & 31;
    for (uint32_t a = threadIdx.x >> 5; a < m; a += kTopkWarps) {
        const uint64_t x = keys[a];
        uint32_t larger = 0;
        for (uint32_t b0 = 0; b0 < m; b0 += 32) {
            const uint32_t b = b0 + lane;
            larger += __popc(__ballot_sync(kFull, b < m && keys[b] > x));
        }
        if (lane == 0 && larger == need - 1) sh.thc = x;
    }
}

// Position-order rows whose threshold bin holds more candidates than the buffer (the fast and lean kernels): the
// radix rounds of smem_threshold and the ordered collection over this CTA's segment [begin, begin + len) of the row
// in global memory (src), into rank 0's sel (>= k entries); rank 0 writes the row's k positions and slots (pos,
// slots: the row's outputs; slot_row: its key slots). sh.kmin / kmax of rank 0 hold the row's extreme order keys,
// cmin / cmax their initial values.
__device__ __forceinline__ void radix_fallback_inline(TopkShared* sh, uint64_t* sel, bool single, const float* src,
                                                      int64_t begin, int len, uint32_t k, const int32_t* slot_row,
                                                      int32_t* pos, int32_t* slots) {
    const cg::cluster_group cluster = cg::this_cluster();
    const TopkCluster c{cluster, cluster.block_rank(),
                        *sh,     single ? sh : cluster.map_shared_rank(sh, 0),
                        sel,     single ? sel : cluster.map_shared_rank(sel, 0),
                        single};
    topk_sync(c);  // every CTA's reads of the others' counters are done before they are rewritten
    const TopkThreshold th = smem_threshold(c, src, len, k);
    ordered_collect(c, src, begin, len, th, k);
    topk_sync(c);  // rank 0's buffer is complete (ascending positions)
    if (c.rank != 0) return;
    for (uint32_t i = threadIdx.x; i < k; i += kTopkThreads) {
        const int32_t q = static_cast<int32_t>(~static_cast<uint32_t>(sel[i]));
        pos[i] = q;
        slots[i] = slot_row[q];
    }
}

// The same not inlined, so that its registers stay out of the caller's main path (no spills there at 64 registers
// per thread), with scalar arguments only: an argument passed by reference would put the caller's object (the
// kernel parameters, the segment) into local memory for the whole kernel.
__device__ __noinline__ void radix_fallback(TopkShared* sh, uint64_t* sel, bool single, const float* src, int64_t begin,
                                            int len, uint32_t k, const int32_t* slot_row, int32_t* pos,
                                            int32_t* slots) {
    radix_fallback_inline(sh, sel, single, src, begin, len, k, slot_row, pos, slots);
}

}  // namespace
}  // namespace dsa::backend::cuda
