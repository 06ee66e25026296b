// Lightning-indexer kernels: key writes (Hadamard + act_quant into the 8448-byte FP8 page, or f32 rows), the
// per-head q preparation, the logits (FP8: e4m3 widened exactly to f16, mma.sync m16n8k16 with f32
// accumulation, one warp per 16 keys x all heads, head sum inside the quad; F32: the reference's float ops in
// its order), an exact radix-select top-k on 64-bit keys (order key of the score, then ~position: no ties) with
// a bitonic sort of the selected entries, and the causal index lists.
#include <cuda_fp8.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/indexer_kernels.h"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kDim = 128;
constexpr int kPageTokens = 64;
constexpr int64_t kFp8PageBytes = 8448;
constexpr int64_t kFp8ScaleOffset = 8192;
constexpr int64_t kF32PageBytes = 32768;
constexpr unsigned kFull = 0xffffffffu;

// ---- Hadamard + act_quant of one 128-vector held by a warp (lane l: elements 4l .. 4l+3) ----

__device__ __forceinline__ float pow2_ceil(float x) {
    int e;
    const float m = frexpf(x, &e);
    return m == 0.5f ? ldexpf(1.0f, e - 1) : ldexpf(1.0f, e);
}

__device__ __forceinline__ uint8_t f32_to_e4m3(float f) {
    return static_cast<uint8_t>(__nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3));
}

__device__ __forceinline__ uint16_t e4m3_to_f16_bits(uint8_t b) {
    return __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(b), __NV_E4M3).x;
}

// Two e4m3 (low byte first) -> f16x2 (low half first); exact.
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t two) {
    uint32_t r;
    const uint16_t h = static_cast<uint16_t>(two);
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(r) : "h"(h));
    return r;
}

__device__ __forceinline__ void load4_bf16(const uint16_t* p, float (&v)[4]) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    v[0] = bf16_bits_to_f32(static_cast<uint16_t>(u.x));
    v[1] = bf16_bits_to_f32(static_cast<uint16_t>(u.x >> 16));
    v[2] = bf16_bits_to_f32(static_cast<uint16_t>(u.y));
    v[3] = bf16_bits_to_f32(static_cast<uint16_t>(u.y >> 16));
}

// The reference's butterflies (stage h: x[j] = a + b, x[j + h] = a - b for the lower index j), then * scale and
// the activation rounding to bf16. Every value gets the same float operations as on the CPU.
__device__ __forceinline__ void hadamard128_warp(float (&v)[4], int lane, float scale) {
    float a = v[0], b = v[1];
    v[0] = __fadd_rn(a, b);
    v[1] = __fsub_rn(a, b);
    a = v[2];
    b = v[3];
    v[2] = __fadd_rn(a, b);
    v[3] = __fsub_rn(a, b);
    a = v[0];
    b = v[2];
    v[0] = __fadd_rn(a, b);
    v[2] = __fsub_rn(a, b);
    a = v[1];
    b = v[3];
    v[1] = __fadd_rn(a, b);
    v[3] = __fsub_rn(a, b);
#pragma unroll
    for (int m = 1; m < 32; m <<= 1) {  // stage h = 4m: the partner element lives in lane ^ m
        const bool upper = (lane & m) != 0;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const float o = __shfl_xor_sync(kFull, v[j], m);
            v[j] = upper ? __fsub_rn(o, v[j]) : __fadd_rn(v[j], o);
        }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = round_bf16(__fmul_rn(v[j], scale));
}

// act_quant of the warp's 128-vector: s = max(amax, 1e-4) / 448 (power of two with ue8m0), q = e4m3(x / s).
__device__ __forceinline__ float act_quant_warp(const float (&v)[4], bool ue8m0, uint8_t (&q)[4]) {
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) amax = fmaxf(amax, fabsf(v[j]));
    amax = warp_max(amax);
    float s = __fdiv_rn(fmaxf(amax, 1e-4f), 448.0f);
    if (ue8m0) s = pow2_ceil(s);
