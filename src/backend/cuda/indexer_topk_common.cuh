// Device pieces shared by the two exact top-k kernels of the lightning indexer (indexer_topk.cu: rows read from
// global memory per radix round; indexer_topk_smem.cu: rows cached in shared memory): the order key, the shared
// state of a 1024-thread CTA, the cluster histogram merge, the digit search over a 2048-bin histogram, the bitonic
// sort of the selection with its output, and the cluster launch (with PDL when the runtime accepts it). Anonymous
// namespace: one copy per .cu.
#pragma once

#include <cooperative_groups.h>

#include <atomic>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/indexer_common.cuh"
#include "backend/cuda/indexer_kernels.h"
#include "backend/cuda/pdl.cuh"

namespace dsa::backend::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kTopkThreads = 1024;
constexpr int kTopkWarps = kTopkThreads / 32;
constexpr int kTopkMaxCluster = 8;
constexpr int kDigitBits = 11;
constexpr int kBins = 1 << kDigitBits;

struct TopkShared {
    uint32_t hist[2][kBins];  // this CTA's histograms (rounds alternate); rank 0's are the cluster's
    uint32_t warp_ties[kTopkWarps];
    uint32_t warp_sum[kTopkWarps];       // find_digit's per-warp bin totals
    uint32_t seg_ties[kTopkMaxCluster];  // rank 0: ties at the threshold in each CTA's segment
    uint32_t count, digit, above, in_bin;
    // Shared-memory kernel only: rank 0: the row's extreme order keys and those of the first round's threshold
    // bin; every CTA: its keys above the threshold and equal to it.
    uint32_t kmin, kmax, cmin, cmax, cta_greater, cta_ties;
    uint64_t thc;          // candidate path (DSA_INDEXER_TOPK=cand), rank 0: the smallest selected composite key
    uint32_t cand_before;  // fast kernel: selected candidates of the row before this CTA's segment
};

// Order-preserving u32 of a float (-0 as +0, so equal scores get equal keys).
__device__ __forceinline__ uint32_t order_key(float f) {
    uint32_t b = __float_as_uint(f);
    if (b == 0x80000000u) b = 0;
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Larger = earlier in the output: score descending, then position ascending. Distinct for distinct positions.
__device__ __forceinline__ uint64_t composite_key(uint32_t key, int64_t i) {
    return (static_cast<uint64_t>(key) << 32) | static_cast<uint32_t>(~static_cast<uint32_t>(i));
}

// Inclusive prefix sum of v over the 32 lanes of a full warp (lane: this thread's lane).
__device__ __forceinline__ uint32_t warp_inclusive_sum(uint32_t v, int lane) {
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const uint32_t y = __shfl_up_sync(kFull, v, o);
        if (lane >= o) v += y;
    }
    return v;
}

// Every thread of rank 0: the digit whose bin holds the need-th largest element (1 <= need <= the elements
// counted); one thread writes digit, above (count in higher bins) and in_bin. Thread i holds the kPer bins
// kBins - 1 - kPer i - j, j = 0..kPer-1 (descending), and a block-wide scan finds the one holding the need-th.
__device__ void find_digit(TopkShared& sh, const uint32_t* hist, uint32_t need) {
    constexpr int kPer = kBins / kTopkThreads;
    static_assert(kPer * kTopkThreads == kBins, "bins split evenly over the threads");
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    uint32_t c[kPer], sum = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        c[j] = hist[kBins - 1 - kPer * tid - j];
        sum += c[j];
    }
    uint32_t incl = warp_inclusive_sum(sum, lane);
    if (lane == 31) sh.warp_sum[warp] = incl;
    __syncthreads();
    incl += __reduce_add_sync(kFull, lane < warp ? sh.warp_sum[lane] : 0u);  // the warps before this one
    uint32_t cum = incl - sum;
    if (cum >= need || incl < need) return;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        if (cum + c[j] >= need) {
            sh.digit = static_cast<uint32_t>(kBins - 1 - kPer * tid - j);
            sh.above = cum;
            sh.in_bin = c[j];
            return;
        }
        cum += c[j];
    }
}

// The selection rule of a row with n > k: every key > key, then the first `ties` positions whose key equals it.
struct TopkThreshold {
    uint32_t key, ties;
};
constexpr uint32_t kAllTies = 0xffffffffu;  // TopkThreshold::ties: every key equal to the threshold is taken

