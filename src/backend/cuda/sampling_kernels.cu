// Batched sampling, one CTA of 512 threads per row, every value in double precision with the CPU sampler's
// operations (explicit _rn intrinsics where a fused multiply-add would change a rounding), so greedy picks the
// same id and a draw differs only when the uniform falls within rounding of a cumulative boundary. The top-k /
// top-p cut is the first rank (probability descending, id ascending) where the count or mass crosses a limit,
// found by a radix select over the probabilities' bit patterns (9-bit digits, warp-aggregated shared
// histograms, stopping once the chosen bin holds one value); masses are 2^62 fixed point, so they are exact.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/sampling_kernels.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kDigitBits = 9;
constexpr int kBins = 1 << kDigitBits;
constexpr int kThreads = kBins;  // one histogram bin per thread (512 threads leave 128 registers each)
constexpr int kDrawItems = 8;    // consecutive ids per thread in the draw's scan
constexpr double kFixedScale = 4611686018427387904.0;  // 2^62
constexpr unsigned kFullMask = 0xffffffffu;

__device__ double neg_inf() { return __longlong_as_double(static_cast<long long>(0xfff0000000000000ull)); }

__device__ uint64_t to_fixed(double p) { return __double2ull_rz(p * kFixedScale); }
__device__ uint64_t key_of(double p) { return static_cast<uint64_t>(__double_as_longlong(p)); }

// ---- block-wide helpers (each with its own scratch; every thread gets the result) ----
struct ArgMax {
    double v;
    int32_t id;
};
struct ArgMaxOp {
    __device__ ArgMax operator()(const ArgMax& a, const ArgMax& b) const {
        return (b.v > a.v || (b.v == a.v && b.id < a.id)) ? b : a;
    }
};

__device__ ArgMax block_argmax(ArgMax v) {
    using R = cub::BlockReduce<ArgMax, kThreads>;
    __shared__ typename R::TempStorage tmp;
    __shared__ ArgMax result;
    ArgMax r = R(tmp).Reduce(v, ArgMaxOp());
    if (threadIdx.x == 0) result = r;
    __syncthreads();
    ArgMax out = result;
    __syncthreads();
    return out;
}

template <class T, class Op>
__device__ T block_reduce(T v, Op op) {
    using R = cub::BlockReduce<T, kThreads>;
    __shared__ typename R::TempStorage tmp;
    __shared__ T result;
    T r = R(tmp).Reduce(v, op);
    if (threadIdx.x == 0) result = r;
    __syncthreads();
    T out = result;
    __syncthreads();
    return out;
}

struct SumOp {
    template <class T>
    __device__ T operator()(const T& a, const T& b) const {
        return a + b;
    }
};
struct MinOp {
    template <class T>
    __device__ T operator()(const T& a, const T& b) const {
        return b < a ? b : a;
    }
};
struct MaxOp {
    template <class T>
    __device__ T operator()(const T& a, const T& b) const {
        return b > a ? b : a;
    }
};

// Exclusive prefix sum over the threads in order; `total` = the sum of all.
template <class T>
__device__ T block_exclusive_sum(T v, T& total) {
    using S = cub::BlockScan<T, kThreads>;
    __shared__ typename S::TempStorage tmp;
    T out;
    S(tmp).ExclusiveSum(v, out, total);
    __syncthreads();
    return out;
}

// ---- the row's values after the sparse edits (API_SPEC §8.2 order, as engine::apply_penalties) ----
struct RowView {
    const float* x;
    int64_t vocab;
    const uint32_t* bitmap;  // bit t set: token t has an edit entry
    const SampleEditDesc* edits;
    int32_t edit_begin, edit_end;
    SampleRowDesc r;
};

__device__ double sanitized(float x) { return isnan(x) ? neg_inf() : static_cast<double>(x); }

