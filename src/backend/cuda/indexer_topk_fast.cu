// Exact top-k of the indexer's score rows in position order where the lean kernel does not apply (many or wide rows,
// DSA_INDEXER_TOPK=fast): CTA segments follow the real row length (>= 4096 positions each), cached in shared memory
// as far as it holds (the rest re-read from global memory); three cluster barriers per row (extremes, value-bin
// histogram summed by every CTA, threshold-bin candidates gathered and ranked by every CTA); output staged so that
// the slot gathers overlap (short segments load their slots with the scores); a row within one segment of <= 16384
// positions on the lean kernel's lean_row. Same output as the other kernels.
#include "backend/cuda/indexer_topk_lean.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

// The fewest positions per CTA: the cluster size grows while the rows leave SMs idle and each CTA keeps at least
// this many positions of the widest row, and a shorter row spreads over fewer CTAs of its cluster.
constexpr int64_t kFastMinSegment = 4096;

// lean_row_any not inlined, with scalar arguments (its registers stay out of the fast kernel's main path).
__device__ __noinline__ void lean_row_call(TopkShared* sh, uint64_t* cand, int cap, const float* row,
                                           const int32_t* slot_row, int n, uint32_t k, int32_t* pos, int32_t* slots) {
    lean_row_any(*sh, cand, cap, row, slot_row, n, k, pos, slots);
}

// A cluster barrier, or a block barrier for a one-CTA cluster (the same for the whole cluster).
__device__ __forceinline__ void fast_sync(const TopkCluster& c, bool single) {
    if (single) {
        __syncthreads();
    } else {
        c.cluster.sync();
    }
}

// This CTA's shared state in rank r (itself for a one-CTA cluster).
__device__ __forceinline__ const TopkShared* rank_shared(const TopkCluster& c, bool single, unsigned r) {
    return single ? &c.sh : c.cluster.map_shared_rank(&c.sh, r);
}

// Copies the cached part of the segment into vals and folds the whole segment into sh.kmin / sh.kmax. With
// slot_src: the segment's slots (len <= kSlotPer * 1024) into slots, their loads issued before the scores' ones.
constexpr int kSlotPer = 8;
__device__ void fast_load(TopkShared& sh, const TopkSeg& s, float* vals, const int32_t* slot_src, int32_t* slots) {
    const int tid = threadIdx.x;
    int32_t sr[kSlotPer];
#pragma unroll
    for (int u = 0; u < kSlotPer; ++u) {
        const int i = u * kTopkThreads + tid;
        sr[u] = slot_src != nullptr && i < s.len ? slot_src[i] : 0;
    }
    uint32_t lo = 0xffffffffu, hi = 0;
    if (((reinterpret_cast<uintptr_t>(s.src) | reinterpret_cast<uintptr_t>(vals)) & 15) == 0) {
        load_segment_vec(s.src, s.cached, vals, lo, hi);
    } else {
#pragma unroll 4
        for (int i = tid; i < s.cached; i += kTopkThreads) {
            vals[i] = s.src[i];
            key_range(vals[i], lo, hi);
        }
    }
#pragma unroll 4
    for (int i = s.cached + tid; i < s.len; i += kTopkThreads) key_range(s.src[i], lo, hi);
#pragma unroll
    for (int u = 0; u < kSlotPer; ++u) {
        const int i = u * kTopkThreads + tid;
        if (slot_src != nullptr && i < s.len) slots[i] = sr[u];
    }
    lo = __reduce_min_sync(kFull, lo);
    hi = __reduce_max_sync(kFull, hi);
    if ((tid & 31) == 0) {
        atomicMin(&sh.kmin, lo);
        atomicMax(&sh.kmax, hi);
    }
}