// The CTA's view of the cluster: its own shared state and rank 0's. single: this CTA (rank 0) holds the whole row
// and works alone (the cluster's other CTAs have left): block barriers only, no other CTA's shared memory.
struct TopkCluster {
    cg::cluster_group cluster;
    unsigned rank;
    TopkShared& sh;
    TopkShared* sh0;
    uint64_t* sel;   // this CTA's selection
    uint64_t* sel0;  // rank 0's (the gathered selection)
    bool single = false;
};

// A cluster barrier, or a block barrier where the CTA works alone.
__device__ __forceinline__ void topk_sync(const TopkCluster& c) {
    if (c.single) {
        __syncthreads();
    } else {
        c.cluster.sync();
    }
}

// Called by every thread of every CTA once its own hist[round & 1] is complete: ranks > 0 add theirs to rank 0's
// through distributed shared memory (between two cluster barriers); returns rank 0's bins, complete in every CTA.
// Rank 0's buffer of this parity was last read two rounds ago, before the previous round's cluster barriers.
__device__ const uint32_t* merge_cluster_hist(const TopkCluster& c, int round) {
    if (c.single) {
        __syncthreads();
        return c.sh.hist[round & 1];
    }
    c.cluster.sync();
    if (c.rank != 0) {
        const uint32_t* hist = c.sh.hist[round & 1];
        uint32_t* hist0 = c.sh0->hist[round & 1];
        for (int b = threadIdx.x; b < kBins; b += kTopkThreads) {
            if (hist[b] != 0) atomicAdd(&hist0[b], hist[b]);
        }
    }
    c.cluster.sync();
    return c.sh0->hist[round & 1];
}

// How many of `e` ties are taken when `before` ties precede them and `limit` are taken in all.
__device__ __forceinline__ uint32_t ties_taken(uint32_t before, uint32_t e, uint32_t limit) {
    if (limit == kAllTies) return e;
    return before >= limit ? 0u : (limit - before < e ? limit - before : e);
}

// Warp w's contiguous chunk [w0, w1) of a segment of len positions (chunk: a multiple of 32, the same for every
// warp), walked 32 positions at a time (ordered_collect, the candidate path's count and write passes).
struct WarpChunk {
    int w0, w1, chunk;
};
__device__ __forceinline__ WarpChunk warp_chunk(int len) {
    const int chunk = ((len + kTopkWarps - 1) / kTopkWarps + 31) / 32 * 32;
    const int warp = static_cast<int>(threadIdx.x >> 5);
    const int w0 = warp * chunk < len ? warp * chunk : len, w1 = w0 + chunk < len ? w0 + chunk : len;
    return {w0, w1, chunk};
}

// Writes the segment's selected composite keys into rank 0's buffer in ascending position order: warp w of CTA
// r walks its contiguous chunk of the segment in order; the offsets come from per-warp and per-CTA counts.
// Every CTA checks that the cluster selected exactly `keep` (trap otherwise). vals: the segment's scores, in
// shared memory (indexer_topk_smem.cu) or global memory (the position-order path of indexer_topk.cu).
__device__ void ordered_collect(const TopkCluster& c, const float* vals, int64_t begin, int len, TopkThreshold th,
                                uint32_t keep) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const WarpChunk wc = warp_chunk(len);
    const int w0 = wc.w0, w1 = wc.w1;
    uint32_t greater = 0, ties = 0;
    for (int i = w0 + lane; i < w1; i += 32) {
        const uint32_t u = order_key(vals[i]);
        greater += u > th.key;
        ties += u == th.key;
    }
    greater = __reduce_add_sync(kFull, greater);
    ties = __reduce_add_sync(kFull, ties);
    if (lane == 0) {
        c.sh.warp_sum[warp] = greater;
        c.sh.warp_ties[warp] = ties;
    }
    __syncthreads();
    if (tid == 0) {
        uint32_t g = 0, e = 0;
        for (int w = 0; w < kTopkWarps; ++w) {
            g += c.sh.warp_sum[w];
            e += c.sh.warp_ties[w];
        }
        c.sh.cta_greater = g;
        c.sh.cta_ties = e;
    }
    topk_sync(c);
    uint32_t out = 0, before = 0, total = 0, total_ties = 0;
    const unsigned ranks = c.single ? 1u : c.cluster.num_blocks();
    for (unsigned r = 0; r < ranks; ++r) {
        const TopkShared* o = c.single ? &c.sh : c.cluster.map_shared_rank(&c.sh, r);
        const uint32_t g = o->cta_greater, e = o->cta_ties, taken = g + ties_taken(total_ties, e, th.ties);
        if (r < c.rank) {
            out += taken;
            before += e;
        }
        total += taken;
        total_ties += e;
    }
    if (total != keep) __trap();  // unreachable: the threshold selects exactly keep keys
    for (int w = 0; w < warp; ++w) {
        const uint32_t e = c.sh.warp_ties[w];
        out += c.sh.warp_sum[w] + ties_taken(before, e, th.ties);
        before += e;
    }
    const unsigned below = (1u << lane) - 1;
    for (int base = w0; base < w1; base += 32) {
        const int i = base + lane;
        const bool valid = i < w1;
        const uint32_t u = valid ? order_key(vals[i]) : 0u;
        const bool tie = valid && u == th.key;
        const unsigned tb = __ballot_sync(kFull, tie);
        const uint32_t tie_rank = before + __popc(tb & below);
        const bool take = valid && (u > th.key || (tie && (th.ties == kAllTies || tie_rank < th.ties)));
        const unsigned sb = __ballot_sync(kFull, take);
        if (take) c.sel0[out + __popc(sb & below)] = composite_key(u, begin + i);
        out += __popc(sb);
        before += __popc(tb);
    }
}

