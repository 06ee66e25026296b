// Exact top-k of the lightning indexer's score rows (radix select on 11-bit digits of the score's order key, a
// cluster of up to 8 CTAs per row exchanging counts through distributed shared memory, ties by position, bitonic
// sort of the selection) and the causal index lists (every visible position of a query). Grids depend on host
// shapes only; the work follows query_limit.
#include <cstdlib>
#include <cstring>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/indexer_topk_common.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

// ---- exact top-k: a cluster of C 1024-thread CTAs per row (C = 1, 2, 4 or 8) ----

// The fewest positions per CTA: the cluster grows while every CTA keeps this many of the widest row, and a row's
// CTAs split it into segments of at least this many (the rest of the cluster idles), so that in a wide (padded)
// bucket a short row costs what it costs at its own width.
constexpr int64_t kGlobalMinSegment = 2048;
//
// Radix select on the order key of the score (u32): 11-bit digits from the top bit down (11, 11, 10), each round
// a histogram of the elements that match the known prefix, until the threshold bin holds exactly the missing
// count (every key >= its lower edge is taken) or the whole key is known (keys above it are taken, and of the
// keys equal to it the lowest positions). CTA r of the cluster scans the r-th segment of the row; its histogram
// is added to rank 0's through distributed shared memory (two cluster barriers per round, histograms double-
// buffered), every CTA picks the digit from rank 0's bins (a block-wide scan), every CTA appends its selected
// (key, position) pairs to its own buffer, the buffers are gathered into rank 0's, which sorts them (score
// descending, equal scores by ascending position; bitonic, strides < 64 in registers) and writes them out.

// The CTA's positions [begin, end) of the row.
struct Segment {
    const float* row;
    int64_t begin, end;
};

// Calls fn(i, key(row[i]), valid) for every i of the segment rounded up to the block, in rounds of
// kScanUnroll * 1024 positions (all loads of a round are issued before their uses; the row comes from L2).
// Every thread calls fn the same number of times, so fn may use warp collectives.
constexpr int kScanUnroll = 8;
template <typename Fn>
__device__ __forceinline__ void scan_segment(const Segment& s, Fn&& fn) {
    for (int64_t base = s.begin; base < s.end; base += kScanUnroll * kTopkThreads) {
        float v[kScanUnroll];
#pragma unroll
        for (int u = 0; u < kScanUnroll; ++u) {
            const int64_t i = base + u * kTopkThreads + threadIdx.x;
            v[u] = i < s.end ? s.row[i] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < kScanUnroll; ++u) {
            const int64_t i = base + u * kTopkThreads + threadIdx.x;
            fn(i, order_key(v[u]), i < s.end);
        }
    }
}
__device__ TopkThreshold radix_threshold(const TopkCluster& c, const Segment& seg, uint32_t k) {
    const int tid = threadIdx.x;
    int hi_bit = 31;  // highest key bit not yet known
    uint32_t known = 0, prefix = 0, need = k;
    for (int round = 0;; ++round) {
        const int shift = hi_bit >= kDigitBits - 1 ? hi_bit - (kDigitBits - 1) : 0;
        const uint32_t dmask = (2u << (hi_bit - shift)) - 1;  // hi_bit - shift + 1 <= 11 bits
        // Histogram buffer of this round. Rank 0's was last read (by every CTA) two rounds ago, before the
        // cluster barriers of the previous round: clearing it now races with nobody.
        uint32_t* hist = c.sh.hist[round & 1];
        for (int b = tid; b < kBins; b += kTopkThreads) hist[b] = 0;
        __syncthreads();
        // Warp-aggregated: one atomic per distinct bin of a warp (the top digit of a logit row falls into few bins,
        // and same-address shared atomics of a warp serialize). A warp with no element in the prefix (past the
        // segment's end, or most warps after the first round) skips the match (a slow instruction); the ballot is
        // warp-uniform, so match_any still sees every lane.
        scan_segment(seg, [&](int64_t, uint32_t u, bool valid) {
            const bool in = valid && (u & known) == prefix;
            if (__ballot_sync(kFull, in) == 0) return;
            const uint32_t bin = in ? (u >> shift) & dmask : 0xffffffffu;
            const unsigned peers = __match_any_sync(kFull, bin);
            if (in && static_cast<int>(tid & 31) == __ffs(peers) - 1) atomicAdd(&hist[bin], __popc(peers));
        });
        // Every CTA finds the digit in rank 0's merged histogram itself (no third cluster barrier per round).
        find_digit(c.sh, merge_cluster_hist(c, round), need);
        __syncthreads();
        const uint32_t d = c.sh.digit, above = c.sh.above, in_bin = c.sh.in_bin;
        __syncthreads();  // read by every thread before the next round's find_digit rewrites them
        need -= above;
        prefix |= d << shift;
        known |= dmask << shift;
        // The whole bin is taken: keys >= prefix (> prefix - 1; prefix > 0, else all n > k keys would qualify).
        if (in_bin == need) return {prefix - 1, 0};
        if (shift == 0) return {prefix, need};  // the k-th key itself: `need` of its ties by position
        hi_bit = shift - 1;
    }
}
// Appends composite keys to this CTA's own buffer through its own counter (any order: they are gathered into
// rank 0's buffer and sorted afterwards).
__device__ __forceinline__ void append(const TopkCluster& c, bool take, uint64_t key, int keep, int lane) {
    const unsigned ballot = __ballot_sync(kFull, take);
    uint32_t off = 0;
    if (lane == 0 && ballot != 0) off = atomicAdd(&c.sh.count, static_cast<uint32_t>(__popc(ballot)));
    off = __shfl_sync(kFull, off, 0);
    if (take) {
        const uint32_t idx = off + __popc(ballot & ((1u << lane) - 1));
        if (idx >= static_cast<uint32_t>(keep)) __trap();  // unreachable: exactly `keep` keys qualify
        c.sel[idx] = key;
    }
}