// The cluster's value-bin histogram, complete in this CTA (hist[0]: this CTA's, summed from every rank into
// hist[1] for a cluster); called between the histogram's barrier and the candidates' one.
// Every rank's loads are issued before their sums.
template <int kMaxCl>
__device__ const uint32_t* merged_hist(const TopkCluster& c, bool single) {
    static_assert(kBins == 2 * kTopkThreads, "two bins per thread");
    if (single) return c.sh.hist[0];
    const int b = threadIdx.x;
    uint32_t s0 = 0, s1 = 0;
#pragma unroll
    for (unsigned r = 0; r < kMaxCl; ++r) {
        if (r >= c.cluster.num_blocks()) continue;
        const uint32_t* h = c.cluster.map_shared_rank(c.sh.hist[0], r);
        s0 += h[b];
        s1 += h[b + kTopkThreads];
    }
    c.sh.hist[1][b] = s0;
    c.sh.hist[1][b + kTopkThreads] = s1;
    __syncthreads();
    return c.sh.hist[1];
}

// Every rank's counters after the candidates' barrier: the candidates (rank r's at [off[r], off[r + 1]) of the
// gathered list, m in all), the keys above the threshold bin and in it of the ranks before this one, above it in all.
template <int kMaxCl>
struct RankCounts {
    uint32_t off[kMaxCl + 1];
    uint32_t m, g_before, e_before, g_total;
};
template <int kMaxCl>
__device__ __forceinline__ RankCounts<kMaxCl> rank_counts(const TopkCluster& c, bool single) {
    RankCounts<kMaxCl> rc{};
#pragma unroll
    for (unsigned r = 0; r < kMaxCl; ++r) {
        uint32_t cnt = 0, g = 0, e = 0;
        if (r < (single ? 1u : c.cluster.num_blocks())) {
            const TopkShared* o = rank_shared(c, single, r);
            cnt = o->count;
            g = o->cta_greater;
            e = o->cta_ties;
        }
        rc.off[r + 1] = rc.off[r] + cnt;
        rc.g_before += r < c.rank ? g : 0u;
        rc.e_before += r < c.rank ? e : 0u;
        rc.g_total += g;
    }
    rc.m = rc.off[kMaxCl];
    return rc;
}

// Copies every rank's candidates into gat (rank order), then sh.thc = the need-th largest of the m; adds the
// selected ones (>= thc) of this segment to the warp_sum of their chunk and counts those before it in cand_before.
// Every thread arrives at the cluster barrier once its reads of other CTAs are done.
template <int kMaxCl>
__device__ uint64_t rank_candidates(const TopkCluster& c, bool single, const TopkSeg& s, uint64_t* gat,
                                    const RankCounts<kMaxCl>& rc, uint32_t need) {
    const unsigned tid = threadIdx.x;
    const uint32_t m = rc.m;
    for (uint32_t j = tid; j < m; j += kTopkThreads) {
        unsigned r = 0;
        uint32_t base = 0;
#pragma unroll
        for (unsigned q = 1; q < kMaxCl; ++q) {
            if (j >= rc.off[q]) {
                r = q;
                base = rc.off[q];
            }
        }
        gat[j] = single ? c.sel[j] : c.cluster.map_shared_rank(c.sel, r)[j - base];
    }
    if (!single) c.cluster.barrier_arrive();
    __syncthreads();
    ballot_candidate_threshold(c.sh, gat, m, need);
    __syncthreads();
    const uint64_t thc = c.sh.thc;
    const int chunk = warp_chunk(s.len).chunk;
    for (uint32_t j = tid; j < m; j += kTopkThreads) {
        const uint64_t x = gat[j];
        if (x < thc) continue;
        const int64_t i = static_cast<int64_t>(~static_cast<uint32_t>(x)) - s.begin;
        if (i < 0) {
            atomicAdd(&c.sh.cand_before, 1u);
        } else if (i < s.len) {
            atomicAdd(&c.sh.warp_sum[i / chunk], 1u);
        }
    }
    return thc;
}

// The selection rule after the candidates: value bin above d0, or bin d0 with composite >= thc (0: all of bin d0).
struct FastRule {
    ValueBins bins;
    uint32_t d0;
    uint64_t thc;
};