// Bitonic compare-exchange of pair (lo, lo + stride) in stage `size`: lo keeps the larger key where
// (lo & size) == 0 (a descending run), the smaller elsewhere.
__device__ __forceinline__ void compare_exchange(uint64_t& a, uint64_t& b, bool desc) {
    if (desc ? a < b : a > b) {
        const uint64_t t = a;
        a = b;
        b = t;
    }
}

// The strides < 64 of the bitonic stages size_lo .. size_hi (powers of two, size_hi <= n) in registers: warp w
// holds 64-element chunks (lanes l and l + 32 of chunk c at c * 64 + l, + 32), stride 32 inside the thread, the
// smaller strides through shuffles; one shared-memory load and store per chunk, no block barrier.
__device__ void bitonic_warp_stages(uint64_t* keys, int n, int size_lo, int size_hi) {
    const int lane = threadIdx.x & 31;
    for (int base = (threadIdx.x >> 5) * 64; base < n; base += kTopkWarps * 64) {
        uint64_t x0 = keys[base + lane], x1 = keys[base + 32 + lane];
        const int e0 = base + lane, e1 = e0 + 32;
        for (int size = size_lo; size <= size_hi; size <<= 1) {
            for (int stride = size < 64 ? size >> 1 : 32; stride > 0; stride >>= 1) {
                if (stride == 32) {
                    compare_exchange(x0, x1, (e0 & size) == 0);
                    continue;
                }
                const bool lower = (lane & stride) == 0;
                const uint64_t o0 = __shfl_xor_sync(kFull, x0, stride), o1 = __shfl_xor_sync(kFull, x1, stride);
                const bool max0 = lower == ((e0 & size) == 0), max1 = lower == ((e1 & size) == 0);
                x0 = max0 ? (x0 > o0 ? x0 : o0) : (x0 < o0 ? x0 : o0);
                x1 = max1 ? (x1 > o1 ? x1 : o1) : (x1 < o1 ? x1 : o1);
            }
        }
        keys[e0] = x0;
        keys[e1] = x1;
    }
}

// Sorts keys[0, n) descending (n a power of two). n >= 64: strides >= 64 through shared memory with a barrier
// each, the rest of every stage in registers (21 barriers for n = 2048 instead of 66).
__device__ void bitonic_sort_desc(uint64_t* keys, int n) {
    const int first_smem = n >= 64 ? 128 : 2;
    if (n >= 64) {
        bitonic_warp_stages(keys, n, 2, 64);
        __syncthreads();
    }
    for (int size = first_smem; size <= n; size <<= 1) {
        for (int stride = size >> 1; stride >= (n >= 64 ? 64 : 1); stride >>= 1) {
            for (int i = threadIdx.x; i < n / 2; i += kTopkThreads) {
                const int lo = ((i & ~(stride - 1)) << 1) | (i & (stride - 1));
                compare_exchange(keys[lo], keys[lo + stride], (lo & size) == 0);
            }
            __syncthreads();
        }
        if (n >= 64) {
            bitonic_warp_stages(keys, n, size, size);
            __syncthreads();
        }
    }
}

