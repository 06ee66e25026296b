// Lightning-indexer kernels: key writes (Hadamard + act_quant into the 8448-byte FP8 page, or f32 rows), the q
// preparation (e4m3 bytes, heads padded to 8/16/32/64) and the logits (FP8: the mma.sync kernels here, 64-key
// blocks in a 6-stage cp.async ring, f16 m16n8k16 on exactly widened values (default) or e4m3 m16n8k32, f32
// accumulation, q in registers; opt-in: the wgmma kernel of indexer_logits_wgmma.cu; F32: the reference's
// float ops in its order). The top-k and the causal index lists are in indexer_topk.cu.
// Every grid depends on host shapes only; the work follows query_limit.
#include <cstdlib>
#include <cstring>

#include <cuda_fp8.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/fused_hadamard.cuh"
#include "backend/cuda/indexer_common.cuh"
#include "backend/cuda/indexer_kernels.h"
#include "backend/cuda/indexer_logits_common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

// Two e4m3 (low byte first) -> f16x2 (low half first); exact.
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t two) {
    uint32_t r;
    const uint16_t h = static_cast<uint16_t>(two);
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(r) : "h"(h));
    return r;
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
    store_indexer_key(p.pages, slot, lane, v, p.fp8, p.hadamard_scale, p.ue8m0);
}

// ---- q preparation: one warp per (token, padded head) ----

__global__ void indexer_q_prep_kernel(IndexerQPrepParams p, IndexerQRopeParams r) {
    pdl_wait();  // q and the weights come from the projections before
    pdl_trigger();
    const int64_t rowi = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (rowi >= p.num_tokens * p.padded_heads) return;  // whole warps
    const int64_t t = rowi / p.padded_heads, h = rowi % p.padded_heads;
    uint32_t* dst = reinterpret_cast<uint32_t*>(p.q8 + rowi * kDim) + lane;
    if (h >= p.heads) {  // padding head: q = 0, weight 0 (whole warp)
        *dst = 0;
        if (lane == 0) p.wt[rowi] = 0.0f;
        return;
    }
    const int64_t src = t * p.heads + h;
    float v[4];
    load4_bf16(p.q + src * kDim + lane * 4, v);
    if (r.positions != nullptr) {  // q's first 64 dims not rotated yet: apply_rope's arithmetic here
        const int64_t pos = r.positions[t];
        if (pos < 0 || pos >= r.max_positions) __trap();  // broken invariant (device data)
        rope64_lanes(v, lane, r.cos + pos * kRope64Pairs, r.sin + pos * kRope64Pairs, r.interleaved);
    }
    hadamard128_lanes(v, lane, p.hadamard_scale);
    uint32_t packed;
    const float s = act_quant_lanes(v, p.ue8m0, packed);
    *dst = packed;
    if (lane == 0) p.wt[rowi] = __fmul_rn(__fmul_rn(__fmul_rn(p.weights[src], p.head_scale), s), p.dim_scale);
}

// ---- FP8 logits: cp.async pipeline of 64-key blocks, 4 warps x 16 keys x 8 * NT heads per block ----
//
// CTA c of a row-major grid [T x m] scores row t = c % T, key blocks b = c / T, c / T + m, ... while 64 b <= the
// row's limit: a CTA whose first block is past the limit exits at once, and the work of every row follows its
// device-side limit (the grid depends only on T and the launch occupancy). Each thread of the CTA copies 4 of
// the 512 16-byte chunks of a block's keys (and 1 scale) into a kLogitsStages-deep shared ring; the slots come
// through KeyPipe's slot ring, 2 (kLogitsStages - 1) blocks ahead (indexer_logits_common.cuh).

constexpr int kLogitsWarps = kLogitsThreads / 32;
constexpr int kTileKeys = 16;  // keys per warp per block
constexpr int kLogitsStages = 6;
constexpr int kStageBytes = kBlockKeyBytes + kBlockKeys * 4;  // keys (swizzled chunks), then scales
constexpr int kLogitsSmem = kLogitsStages * kStageBytes + KeyPipe<kLogitsStages>::kSlotBytes;