// Stages the warp chunk's selection in position order at stage[out..], recomputing every key's bin.
__device__ void stage_from_bins(const TopkSeg& s, FastRule r, uint32_t out, int32_t* stage) {
    const int lane = threadIdx.x & 31;
    const unsigned below = (1u << lane) - 1;
    const WarpChunk wc = warp_chunk(s.len);
    for (int base = wc.w0; base < wc.w1; base += 32) {
        const int i = base + lane;
        const bool valid = i < wc.w1;
        const float v = valid ? s[i] : 0.0f;
        const uint32_t b = r.bins(v);
        const bool take = valid && (b > r.d0 || (b == r.d0 && composite_key(order_key(v), s.begin + i) >= r.thc));
        const unsigned sb = __ballot_sync(kFull, take);
        if (take) stage[out + __popc(sb & below)] = static_cast<int32_t>(s.begin + i);
        out += __popc(sb);
    }
}

// The same from the gather pass's masks: lane l holds the masks of the chunk's group gb + l (32 positions each);
// only the groups with candidates read scores (their candidates against thc), only non-empty groups are written.
__device__ void stage_from_masks(const TopkSeg& s, FastRule r, const uint32_t* gtm, const uint32_t* cdm, uint32_t out,
                                 int32_t* stage) {
    const int lane = threadIdx.x & 31;
    const unsigned below = (1u << lane) - 1;
    const WarpChunk wc = warp_chunk(s.len);
    const int g0 = wc.w0 >> 5, g1 = (wc.w1 + 31) >> 5;
    for (int gb = g0; gb < g1; gb += 32) {
        const int g = gb + lane;
        const uint32_t gt = g < g1 ? gtm[g] : 0u, cd = g < g1 ? cdm[g] : 0u;
        uint32_t take = r.thc == 0 ? gt | cd : gt;
        for (unsigned pending = r.thc == 0 ? 0u : __ballot_sync(kFull, cd != 0); pending != 0; pending &= pending - 1) {
            const int src = __ffs(pending) - 1;
            const uint32_t cds = __shfl_sync(kFull, cd, src);
            const int i = (gb + src) * 32 + lane;
            const bool pick = ((cds >> lane) & 1u) != 0 && composite_key(order_key(s[i]), s.begin + i) >= r.thc;
            const unsigned pm = __ballot_sync(kFull, pick);
            if (lane == src) take |= pm;
        }
        const uint32_t cnt = __popc(take);
        uint32_t incl = warp_inclusive_sum(cnt, lane);
        for (unsigned groups = __ballot_sync(kFull, take != 0); groups != 0; groups &= groups - 1) {
            const int src = __ffs(groups) - 1;
            const uint32_t tk = __shfl_sync(kFull, take, src), at = out + __shfl_sync(kFull, incl - cnt, src);
            const int64_t pos = s.begin + (gb + src) * 32 + lane;
            if ((tk >> lane) & 1u) stage[at + __popc(tk & below)] = static_cast<int32_t>(pos);
        }
        out += __shfl_sync(kFull, incl, 31);
    }
}

// Writes this CTA's selection in ascending position order: each warp stages its chunk's positions at its offset
// (from the masks where gtm is not null), then the CTA writes positions and slots from index out_base of the row on
// (slots from seg_slots, the segment's in shared memory, where not null). warp_sum holds the selected count of
// every warp chunk.
__device__ void fast_write(const IndexerTopkKernelParams& p, TopkShared& sh, const TopkSeg& s, FastRule r,
                           const uint32_t* gtm, const uint32_t* cdm, uint32_t out_base, int32_t* stage,
                           const int32_t* seg_slots, int64_t t, int64_t request) {
    const int tid = threadIdx.x, warp = tid >> 5;
    uint32_t out = 0, total = 0;
    for (int w = 0; w < kTopkWarps; ++w) {
        out += w < warp ? sh.warp_sum[w] : 0u;
        total += sh.warp_sum[w];
    }
    if (out_base + total > static_cast<uint32_t>(p.k)) __trap();  // unreachable: the row selects exactly k
    if (gtm != nullptr) {
        stage_from_masks(s, r, gtm, cdm, out, stage);
    } else {
        stage_from_bins(s, r, out, stage);
    }
    __syncthreads();
    const int32_t* slot_row = p.key_slots + request * p.max_len;
    int32_t* pos = p.positions + t * p.k + out_base;
    int32_t* slots = p.slots + t * p.k + out_base;
    for (uint32_t i = tid; i < total; i += kTopkThreads) {
        const int32_t q = stage[i];
        pos[i] = q;
        slots[i] = seg_slots != nullptr ? seg_slots[q - s.begin] : slot_row[q];
    }
}

