// Exact top-k of the lightning indexer's score rows with each CTA's segment of the row cached in shared memory
// (DSA_INDEXER_TOPK=smem): one read of the row from global memory, a first histogram on 2048 equal-width value
// bins between the row's min and max (spread over the bins where a fixed top digit of the order key would put a
// whole row into a handful), radix rounds on the order keys of that bin's elements only, and a deterministic
// collection in ascending position order straight into rank 0's buffer. Same output as indexer_topk.cu.
// DSA_INDEXER_TOPK=cand: the same kernel with the candidate path (position order: the threshold bin's keys
// collected and ranked, each warp writes its selection straight to the output).
#include <cstdint>

#include "backend/cuda/indexer_topk_smem.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

// Copies the segment (len floats) into vals; rank 0 gets the extreme order keys of the whole row. kVector: 16-byte
// loads where src and vals are 16-byte aligned (the same in the whole cluster: one row, begin a multiple of 32).
template <bool kVector = false>
__device__ void load_segment(const TopkCluster& c, const float* src, int len, float* vals) {
    constexpr int kUnroll = 8;
    const int tid = threadIdx.x;
    uint32_t lo = 0xffffffffu, hi = 0;
    if (kVector && ((reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(vals)) & 15) == 0) {
        load_segment_vec(src, len, vals, lo, hi);
    } else {
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
                key_range(v[u], lo, hi);
            }
        }
    }
    lo = __reduce_min_sync(kFull, lo);
    hi = __reduce_max_sync(kFull, hi);
    if ((tid & 31) == 0) {
        atomicMin(&c.sh0->kmin, lo);
        atomicMax(&c.sh0->kmax, hi);
    }
}

// The fewest positions per CTA where the cache allows (the cluster grows for parallelism while each CTA keeps this
// many of the widest row; a shorter row spreads over fewer CTAs of its cluster).
constexpr int64_t kSmemMinSegment = 8192;

// ---- candidate path (DSA_INDEXER_TOPK=cand, position order, n > k) ----
//
// After the first value-bin round (digit d0, `need` keys still missing): one pass counts, per warp chunk, the keys
// of the bins above d0 and appends the composite keys of bin d0 (the candidates) to rank 0's buffer; rank 0 finds
// the need-th largest candidate (thc); every CTA counts its selected candidates, and each warp writes its chunk's
// selection (bin > d0, or bin d0 with composite >= thc) straight to the output at a cluster-wide prefix offset.
// No radix rounds, no gather into rank 0, no rank-0 output loop. More candidates than the buffer holds: the
// radix path of smem_threshold + ordered_collect (the shared-memory kernel's own).

// Adds the selected candidates (composite >= thc) of this CTA's segment to the warp_sum of the chunk holding them.
__device__ void count_selected_candidates(const TopkCluster& c, int64_t begin, int len, uint32_t m, uint64_t thc) {
    const int chunk = warp_chunk(len).chunk;
    for (uint32_t j = threadIdx.x; j < m; j += kTopkThreads) {
        const uint64_t x = c.sel0[j];
        if (x < thc) continue;
        const int64_t i = static_cast<int64_t>(~static_cast<uint32_t>(x)) - begin;
        if (i >= 0 && i < len) atomicAdd(&c.sh.warp_sum[i / chunk], 1u);
    }
}