// Rank 0: sorts the row's `keep` gathered composite keys (score descending, ties by position; not with
// p.position_order: the buffer is then in ascending position order already, as ordered_collect leaves it) and
// writes the positions and slots, -1 past keep.
__device__ void write_selection(const IndexerTopkKernelParams& p, int64_t t, int64_t request, uint64_t* sel, int keep) {
    const int tid = threadIdx.x;
    if (!p.position_order) {
        const int sort_n = keep <= 1 ? 1 : 1 << (32 - __clz(keep - 1));
        for (int i = keep + tid; i < sort_n; i += kTopkThreads) sel[i] = 0;
        __syncthreads();
        bitonic_sort_desc(sel, sort_n);
    }

    const int32_t* slot_row = p.key_slots + request * p.max_len;
    for (int64_t i = tid; i < p.k; i += kTopkThreads) {
        int32_t pos = -1, slot = -1;
        if (i < keep) {
            pos = static_cast<int32_t>(~static_cast<uint32_t>(sel[i]));
            slot = slot_row[pos];
        }
        p.positions[t * p.k + i] = pos;
        p.slots[t * p.k + i] = slot;
    }
}

// p.position_order, a row of n <= k positions (all selected): each CTA writes the positions [begin, end) of its
// segment and their slots in place, rank 0 the -1 padding [n, k). No shared memory, no cluster barrier.
__device__ void write_all_positions(const IndexerTopkKernelParams& p, int64_t t, int64_t request, int64_t begin,
                                    int64_t end, int64_t n, bool pad) {
    const int32_t* slot_row = p.key_slots + request * p.max_len;
    int32_t* pos = p.positions + t * p.k;
    int32_t* slots = p.slots + t * p.k;
    for (int64_t i = begin + threadIdx.x; i < end; i += kTopkThreads) {
        pos[i] = static_cast<int32_t>(i);
        slots[i] = slot_row[i];
    }
    if (!pad) return;
    for (int64_t i = n + threadIdx.x; i < p.k; i += kTopkThreads) {
        pos[i] = -1;
        slots[i] = -1;
    }
}

// The device's opt-in shared memory per block (read once).
inline int topk_smem_optin() {
    static const int optin = current_device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin);
    return optin;
}

// Launches kernel on a grid of `ctas` 1024-thread CTAs in clusters of `cluster`, with PDL unless the runtime
// refuses it on a cluster launch (pdl.cuh's launch_pdl_cluster; one `pdl_ok` flag per call site).
template <typename... Args>
void launch_topk_cluster(void (*kernel)(Args...), int64_t ctas, int cluster, int64_t smem, cudaStream_t stream,
                         std::atomic<bool>& pdl_ok, Args... args) {
    host::launch_pdl_cluster(kernel, ctas, kTopkThreads, cluster, static_cast<size_t>(smem), stream, pdl_ok, args...);
}

}  // namespace

// launch_indexer_topk_smem with the candidate path (DSA_INDEXER_TOPK=cand; indexer_topk_smem.cu): position-order
// rows of n > k skip the radix rounds and every CTA writes its part of the output; false where rows do not fit.
bool launch_indexer_topk_cand(const IndexerTopkKernelParams& p, cudaStream_t stream);

// The fast kernel (indexer_topk_fast.cu; the default for position-order rows where the lean kernel does not apply):
// position-order rows only (false otherwise, nothing launched); segments follow the real row lengths, three cluster
// barriers per row; the write pass from the gather pass's masks where a CTA's segment of the widest row has >= 32768
// positions, else recomputing every key's bin.
bool launch_indexer_topk_fast(const IndexerTopkKernelParams& p, cudaStream_t stream);

// The lean kernel (indexer_topk_lean.cu; the default for position-order rows where it applies): the rows in registers,
// one CTA per row up to 16384 positions, clusters of up to 8 CTAs of <= 8192 positions each (the same cluster rule
// as the fast kernel's); widths a multiple of 4, scores and slots 16-byte aligned. False otherwise (nothing
// launched).
bool launch_indexer_topk_lean(const IndexerTopkKernelParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
