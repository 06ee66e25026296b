// Exact top-k of position-order score rows for few rows (DSA_INDEXER_TOPK=lean): each CTA holds its segment of the
// row in registers (indexer_topk_lean.cuh), a row within one segment on one CTA with block barriers only (lean_row),
// longer rows over a cluster of up to 8 CTAs with three cluster barriers; no shared-memory copy of the row. Same
// output as the other kernels.
#include "backend/cuda/indexer_topk_lean.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

// The fewest positions per CTA of a cluster row (a shorter row runs on rank 0 alone).
constexpr int64_t kLeanMinSegment = 4096;

// This CTA's segment [begin, begin + len) of a row of n > k positions spread over a cluster (TopkCluster c, not
// single): thread t holds the segment's positions [t V, t V + V) in registers. Three cluster barriers (extremes;
// histograms, summed by every CTA; counts and threshold-bin keys, gathered and ranked by every CTA), then each CTA
// writes its selected positions from the row's offset of its segment on. cand / gat: cap u64 each (cap >= k);
// seg_slots: 1024 V i32 (the segment's slots, in shared memory rather than registers).
template <int V>
__device__ __forceinline__ void lean_cluster_row(const TopkCluster& c, uint64_t* cand, uint64_t* gat, int cap,
                                                 int32_t* seg_slots, const float* row, const int32_t* slot_row,
                                                 int64_t begin, int len, uint32_t k, int32_t* pos, int32_t* slots) {
    TopkShared& sh = c.sh;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int first = tid * V;
    const unsigned size = c.cluster.num_blocks();
    uint32_t lo = 0xffffffffu, hi = 0;
    const LeanValues<V, false> x = lean_load<V, false>(row + begin, slot_row + begin, first, len, lo, hi, seg_slots);
    lo = __reduce_min_sync(kFull, lo);
    hi = __reduce_max_sync(kFull, hi);
    if (lane == 0) {
        atomicMin(&sh.kmin, lo);
        atomicMax(&sh.kmax, hi);
    }
    c.cluster.sync();  // (1) every CTA's extremes
    uint32_t kmin = 0xffffffffu, kmax = 0;
    for (unsigned r = 0; r < size; ++r) {
        const TopkShared* o = c.cluster.map_shared_rank(&sh, r);
        const uint32_t rlo = o->kmin, rhi = o->kmax;
        kmin = rlo < kmin ? rlo : kmin;
        kmax = rhi > kmax ? rhi : kmax;
    }
    const ValueBins bins = row_bins(kmin, kmax);  // one value (kmin == kmax): every key in bin 0
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if ((x.valid >> j) & 1u) atomicAdd(&sh.hist[0][bins(x.v[j])], 1u);
    }
    c.cluster.sync();  // (2) every CTA's histogram; nobody reads another CTA's kmin / kmax any more
    if (tid == 0) {    // the row's extremes, where the fallback's smem_threshold reads them (rank 0)
        sh.kmin = kmin;
        sh.kmax = kmax;
    }
    uint32_t s0 = 0, s1 = 0;
    for (unsigned r = 0; r < size; ++r) {
        const uint32_t* h = c.cluster.map_shared_rank(sh.hist[0], r);
        s0 += h[tid];
        s1 += h[tid + kTopkThreads];
    }
    sh.hist[1][tid] = s0;
    sh.hist[1][tid + kTopkThreads] = s1;
    __syncthreads();
    find_digit(sh, sh.hist[1], k);
    __syncthreads();  // digit, above, in_bin
    const uint32_t d0 = sh.digit, need = k - sh.above;
    const bool whole = sh.in_bin == need;  // the same in every CTA
    uint32_t above = 0, in_bin = 0;
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if (((x.valid >> j) & 1u) == 0) continue;
        const uint32_t b = bins(x.v[j]);
        above += b > d0;
        in_bin += b == d0;
    }
    above = __reduce_add_sync(kFull, above);
    in_bin = __reduce_add_sync(kFull, in_bin);
    if (lane == 0) {
        atomicAdd(&sh.cta_greater, above);
        atomicAdd(&sh.cta_ties, in_bin);
    }
    if (!whole) lean_append<V>(sh, cand, static_cast<uint32_t>(cap), x, bins, d0, static_cast<int>(begin) + first);
    c.cluster.sync();  // (3) every CTA's counts and candidates
    uint32_t m = 0, g_before = 0, e_before = 0, g_total = 0;
    for (unsigned r = 0; r < size; ++r) {
        const TopkShared* o = c.cluster.map_shared_rank(&sh, r);
        const uint32_t g = o->cta_greater;
        m += o->count;
        g_before += r < c.rank ? g : 0u;
        e_before += r < c.rank ? o->cta_ties : 0u;
        g_total += g;
    }
    if (g_total != sh.above) __trap();               // unreachable: the bins above d0 hold `above` keys
    if (!whole && m > static_cast<uint32_t>(cap)) {  // the same decision in every CTA
        radix_fallback(&sh, cand, false, row + begin, begin, len, k, slot_row, pos, slots);
        return;
    }
    uint64_t thc = 0;  // below every composite key: bin d0 taken whole
    uint32_t out = g_before + e_before;
    if (!whole) {
        // Every rank's candidates into gat (rank order), then this CTA's reads of the others are done.
        uint32_t base = 0;
        for (unsigned r = 0; r < size; ++r) {
            const TopkShared* o = c.cluster.map_shared_rank(&sh, r);
            const uint32_t cnt = o->count;
            const uint64_t* src = c.cluster.map_shared_rank(cand, r);
            for (uint32_t j = tid; j < cnt; j += kTopkThreads) gat[base + j] = src[j];
            base += cnt;
        }
        c.cluster.barrier_arrive();
        __syncthreads();
        ballot_candidate_threshold(sh, gat, m, need);
        __syncthreads();  // thc
        thc = sh.thc;
        uint32_t before = 0;  // selected candidates of the row before this segment
        for (uint32_t j = tid; j < m; j += kTopkThreads) {
            const uint64_t y = gat[j];
            before += y >= thc && static_cast<int64_t>(~static_cast<uint32_t>(y)) < begin;
        }
        before = __reduce_add_sync(kFull, before);
        if (lane == 0 && before != 0) atomicAdd(&sh.cand_before, before);
        __syncthreads();
        out = g_before + sh.cand_before;
    } else {
        c.cluster.barrier_arrive();
    }
    uint32_t before;
    const uint32_t take = lean_take(sh, x, bins, d0, thc, begin + first, lane, warp, before), cnt = __popc(take);
    out += before;
    if (out + cnt > k) __trap();  // unreachable: the row selects exactly k
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if (((take >> j) & 1u) == 0) continue;
        pos[out] = static_cast<int32_t>(begin + first + j);
        slots[out] = seg_slots[first + j];
        ++out;
    }
    c.cluster.barrier_wait();  // no CTA leaves while another may still read its shared memory
}