__device__ double edited_value(const RowView& v, const SampleEditDesc& e) {
    double z = sanitized(v.x[e.token]);
    const double n = static_cast<double>(e.count);
    if (e.count > 0) z = __dsub_rn(z, __dmul_rn(v.r.frequency_penalty, n));
    if (e.masked) z = neg_inf();
    if (e.count > 0) z = __dsub_rn(z, v.r.presence_penalty);
    if (e.count > 0 && v.r.repetition_penalty != 1.0) {
        z = z > 0 ? __ddiv_rn(z, v.r.repetition_penalty) : __dmul_rn(z, v.r.repetition_penalty);
    }
    return __dadd_rn(z, e.bias);
}

// The value the sampler scales: z (greedy) or z / temperature.
__device__ double scaled(const RowView& v, double z) { return v.r.greedy ? z : __ddiv_rn(z, v.r.temperature); }

__device__ bool is_edited(const RowView& v, int64_t t) { return (v.bitmap[t >> 5] >> (t & 31)) & 1u; }

// f(t, value) for every token of the row (this thread's share), unedited tokens first; the scaled value (z or
// z / temperature) unless kRaw.
template <bool kRaw = false, class F>
__device__ void for_each_value(const RowView& v, F f) {
    for (int64_t t = threadIdx.x; t < v.vocab; t += kThreads) {
        if (is_edited(v, t)) continue;
        const double z = sanitized(v.x[t]);
        f(t, kRaw ? z : scaled(v, z));
    }
    for (int32_t e = v.edit_begin + static_cast<int32_t>(threadIdx.x); e < v.edit_end; e += kThreads) {
        const double z = edited_value(v, v.edits[e]);
        f(v.edits[e].token, kRaw ? z : scaled(v, z));
    }
}

// Scaled value of one token (any thread; a linear search of the row's edits when it has one).
__device__ double value_of(const RowView& v, int32_t t) {
    if (is_edited(v, t)) {
        for (int32_t e = v.edit_begin; e < v.edit_end; ++e) {
            if (v.edits[e].token == t) return scaled(v, edited_value(v, v.edits[e]));
        }
    }
    return scaled(v, sanitized(v.x[t]));
}

__device__ void build_bitmap(uint32_t* bitmap, const RowView& v) {
    const int64_t words = (v.vocab + 31) / 32;
    for (int64_t w = threadIdx.x; w < words; w += kThreads) bitmap[w] = 0;
    __syncthreads();
    for (int32_t e = v.edit_begin + static_cast<int32_t>(threadIdx.x); e < v.edit_end; e += kThreads) {
        const int32_t t = v.edits[e].token;
        atomicOr(&bitmap[t >> 5], 1u << (t & 31));
    }
    __syncthreads();
}

// ---- the cut: keep ids with key > v, and of the ids with key == v the first `take` (id order) ----
struct Cut {
    uint64_t v = 0;
    uint64_t take = ~0ull;  // ~0: every tie (and with v = 0: the whole row)
    uint64_t c_above = 0;   // ids with key > v
    uint64_t m_above = 0;   // their fixed-point mass
    uint64_t w_v = 0;       // fixed-point mass of one id at v
    uint64_t ties = 0;      // ids with key == v
    __device__ uint64_t kept() const { return take == ~0ull ? ~0ull : c_above + take; }
    __device__ uint64_t kept_mass(uint64_t total) const { return take == ~0ull ? total : m_above + take * w_v; }
};

struct Histogram {
    uint64_t cnt[kBins];
    uint64_t mass[kBins];
    uint64_t kmin[kBins];
    uint64_t kmax[kBins];
};