// Appends the segment's part of the selection: keys above the threshold in one pass; with ties, first the ties
// of every segment are counted (so that each CTA knows the ties at lower positions), then the segment is walked
// in rounds of 1024 positions with a block-wide running count.
__device__ void collect(const TopkCluster& c, const Segment& seg, TopkThreshold th, int keep) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    if (th.ties == 0) {
        scan_segment(seg, [&](int64_t i, uint32_t u, bool valid) {
            append(c, valid && u > th.key, composite_key(u, i), keep, lane);
        });
        return;
    }
    uint32_t mine = 0;
    scan_segment(seg, [&](int64_t, uint32_t u, bool valid) { mine += valid && u == th.key; });
    mine = __reduce_add_sync(kFull, mine);
    if (tid == 0) c.sh0->seg_ties[c.rank] = 0;  // placeholder so that the add below starts from 0
    c.cluster.sync();
    if (lane == 0) atomicAdd(&c.sh0->seg_ties[c.rank], mine);
    c.cluster.sync();
    uint32_t seen = 0;  // ties at positions < base (the same in every thread)
    for (unsigned r = 0; r < c.rank; ++r) seen += c.sh0->seg_ties[r];
    for (int64_t base = seg.begin; base < seg.end; base += kTopkThreads) {
        const int64_t i = base + tid;
        const uint32_t u = i < seg.end ? order_key(seg.row[i]) : 0u;
        const bool tie = i < seg.end && u == th.key;
        const unsigned tb = __ballot_sync(kFull, tie);
        if (lane == 0) c.sh.warp_ties[warp] = __popc(tb);
        __syncthreads();
        uint32_t before = seen + __popc(tb & ((1u << lane) - 1)), round = 0;
        for (int w = 0; w < kTopkWarps; ++w) {
            const uint32_t t = c.sh.warp_ties[w];
            before += w < warp ? t : 0u;
            round += t;
        }
        seen += round;
        append(c, (i < seg.end && u > th.key) || (tie && before < th.ties), composite_key(u, i), keep, lane);
        __syncthreads();  // every warp has read warp_ties before the next round rewrites it
    }
}
__global__ void __launch_bounds__(kTopkThreads) indexer_topk_kernel(IndexerTopkKernelParams p) {
    extern __shared__ uint64_t sel[];
    __shared__ TopkShared sh;
    pdl_wait();  // the scores and the limits come from earlier kernels
    pdl_trigger();
    cg::cluster_group cluster = cg::this_cluster();
    const unsigned rank = cluster.block_rank(), size = cluster.num_blocks();
    const TopkCluster c{cluster, rank, sh, cluster.map_shared_rank(&sh, 0), sel, cluster.map_shared_rank(sel, 0)};
    const int64_t t = blockIdx.x / size;
    const int tid = threadIdx.x, lane = tid & 31;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const int64_t n = qr.limit + 1;
    int64_t per = ((n + size - 1) / size + 31) / 32 * 32;
    per = per < kGlobalMinSegment ? kGlobalMinSegment : per;  // a row shorter than max_len keeps to fewer CTAs
    const int64_t begin = rank * per < n ? rank * per : n;
    const Segment seg{p.scores + t * p.max_len, begin, begin + per < n ? begin + per : n};
    const int keep = static_cast<int>(n < p.k ? n : p.k);
    if (p.position_order) {
        if (n <= p.k) {  // the same for the whole cluster: no barrier is left waiting
            write_all_positions(p, t, qr.request, seg.begin, seg.end, n, rank == 0);
            return;
        }
        cluster.sync();  // every CTA of the cluster runs before any reads another's shared memory
        const TopkThreshold th = radix_threshold(c, seg, static_cast<uint32_t>(p.k));
        ordered_collect(c, seg.row + seg.begin, seg.begin, static_cast<int>(seg.end - seg.begin), th,
                        static_cast<uint32_t>(keep));
        cluster.sync();  // rank 0's buffer is complete, in position order
        if (rank == 0) write_selection(p, t, qr.request, sel, keep);
        return;
    }

    if (tid == 0) sh.count = 0;
    cluster.sync();
    if (n > p.k) {
        collect(c, seg, radix_threshold(c, seg, static_cast<uint32_t>(p.k)), keep);
    } else {  // every position
        scan_segment(seg,
                     [&](int64_t i, uint32_t u, bool valid) { append(c, valid, composite_key(u, i), keep, lane); });
    }
    cluster.sync();  // every CTA's selection is complete in its own buffer
    // Gather into rank 0's buffer: CTA r's entries after those of ranks < r. The counts are read before the
    // last cluster sync (no CTA touches another's shared memory after it).
    uint32_t off = 0, total = 0;
    for (unsigned r = 0; r < size; ++r) {
        const uint32_t cnt = cluster.map_shared_rank(&sh, r)->count;
        off += r < rank ? cnt : 0u;
        total += cnt;
    }
    if (total != static_cast<uint32_t>(keep)) __trap();
    if (rank != 0) {
        for (uint32_t i = tid; i < sh.count; i += kTopkThreads) c.sel0[off + i] = sel[i];
    }
    cluster.sync();
    if (rank != 0) return;
    write_selection(p, t, qr.request, sel, keep);
}