#pragma unroll
    for (int j = 0; j < 4; ++j) q[j] = f32_to_e4m3(__fdiv_rn(v[j], s));
    return s;
}

// ---- key writes: one warp per token ----

__global__ void indexer_k_write_kernel(IndexerKWriteKernelParams p) {
    const int64_t tok = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (tok >= p.num_tokens) return;  // whole warps
    const int32_t slot = p.slots[tok];
    if (slot < 0) return;  // skipped token (the whole warp reads the same slot)
    if (slot >= p.num_slots) __trap();
    float v[4];
    load4_bf16(p.k + tok * kDim + lane * 4, v);
    const int64_t page = slot / kPageTokens, row = slot % kPageTokens;
    if (!p.fp8) {
        *reinterpret_cast<float4*>(p.pages + page * kF32PageBytes + row * kDim * 4 + lane * 16) =
            make_float4(v[0], v[1], v[2], v[3]);
        return;
    }
    hadamard128_warp(v, lane, p.hadamard_scale);
    uint8_t q[4];
    const float s = act_quant_warp(v, p.ue8m0, q);
    uint8_t* base = p.pages + page * kFp8PageBytes;
    *reinterpret_cast<uint32_t*>(base + row * kDim + lane * 4) =
        q[0] | (static_cast<uint32_t>(q[1]) << 8) | (static_cast<uint32_t>(q[2]) << 16) |
        (static_cast<uint32_t>(q[3]) << 24);
    if (lane == 0) *reinterpret_cast<float*>(base + kFp8ScaleOffset + row * 4) = s;
}

// ---- q preparation: one warp per (token, head) ----

__global__ void indexer_q_prep_kernel(IndexerQPrepParams p) {
    const int64_t rowi = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (rowi >= p.num_tokens * p.heads) return;  // whole warps
    float v[4];
    load4_bf16(p.q + rowi * kDim + lane * 4, v);
    hadamard128_warp(v, lane, p.hadamard_scale);
    uint8_t q[4];
    const float s = act_quant_warp(v, p.ue8m0, q);
    uint2 out;
    out.x = e4m3_to_f16_bits(q[0]) | (static_cast<uint32_t>(e4m3_to_f16_bits(q[1])) << 16);
    out.y = e4m3_to_f16_bits(q[2]) | (static_cast<uint32_t>(e4m3_to_f16_bits(q[3])) << 16);
    *reinterpret_cast<uint2*>(p.q16 + rowi * kDim + lane * 4) = out;
    if (lane == 0) p.wt[rowi] = __fmul_rn(__fmul_rn(__fmul_rn(p.weights[rowi], p.head_scale), s), p.dim_scale);
}

// ---- shared by the logits, top-k and causal kernels ----

struct QueryRow {
    int64_t request, limit;
};

// The query's request and last visible position, trapping on out-of-range values (device-side index data).
__device__ __forceinline__ QueryRow query_row(const int32_t* request, const int32_t* limit, int64_t t,
                                              int64_t num_requests, int64_t max_len) {
    const QueryRow q{request[t], limit[t]};
    if (q.request < 0 || q.request >= num_requests || q.limit < 0 || q.limit >= max_len) __trap();
    return q;
}

__device__ __forceinline__ int32_t checked_slot(const int32_t* slot_row, int64_t pos, int64_t num_slots) {
    const int32_t s = slot_row[pos];
    if (s < 0 || s >= num_slots) __trap();
    return s;
}

// Writes -inf to row[s] for s in [max(begin, limit + 1), end) with `step` threads starting at `first`.
__device__ __forceinline__ void fill_masked(float* row, int64_t begin, int64_t end, int64_t limit, int first,
                                           int step) {
    const int64_t from = begin > limit + 1 ? begin : limit + 1;
    for (int64_t s = from + first; s < end; s += step) row[s] = -__int_as_float(0x7f800000);
}

// ---- FP8 logits: one warp per 16 keys x 8 * NT heads per step ----

constexpr int kLogitsWarps = 4;
constexpr int kTileKeys = 16;