__device__ __forceinline__ void mma_f16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                        uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void mma_e4m3(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// The q fragments of one lane: NT groups of 8 heads, kSteps MMA k-steps of two 32-bit B registers, and the
// weights of the lane's two heads (8 nt + 2 tig + {0, 1}) of each group.
template <int NT, bool kF8>
struct QFrag {
    static constexpr int kSteps = kF8 ? 4 : 8;
    uint32_t b[NT][kSteps][2];
    float wt[NT][2];
};

// The MMA's k index is a permutation of the head dim shared by A (keys) and B (q); lane (g = lane / 4,
// tig = lane % 4) always works on dims 32 tig .. 32 tig + 31 (chunks 2 tig, 2 tig + 1) of keys g and g + 8 of
// its tile and of head g of each group, as 8 words w0..w7 (w_i = dims 32 tig + 4 i .. + 3).
// e4m3 m16n8k32, k-step ks: fragment k = 4 tig + j is dim 32 tig + 8 ks + j (A regs 0/1, B reg 0: word 2 ks) and
// k = 16 + 4 tig + j is dim 32 tig + 8 ks + 4 + j (A regs 2/3, B reg 1: word 2 ks + 1).
// f16 m16n8k16, k-step ks: k = 2 tig + {0, 1} is dim 32 tig + 4 ks + {0, 1} (low half of word ks, widened) and
// k = 2 tig + 8 + {0, 1} is dim 32 tig + 4 ks + {2, 3} (high half).
template <int NT, bool kF8>
__device__ __forceinline__ void load_q(const IndexerLogitsParams& p, int64_t t, int g, int tig, QFrag<NT, kF8>& f) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        const int64_t qrow = t * (NT * 8) + nt * 8 + g;
        const uint4* src = reinterpret_cast<const uint4*>(p.q8 + qrow * kDim + tig * 32);
        const uint4 lo = __ldg(src), hi = __ldg(src + 1);
        const uint32_t w[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
        for (int ks = 0; ks < QFrag<NT, kF8>::kSteps; ++ks) {
            if constexpr (kF8) {
                f.b[nt][ks][0] = w[2 * ks];
                f.b[nt][ks][1] = w[2 * ks + 1];
            } else {
                f.b[nt][ks][0] = e4m3x2_to_f16x2(w[ks] & 0xffffu);
                f.b[nt][ks][1] = e4m3x2_to_f16x2(w[ks] >> 16);
            }
        }
        f.wt[nt][0] = __ldg(p.weights + t * (NT * 8) + nt * 8 + tig * 2);
        f.wt[nt][1] = __ldg(p.weights + t * (NT * 8) + nt * 8 + tig * 2 + 1);
    }
}