// Adds this warp's matching ids to the histogram, one set of atomics per distinct bin in the warp.
__device__ void warp_add(Histogram& h, bool match, uint32_t d, uint64_t key, uint64_t fixed) {
    const int lane = static_cast<int>(threadIdx.x & 31);
    unsigned pending = __ballot_sync(kFullMask, match);
    while (pending != 0) {
        const int leader = __ffs(pending) - 1;
        const uint32_t dl = __shfl_sync(kFullMask, d, leader);
        const bool in = match && d == dl;
        const unsigned group = __ballot_sync(kFullMask, in);
        uint64_t m = in ? fixed : 0, lo = in ? key : ~0ull, hi = in ? key : 0;
        for (int off = 16; off > 0; off >>= 1) {
            m += __shfl_xor_sync(kFullMask, m, off);
            const uint64_t lo2 = __shfl_xor_sync(kFullMask, lo, off), hi2 = __shfl_xor_sync(kFullMask, hi, off);
            lo = lo2 < lo ? lo2 : lo;
            hi = hi2 > hi ? hi2 : hi;
        }
        if (lane == leader) {
            atomicAdd(reinterpret_cast<unsigned long long*>(&h.cnt[dl]),
                      static_cast<unsigned long long>(__popc(group)));
            atomicAdd(reinterpret_cast<unsigned long long*>(&h.mass[dl]), static_cast<unsigned long long>(m));
            atomicMin(reinterpret_cast<unsigned long long*>(&h.kmin[dl]), static_cast<unsigned long long>(lo));
            atomicMax(reinterpret_cast<unsigned long long*>(&h.kmax[dl]), static_cast<unsigned long long>(hi));
        }
        pending &= ~group;
    }
}

// The first rank whose inclusive weight (count, or fixed-point mass) exceeds `limit`, as a Cut keeping ranks up
// to and including it; the whole row when the total weight is <= limit.
__device__ Cut select_cut(Histogram& h, const double* probs, int64_t vocab, bool by_mass, uint64_t limit) {
    __shared__ int32_t sel_bin;
    __shared__ uint64_t sel_w, sel_c, sel_m;
    Cut cut;
    uint64_t prefix = 0, pmask = 0, w_above = 0;
    for (int shift = 64 - kDigitBits;; shift -= kDigitBits) {
        const int s = shift > 0 ? shift : 0;
        const int width = shift >= 0 ? kDigitBits : kDigitBits + shift;
        const uint64_t dmask = (1ull << width) - 1;
        h.cnt[threadIdx.x] = h.mass[threadIdx.x] = h.kmax[threadIdx.x] = 0;
        h.kmin[threadIdx.x] = ~0ull;
        if (threadIdx.x == 0) sel_bin = -1;
        __syncthreads();
        for (int64_t t0 = 0; t0 < vocab; t0 += kThreads) {  // warp-uniform trip count
            const int64_t t = t0 + threadIdx.x;
            const double p = t < vocab ? probs[t] : 0.0;
            const uint64_t key = key_of(p);
            const bool match = t < vocab && (key & pmask) == prefix;
            warp_add(h, match, static_cast<uint32_t>((key >> s) & dmask), key, to_fixed(p));
        }
        __syncthreads();
        // Thread i looks at bin kBins-1-i: inclusive sums over i are the weights of that bin and every higher one.
        const int b = kBins - 1 - static_cast<int>(threadIdx.x);
        const uint64_t wb = by_mass ? h.mass[b] : h.cnt[b];
        uint64_t tot = 0;
        const uint64_t w_ex = block_exclusive_sum<uint64_t>(wb, tot);
        const uint64_t c_ex = block_exclusive_sum<uint64_t>(h.cnt[b], tot);
        const uint64_t m_ex = block_exclusive_sum<uint64_t>(h.mass[b], tot);
        if (wb > 0 && w_above + w_ex <= limit && limit < w_above + w_ex + wb) {
            sel_bin = b;
            sel_w = w_ex;
            sel_c = c_ex;
            sel_m = m_ex;
        }
        __syncthreads();
        const int d = sel_bin;
        if (d < 0) return Cut{};  // the total weight never exceeds the limit: keep everything
        w_above += sel_w;
        cut.c_above += sel_c;
        cut.m_above += sel_m;
        prefix |= static_cast<uint64_t>(d) << s;
        pmask |= dmask << s;
        if (h.kmin[d] == h.kmax[d]) {  // one value left: the cut's key
            cut.v = h.kmin[d];
            cut.w_v = to_fixed(__longlong_as_double(static_cast<long long>(cut.v)));
            const uint64_t unit = by_mass ? cut.w_v : 1;
            const uint64_t g = h.cnt[d];
            const uint64_t take = (limit - w_above) / unit + 1;
            cut.take = take < g ? take : g;
            cut.ties = g;
            __syncthreads();  // everyone has read the histogram before it is reused
            return cut;
        }
        __syncthreads();
    }
}