struct KeyTile {
    uint4 a_lo, a_hi, b_lo, b_hi;  // bytes [32 tig, 32 tig + 32) of keys g and g + 8
    float sa, sb;                  // their scales (0 for keys not visible)
};

// Marks a position this warp does not score (past the limit or the warp's range); a visible slot is validated
// when its key is loaded, one tile after the slot was read, so that the check does not wait on the load.
constexpr int32_t kInvisible = -2147483647 - 1;

__device__ __forceinline__ int32_t slot_or_invisible(const int32_t* slot_row, int64_t pos, int64_t end) {
    return pos < end ? __ldg(slot_row + pos) : kInvisible;
}

__device__ __forceinline__ void load_fp8_key(const IndexerLogitsParams& p, int32_t slot, int tig, uint4& lo,
                                             uint4& hi, float& scale) {
    if (slot == kInvisible) {
        lo = hi = make_uint4(0, 0, 0, 0);
        scale = 0.0f;
        return;
    }
    if (slot < 0 || slot >= p.num_slots) __trap();
    const uint8_t* page = p.pages + static_cast<int64_t>(slot / kPageTokens) * kFp8PageBytes;
    const int row = slot % kPageTokens;
    const uint4* src = reinterpret_cast<const uint4*>(page + row * kDim + tig * 32);
    lo = __ldg(src);
    hi = __ldg(src + 1);
    scale = __ldg(reinterpret_cast<const float*>(page + kFp8ScaleOffset + row * 4));
}

__device__ __forceinline__ KeyTile load_tile(const IndexerLogitsParams& p, int32_t slot_a, int32_t slot_b,
                                             int tig) {
    KeyTile k;
    load_fp8_key(p, slot_a, tig, k.a_lo, k.a_hi, k.sa);
    load_fp8_key(p, slot_b, tig, k.b_lo, k.b_hi, k.sb);
    return k;
}

__device__ __forceinline__ uint32_t word(const uint4& u, int i) {
    return i == 0 ? u.x : (i == 1 ? u.y : (i == 2 ? u.z : u.w));
}