// Grid: T x C CTAs of 1024 threads in clusters of C (one cluster per row; kCluster = C > 1, else no cluster launch),
// position order only, C x 1024 x V >= max_len. A row's segments follow its real length (>= kLeanMinSegment
// positions each, multiples of 4); a row within one segment runs on rank 0 alone (lean_row, the others leave), else
// every CTA its segment (lean_cluster_row). Dynamic shared memory: the candidate buffer and the gathered candidates
// (cap u64 each, cap >= k: the radix fallback collects the row's k keys in rank 0's candidate buffer), with
// clusters also the segment's slots (1024 V i32).
template <int V, bool kCluster>
__global__ void __launch_bounds__(kTopkThreads) indexer_topk_lean_kernel(IndexerTopkKernelParams p, int cap) {
    extern __shared__ __align__(16) uint64_t cand[];
    __shared__ TopkShared sh;
    const int tid = threadIdx.x;
    if (tid == 0) {
        sh.kmin = sh.cmin = 0xffffffffu;
        sh.kmax = sh.cmax = 0;
        sh.count = sh.cta_greater = sh.cta_ties = sh.cand_before = 0;
    }
    sh.hist[0][tid] = 0;
    sh.hist[0][tid + kTopkThreads] = 0;
    __syncthreads();  // sh initialised (while the kernel before may still run)
    pdl_wait();       // the scores and the limits come from earlier kernels
    pdl_trigger();
    if (!p.position_order) __trap();  // the host launches position-order rows only
    const cg::cluster_group cluster = cg::this_cluster();
    const unsigned rank = cluster.block_rank(), size = cluster.num_blocks();
    const int64_t t = blockIdx.x / size;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const int64_t n = qr.limit + 1;
    int64_t per = ((n + size - 1) / size + 3) / 4 * 4;
    per = per < kLeanMinSegment ? kLeanMinSegment : per;
    const int64_t begin = rank * per < n ? rank * per : n;
    const int len = static_cast<int>((begin + per < n ? begin + per : n) - begin);
    const int32_t* slot_row = p.key_slots + qr.request * p.max_len;
    int32_t* pos = p.positions + t * p.k;
    int32_t* slots = p.slots + t * p.k;
    if (n <= p.k) {  // every position (the same for the whole cluster: no barrier is left waiting)
        write_all_positions(p, t, qr.request, begin, begin + len, n, rank == 0);
        return;
    }
    const float* row = p.scores + t * p.max_len;
    const uint32_t k = static_cast<uint32_t>(p.k);
    if constexpr (!kCluster) {
        lean_row<V>(sh, cand, cap, row, slot_row, static_cast<int>(n), k, pos, slots);
    } else if (n <= per) {  // a row within one segment (<= kLeanMinSegment positions): rank 0 alone
        if (rank == 0)
            lean_row<kLeanMinSegment / kTopkThreads>(sh, cand, cap, row, slot_row, static_cast<int>(n), k, pos, slots);
    } else {
        const TopkCluster c{cluster, rank, sh, cluster.map_shared_rank(&sh, 0), cand, cluster.map_shared_rank(cand, 0),
                            false};
        lean_cluster_row<V>(c, cand, cand + cap, cap, reinterpret_cast<int32_t*>(cand + 2 * cap), row, slot_row, begin,
                            len, k, pos, slots);
    }
}

