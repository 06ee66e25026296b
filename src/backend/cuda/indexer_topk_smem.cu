// Exact top-k of the lightning indexer's score rows with each CTA's segment of the row cached in shared memory
// (DSA_INDEXER_TOPK=smem): one read of the row from global memory, a first histogram on 2048 equal-width value
// bins between the row's min and max (spread over the bins where a fixed top digit of the order key would put a
// whole row into a handful), radix rounds on the order keys of that bin's elements only, and a deterministic
// collection in ascending position order straight into rank 0's buffer. Same output as indexer_topk.cu.
#include <cstdint>

#include "backend/cuda/indexer_topk_common.cuh"
#include "base/check.h"

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

// Copies the segment (len floats) into vals; rank 0 gets the extreme order keys of the whole row.
__device__ void load_segment(const TopkCluster& c, const float* src, int len, float* vals) {
    constexpr int kUnroll = 8;
    const int tid = threadIdx.x;
    uint32_t lo = 0xffffffffu, hi = 0;
    for (int base = 0; base < len; base += kUnroll * kTopkThreads) {
        float v[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int i = base + u * kTopkThreads + tid;
            v[u] = i < len ? src[i] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int i = base + u * kTopkThreads + tid;
            if (i >= len) continue;
            vals[i] = v[u];
            const uint32_t k = order_key(v[u]);
            lo = k < lo ? k : lo;
            hi = k > hi ? k : hi;
        }
    }
    lo = __reduce_min_sync(kFull, lo);
    hi = __reduce_max_sync(kFull, hi);
    if ((tid & 31) == 0) {
        atomicMin(&c.sh0->kmin, lo);
        atomicMax(&c.sh0->kmax, hi);
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
    const float lo = key_value(kmin), range = key_value(kmax) - lo;
    float scale = static_cast<float>(kBins) / range;
    if (!(range > 0.0f) || !(scale < 3.0e38f)) scale = 0.0f;  // range 0 / inf / NaN, or a tiny range
    const ValueBins bins{lo, scale};
    const DigitResult d0 =
        pick_digit(c, cluster_histogram<false>(c, vals, len, 0, [&](float v) { return bins(v); }), k);
    uint32_t need = k - d0.above;
    bin_key_range(c, vals, len, bins, d0.digit);
    c.cluster.sync();
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

// Grid: T x C CTAs of 1024 threads in clusters of C (one cluster per row). Dynamic shared memory: the selection
// buffer (sel_cap u64) then the segment cache (seg_cap floats, seg_cap >= every CTA's segment).
__global__ void __launch_bounds__(kTopkThreads) indexer_topk_smem_kernel(IndexerTopkKernelParams p, int sel_cap) {
    extern __shared__ uint64_t dyn[];
    __shared__ TopkShared sh;
    uint64_t* sel = dyn;
    float* vals = reinterpret_cast<float*>(dyn + sel_cap);
    pdl_wait();  // the scores and the limits come from earlier kernels
    pdl_trigger();
    cg::cluster_group cluster = cg::this_cluster();
    const unsigned rank = cluster.block_rank(), size = cluster.num_blocks();
    const TopkCluster c{cluster, rank, sh, cluster.map_shared_rank(&sh, 0), sel, cluster.map_shared_rank(sel, 0)};
    const int64_t t = blockIdx.x / size;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const int64_t n = qr.limit + 1;
    const int64_t per = ((n + size - 1) / size + 31) / 32 * 32;
    const int64_t begin = rank * per < n ? rank * per : n;
    const int len = static_cast<int>((begin + per < n ? begin + per : n) - begin);
    const uint32_t keep = static_cast<uint32_t>(n < p.k ? n : p.k);
    if (p.position_order && n <= p.k) {  // the same for the whole cluster: no barrier is left waiting
        write_all_positions(p, t, qr.request, begin, begin + len, n, rank == 0);
        return;
    }
    if (threadIdx.x == 0) {
        sh.kmin = sh.cmin = 0xffffffffu;
        sh.kmax = sh.cmax = 0;
    }
    cluster.sync();
    load_segment(c, p.scores + t * p.max_len + begin, len, vals);
    cluster.sync();
    const TopkThreshold th = n > p.k ? smem_threshold(c, vals, len, static_cast<uint32_t>(p.k))
                                     : TopkThreshold{0u, kAllTies};  // every key >= 0: all of them
    ordered_collect(c, vals, begin, len, th, keep);
    cluster.sync();  // rank 0's buffer is complete; no CTA touches another's shared memory after this
    if (rank != 0) return;
    write_selection(p, t, qr.request, sel, static_cast<int>(keep));
}

}  // namespace

bool launch_indexer_topk_smem(const IndexerTopkKernelParams& p, cudaStream_t stream) {
    static const int smem_optin = [] {
        int dev = 0, v = 0;
        DSA_CUDA_CHECK(cudaGetDevice(&dev));
        DSA_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        return v;
    }();
    const int64_t keep = p.k < p.max_len ? p.k : p.max_len;
    int64_t sel_cap = 1;
    while (sel_cap < keep) sel_cap <<= 1;
    // 1 KB below the opt-in limit for the runtime's reserved shared memory and alignment.
    const int64_t budget = smem_optin - static_cast<int64_t>(sizeof(TopkShared)) - 1024 - sel_cap * 8;
    auto seg_cap = [&](int cl) { return ((p.max_len + cl - 1) / cl + 31) / 32 * 32; };
    // CTAs per row: enough to cache the widest row, more while the rows leave SMs idle and each CTA keeps
    // >= 8192 positions.
    int cluster = 1;
    while (cluster < kTopkMaxCluster &&
           (seg_cap(cluster) * 4 > budget ||
            (p.num_tokens * cluster * 2 <= num_sms() && p.max_len / (cluster * 2) >= 8192))) {
        cluster *= 2;
    }
    if (seg_cap(cluster) * 4 > budget) return false;
    const int64_t smem = sel_cap * 8 + seg_cap(cluster) * 4;
    // The attribute is raised once to the whole opt-in budget (never again inside a captured forward).
    static SmemLimit limit;
    limit.ensure(reinterpret_cast<const void*>(indexer_topk_smem_kernel),
                 smem_optin - static_cast<int>(sizeof(TopkShared)) - 1024);
    static std::atomic<bool> pdl_ok{true};
    launch_topk_cluster(indexer_topk_smem_kernel, p.num_tokens * cluster, cluster, smem, stream, pdl_ok, p,
                        static_cast<int>(sel_cap));
    return true;
}

}  // namespace dsa::backend::cuda