__device__ __forceinline__ void mma_f16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                        uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// The MMA's k index is a permutation of the head dim shared by A (keys) and B (q): in k-step ks, lane
// (g = lane / 4, tig = lane % 4) holds fragment columns {2 tig, 2 tig + 1} = dims 32 tig + 4 ks + {0, 1} and
// columns {2 tig + 8, 2 tig + 9} = dims 32 tig + 4 ks + {2, 3}, so each lane reads 32 contiguous bytes per key.
template <int NT>
__global__ void __launch_bounds__(kLogitsWarps * 32) indexer_logits_fp8_kernel(IndexerLogitsParams p,
                                                                              int tiles_per_warp) {
    const int64_t t = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const int64_t keys_per_warp = static_cast<int64_t>(tiles_per_warp) * kTileKeys;
    const int64_t warp_begin = (static_cast<int64_t>(blockIdx.y) * kLogitsWarps + warp) * keys_per_warp;
    float* srow = p.scores + t * p.max_len;
    if (p.fill_masked) {
        const int64_t end = warp_begin + keys_per_warp < p.max_len ? warp_begin + keys_per_warp : p.max_len;
        fill_masked(srow, warp_begin, end, qr.limit, lane, 32);
    }
    if (warp_begin > qr.limit) return;

    uint32_t bq[NT][8][2];
    float wt[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        const int64_t qrow = t * (NT * 8) + nt * 8 + g;
        const uint4* src = reinterpret_cast<const uint4*>(p.q + qrow * kDim + tig * 32);
#pragma unroll
        for (int v = 0; v < 4; ++v) {
            const uint4 u = __ldg(src + v);
            bq[nt][2 * v][0] = u.x;
            bq[nt][2 * v][1] = u.y;
            bq[nt][2 * v + 1][0] = u.z;
            bq[nt][2 * v + 1][1] = u.w;
        }
        wt[nt][0] = p.weights[t * (NT * 8) + nt * 8 + tig * 2];
        wt[nt][1] = p.weights[t * (NT * 8) + nt * 8 + tig * 2 + 1];
    }

    // Software pipeline: slots two tiles ahead, keys one tile ahead, compute on the current tile.
    const int32_t* slot_row = p.key_slots + qr.request * p.max_len;
    const int64_t end = qr.limit + 1 < warp_begin + keys_per_warp ? qr.limit + 1 : warp_begin + keys_per_warp;
    KeyTile cur = load_tile(p, slot_or_invisible(slot_row, warp_begin + g, end),
                            slot_or_invisible(slot_row, warp_begin + g + 8, end), tig);
    int32_t next_a = slot_or_invisible(slot_row, warp_begin + kTileKeys + g, end);
    int32_t next_b = slot_or_invisible(slot_row, warp_begin + kTileKeys + g + 8, end);
    for (int tile = 0; tile < tiles_per_warp; ++tile) {
        const int64_t base = warp_begin + static_cast<int64_t>(tile) * kTileKeys;
        if (base >= end) break;  // warp-uniform
        const int32_t far_a = slot_or_invisible(slot_row, base + 2 * kTileKeys + g, end);
        const int32_t far_b = slot_or_invisible(slot_row, base + 2 * kTileKeys + g + 8, end);
        const KeyTile nxt = load_tile(p, next_a, next_b, tig);

        float acc[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < 8; ++ks) {
            const uint32_t wa = word(ks < 4 ? cur.a_lo : cur.a_hi, ks & 3);
            const uint32_t wb = word(ks < 4 ? cur.b_lo : cur.b_hi, ks & 3);
            const uint32_t a0 = e4m3x2_to_f16x2(wa & 0xffffu), a2 = e4m3x2_to_f16x2(wa >> 16);
            const uint32_t a1 = e4m3x2_to_f16x2(wb & 0xffffu), a3 = e4m3x2_to_f16x2(wb >> 16);
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) mma_f16(acc[nt], a0, a1, a2, a3, bq[nt][ks][0], bq[nt][ks][1]);
        }
        // acc[nt][0..1]: key g, heads 8 nt + 2 tig + {0, 1}; acc[nt][2..3]: key g + 8.
        float ra = 0.0f, rb = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            ra = __fadd_rn(ra, __fmul_rn(fmaxf(acc[nt][0], 0.0f), wt[nt][0]));
            ra = __fadd_rn(ra, __fmul_rn(fmaxf(acc[nt][1], 0.0f), wt[nt][1]));
            rb = __fadd_rn(rb, __fmul_rn(fmaxf(acc[nt][2], 0.0f), wt[nt][0]));
            rb = __fadd_rn(rb, __fmul_rn(fmaxf(acc[nt][3], 0.0f), wt[nt][1]));
        }
        ra += __shfl_xor_sync(kFull, ra, 1);
        rb += __shfl_xor_sync(kFull, rb, 1);
        ra += __shfl_xor_sync(kFull, ra, 2);
        rb += __shfl_xor_sync(kFull, rb, 2);
        if (tig == 0 && base + g < end) srow[base + g] = ra * cur.sa;
        if (tig == 1 && base + g + 8 < end) srow[base + g + 8] = rb * cur.sb;
        cur = nxt;
        next_a = far_a;
        next_b = far_b;
    }
}

// ---- F32 logits: the reference's float operations in its order ----

constexpr int kF32Threads = 256;
constexpr int kF32TileKeys = 32;
constexpr int kF32TilesPerBlock = 8;
constexpr int kF32KeyStride = kDim + 1;  // padded smem rows: lane = key reads conflict-free

int64_t f32_logits_smem(int64_t heads) {
    return (heads * kDim + kF32TileKeys * kF32KeyStride + kF32TileKeys * (heads + 1) + heads) * 4;
}