// ra / rb: sum over the heads of wt_h ReLU(q_h . k) for keys g and g + 8 of the warp's tile (all 4 lanes of the
// quad hold the sums). acc[nt][0..1]: key g, heads 8 nt + 2 tig + {0, 1}; acc[nt][2..3]: key g + 8.
template <int NT, bool kF8>
__device__ __forceinline__ void score_tile(const uint8_t* stage, int warp, int g, int tig, const QFrag<NT, kF8>& q,
                                           float& ra, float& rb) {
    const int r0 = warp * kTileKeys + g, r1 = r0 + 8;
    const uint4 a_lo = *reinterpret_cast<const uint4*>(stage + swizzled(r0, 2 * tig));
    const uint4 a_hi = *reinterpret_cast<const uint4*>(stage + swizzled(r0, 2 * tig + 1));
    const uint4 b_lo = *reinterpret_cast<const uint4*>(stage + swizzled(r1, 2 * tig));
    const uint4 b_hi = *reinterpret_cast<const uint4*>(stage + swizzled(r1, 2 * tig + 1));
    const uint32_t k0[8] = {a_lo.x, a_lo.y, a_lo.z, a_lo.w, a_hi.x, a_hi.y, a_hi.z, a_hi.w};
    const uint32_t k1[8] = {b_lo.x, b_lo.y, b_lo.z, b_lo.w, b_hi.x, b_hi.y, b_hi.z, b_hi.w};
    float acc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < QFrag<NT, kF8>::kSteps; ++ks) {
        if constexpr (kF8) {  // each k-step from zero, added in f32 (see fp8_logits_kernel)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
                float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                mma_e4m3(part, k0[2 * ks], k1[2 * ks], k0[2 * ks + 1], k1[2 * ks + 1], q.b[nt][ks][0],
                         q.b[nt][ks][1]);
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[nt][e] = ks == 0 ? part[e] : acc[nt][e] + part[e];
            }
        } else {
            const uint32_t a0 = e4m3x2_to_f16x2(k0[ks] & 0xffffu), a2 = e4m3x2_to_f16x2(k0[ks] >> 16);
            const uint32_t a1 = e4m3x2_to_f16x2(k1[ks] & 0xffffu), a3 = e4m3x2_to_f16x2(k1[ks] >> 16);
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) mma_f16(acc[nt], a0, a1, a2, a3, q.b[nt][ks][0], q.b[nt][ks][1]);
        }
    }
    ra = 0.0f;
    rb = 0.0f;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        if constexpr (kF8) {  // ReLU + weighted sum as fused multiply-adds
            ra = fmaf(fmaxf(acc[nt][0], 0.0f), q.wt[nt][0], ra);
            ra = fmaf(fmaxf(acc[nt][1], 0.0f), q.wt[nt][1], ra);
            rb = fmaf(fmaxf(acc[nt][2], 0.0f), q.wt[nt][0], rb);
            rb = fmaf(fmaxf(acc[nt][3], 0.0f), q.wt[nt][1], rb);
        } else {
            ra = __fadd_rn(ra, __fmul_rn(fmaxf(acc[nt][0], 0.0f), q.wt[nt][0]));
            ra = __fadd_rn(ra, __fmul_rn(fmaxf(acc[nt][1], 0.0f), q.wt[nt][1]));
            rb = __fadd_rn(rb, __fmul_rn(fmaxf(acc[nt][2], 0.0f), q.wt[nt][0]));
            rb = __fadd_rn(rb, __fmul_rn(fmaxf(acc[nt][3], 0.0f), q.wt[nt][1]));
        }
    }
    ra += __shfl_xor_sync(kFull, ra, 1);
    rb += __shfl_xor_sync(kFull, rb, 1);
    ra += __shfl_xor_sync(kFull, ra, 2);
    rb += __shfl_xor_sync(kFull, rb, 2);
}