// ---- causal index lists ----

__global__ void causal_indices_kernel(CausalIndicesKernelParams p) {
    const int64_t total = p.num_tokens * p.width;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t t = idx / p.width, i = idx % p.width;
        const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
        if (qr.limit >= p.width) __trap();
        int32_t pos = -1, slot = -1;
        if (i <= qr.limit) {
            pos = static_cast<int32_t>(i);
            slot = p.key_slots[qr.request * p.max_len + i];
            if (slot < 0) __trap();
        }
        p.positions[idx] = pos;
        p.slots[idx] = slot;
    }
}

// The cluster kernel reading its segment from global memory every round (the only one for rows too long to
// cache in shared memory).
void launch_topk_global(const IndexerTopkKernelParams& p, cudaStream_t stream) {
    const int64_t keep = p.k < p.max_len ? p.k : p.max_len;
    int64_t sort_n = 1;
    while (sort_n < keep) sort_n <<= 1;
    const int64_t smem = sort_n * 8;
    // CTAs per row: while the rows leave SMs idle and each CTA keeps >= 2048 positions of the widest row.
    int cluster = 1;
    while (cluster < kTopkMaxCluster && p.num_tokens * cluster * 2 <= num_sms() &&
           p.max_len / (cluster * 2) >= kGlobalMinSegment) {
        cluster *= 2;
    }
    static SmemLimit limit;
    limit.ensure(reinterpret_cast<const void*>(indexer_topk_kernel), static_cast<int>(smem));
    static std::atomic<bool> pdl_ok{true};
    launch_topk_cluster(indexer_topk_kernel, p.num_tokens * cluster, cluster, smem, stream, pdl_ok, p);
}