__global__ void __launch_bounds__(kF32Threads) indexer_logits_f32_kernel(IndexerLogitsParams p) {
    extern __shared__ float smem[];
    const int64_t heads = p.heads, t = blockIdx.x;
    float* qs = smem;                                 // [heads, 128]
    float* ks = qs + heads * kDim;                    // [32, 129]
    float* ds = ks + kF32TileKeys * kF32KeyStride;    // [32, heads + 1]
    float* ws = ds + kF32TileKeys * (heads + 1);      // [heads]
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const int64_t begin = static_cast<int64_t>(blockIdx.y) * kF32TilesPerBlock * kF32TileKeys;
    float* srow = p.scores + t * p.max_len;
    if (p.fill_masked) {
        const int64_t span = kF32TilesPerBlock * kF32TileKeys;
        fill_masked(srow, begin, begin + span < p.max_len ? begin + span : p.max_len, qr.limit, tid, kF32Threads);
    }
    if (begin > qr.limit) return;  // whole block
    for (int64_t i = tid; i < heads * kDim; i += kF32Threads) qs[i] = bf16_bits_to_f32(p.q[t * heads * kDim + i]);
    for (int64_t j = tid; j < heads; j += kF32Threads) {
        ws[j] = __fmul_rn(__fmul_rn(p.weights[t * heads + j], p.head_scale), p.dim_scale);
    }
    const int32_t* slot_row = p.key_slots + qr.request * p.max_len;
    for (int tile = 0; tile < kF32TilesPerBlock; ++tile) {
        const int64_t base = begin + tile * kF32TileKeys;
        if (base > qr.limit) break;  // block-uniform
        for (int kk = 0; kk < kF32TileKeys / 8; ++kk) {  // warp w loads keys 4w .. 4w+3, lane 4 floats each
            const int key = warp * (kF32TileKeys / 8) + kk;
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (base + key <= qr.limit) {
                const int32_t slot = checked_slot(slot_row, base + key, p.num_slots);
                const uint8_t* row = p.pages + static_cast<int64_t>(slot / kPageTokens) * kF32PageBytes +
                                     (slot % kPageTokens) * kDim * 4;
                v = __ldg(reinterpret_cast<const float4*>(row) + lane);
            }
            float* dst = ks + key * kF32KeyStride + lane * 4;
            dst[0] = v.x;
            dst[1] = v.y;
            dst[2] = v.z;
            dst[3] = v.w;
        }
        __syncthreads();
        for (int64_t h = warp; h < heads; h += kF32Threads / 32) {  // lane = key
            const float* q = qs + h * kDim;
            const float* k = ks + lane * kF32KeyStride;
            float d = 0.0f;
            for (int i = 0; i < kDim; ++i) d = __fadd_rn(d, __fmul_rn(q[i], k[i]));
            ds[lane * (heads + 1) + h] = d;
        }
        __syncthreads();
        if (warp == 0 && base + lane <= qr.limit) {
            float sum = 0.0f;
            for (int64_t j = 0; j < heads; ++j) {
                const float d = ds[lane * (heads + 1) + j];
                sum = __fadd_rn(sum, __fmul_rn(d < 0.0f ? 0.0f : d, ws[j]));
            }
            srow[base + lane] = sum;
        }
    }
}

// ---- exact top-k: one 1024-thread block per row ----

constexpr int kTopkThreads = 1024;

struct TopkShared {
    uint32_t hist[256];
    uint32_t min_key, max_key, count, digit, above, in_bin;
};