// kF8: e4m3 MMAs, q in 64 registers for 64 heads (3 CTAs per SM); else f16 MMAs, 128 registers (2 per SM).
template <int NT, bool kF8>
__global__ void __launch_bounds__(kLogitsThreads, kF8 ? 3 : 2) indexer_logits_fp8_kernel(IndexerLogitsParams p,
                                                                                          int m) {
    extern __shared__ __align__(16) uint8_t ring[];
    pdl_wait();  // q8, wt, key_slots and the limits come from earlier kernels / copies
    pdl_trigger();
    const int64_t t = blockIdx.x % p.num_tokens, first = blockIdx.x / p.num_tokens;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tig = lane & 3;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const int64_t last = qr.limit / kBlockKeys;  // the row's last block
    if (first > last) return;                    // whole CTA
    const KeyPipe<kLogitsStages> pipe{p.key_slots + qr.request * p.max_len,
                                      reinterpret_cast<int32_t*>(ring + kLogitsStages * kStageBytes),
                                      first,
                                      qr.limit,
                                      m,
                                      static_cast<int>((last - first) / m + 1),
                                      tid};
    auto issue = [&](int st, const int32_t(&slots)[kChunksPerThread]) {
        issue_block(p, ring + st * kStageBytes, ring + st * kStageBytes + kBlockKeyBytes, slots, tid);
    };
    pipe.start(issue);

    QFrag<NT, kF8> q;
    load_q<NT, kF8>(p, t, g, tig, q);

    float* srow = p.scores + t * p.max_len;
    for (int i = 0; i < pipe.iters; ++i) {
        cp_async_wait<kLogitsStages - 2>();
        __syncthreads();  // block i landed for every thread; every warp is done with the stage refilled below
        pipe.advance(i, issue);
        const uint8_t* stage = ring + (i % kLogitsStages) * kStageBytes;
        float ra, rb;
        score_tile<NT, kF8>(stage, warp, g, tig, q, ra, rb);
        const float* scales = reinterpret_cast<const float*>(stage + kBlockKeys * kDim);
        const int64_t base = pipe.block_of(i) * kBlockKeys + warp * kTileKeys;
        if (tig == 0 && base + g <= qr.limit) srow[base + g] = ra * scales[warp * kTileKeys + g];
        if (tig == 1 && base + g + 8 <= qr.limit) srow[base + g + 8] = rb * scales[warp * kTileKeys + g + 8];
    }
    cp_async_wait<0>();  // no copy may outlive the CTA
}

// -inf at every s in (limit, max_len) of each row (return_scores only; the top-k never reads past the limit).
__global__ void indexer_fill_masked_kernel(IndexerLogitsParams p) {
    const int64_t total = p.num_tokens * p.max_len;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t t = idx / p.max_len, s = idx % p.max_len;
        if (s > p.query_limit[t]) p.scores[idx] = -__int_as_float(0x7f800000);
    }
}

// ---- F32 logits: the reference's float operations in its order ----

constexpr int kF32Threads = 256;
constexpr int kF32TileKeys = 32;
constexpr int kF32TilesPerBlock = 8;
constexpr int kF32KeyStride = kDim + 1;  // padded smem rows: lane = key reads conflict-free

// The head weights ws[] are padded to a multiple of 4 floats: the compiled head-sum loop reads them three at a
// time (compute-sanitizer caught a 12-byte read past a 1-head array).
int64_t f32_logits_smem(int64_t heads) {
    return (heads * kDim + kF32TileKeys * kF32KeyStride + kF32TileKeys * (heads + 1) + (heads + 3) / 4 * 4) * 4;
}