// Writes the warp chunk's selection (value bin above d0, or bin d0 with composite >= thc) in ascending position
// order to o.pos / o.slots (slots through o.slot_row) from index `out` on.
struct DirectOut {
    int32_t* pos;
    int32_t* slots;
    const int32_t* slot_row;
};
__device__ void write_direct(const float* vals, int64_t begin, int len, ValueBins bins, uint32_t d0, uint64_t thc,
                             uint32_t out, DirectOut o) {
    const int lane = threadIdx.x & 31;
    const unsigned below = (1u << lane) - 1;
    const WarpChunk wc = warp_chunk(len);
    for (int base = wc.w0; base < wc.w1; base += 32) {
        const int i = base + lane;
        const bool valid = i < wc.w1;
        const float v = valid ? vals[i] : 0.0f;
        const uint32_t b = bins(v);
        const bool take = valid && (b > d0 || (b == d0 && composite_key(order_key(v), begin + i) >= thc));
        const unsigned sb = __ballot_sync(kFull, take);
        if (take) {
            const uint32_t idx = out + __popc(sb & below);
            const int32_t pos = static_cast<int32_t>(begin + i);
            o.pos[idx] = pos;
            o.slots[idx] = o.slot_row[pos];
        }
        out += __popc(sb);
    }
}

// The candidate path of a row with n > k after load_segment (cluster-synced); false (nothing written, no barrier
// left waiting) when bin d0 holds more candidates than cap: the caller runs the radix path.
__device__ bool candidate_topk(const IndexerTopkKernelParams& p, const TopkCluster& c, int64_t t, int64_t request,
                               const float* vals, int64_t begin, int len, uint32_t cap) {
    const uint32_t k = static_cast<uint32_t>(p.k);
    const ValueBins bins = row_bins(c.sh0->kmin, c.sh0->kmax);  // one value (kmin == kmax): every key in bin 0
    const DigitResult d0 =
        pick_digit(c, cluster_histogram<false>(c, vals, len, 0, [&](float v) { return bins(v); }), k);
    const uint32_t need = k - d0.above;
    const bool whole = d0.in_bin == need;
    // Bin d0's keys into rank 0's buffer.
    gather_threshold_bin(c.sh, TopkSeg{vals, vals, begin, len, len}, bins, d0.digit, whole, &c.sh0->count, c.sel0,
                         cap, nullptr, nullptr);
    c.cluster.sync();  // (A) rank 0's candidates and count are complete
    const uint32_t m = c.sh0->count;
    if (!whole && m > cap) return false;
    if (!whole && c.rank == 0) candidate_threshold(c.sh, c.sel, m, need);
    c.cluster.sync();                              // (B) thc is known
    const uint64_t thc = whole ? 0u : c.sh0->thc;  // 0: below every composite key
    if (whole) {
        if (threadIdx.x < kTopkWarps) c.sh.warp_sum[threadIdx.x] += c.sh.warp_ties[threadIdx.x];
    } else {
        count_selected_candidates(c, begin, len, m, thc);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        uint32_t g = 0;
        for (int w = 0; w < kTopkWarps; ++w) g += c.sh.warp_sum[w];
        c.sh.cta_greater = g;
    }
    c.cluster.sync();  // (C) every CTA's selected count is known
    uint32_t out = 0, total = 0;
    for (unsigned r = 0; r < c.cluster.num_blocks(); ++r) {
        const uint32_t g = c.cluster.map_shared_rank(&c.sh, r)->cta_greater;
        out += r < c.rank ? g : 0u;
        total += g;
    }
    if (total != k) __trap();  // unreachable: bins above d0 plus `need` candidates make k
    for (int w = 0; w < static_cast<int>(threadIdx.x >> 5); ++w) out += c.sh.warp_sum[w];
    c.cluster.barrier_arrive();  // no CTA reads another's shared memory after this
    write_direct(vals, begin, len, bins, d0.digit, thc, out,
                 {p.positions + t * p.k, p.slots + t * p.k, p.key_slots + request * p.max_len});
    c.cluster.barrier_wait();
    return true;
}