// Order-preserving u32 of a float (-0 as +0, so equal scores get equal keys).
__device__ __forceinline__ uint32_t order_key(float f) {
    uint32_t b = __float_as_uint(f);
    if (b == 0x80000000u) b = 0;
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Larger = earlier in the output: score descending, then position ascending. Distinct for distinct positions.
__device__ __forceinline__ uint64_t composite_key(float score, int64_t i) {
    return (static_cast<uint64_t>(order_key(score)) << 32) | static_cast<uint32_t>(~static_cast<uint32_t>(i));
}

// Calls fn(i, row[i], i < n) for every i of [0, n) rounded up to the block; kScanUnroll loads are issued before
// their uses (the row comes from L2). Every thread calls fn the same number of times (warp collectives are safe).
constexpr int kScanUnroll = 8;
template <typename Fn>
__device__ __forceinline__ void scan_row(const float* row, int64_t n, Fn&& fn) {
    for (int64_t base = 0; base < n; base += kScanUnroll * kTopkThreads) {
        float v[kScanUnroll];
#pragma unroll
        for (int u = 0; u < kScanUnroll; ++u) {
            const int64_t i = base + u * kTopkThreads + threadIdx.x;
            v[u] = i < n ? row[i] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < kScanUnroll; ++u) {
            const int64_t i = base + u * kTopkThreads + threadIdx.x;
            fn(i, v[u], i < n);
        }
    }
}

// Warp 0: the digit whose bin holds the need-th largest element; writes digit, above (count in higher bins) and
// in_bin. Lane l holds bins 255 - 8l - j, j = 0..7 (descending).
__device__ void find_digit(TopkShared& sh, uint32_t need, int lane) {
    uint32_t cnt[8], sum = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        cnt[j] = sh.hist[255 - 8 * lane - j];
        sum += cnt[j];
    }
    uint32_t incl = sum;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const uint32_t v = __shfl_up_sync(kFull, incl, o);
        if (lane >= o) incl += v;
    }
    const uint32_t hit = __ballot_sync(kFull, incl >= need);
    if (lane != __ffs(hit) - 1) return;
    uint32_t cum = incl - sum;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        if (cum + cnt[j] >= need) {
            sh.digit = 255 - 8 * lane - j;
            sh.above = cum;
            sh.in_bin = cnt[j];
            return;
        }
        cum += cnt[j];
    }
}

// The k-th largest composite key of row[0, n) (n > k): radix select with 8-bit digits starting below the common
// prefix of the row's min and max order keys; stops as soon as the threshold bin holds exactly the missing count.
// Every element with composite >= the result is selected (exactly k of them).
__device__ uint64_t radix_threshold(const float* row, int64_t n, uint32_t k, TopkShared& sh) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    if (tid == 0) {
        sh.min_key = 0xffffffffu;
        sh.max_key = 0;
    }
    __syncthreads();
    uint32_t lo = 0xffffffffu, hi = 0;
    scan_row(row, n, [&](int64_t, float v, bool valid) {
        if (!valid) return;
        const uint32_t u = order_key(v);
        lo = min(lo, u);
        hi = max(hi, u);
    });
    lo = __reduce_min_sync(kFull, lo);
    hi = __reduce_max_sync(kFull, hi);
    if (lane == 0) {
        atomicMin(&sh.min_key, lo);
        atomicMax(&sh.max_key, hi);
    }
    __syncthreads();
    const uint32_t mn = sh.min_key, mx = sh.max_key;
    int hi_bit;  // highest composite bit not yet known
    uint64_t known, prefix;
    if (mn == mx) {
        hi_bit = 31;
        known = 0xffffffff00000000ull;
    } else {
        const int top = 31 - __clz(mn ^ mx);
        hi_bit = 32 + top;
        known = top == 31 ? 0ull : (~0ull << (hi_bit + 1));
    }
    prefix = (static_cast<uint64_t>(mn) << 32) & known;
    uint32_t need = k;
    for (;;) {
        const int shift = hi_bit >= 7 ? hi_bit - 7 : 0;
        const uint64_t dmask = (1ull << (hi_bit - shift + 1)) - 1;
        for (int b = tid; b < 256; b += kTopkThreads) sh.hist[b] = 0;
        __syncthreads();
        scan_row(row, n, [&](int64_t i, float v, bool valid) {
            const uint64_t c = composite_key(v, i);
            const bool match = valid && (c & known) == prefix;
            const uint32_t d = static_cast<uint32_t>((c >> shift) & dmask);
            const unsigned active = __ballot_sync(kFull, match);
            if (match) {
                const unsigned peers = __match_any_sync(active, d);
                if (lane == __ffs(peers) - 1) atomicAdd(&sh.hist[d], static_cast<uint32_t>(__popc(peers)));
            }
        });
        __syncthreads();
        if (warp == 0) find_digit(sh, need, lane);
        __syncthreads();
        const uint32_t d = sh.digit, above = sh.above, in_bin = sh.in_bin;
        need -= above;
        prefix |= static_cast<uint64_t>(d) << shift;
        known |= dmask << shift;
        if (in_bin == need) return prefix;  // block-uniform
        if (shift == 0) __trap();  // unreachable: composite keys are distinct
        hi_bit = shift - 1;
    }
}