template <int V>
void lean_launch(const IndexerTopkKernelParams& p, int cluster, int cap, cudaStream_t stream) {
    static SmemLimit limit;
    static std::atomic<bool> pdl_ok{true};
    // One candidate buffer; with clusters also the gathered candidates and the segment's slots.
    const int64_t smem = cluster == 1 ? int64_t{cap} * 8 : int64_t{cap} * 16 + int64_t{V} * kTopkThreads * 4;
    if (cluster == 1) {
        auto* kernel = indexer_topk_lean_kernel<V, false>;
        limit.ensure(reinterpret_cast<const void*>(kernel), static_cast<int>(smem));
        host::launch_pdl(kernel, dim3(static_cast<unsigned>(p.num_tokens)), dim3(kTopkThreads),
                         static_cast<size_t>(smem), stream, p, cap);
    } else if constexpr (V <= 8) {  // clusters of up to 8 values per thread
        auto* kernel = indexer_topk_lean_kernel<V, true>;
        static SmemLimit limit_cluster;
        limit_cluster.ensure(reinterpret_cast<const void*>(kernel), static_cast<int>(smem));
        launch_topk_cluster(kernel, p.num_tokens * cluster, cluster, smem, stream, pdl_ok, p, cap);
    }
}

}  // namespace

bool launch_indexer_topk_lean(const IndexerTopkKernelParams& p, cudaStream_t stream) {
    const auto aligned = [](const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15) == 0; };
    if (!p.position_order || p.max_len % 4 != 0 || !aligned(p.scores) || !aligned(p.key_slots)) return false;
    // Clusters grow while the rows leave SMs idle and each CTA keeps kLeanMinSegment positions of the widest row;
    // then the fewest values per thread that hold a CTA's segment.
    int cluster = 1;
    while (cluster < kTopkMaxCluster && p.num_tokens * cluster * 2 <= num_sms() &&
           p.max_len / (cluster * 2) >= kLeanMinSegment) {
        cluster *= 2;
    }
    // Clusters of 16 values per thread spilled (H200: B = 1 / 64K in a 128K bucket 22.5 vs 16.6 us on the fast
    // kernel): clusters take up to 8, a lone CTA 16.
    const int64_t per_thread = (p.max_len + int64_t{cluster} * kTopkThreads - 1) / (int64_t{cluster} * kTopkThreads);
    if (per_thread > (cluster == 1 ? 16 : 8)) return false;
    int cap = 256;  // the candidate buffers: a power of two >= k (the fallback's collection)
    while (cap < p.k) cap <<= 1;
    if (per_thread <= 4) {
        lean_launch<4>(p, cluster, cap, stream);
    } else if (per_thread <= 8) {
        lean_launch<8>(p, cluster, cap, stream);
    } else {
        lean_launch<16>(p, 1, cap, stream);
    }
    return true;
}

}  // namespace dsa::backend::cuda
