// Sampled rows: a cluster of kSampleCluster CTAs per row, each owning one vocab chunk (staged in shared memory),
// partial results exchanged through distributed shared memory. Double max; weights exp((z - m) / T) by a short
// table-driven double exp (DSA_SAMPLING_EXACT_EXP=1 or legacy: the library's exp), in double and fixed point; the
// top-k / top-p cut is a radix select over an order-preserving 64-bit key of the edited logit (11/11/10-bit
// digits, count + fixed-point mass histograms); min-p is a weight threshold; the draw walks the kept ids in
// increasing order as the CPU sampler. The draw's weights are also summed per tile of kTile ids (shared memory;
// built by the pass that totals them), so the id-order scan starts at the tile holding the target; rows without a
// cut or min-p reuse the sum-exp pass's totals and skip the draw's own pass. DSA_SAMPLING_LEGACY=1: double exp,
// full scans, no tile sums.
#include "backend/cuda/sampling_common.cuh"

namespace dsa::backend::cuda::sampling {
namespace {

// ---- keys: larger logit -> larger key. An f32 logit's key is its order-preserving bits << 32; an edited (double)
// logit's high half is that of its f32 rounding down and the low half the order-preserving bits of the (exact)
// remainder rounded down to f32, so f32 values and edited values order together and equal values share a key.
__device__ __forceinline__ uint32_t ordered(float f) {
    const uint32_t u = __float_as_uint(f == 0.0f ? 0.0f : f);  // -0 and +0 are one value
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ uint64_t key_f32(float f) { return static_cast<uint64_t>(ordered(f)) << 32; }
__device__ uint64_t key_of(double z) {
    const float hi = __double2float_rd(z);
    const double rem = z - static_cast<double>(hi);  // >= 0 and exact; NaN for z = -inf
    const uint32_t lo = rem > 0.0 ? __float_as_uint(__double2float_rd(rem)) : 0u;
    return key_f32(hi) | lo;
}
__device__ __forceinline__ uint64_t key_fast(double z, bool edited) {
    return edited ? key_of(z) : key_f32(static_cast<float>(z));
}

// ==== sampled rows ====
struct ArgMax {
    double v;
    int64_t id;
};
struct ArgMaxOp {
    __device__ ArgMax operator()(const ArgMax& a, const ArgMax& b) const {
        return (b.v > a.v || (b.v == a.v && b.id < a.id)) ? b : a;
    }
};

struct Hist {
    uint64_t mass[kBins];  // fixed-point weight
    uint32_t cnt[kBins];
    uint32_t nz[kBins / 32];  // bit per bin: some id's key has a nonzero low half (an edited value between f32s)
};

struct BinTot {
    uint64_t cnt, mass;
};
struct SelMsg {  // the bin where the cut falls, with the counts / masses of the bins above it (this level)
    uint64_t bin, c_ex, m_ex, cnt, mass, nz;
};

struct Exchange {
    ArgMax am[kCluster];
    double sum[kCluster];
    uint64_t fixed[kCluster];
    BinTot slice[kCluster];
    SelMsg sel;
    uint64_t ties[kCluster];
    int64_t tie_id;
    uint64_t kept[kCluster];
};

struct RowStats {
    double m;           // maximum edited logit
    int64_t best;       // its lowest id
    double sum;         // sum of the weights exp((z - m) / T)
    uint64_t total;     // sum of the fixed-point weights
    double mass_scale;  // fixed-point scale
    bool legacy;        // round-1 histogram adds
    bool exact_exp;     // weights by the library's double exp
    const double* t64;  // 2^(j / 64), j < 64 (shared memory)
};

// exp(x) for x <= 0: x = (64 q + j) ln2 / 64 + r with |r| <= ln2 / 128 (Cody-Waite), 2^q 2^(j/64) (t64) times a
// degree-5 polynomial of r: a few ulp of the library's exp at ~10 double operations instead of ~25; exactly 1 at
// x = 0; 0 below -40 (where a fixed-point weight is 0 anyway: 2^-45 resolution).
__device__ __forceinline__ double exp_neg(double x, const double* t64) {
    if (!(x >= -40.0)) return 0.0;  // also -inf (masked ids)
    constexpr double kInvStep = 0x1.71547652b82fep+6;                        // 64 / ln 2
    constexpr double kStepHi = 0x1.62e42fee00000p-7, kStepLo = 0x1.a39ef35793c76p-39;  // ln 2 / 64, split
    // rint(x * kInvStep) and its int without the slow F2F / F2I conversions: |x * kInvStep| < 2^51, so adding
    // 1.5 * 2^52 rounds it to the nearest integer (ties to even, as rint) and leaves that integer in the low word.
    constexpr double kShifter = 0x1.8p52;
    const double shifted = __dadd_rn(__dmul_rn(x, kInvStep), kShifter);
    const int k = __double2loint(shifted);
    const double kd = __dsub_rn(shifted, kShifter);
    double r = fma(-kd, kStepHi, x);
    r = fma(-kd, kStepLo, r);
    double poly = fma(r, 1.0 / 120.0, 1.0 / 24.0);
    poly = fma(poly, r, 1.0 / 6.0);
    poly = fma(poly, r, 0.5);
    poly = fma(poly, r, 1.0);
    poly = fma(poly, r, 1.0);
    const double scale = __longlong_as_double(static_cast<long long>(1023 + (k >> 6)) << 52);  // 2^q, q >= -58
    return t64[k & 63] * poly * scale;
}

// exp((z - m) / T) <= 1; every pass uses this same function, so the passes' fixed-point sums agree exactly.
__device__ __forceinline__ double weight(const Chunk& c, const RowStats& s, double z) {
    const double x = (z - s.m) * c.inv_t;
    return s.exact_exp ? exp(x) : exp_neg(x, s.t64);
}
__device__ __forceinline__ uint64_t fixed_of(const RowStats& s, double w) { return __double2ull_rn(w * s.mass_scale); }

// The cut: keep ids with key > v and, of the g ids with key == v, the first `take` in id order.
struct Cut {
    bool all = true;  // no cut
    uint64_t v = 0, take = 0, g = 0, c_kept = 0, m_kept = 0;
};
// The cut falls at the first rank (key descending, id ascending) where the count reaches k or the mass exceeds
// `mass`; kNone switches a limit off.
struct Limits {
    uint64_t k, mass;
    __device__ bool met(uint64_t c, uint64_t m) const { return c >= k || (mass != kNone && m > mass); }
};

__device__ __forceinline__ int level_shift(int level) {
    const int l = level % 3;
    return (level < 3 ? 32 : 0) + (l == 0 ? 21 : (l == 1 ? 10 : 0));
}
__device__ __forceinline__ int level_width(int level) { return level % 3 == 2 ? 10 : 11; }

// *cell += v through two native 32-bit shared atomics (a 64-bit one is a compare-and-swap loop): the low word's
// carry goes into the high word with it. Whole-word integer sums commute, so the total is exact in any order.
__device__ __forceinline__ void add_u64_shared(uint64_t* cell, uint64_t v) {
    uint32_t* w = reinterpret_cast<uint32_t*>(cell);  // little endian: w[0] low, w[1] high
    const uint32_t lo = static_cast<uint32_t>(v), old = atomicAdd(&w[0], lo);
    const uint32_t hi = static_cast<uint32_t>(v >> 32) + (old + lo < old ? 1u : 0u);
    if (hi != 0) atomicAdd(&w[1], hi);
}

// ---- per-tile sums of the draw's weights: tile k holds the chunk's ids [k * kTile, (k + 1) * kTile), one scan step.
constexpr int kTile = kThreads * kDrawItems;
struct Tiles {
    uint64_t* sum = nullptr;  // [n] in shared memory (null: no tile sums, full scans)
    int64_t n = 0;
};
// Bitmap words in dynamic shared memory, even so that the tile sums after them are 8-byte aligned.
__host__ __device__ __forceinline__ int64_t bitmap_words(int64_t chunk) { return (chunk / 32 + 1) / 2 * 2; }

// Zeroes the tile sums; the caller's next block-wide barrier orders it before tiles_add.
__device__ void tiles_clear(const Tiles& tl) {
    if (tl.sum == nullptr) return;
    for (int64_t k = threadIdx.x; k < tl.n; k += kThreads) tl.sum[k] = 0;
    __syncthreads();
}

// A thread's running sum of its unedited ids' weights in the current tile. for_each_z's unedited loop steps by
// kThreads and kTile is a multiple of it, so an iteration's ids all lie in one tile (block-uniform index): the
// warp's sum is reduced and added once per tile (tiles_flush), not once per id.
struct TileAcc {
    int tile = -1;  // chunks are below 2^31 tiles
    uint64_t sum = 0;
};

// Adds this warp's register sums to their tile; warp-collective (acc.tile is block-uniform).
__device__ void tiles_flush(const Tiles& tl, TileAcc& acc) {
    if (tl.sum == nullptr || acc.tile < 0) return;
    uint64_t warp = acc.sum;
    for (int off = 16; off > 0; off >>= 1) warp += __shfl_xor_sync(kFullMask, warp, off);
    if ((threadIdx.x & 31) == 0 && warp != 0) add_u64_shared(&tl.sum[acc.tile], warp);
    acc.tile = -1, acc.sum = 0;
}

// Adds weight f of this lane's id t (f = 0 on invalid lanes) to its tile; warp-collective (for_each_z callbacks).
// The edit loop (`edited`, warp-uniform) adds per lane; else f goes into the register sum, flushed when the
// iteration's tile changes. The caller flushes once more after for_each_z, before its next block-wide barrier.
__device__ void tiles_add(const Tiles& tl, TileAcc& acc, const Chunk& c, bool edited, bool valid, int64_t t,
                          uint64_t f) {
    if (tl.sum == nullptr) return;
    if (edited) {
        if (valid && f != 0) add_u64_shared(&tl.sum[(t - c.begin) / kTile], f);
        return;
    }
    const int k = static_cast<int>((t - c.begin) / kTile);  // the same for every lane of the iteration
    if (k != acc.tile) {
        tiles_flush(tl, acc);
        acc.tile = k;
    }
    acc.sum += f;
}
static_assert(kTile % kThreads == 0, "an unedited iteration's ids lie in one tile");

// Adds this warp's matching ids to the histogram. Default: the lanes of one bin found by a single match.any, the
// group's leader adds its count, every lane its own mass (add_u64_shared). Round-1 path (legacy): a loop over the
// warp's distinct bins, each with a shuffle reduction of its mass (latency-bound: ~20 bins per warp at level 0).
__device__ void hist_add_legacy(Hist& h, bool match, uint32_t d, uint64_t fixed, bool nz);
__device__ void hist_add(Hist& h, bool match, uint32_t d, uint64_t fixed, bool nz, bool legacy) {
    if (legacy) return hist_add_legacy(h, match, d, fixed, nz);
    const unsigned group = __match_any_sync(kFullMask, match ? d : ~0u);
    if (!match) return;
    const int lane = static_cast<int>(threadIdx.x & 31);
    if (lane == __ffs(group) - 1) atomicAdd(&h.cnt[d], static_cast<uint32_t>(__popc(group)));
    if (fixed != 0) add_u64_shared(&h.mass[d], fixed);
    if (nz) atomicOr(&h.nz[d >> 5], 1u << (d & 31));
}

__device__ void hist_add_legacy(Hist& h, bool match, uint32_t d, uint64_t fixed, bool nz) {
    const int lane = static_cast<int>(threadIdx.x & 31);
    unsigned pending = __ballot_sync(kFullMask, match);
    while (pending != 0) {
        const int leader = __ffs(pending) - 1;
        const uint32_t dl = __shfl_sync(kFullMask, d, leader);
        const bool in = match && d == dl;
        const unsigned group = __ballot_sync(kFullMask, in), nzg = __ballot_sync(kFullMask, in && nz);
        uint64_t m = in ? fixed : 0;
        for (int off = 16; off > 0; off >>= 1) m += __shfl_xor_sync(kFullMask, m, off);
        if (lane == leader) {
            atomicAdd(&h.cnt[dl], static_cast<uint32_t>(__popc(group)));
            atomicAdd(reinterpret_cast<unsigned long long*>(&h.mass[dl]), static_cast<unsigned long long>(m));
            if (nzg != 0) atomicOr(&h.nz[dl >> 5], 1u << (dl & 31));
        }
        pending &= ~group;
    }
}

__device__ void hist_clear(Hist& h) {
    for (int b = threadIdx.x; b < kBins; b += kThreads) h.mass[b] = 0, h.cnt[b] = 0;
    if (threadIdx.x < kBins / 32) h.nz[threadIdx.x] = 0;
    __syncthreads();
}

__device__ void hist_fill(Hist& h, const Chunk& c, const RowStats& s, int level, uint64_t prefix, uint64_t pmask) {
    const int shift = level_shift(level);
    const uint64_t dmask = (1ull << level_width(level)) - 1;
    for_each_z(c, [&](bool valid, int64_t, double z, bool edited) {
        const uint64_t key = valid ? key_fast(z, edited) : 0;
        const bool match = valid && (key & pmask) == prefix;
        const uint64_t fixed = match ? fixed_of(s, weight(c, s, z)) : 0;
        hist_add(h, match, static_cast<uint32_t>((key >> shift) & dmask), fixed, (key & 0xffffffffull) != 0,
                 s.legacy);
    });
}

// The radix select of the cut over the cluster; `ready`: level 0's histogram is already filled.
__device__ Cut select_cut(cg::cluster_group& cl, Hist& h, Exchange& xs, const Chunk& c, const RowStats& s, Limits lim,
                          bool ready) {
    const unsigned rank = cl.block_rank();
    uint64_t prefix = 0, pmask = 0, c_above = 0, m_above = 0;
    for (int level = 0; level < kLevels; ++level) {
        const int shift = level_shift(level);
        if (level > 0 || !ready) {
            hist_clear(h);
            hist_fill(h, c, s, level, prefix, pmask);
        }
        cl.sync();  // every histogram complete
        // Thread i reduces bin rank * kThreads + (kThreads - 1 - i): thread order = descending bins.
        const int b = static_cast<int>(rank) * kThreads + (kThreads - 1 - static_cast<int>(threadIdx.x));
        BinTot t{0, 0};
        uint64_t nz = 0;
        for (unsigned q = 0; q < kCluster; ++q) {
            const Hist* hq = cl.map_shared_rank(&h, q);
            t.cnt += hq->cnt[b], t.mass += hq->mass[b], nz |= (hq->nz[b >> 5] >> (b & 31)) & 1u;
        }
        BinTot slice{0, 0};
        const uint64_t c_ex = block_exclusive_sum(t.cnt, slice.cnt), m_ex = block_exclusive_sum(t.mass, slice.mass);
        put_all(cl, xs.slice, slice);
        cl.sync();  // slice totals everywhere; no histogram is read after this
        uint64_t c_hi = 0, m_hi = 0, c_all = 0, m_all = 0;
        for (unsigned q = 0; q < kCluster; ++q) {
            if (q > rank) c_hi += xs.slice[q].cnt, m_hi += xs.slice[q].mass;
            c_all += xs.slice[q].cnt, m_all += xs.slice[q].mass;
        }
        const bool cut_here = lim.met(c_above + c_all, m_above + m_all);  // same in every CTA
        const uint64_t ce = c_above + c_hi + c_ex, me = m_above + m_hi + m_ex;
        if (cut_here && t.cnt > 0 && !lim.met(ce, me) && lim.met(ce + t.cnt, me + t.mass)) {
            const SelMsg msg{static_cast<uint64_t>(b), c_hi + c_ex, m_hi + m_ex, t.cnt, t.mass, nz};
            for (unsigned q = 0; q < kCluster; ++q) *cl.map_shared_rank(&xs.sel, q) = msg;
        }
        cl.sync();                    // the chosen bin everywhere
        if (!cut_here) return Cut{};  // the limits are never reached: keep everything
        const SelMsg sel = xs.sel;
        c_above += sel.c_ex, m_above += sel.m_ex;
        prefix |= sel.bin << shift;
        pmask |= ((1ull << level_width(level)) - 1) << shift;
        if (level == kLevels - 1 || (level == 2 && sel.nz == 0)) {  // the key is complete: one value
            Cut cut;
            cut.all = false;
            cut.v = prefix, cut.g = sel.cnt;
            const uint64_t wv = sel.mass / sel.cnt;
            const uint64_t t_k = lim.k == kNone ? sel.cnt : lim.k - c_above;
            const uint64_t t_p = lim.mass == kNone || wv == 0 ? sel.cnt : (lim.mass - m_above) / wv + 1;
            cut.take = min(sel.cnt, min(t_k, t_p));
            cut.c_kept = c_above + cut.take;
            cut.m_kept = m_above + (cut.take == sel.cnt ? sel.mass : cut.take * wv);
            return cut;
        }
    }
    return Cut{};  // not reached: level kLevels - 1 completes the key
}

// The first id of the chunk (increasing order) from id c.begin + start (a multiple of kTile) on at which the running
// sum of f(t) exceeds target; -1 if none.
template <class F>
__device__ int64_t scan_ids(const Chunk& c, uint64_t target, F f, int64_t start = 0) {
    uint64_t base = 0;
    const int64_t n = c.end - c.begin;
    for (int64_t i0 = start; i0 < n; i0 += static_cast<int64_t>(kThreads) * kDrawItems) {
        const int64_t first = i0 + static_cast<int64_t>(threadIdx.x) * kDrawItems;
        uint64_t w[kDrawItems], mine = 0;
#pragma unroll
        for (int j = 0; j < kDrawItems; ++j) {
            w[j] = first + j < n ? f(c.begin + first + j) : 0;
            mine += w[j];
        }
        uint64_t tile = 0;
        uint64_t cum = base + block_exclusive_sum(mine, tile);
        int64_t hit = INT64_MAX;
#pragma unroll
        for (int j = 0; j < kDrawItems; ++j) {
            cum += w[j];
            if (hit == INT64_MAX && w[j] > 0 && cum > target) hit = c.begin + first + j;
        }
        hit = block_reduce(hit, MinOp());
        if (hit != INT64_MAX) return hit;
        base += tile;
    }
    return -1;
}

// The id of the cut's take-th tie (id order) when the cut splits its group of equal keys; INT64_MAX otherwise.
__device__ int64_t last_tie(cg::cluster_group& cl, Exchange& xs, const Chunk& c, const Cut& cut) {
    if (cut.all || cut.take >= cut.g) return INT64_MAX;
    uint64_t n = 0;
    for_each_z(c, [&](bool valid, int64_t, double z, bool edited) { n += valid && key_fast(z, edited) == cut.v; });
    put_all(cl, xs.ties, block_reduce(n, SumOp()));
    cl.sync();
    const unsigned rank = cl.block_rank();
    uint64_t before = 0;
    for (unsigned q = 0; q < rank; ++q) before += xs.ties[q];
    if (before < cut.take && cut.take <= before + xs.ties[rank]) {
        const int64_t id =
            scan_ids(c, cut.take - before - 1, [&](int64_t t) -> uint64_t { return key_of(z_at(c, t)) == cut.v; });
        if (threadIdx.x == 0) {
            for (unsigned q = 0; q < kCluster; ++q) *cl.map_shared_rank(&xs.tie_id, q) = id;
        }
    }
    cl.sync();
    return xs.tie_id;
}

struct Kept {
    Cut cut;
    int64_t last_tie;
    double min_p;  // weight threshold (the maximum's weight is 1)
    __device__ bool by_rank(int64_t t, uint64_t key) const {
        return cut.all || key > cut.v || (key == cut.v && t <= last_tie);
    }
    __device__ bool by_weight(double w) const { return w > 0.0 && w >= min_p; }
};

// The tile holding unit `target` of this CTA's draw weight and (base) the weight of the tiles before it.
__device__ int64_t find_tile(const Tiles& tl, uint64_t target, uint64_t& base) {
    base = 0;
    if (tl.sum == nullptr) return 0;
    for (int64_t k = 0; k < tl.n; ++k) {
        if (target < base + tl.sum[k]) return k;
        base += tl.sum[k];
    }
    base = 0;  // not reached (the tiles sum to the CTA's total); a scan from the first id is always right
    return 0;
}

// The draw: the first kept id (increasing order) whose cumulative fixed-point weight exceeds u x the kept total.
// Nothing cut and no min-p, with `stats_tiles` (row_stats built the tile sums): the kept weights are the sum-exp
// pass's (row_stats' per-CTA totals and tile sums).
__device__ void draw(cg::cluster_group& cl, Exchange& xs, const Chunk& c, const RowStats& s, const Kept& kept,
                     const Tiles& tl, bool stats_tiles, SampleOutDesc& out) {
    const bool all_kept = stats_tiles && tl.sum != nullptr && kept.cut.all && kept.min_p <= 0.0;
    if (!all_kept) {
        tiles_clear(tl);
        uint64_t mine = 0;
        TileAcc acc;
        for_each_z(c, [&](bool valid, int64_t t, double z, bool edited) {
            uint64_t f = 0;
            if (valid && kept.by_rank(t, key_fast(z, edited))) {
                const double w = weight(c, s, z);
                if (kept.by_weight(w)) f = fixed_of(s, w);
            }
            mine += f;
            tiles_add(tl, acc, c, edited, valid, t, f);
        });
        tiles_flush(tl, acc);
        put_all(cl, xs.kept, block_reduce(mine, SumOp()));
        cl.sync();  // no remote access after this
    }  // else: row_stats' last cluster.sync was the last remote access
    const uint64_t* sums = all_kept ? xs.fixed : xs.kept;
    const unsigned rank = cl.block_rank();
    uint64_t before = 0, total = 0;
    for (unsigned q = 0; q < kCluster; ++q) {
        if (q < rank) before += sums[q];
        total += sums[q];
    }
    // total > 0: the maximum (weight 1) is always kept.
    const uint64_t target =
        min(static_cast<uint64_t>(__double2ull_rd(c.r->uniform * static_cast<double>(total))), total - 1);
    if (target < before || target >= before + sums[rank]) return;
    uint64_t base = 0;
    const int64_t tile = find_tile(tl, target - before, base);
    int64_t hit = scan_ids(
        c, target - before - base,
        [&](int64_t t) -> uint64_t {
            const double z = z_at(c, t);
            if (!kept.by_rank(t, key_of(z))) return uint64_t{0};
            const double w = weight(c, s, z);
            return kept.by_weight(w) ? fixed_of(s, w) : uint64_t{0};
        },
        tile * kTile);
    if (threadIdx.x != 0) return;
    if (hit < 0) hit = s.best;  // not reached: the scan sums the same weights
    const double z = z_at(c, hit);
    out = SampleOutDesc{static_cast<int32_t>(hit), 0, (z - s.m) * c.inv_t - log(s.sum)};
}

// Max, sum-exp (and level 0 of the first select when `fill`) over the cluster.
// Also sums the weights per tile (tl.sum != null; the tiles are zero on entry).
__device__ bool row_stats(cg::cluster_group& cl, Exchange& xs, Hist& h, const Chunk& c, bool fill, double scale,
                          const Tiles& tl, RowStats& s) {
    ArgMax am{neg_inf(), INT64_MAX};
    for_each_z(c, [&](bool valid, int64_t t, double z, bool) {
        if (valid) am = ArgMaxOp()(am, ArgMax{z, t});
    });
    put_all(cl, xs.am, block_reduce(am, ArgMaxOp()));
    if (fill) hist_clear(h);
    cl.sync();
    am = xs.am[0];
    for (int q = 1; q < kCluster; ++q) am = ArgMaxOp()(am, xs.am[q]);
    s.m = am.v, s.best = am.id, s.mass_scale = scale;
    // No finite maximum (every logit masked, +inf present, or max / T overflows): the CPU sampler decides.
    if (!isfinite(am.v) || !isfinite(am.v * c.inv_t)) return false;
    double sum = 0.0;
    uint64_t fixed = 0;
    const int shift = level_shift(0);
    TileAcc acc;
    for_each_z(c, [&](bool valid, int64_t t, double z, bool edited) {
        const double w = valid ? weight(c, s, z) : 0.0;
        const uint64_t f = fixed_of(s, w);
        sum += w, fixed += f;
        tiles_add(tl, acc, c, edited, valid, t, f);
        if (fill) {
            const uint64_t key = valid ? key_fast(z, edited) : 0;
            hist_add(h, valid, static_cast<uint32_t>(key >> shift) & (kBins - 1), f, (key & 0xffffffffull) != 0,
                     s.legacy);
        }
    });
    tiles_flush(tl, acc);
    put_all(cl, xs.sum, block_reduce(sum, SumOp()));
    put_all(cl, xs.fixed, block_reduce(fixed, SumOp()));
    cl.sync();
    s.sum = 0.0, s.total = 0;
    for (int q = 0; q < kCluster; ++q) s.sum += xs.sum[q], s.total += xs.fixed[q];
    return true;
}

// kMinBlocks 1: up to 255 registers (no spills; small batches), 2: two CTAs per SM (at most 128 registers).
template <int kMinBlocks>
__global__ void __cluster_dims__(kCluster, 1, 1)
    __launch_bounds__(kThreads, kMinBlocks) sampled_kernel(SamplingKernelParams p) {
    extern __shared__ float4 sampled_smem[];
    __shared__ Hist hist;
    __shared__ Exchange xs;
    __shared__ double t64[64];
    if (threadIdx.x < 64) t64[threadIdx.x] = exp2(static_cast<double>(threadIdx.x) / 64.0);  // setup_chunk syncs
    cg::cluster_group cl = cg::this_cluster();
    cl.sync();  // every CTA of the cluster has started before any writes into another's shared memory
    const unsigned rank = cl.block_rank();
    const SampleRowDesc& r = p.sampled_rows[blockIdx.x / kCluster];
    float* stage = p.staged ? reinterpret_cast<float*>(sampled_smem) : nullptr;
    uint32_t* bitmap = reinterpret_cast<uint32_t*>(sampled_smem) + (p.staged ? p.chunk : 0);
    const Chunk c = setup_chunk(p, r, rank, bitmap, stage);
    SampleOutDesc& out = p.out[r.out_index];
    Tiles tl;
    if (!p.legacy) {
        tl.sum = reinterpret_cast<uint64_t*>(bitmap + bitmap_words(p.chunk));
        tl.n = (c.end - c.begin + kTile - 1) / kTile;
    }
    tiles_clear(tl);

    const bool by_k = r.top_k > 0 && r.top_k < p.vocab, by_p = r.top_p<1.0, by_min_p = r.min_p> 0.0;
    RowStats s;
    s.legacy = p.legacy != 0;
    s.exact_exp = p.legacy != 0 || p.exact_exp != 0;
    s.t64 = t64;
    // Tile sums in the sum-exp pass only for rows whose draw reuses them (no cut, no min-p); others build them in
    // the draw's pass.
    const bool stats_tiles = !(by_k || by_p || by_min_p);
    if (!row_stats(cl, xs, hist, c, by_k || by_p, p.mass_scale, stats_tiles ? tl : Tiles{}, s)) {
        if (rank == 0 && threadIdx.x == 0) out = SampleOutDesc{0, 1, 0.0};
        return;
    }
    const uint64_t k = by_k ? static_cast<uint64_t>(r.top_k) : kNone;
    Cut cut;
    if (by_p && by_min_p) {  // top-p judged after top-k's renormalisation
        const Cut top_k = by_k ? select_cut(cl, hist, xs, c, s, Limits{k, kNone}, true) : Cut{};
        const double ref = static_cast<double>(top_k.all ? s.total : top_k.m_kept);
        cut = select_cut(cl, hist, xs, c, s, Limits{k, __double2ull_rd(r.top_p * ref)}, !by_k);
    } else if (by_k || by_p) {  // joint: both limits on the same distribution
        const uint64_t mass = by_p ? __double2ull_rd(r.top_p * static_cast<double>(s.total)) : kNone;
        cut = select_cut(cl, hist, xs, c, s, Limits{k, mass}, true);
    }
    const Kept kept{cut, last_tie(cl, xs, c, cut), by_min_p ? r.min_p : 0.0};
    draw(cl, xs, c, s, kept, tl, stats_tiles, out);
}

template <int kMinBlocks>
void launch_sampled_as(const SamplingKernelParams& p, int64_t smem, cudaStream_t stream) {
    static int64_t granted[kMaxDevices] = {};
    ensure_smem(reinterpret_cast<const void*>(sampled_kernel<kMinBlocks>), smem, granted);
    sampled_kernel<kMinBlocks><<<static_cast<unsigned>(p.num_sampled * kCluster), kThreads,
                                 static_cast<size_t>(smem), stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH("sampled_kernel");
}

}  // namespace

void launch_sampled(SamplingKernelParams p, cudaStream_t stream) {
    // The opt-in shared memory per block left after the kernel's static shared memory, and the SM count (asked once).
    static const int64_t spare = [] {
        int device = 0, optin = 0;
        DSA_CUDA_CHECK(cudaGetDevice(&device));
        DSA_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
        cudaFuncAttributes a1{}, a2{};
        DSA_CUDA_CHECK(cudaFuncGetAttributes(&a1, sampled_kernel<1>));
        DSA_CUDA_CHECK(cudaFuncGetAttributes(&a2, sampled_kernel<2>));
        return static_cast<int64_t>(optin) - static_cast<int64_t>(std::max(a1.sharedSizeBytes, a2.sharedSizeBytes));
    }();
    static const int64_t sms = [] {
        int device = 0, n = 0;
        DSA_CUDA_CHECK(cudaGetDevice(&device));
        DSA_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
        return static_cast<int64_t>(n);
    }();
    const int64_t bitmap_bytes = bitmap_words(p.chunk) * static_cast<int64_t>(sizeof(uint32_t));
    const int64_t tile_bytes = p.legacy ? 0 : (p.chunk + kTile - 1) / kTile * static_cast<int64_t>(sizeof(uint64_t));
    const int64_t stage_bytes = p.chunk * static_cast<int64_t>(sizeof(float));
    p.staged = stage_bytes + bitmap_bytes + tile_bytes <= spare ? 1 : 0;
    const int64_t smem = (p.staged ? stage_bytes : 0) + bitmap_bytes + tile_bytes;
    // One CTA per SM fits every row at once: the spill-free build; else two per SM (the round-1 build).
    if (!p.legacy && p.num_sampled * kCluster <= sms)
        launch_sampled_as<1>(p, smem, stream);
    else
        launch_sampled_as<2>(p, smem, stream);
}

}  // namespace dsa::backend::cuda::sampling