// Sorts keys[0, n) descending (n a power of two).
__device__ void bitonic_sort_desc(uint64_t* keys, int n) {
    for (int size = 2; size <= n; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < n / 2; i += kTopkThreads) {
                const int lo = ((i & ~(stride - 1)) << 1) | (i & (stride - 1)), hi = lo + stride;
                const uint64_t a = keys[lo], b = keys[hi];
                const bool desc = (lo & size) == 0;
                if (desc ? a < b : a > b) {
                    keys[lo] = b;
                    keys[hi] = a;
                }
            }
            __syncthreads();
        }
    }
}

__global__ void __launch_bounds__(kTopkThreads) indexer_topk_kernel(IndexerTopkKernelParams p) {
    extern __shared__ uint64_t sel[];
    __shared__ TopkShared sh;
    const int64_t t = blockIdx.x;
    const int tid = threadIdx.x, lane = tid & 31;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const float* row = p.scores + t * p.max_len;
    const int64_t n = qr.limit + 1;
    const int keep = static_cast<int>(n < p.k ? n : p.k);
    const int sort_n = keep <= 1 ? 1 : 1 << (32 - __clz(keep - 1));
    const uint64_t threshold = n > p.k ? radix_threshold(row, n, static_cast<uint32_t>(p.k), sh) : 0ull;

    if (tid == 0) sh.count = 0;
    __syncthreads();
    scan_row(row, n, [&](int64_t i, float v, bool valid) {
        const uint64_t c = composite_key(v, i);
        const bool take = valid && c >= threshold;
        const unsigned ballot = __ballot_sync(kFull, take);
        uint32_t off = 0;
        if (lane == 0 && ballot != 0) off = atomicAdd(&sh.count, static_cast<uint32_t>(__popc(ballot)));
        off = __shfl_sync(kFull, off, 0);
        if (take) {
            const uint32_t idx = off + __popc(ballot & ((1u << lane) - 1));
            if (idx >= static_cast<uint32_t>(keep)) __trap();  // unreachable: exactly `keep` keys qualify
            sel[idx] = c;
        }
    });
    __syncthreads();
    if (sh.count != static_cast<uint32_t>(keep)) __trap();
    for (int i = keep + tid; i < sort_n; i += kTopkThreads) sel[i] = 0;
    __syncthreads();
    bitonic_sort_desc(sel, sort_n);

    const int32_t* slot_row = p.key_slots + qr.request * p.max_len;
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

int num_sms() {
    static const int n = [] {
        int dev = 0, v = 0;
        DSA_CUDA_CHECK(cudaGetDevice(&dev));
        DSA_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
        return v;
    }();
    return n;
}

template <int NT>
void launch_fp8_logits(const IndexerLogitsParams& p, cudaStream_t stream) {
    // Enough warps for ~4 blocks per SM over the whole batch, 4..32 tiles (64..512 keys) per warp so that the
    // 16 KB of q each warp loads stays small against its keys.
    const int64_t keys = p.num_tokens * p.max_len;
    const int64_t target_blocks = static_cast<int64_t>(num_sms()) * 4;
    int64_t tiles = (keys + target_blocks * kLogitsWarps * kTileKeys - 1) / (target_blocks * kLogitsWarps * kTileKeys);
    tiles = tiles < 4 ? 4 : (tiles > 32 ? 32 : tiles);
    const int64_t keys_per_block = tiles * kLogitsWarps * kTileKeys;
    const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>((p.max_len + keys_per_block - 1) /
                                                                               keys_per_block));
    indexer_logits_fp8_kernel<NT><<<grid, kLogitsWarps * 32, 0, stream>>>(p, static_cast<int>(tiles));
    DSA_CUDA_CHECK_LAUNCH(indexer_logits_fp8_kernel);
}

}  // namespace