__global__ void __launch_bounds__(kF32Threads) indexer_logits_f32_kernel(IndexerLogitsParams p) {
    extern __shared__ float smem[];
    const int64_t heads = p.heads, t = blockIdx.x;
    float* qs = smem;                                 // [heads, 128]
    float* ks = qs + heads * kDim;                    // [32, 129]
    float* ds = ks + kF32TileKeys * kF32KeyStride;    // [32, heads + 1]
    float* ws = ds + kF32TileKeys * (heads + 1);      // [heads], room for round_up(heads, 4)
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


// The FP8 logits kernel (DSA_INDEXER_LOGITS, read at every launch on the host so that a process can run all of
// them): unset / auto (the default): tmaef, the chained wgmma kernel (a block's 4 k-steps accumulate in the tensor
// core, the accumulation of the DeepGEMM kernel SGLang runs; scores up to ~5e-4 of the row's largest sum of |terms|
// off the CPU's) at 4 CTAs per SM with the key blocks that are pages loaded by tensor-map copies, L2 evict-first
// (indexer_logits_tma.cu; H200, B = 64 / 64K: 157.8 us vs chain4 216.0, q prep + logits + top-k in a graph 189.3 vs
// 258.2; B = 64 / 4K 17.8 vs 20.5; B = 1 equal within run-to-run noise); where it does not apply (a store that is
// not whole pages) the previous default: chain4 for rows of >= 8192 keys, chain below. tma: the same with default L2
// copies (167.5 us), tma3: at 3 CTAs per SM (171.6); chain / chain4 force the cp.async-gather kernels (3 / 4 CTAs per
// SM); wgmma: separate zero-started accumulators per k-step (5-9e-5 of the row's largest score); f16: the exact
// fallback (mma.sync on the values widened to f16, < 4e-7); e4m3: mma.sync e4m3, each k-step from a zero
// accumulator. (An L2 bulk prefetch of each page 4 blocks ahead of its copy measured 191.0 us and was removed.)
enum class Fp8LogitsKernel { kAuto, kWgmma, kF16, kE4m3, kChain, kChain4, kTma, kTma3, kTmaEf };
Fp8LogitsKernel fp8_logits_kernel() {
    const char* v = std::getenv("DSA_INDEXER_LOGITS");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return Fp8LogitsKernel::kAuto;
    if (std::strcmp(v, "wgmma") == 0) return Fp8LogitsKernel::kWgmma;
    if (std::strcmp(v, "f16") == 0) return Fp8LogitsKernel::kF16;
    if (std::strcmp(v, "chain") == 0) return Fp8LogitsKernel::kChain;
    if (std::strcmp(v, "chain4") == 0) return Fp8LogitsKernel::kChain4;
    if (std::strcmp(v, "tma") == 0) return Fp8LogitsKernel::kTma;
    if (std::strcmp(v, "tma3") == 0) return Fp8LogitsKernel::kTma3;
    if (std::strcmp(v, "tmaef") == 0) return Fp8LogitsKernel::kTmaEf;
    DSA_CHECK(std::strcmp(v, "e4m3") == 0)
        << "DSA_INDEXER_LOGITS=" << v << " (auto, wgmma, chain, chain4, tma, tma3, tmaef, f16 or e4m3)";
    return Fp8LogitsKernel::kE4m3;
}
constexpr int64_t kWideLogitsMinLen = 8192;

// CTAs per row: as many as fit beside the other rows in one wave of resident CTAs (>= 1, <= the row's blocks).
template <int NT, bool kF8>
void launch_fp8_logits(const IndexerLogitsParams& p, cudaStream_t stream) {
    static SmemLimit limit;
    limit.ensure(reinterpret_cast<const void*>(indexer_logits_fp8_kernel<NT, kF8>), kLogitsSmem);
    static const int64_t resident = [] {
        int per_sm = 0;
        DSA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, indexer_logits_fp8_kernel<NT, kF8>,
                                                                     kLogitsThreads, kLogitsSmem));
        return static_cast<int64_t>(per_sm < 1 ? 1 : per_sm) * num_sms();
    }();
    const int64_t blocks_per_row = (p.max_len + kBlockKeys - 1) / kBlockKeys;
    int64_t m = resident / p.num_tokens;
    m = m < 1 ? 1 : (m > blocks_per_row ? blocks_per_row : m);
    host::launch_pdl(indexer_logits_fp8_kernel<NT, kF8>, dim3(static_cast<unsigned>(p.num_tokens * m)),
                     dim3(kLogitsThreads), kLogitsSmem, stream, p, static_cast<int>(m));
}