// The id of the take-th (1-based) id with key == v in id order (a scan over ids, only when the cut splits a group
// of equal probabilities); INT32_MAX when every tie is kept.
__device__ int32_t last_tie_id(const double* probs, int64_t vocab, const Cut& cut) {
    if (cut.take == ~0ull || cut.take >= cut.ties) return INT32_MAX;
    uint64_t before = 0;
    __shared__ int32_t found;
    if (threadIdx.x == 0) found = INT32_MAX;
    __syncthreads();
    for (int64_t t0 = 0; t0 < vocab; t0 += kThreads) {
        const int64_t t = t0 + threadIdx.x;
        const uint64_t tie = t < vocab && key_of(probs[t]) == cut.v ? 1 : 0;
        uint64_t chunk = 0;
        const uint64_t rank = before + block_exclusive_sum<uint64_t>(tie, chunk);
        if (tie && rank + 1 == cut.take) found = static_cast<int32_t>(t);
        __syncthreads();
        if (found != INT32_MAX) break;
        before += chunk;
    }
    const int32_t out = found;
    __syncthreads();
    return out;
}

struct Kept {
    Cut cut;
    int32_t last_tie;
    double min_prob;  // min-p threshold (0: off)
    __device__ bool operator()(int64_t t, double p) const {
        if (!(p > 0.0) || p < min_prob) return false;
        const uint64_t key = key_of(p);
        return key > cut.v || (key == cut.v && t <= last_tie);
    }
};

// Inverse-CDF draw over the kept ids in increasing order: the first id whose cumulative mass exceeds `target`
// (the last kept id when rounding leaves the target above the total).
__device__ int32_t draw(const double* probs, int64_t vocab, const Kept& kept, double target, int32_t last_kept) {
    double base = 0.0;
    for (int64_t c0 = 0; c0 < vocab; c0 += static_cast<int64_t>(kThreads) * kDrawItems) {
        const int64_t first = c0 + static_cast<int64_t>(threadIdx.x) * kDrawItems;
        double mine = 0.0;
        for (int j = 0; j < kDrawItems; ++j) {
            const int64_t t = first + j;
            if (t < vocab && kept(t, probs[t])) mine += probs[t];
        }
        double chunk = 0.0;
        double cum = base + block_exclusive_sum<double>(mine, chunk);
        int32_t hit = INT32_MAX;
        for (int j = 0; j < kDrawItems && hit == INT32_MAX; ++j) {
            const int64_t t = first + j;
            if (t >= vocab || !kept(t, probs[t])) continue;
            cum += probs[t];
            if (cum > target) hit = static_cast<int32_t>(t);
        }
        hit = block_reduce(hit, MinOp());
        if (hit != INT32_MAX) return hit;
        base += chunk;
    }
    return last_kept;
}

__device__ Cut smaller(const Cut& a, const Cut& b) { return b.kept() < a.kept() ? b : a; }