// DSA_INDEXER_TOPK (read at every launch, so that one process can run all of them): "smem" selects the
// shared-memory kernel (indexer_topk_smem.cu) where the rows fit, "cand" the same kernel with its candidate path
// (position-order rows: the threshold bin's keys ranked instead of radix rounds), "global" the global-memory one,
// "fast" the fast kernel (indexer_topk_fast.cu), "lean" the lean kernel (indexer_topk_lean.cu) where it applies, else
// the fast one (both position order only; score order as "cand"). Unset or "auto": position order on the lean
// kernel where it applies, else the fast kernel (H200, graph, us, lean / fast / cand: B = 1 / 4K 5.8 / 8.8 / 9.5,
// B = 1 / 8K 8.7 / 11.1 / 12.3, B = 1 / 16K 9.7 / 12.1 / 13.3, B = 1 / 64K 16.1 / 16.5 / 17.1, B = 64 / 4K 6.1 / 9.1
// / 10.0; fast with lone rows on lean_row: B = 64 / 64K 25.4 vs cand 30.0, in 128K buckets B = 1 / 4K 6.0, B = 64 /
// 4K 6.4, B = 1 / 64K 17.0, B = 64 / 64K 26.7 vs 12.7, 27.7, 17.2, 58.5 on cand); score order the candidate path
// for kSmemTopkMinLen <= max_len <= kSmemTopkMaxLen (cand vs smem 9.3 vs 11.9 us at B = 1 / 4K, 29.5 vs 35.5 at B = 64
// / 64K), else the global kernel.
constexpr int64_t kSmemTopkMinLen = 4096, kSmemTopkMaxLen = 65536;
enum class TopkKernel { kAuto, kGlobal, kSmem, kCand, kFast, kLean };
TopkKernel topk_kernel_selected() {
    const char* v = std::getenv("DSA_INDEXER_TOPK");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return TopkKernel::kAuto;
    if (std::strcmp(v, "global") == 0) return TopkKernel::kGlobal;
    if (std::strcmp(v, "cand") == 0) return TopkKernel::kCand;
    if (std::strcmp(v, "fast") == 0) return TopkKernel::kFast;
    if (std::strcmp(v, "lean") == 0) return TopkKernel::kLean;
    DSA_CHECK(std::strcmp(v, "smem") == 0) << "DSA_INDEXER_TOPK=" << v << " (auto, smem, cand, fast, lean or global)";
    return TopkKernel::kSmem;
}

// DSA_INDEXER_TOPK_ORDER (read at every launch): unset or "position" = ascending position order (the default: the
// consumers attend over the set, and it needs no sort), "score" = score order.
bool position_order_selected() {
    const char* v = std::getenv("DSA_INDEXER_TOPK_ORDER");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "position") == 0) return true;
    DSA_CHECK(std::strcmp(v, "score") == 0) << "DSA_INDEXER_TOPK_ORDER=" << v << " (score or position)";
    return false;
}

}  // namespace

void launch_indexer_topk(const IndexerTopkKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0) return;
    DSA_CHECK(p.k >= 1 && p.k <= kIndexerMaxTopk) << "indexer top-k width " << p.k;
    DSA_CHECK(p.max_len >= 1 && p.max_len <= 0x7fffffff) << "indexer top-k row length " << p.max_len;
    DSA_CHECK(p.num_tokens <= 0x7fffffff / kTopkMaxCluster) << "indexer top-k: " << p.num_tokens << " queries";
    IndexerTopkKernelParams q = p;
    q.position_order = p.position_order || position_order_selected();
    const TopkKernel kernel = topk_kernel_selected();
    if (kernel == TopkKernel::kSmem && launch_indexer_topk_smem(q, stream)) return;
    // lean and fast launch position-order rows only (false otherwise).
    const bool lean = kernel == TopkKernel::kAuto || kernel == TopkKernel::kLean;
    if (lean && launch_indexer_topk_lean(q, stream)) return;
    if ((lean || kernel == TopkKernel::kFast) && launch_indexer_topk_fast(q, stream)) return;
    const bool cand = kernel == TopkKernel::kCand || kernel == TopkKernel::kFast || kernel == TopkKernel::kLean ||
                      (kernel == TopkKernel::kAuto && q.max_len >= kSmemTopkMinLen && q.max_len <= kSmemTopkMaxLen);
    if (cand && launch_indexer_topk_cand(q, stream)) return;
    launch_topk_global(q, stream);
}

void launch_causal_indices(const CausalIndicesKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.width == 0) return;
    constexpr int kThreads = 256;
    causal_indices_kernel<<<host::grid_for(p.num_tokens * p.width, kThreads), kThreads, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(causal_indices_kernel);
}

}  // namespace dsa::backend::cuda