// The kernel's sizes: the candidate buffers (sel_cap u64 each), the segment cache (cache_cap floats), the slot cache
// (slot_cap i32, 0: none), the gather masks (group_cap u32 each, kMasks only), the fewest positions per CTA.
// lean: rows of <= kLeanMaxLen positions within one segment run lean_row (the row and its slots 16-byte aligned).
struct FastArgs {
    int sel_cap, cache_cap, slot_cap, group_cap, min_seg;
    bool lean;
};

// Grid: T x C CTAs of 1024 threads in clusters of C (one cluster per row), position order only. Dynamic shared
// memory: this CTA's candidates, the gathered candidates / staged positions, the segment cache, the segment's
// slots, the masks of the keys above / in the threshold bin (kMasks: the write pass reads them instead of the
// scores).
template <int kMaxCl, bool kMasks>
__global__ void __launch_bounds__(kTopkThreads) indexer_topk_fast_kernel(IndexerTopkKernelParams p, FastArgs a) {
    extern __shared__ __align__(16) uint64_t dyn[];
    __shared__ TopkShared sh;
    const int sel_cap = a.sel_cap, cache_cap = a.cache_cap, slot_cap = a.slot_cap, min_seg = a.min_seg;
    uint64_t* sel = dyn;
    uint64_t* gat = dyn + sel_cap;
    float* vals = reinterpret_cast<float*>(dyn + 2 * static_cast<int64_t>(sel_cap));
    uint32_t* gtm = kMasks ? reinterpret_cast<uint32_t*>(vals + cache_cap + slot_cap) : nullptr;
    uint32_t* cdm = kMasks ? gtm + a.group_cap : nullptr;
    const int tid = threadIdx.x;
    if (tid == 0) {
        sh.kmin = sh.cmin = 0xffffffffu;
        sh.kmax = sh.cmax = 0;
        sh.count = sh.cta_greater = sh.cta_ties = sh.cand_before = 0;
    }
    for (int b = tid; b < kBins; b += kTopkThreads) sh.hist[0][b] = 0;
    pdl_wait();  // the scores and the limits come from earlier kernels
    pdl_trigger();
    cg::cluster_group cluster = cg::this_cluster();
    const unsigned rank = cluster.block_rank(), size = cluster.num_blocks();
    const int64_t t = blockIdx.x / size;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const int64_t n = qr.limit + 1;
    int64_t per = ((n + size - 1) / size + 31) / 32 * 32;
    per = per < min_seg ? min_seg : per;
    const int64_t begin = rank * per < n ? rank * per : n;
    const int len = static_cast<int>((begin + per < n ? begin + per : n) - begin);
    if (!p.position_order) __trap();  // the host launches position-order rows only
    if (n <= p.k) {                   // the same for the whole cluster: no barrier is left waiting
        write_all_positions(p, t, qr.request, begin, begin + len, n, rank == 0);
        return;
    }
    // A row within one segment: rank 0 works alone (block barriers only), the others leave.
    const bool single = size == 1 || n <= per;
    if (single && rank != 0) return;
    const TopkCluster c{cluster, rank,
                        sh,      single ? &sh : cluster.map_shared_rank(&sh, 0),
                        sel,     single ? sel : cluster.map_shared_rank(sel, 0),
                        single};
    const uint32_t k = static_cast<uint32_t>(p.k);
    const TopkSeg seg{p.scores + t * p.max_len + begin, vals, begin, len, len < cache_cap ? len : cache_cap};
    int32_t* seg_slots = len <= slot_cap ? reinterpret_cast<int32_t*>(vals + cache_cap) : nullptr;
    __syncthreads();  // sh initialised
    if (single && a.lean && n <= kLeanMaxLen) {
        lean_row_call(&sh, sel, sel_cap, p.scores + t * p.max_len, p.key_slots + qr.request * p.max_len,
                      static_cast<int>(n), k, p.positions + t * p.k, p.slots + t * p.k);
        return;
    }
    fast_load(sh, seg, vals, seg_slots != nullptr ? p.key_slots + qr.request * p.max_len + begin : nullptr, seg_slots);
    fast_sync(c, single);  // (1) every CTA's extremes
    uint32_t kmin = 0xffffffffu, kmax = 0;
#pragma unroll
    for (unsigned r = 0; r < kMaxCl; ++r) {
        if (r >= (single ? 1u : size)) continue;
        const TopkShared* o = rank_shared(c, single, r);
        const uint32_t lo = o->kmin, hi = o->kmax;
        kmin = lo < kmin ? lo : kmin;
        kmax = hi > kmax ? hi : kmax;
    }
    const ValueBins bins = row_bins(kmin, kmax);  // one value (kmin == kmax): every key in bin 0
#pragma unroll 4
    for (int i = tid; i < len; i += kTopkThreads) atomicAdd(&sh.hist[0][bins(seg[i])], 1u);
    fast_sync(c, single);  // (2) every CTA's histogram; nobody reads kmin / kmax of another CTA any more
    if (tid == 0) {        // the row's extremes, where the fallback's smem_threshold reads them (rank 0)
        sh.kmin = kmin;
        sh.kmax = kmax;
    }
    const DigitResult d0 = pick_digit(c, merged_hist<kMaxCl>(c, single), k);
    const uint32_t need = k - d0.above;
    const bool whole = d0.in_bin == need;
    gather_threshold_bin(sh, seg, bins, d0.digit, whole, &sh.count, sel, static_cast<uint32_t>(sel_cap), gtm, cdm);
    fast_sync(c, single);  // (3) every CTA's counts and candidates
    const RankCounts<kMaxCl> rc = rank_counts<kMaxCl>(c, single);
    if (rc.g_total != d0.above) __trap();                   // unreachable: the bins above d0 hold `above` keys
    if (!whole && rc.m > static_cast<uint32_t>(sel_cap)) {  // the same decision in every CTA
        radix_fallback(&sh, sel, single, seg.src, begin, len, k, p.key_slots + qr.request * p.max_len,
                       p.positions + t * p.k, p.slots + t * p.k);
        return;
    }
    uint64_t thc = 0;  // below every composite key: bin d0 taken whole
    if (whole) {
        if (!single) cluster.barrier_arrive();
        if (tid < kTopkWarps) sh.warp_sum[tid] += sh.warp_ties[tid];
    } else {
        thc = rank_candidates<kMaxCl>(c, single, seg, gat, rc, need);
    }
    __syncthreads();
    const uint32_t out_base = rc.g_before + (whole ? rc.e_before : sh.cand_before);
    fast_write(p, sh, seg, {bins, d0.digit, thc}, gtm, cdm, out_base, reinterpret_cast<int32_t*>(gat), seg_slots, t,
               qr.request);
    if (!single) cluster.barrier_wait();  // no CTA leaves while another may still read its shared memory
}