// Temperature sampling of one row whose probabilities are in `probs`; returns the chosen id.
__device__ int32_t sample_probs(Histogram& h, const double* probs, const RowView& v, double p_max,
                                uint64_t total_mass) {
    const int64_t vocab = v.vocab;
    Cut cut;
    if (v.r.top_k > 0 && v.r.top_k < vocab) {
        cut = select_cut(h, probs, vocab, false, static_cast<uint64_t>(v.r.top_k) - 1);
    }
    if (v.r.top_p < 1.0) {
        // Joint top-k/top-p judges the raw probabilities; with min-p they are renormalised after top-k first.
        const double ref = v.r.min_p > 0.0 ? static_cast<double>(cut.kept_mass(total_mass)) : kFixedScale;
        const uint64_t limit = __double2ull_rz(v.r.top_p * ref);
        cut = smaller(cut, select_cut(h, probs, vocab, true, limit));
    }
    Kept kept{cut, last_tie_id(probs, vocab, cut), v.r.min_p > 0.0 ? v.r.min_p * p_max : 0.0};
    double mass = 0.0;
    int32_t last = -1;
    for (int64_t t = threadIdx.x; t < vocab; t += kThreads) {
        if (kept(t, probs[t])) {
            mass += probs[t];
            last = static_cast<int32_t>(t);
        }
    }
    mass = block_reduce(mass, SumOp());
    last = block_reduce(last, MaxOp());
    return draw(probs, vocab, kept, v.r.uniform * mass, last < 0 ? 0 : last);
}

__global__ void __launch_bounds__(kThreads) sampling_kernel(SamplingKernelParams p) {
    extern __shared__ uint32_t bitmap[];
    __shared__ Histogram hist;
    const SampleRowDesc r = p.rows[blockIdx.x];
    const RowView v{p.logits + r.logits_row * p.vocab, p.vocab, bitmap, p.edits, r.edit_begin, r.edit_end, r};
    SampleOutDesc& out = p.out[blockIdx.x];
    build_bitmap(bitmap, v);

    // Division by a positive temperature is monotone, so max(z) / T is exactly the maximum scaled value: the
    // argmax pass skips the divisions.
    ArgMax best{neg_inf(), INT32_MAX};
    for_each_value<true>(v, [&](int64_t t, double z) { best = ArgMaxOp()(best, ArgMax{z, static_cast<int32_t>(t)}); });
    best = block_argmax(best);
    if (!isfinite(best.v)) {  // every logit masked, or +inf present: the CPU sampler decides
        if (threadIdx.x == 0) out = SampleOutDesc{0, 1, 0.0};
        return;
    }
    const double mx = scaled(v, best.v);
    double sum = 0.0;
    for_each_value(v, [&](int64_t, double l) { sum += exp(__dsub_rn(l, mx)); });
    const double lse = mx + log(block_reduce(sum, SumOp()));
    if (r.greedy) {
        if (threadIdx.x == 0) out = SampleOutDesc{best.id, 0, __dsub_rn(mx, lse)};
        return;
    }
    double* probs = p.probs + static_cast<int64_t>(r.prob_slot) * p.vocab;
    uint64_t mass = 0;
    for_each_value(v, [&](int64_t t, double l) {
        const double q = exp(__dsub_rn(l, lse));
        probs[t] = q;
        mass += to_fixed(q);
    });
    mass = block_reduce(mass, SumOp());  // also orders the probs writes before every read below
    const int32_t chosen = sample_probs(hist, probs, v, exp(__dsub_rn(mx, lse)), mass);
    if (threadIdx.x == 0) out = SampleOutDesc{chosen, 0, __dsub_rn(value_of(v, chosen), lse)};
}

}  // namespace

int64_t sampling_smem_bytes(int64_t vocab) { return (vocab + 31) / 32 * static_cast<int64_t>(sizeof(uint32_t)); }

void launch_sampling(const SamplingKernelParams& p, cudaStream_t stream) {
    if (p.num_rows == 0) return;
    const int64_t smem = sampling_smem_bytes(p.vocab);
    DSA_CUDA_CHECK(
        cudaFuncSetAttribute(sampling_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    sampling_kernel<<<static_cast<unsigned>(p.num_rows), kThreads, static_cast<size_t>(smem), stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH("sampling_kernel");
}

}  // namespace dsa::backend::cuda