template <int NT>
void launch_fp8_logits(const IndexerLogitsParams& p, cudaStream_t stream) {
    switch (fp8_logits_kernel()) {
        case Fp8LogitsKernel::kAuto:
            if (indexer_logits_tma_applies(p)) return launch_indexer_logits_tma(p, stream, 4, true);
            return launch_indexer_logits_wgmma(
                p, stream, p.max_len >= kWideLogitsMinLen ? WgmmaLogits::kChainedWide : WgmmaLogits::kChained);
        case Fp8LogitsKernel::kWgmma: return launch_indexer_logits_wgmma(p, stream);
        case Fp8LogitsKernel::kChain: return launch_indexer_logits_wgmma(p, stream, WgmmaLogits::kChained);
        case Fp8LogitsKernel::kChain4: return launch_indexer_logits_wgmma(p, stream, WgmmaLogits::kChainedWide);
        case Fp8LogitsKernel::kTma: return launch_indexer_logits_tma(p, stream, 4);
        case Fp8LogitsKernel::kTma3: return launch_indexer_logits_tma(p, stream, 3);
        case Fp8LogitsKernel::kTmaEf: return launch_indexer_logits_tma(p, stream, 4, true);
        case Fp8LogitsKernel::kE4m3: return launch_fp8_logits<NT, true>(p, stream);
        case Fp8LogitsKernel::kF16: return launch_fp8_logits<NT, false>(p, stream);
    }
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

void launch_indexer_q_prep(const IndexerQPrepParams& p, cudaStream_t stream) { launch_indexer_q_prep(p, {}, stream); }

void launch_indexer_q_prep(const IndexerQPrepParams& p, const IndexerQRopeParams& rope, cudaStream_t stream) {
    if (p.num_tokens == 0) return;
    DSA_CHECK(host::aligned16(p.q) && host::aligned16(p.q8)) << "indexer q buffers must be 16-byte aligned";
    DSA_CHECK(p.heads >= 1 && p.heads <= p.padded_heads) << "indexer q prep: " << p.heads << " heads padded to "
                                                         << p.padded_heads;
    constexpr int kThreads = 256;
    const int64_t blocks = (p.num_tokens * p.padded_heads * 32 + kThreads - 1) / kThreads;
    host::launch_pdl(indexer_q_prep_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream, p,
                     rope);
}

void launch_indexer_logits(const IndexerLogitsParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.max_len == 0) return;
    DSA_CHECK(p.num_tokens <= 0x7fffffff) << "indexer logits: " << p.num_tokens << " queries";
    DSA_CHECK(host::aligned16(p.fp8 ? static_cast<const void*>(p.q8) : static_cast<const void*>(p.q)) &&
              host::aligned16(p.pages))
        << "indexer logits buffers must be 16-byte aligned";
    if (!p.fp8) {
        DSA_CHECK(p.heads >= 1 && p.heads <= 64) << "indexer F32 logits: " << p.heads << " heads (1..64)";
        const int64_t keys_per_block = kF32TilesPerBlock * kF32TileKeys;
        const dim3 grid(static_cast<unsigned>(p.num_tokens),
                        static_cast<unsigned>((p.max_len + keys_per_block - 1) / keys_per_block));
        const int64_t smem = f32_logits_smem(p.heads);
        static SmemLimit limit;
        limit.ensure(reinterpret_cast<const void*>(indexer_logits_f32_kernel), static_cast<int>(smem));
        indexer_logits_f32_kernel<<<grid, kF32Threads, smem, stream>>>(p);
        DSA_CUDA_CHECK_LAUNCH(indexer_logits_f32_kernel);
        return;
    }
    if (p.fill_masked) {
        constexpr int kThreads = 256;
        indexer_fill_masked_kernel<<<host::grid_for(p.num_tokens * p.max_len, kThreads), kThreads, 0, stream>>>(p);
        DSA_CUDA_CHECK_LAUNCH(indexer_fill_masked_kernel);
    }
    switch (p.heads) {
        case 8: return launch_fp8_logits<1>(p, stream);
        case 16: return launch_fp8_logits<2>(p, stream);
        case 32: return launch_fp8_logits<4>(p, stream);
        case 64: return launch_fp8_logits<8>(p, stream);
        default:
            DSA_CHECK(false) << "indexer FP8 logits: " << p.heads
                             << " heads (8, 16, 32 or 64: pad with indexer_fp8_padded_heads)";
    }
}

}  // namespace dsa::backend::cuda