// The sizes and the dynamic shared memory of a launch at `cluster` CTAs per row (smem < 0: the buffers alone do not
// fit).
struct FastPlan {
    FastArgs args;
    int64_t smem;
};
// A CTA's largest segment at `cluster` CTAs per row.
int64_t widest_segment(const IndexerTopkKernelParams& p, int cluster) {
    const int64_t w = ((p.max_len + cluster - 1) / cluster + 31) / 32 * 32;
    const int64_t at_least = w < kFastMinSegment ? kFastMinSegment : w;
    return at_least < p.max_len ? at_least : p.max_len;
}

FastPlan fast_plan(const IndexerTopkKernelParams& p, int cluster, int64_t sel_cap, bool masks, bool lean,
                   int smem_optin) {
    const int64_t widest = widest_segment(p, cluster);
    const int64_t groups = masks ? (widest + 31) / 32 : 0;
    // 1 KB below the opt-in limit for the runtime's reserved shared memory and alignment.
    const int64_t budget =
        smem_optin - static_cast<int64_t>(sizeof(TopkShared)) - 1024 - 2 * sel_cap * 8 - 2 * groups * 4;
    if (budget < 0) return {{}, -1};
    const int64_t cache_cap = widest < budget / 16 * 4 ? widest : budget / 16 * 4;
    // The segment's slots too where they fit (kSlotPer per thread at most).
    const int64_t slot_cap = widest <= kSlotPer * kTopkThreads && budget - cache_cap * 4 >= widest * 4 ? widest : 0;
    const FastArgs a{static_cast<int>(sel_cap), static_cast<int>(cache_cap),       static_cast<int>(slot_cap),
                     static_cast<int>(groups),  static_cast<int>(kFastMinSegment), lean};
    return {a, 2 * sel_cap * 8 + (cache_cap + slot_cap + 2 * groups) * 4};
}