// Grid: T x C CTAs of 1024 threads in clusters of C (one cluster per row). Dynamic shared memory: the selection
// buffer (sel_cap u64) then the segment cache (seg_cap floats, seg_cap >= every CTA's segment). kCandidates: the
// candidate path first for position-order rows of n > k.
template <bool kCandidates>
__global__ void __launch_bounds__(kTopkThreads) indexer_topk_smem_kernel(IndexerTopkKernelParams p, int sel_cap) {
    extern __shared__ __align__(16) uint64_t dyn[];
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
    // At least kSmemMinSegment positions per CTA where the cache holds them (a row shorter than max_len keeps to
    // fewer CTAs); the cache holds a segment of the widest row.
    const int64_t cap = ((p.max_len + size - 1) / size + 31) / 32 * 32;
    int64_t per = ((n + size - 1) / size + 31) / 32 * 32;
    per = per < kSmemMinSegment ? (kSmemMinSegment < cap ? kSmemMinSegment : cap) : per;
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
        sh.count = 0;
    }
    cluster.sync();
    load_segment<kCandidates>(c, p.scores + t * p.max_len + begin, len, vals);
    cluster.sync();
    if (kCandidates && p.position_order && n > p.k &&
        candidate_topk(p, c, t, qr.request, vals, begin, len, static_cast<uint32_t>(sel_cap))) {
        return;
    }
    const TopkThreshold th = n > p.k ? smem_threshold(c, vals, len, static_cast<uint32_t>(p.k))
                                     : TopkThreshold{0u, kAllTies};  // every key >= 0: all of them
    ordered_collect(c, vals, begin, len, th, keep);
    cluster.sync();  // rank 0's buffer is complete; no CTA touches another's shared memory after this
    if (rank != 0) return;
    write_selection(p, t, qr.request, sel, static_cast<int>(keep));
}

}  // namespace

namespace {

bool launch_smem_kernel(const IndexerTopkKernelParams& p, cudaStream_t stream, bool candidates) {
    const int smem_optin = topk_smem_optin();
    const int64_t keep = p.k < p.max_len ? p.k : p.max_len;
    int64_t sel_cap = 1;
    while (sel_cap < keep) sel_cap <<= 1;
    // 1 KB below the opt-in limit for the runtime's reserved shared memory and alignment.
    const int64_t budget = smem_optin - static_cast<int64_t>(sizeof(TopkShared)) - 1024 - sel_cap * 8;
    auto seg_cap = [&](int cl) { return ((p.max_len + cl - 1) / cl + 31) / 32 * 32; };
    // CTAs per row: enough to cache the widest row, more while the rows leave SMs idle and each CTA keeps
    // >= 8192 positions.
    int cluster = 1;
    auto spread = [&](int cl) { return p.num_tokens * cl * 2 <= num_sms() && p.max_len / (cl * 2) >= kSmemMinSegment; };
    while (cluster < kTopkMaxCluster && (seg_cap(cluster) * 4 > budget || spread(cluster))) cluster *= 2;
    if (seg_cap(cluster) * 4 > budget) return false;
    const int64_t smem = sel_cap * 8 + seg_cap(cluster) * 4;
    // The attribute is raised once to the whole opt-in budget (never again inside a captured forward).
    // One limit and one PDL flag per kernel.
    static SmemLimit limit[2];
    static std::atomic<bool> pdl_ok[2] = {true, true};
    auto* kernel = candidates ? indexer_topk_smem_kernel<true> : indexer_topk_smem_kernel<false>;
    limit[candidates].ensure(reinterpret_cast<const void*>(kernel),
                             smem_optin - static_cast<int>(sizeof(TopkShared)) - 1024);
    launch_topk_cluster(kernel, p.num_tokens * cluster, cluster, smem, stream, pdl_ok[candidates], p,
                        static_cast<int>(sel_cap));
    return true;
}

}  // namespace

bool launch_indexer_topk_smem(const IndexerTopkKernelParams& p, cudaStream_t stream) {
    return launch_smem_kernel(p, stream, false);
}

bool launch_indexer_topk_cand(const IndexerTopkKernelParams& p, cudaStream_t stream) {
    return launch_smem_kernel(p, stream, true);
}

}  // namespace dsa::backend::cuda