void launch_indexer_k_write(const IndexerKWriteKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0) return;
    DSA_CHECK(host::aligned16(p.k) && host::aligned16(p.pages)) << "indexer_k_write buffers must be 16-byte aligned";
    constexpr int kThreads = 256;
    const int64_t blocks = (p.num_tokens * 32 + kThreads - 1) / kThreads;
    indexer_k_write_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(indexer_k_write_kernel);
}

void launch_indexer_q_prep(const IndexerQPrepParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0) return;
    DSA_CHECK(host::aligned16(p.q) && host::aligned16(p.q16)) << "indexer q buffers must be 16-byte aligned";
    constexpr int kThreads = 256;
    const int64_t blocks = (p.num_tokens * p.heads * 32 + kThreads - 1) / kThreads;
    indexer_q_prep_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(indexer_q_prep_kernel);
}

void launch_indexer_logits(const IndexerLogitsParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.max_len == 0) return;
    DSA_CHECK(p.num_tokens <= 0x7fffffff) << "indexer logits: " << p.num_tokens << " queries";
    DSA_CHECK(host::aligned16(p.q) && host::aligned16(p.pages)) << "indexer logits buffers must be 16-byte aligned";
    if (!p.fp8) {
        DSA_CHECK(p.heads >= 1 && p.heads <= 64) << "indexer F32 logits: " << p.heads << " heads (1..64)";
        const int64_t keys_per_block = kF32TilesPerBlock * kF32TileKeys;
        const dim3 grid(static_cast<unsigned>(p.num_tokens),
                        static_cast<unsigned>((p.max_len + keys_per_block - 1) / keys_per_block));
        const int64_t smem = f32_logits_smem(p.heads);
        DSA_CUDA_CHECK(cudaFuncSetAttribute(indexer_logits_f32_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(smem)));
        indexer_logits_f32_kernel<<<grid, kF32Threads, smem, stream>>>(p);
        DSA_CUDA_CHECK_LAUNCH(indexer_logits_f32_kernel);
        return;
    }
    switch (p.heads) {
        case 8: return launch_fp8_logits<1>(p, stream);
        case 16: return launch_fp8_logits<2>(p, stream);
        case 32: return launch_fp8_logits<4>(p, stream);
        case 64: return launch_fp8_logits<8>(p, stream);
        default: DSA_CHECK(false) << "indexer FP8 logits: " << p.heads << " heads (8, 16, 32 or 64)";
    }
}

void launch_indexer_topk(const IndexerTopkKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0) return;
    DSA_CHECK(p.k >= 1 && p.k <= kIndexerMaxTopk) << "indexer top-k width " << p.k;
    DSA_CHECK(p.max_len >= 1 && p.max_len <= 0x7fffffff) << "indexer top-k row length " << p.max_len;
    const int64_t keep = p.k < p.max_len ? p.k : p.max_len;
    int64_t sort_n = 1;
    while (sort_n < keep) sort_n <<= 1;
    const int64_t smem = sort_n * 8;
    DSA_CUDA_CHECK(cudaFuncSetAttribute(indexer_topk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
    indexer_topk_kernel<<<static_cast<unsigned>(p.num_tokens), kTopkThreads, smem, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(indexer_topk_kernel);
}

void launch_causal_indices(const CausalIndicesKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.width == 0) return;
    constexpr int kThreads = 256;
    causal_indices_kernel<<<host::grid_for(p.num_tokens * p.width, kThreads), kThreads, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(causal_indices_kernel);
}

}  // namespace dsa::backend::cuda