// Launches one instantiation (one shared-memory limit and one PDL flag each).
template <bool kMasks>
void fast_launch(const IndexerTopkKernelParams& p, int cluster, const FastPlan& plan, int max_smem,
                 cudaStream_t stream) {
    static SmemLimit limit;
    static std::atomic<bool> pdl_ok{true};
    auto* kernel = indexer_topk_fast_kernel<kTopkMaxCluster, kMasks>;
    limit.ensure(reinterpret_cast<const void*>(kernel), max_smem);
    launch_topk_cluster(kernel, p.num_tokens * cluster, cluster, plan.smem, stream, pdl_ok, p, plan.args);
}

// The write pass from the gather pass's masks from this many positions per CTA (H200, graph: B = 64 / 64K (32K per
// CTA) 25.4 vs 27.9 us from the bins, in a 128K bucket 26.8 vs 29.2; segments of <= 16K 0.1-0.8 us slower with
// masks: B = 64 / 4K 9.4 vs 9.1).
constexpr int64_t kMaskMinSegment = 32768;

}  // namespace

bool launch_indexer_topk_fast(const IndexerTopkKernelParams& p, cudaStream_t stream) {
    if (!p.position_order) return false;
    const int smem_optin = topk_smem_optin();
    const int64_t keep = p.k < p.max_len ? p.k : p.max_len;
    int64_t sel_cap = 2;  // even: the cache after the two u64 buffers stays 16-byte aligned
    while (sel_cap < keep) sel_cap <<= 1;
    int cluster = 1;
    while (cluster < kTopkMaxCluster && p.num_tokens * cluster * 2 <= num_sms() &&
           p.max_len / (cluster * 2) >= kFastMinSegment) {
        cluster *= 2;
    }
    const bool masks = widest_segment(p, cluster) >= kMaskMinSegment;
    const int max_smem = smem_optin - static_cast<int>(sizeof(TopkShared)) - 1024;
    // Lone rows on lean_row where the rows and their slots are 16-byte aligned.
    const auto aligned = [](const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15) == 0; };
    const bool lean = p.max_len % 4 == 0 && aligned(p.scores) && aligned(p.key_slots);
    const FastPlan plan = fast_plan(p, cluster, sel_cap, masks, lean, smem_optin);
    if (plan.smem < 0) return false;
    if (masks) {
        fast_launch<true>(p, cluster, plan, max_smem, stream);
    } else {
        fast_launch<false>(p, cluster, plan, max_smem, stream);
    }
    return true;
}

}  // namespace dsa::backend::cuda
