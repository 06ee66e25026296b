// FP8 MLA absorb kernels (see mla_absorb_fp8.h): bf16 mma.sync m16n8k16 with the e4m3 weights converted to bf16
// in registers (exact) and the tokens padded to MT x 16 rows. A CTA is one head x 32 * NG output columns; its
// warps split the reduction into slices inside one 128x128 scale block (absorb_q: 32 weight rows, absorb_o: 128
// weight columns), scale their FP32 partial sums and add them through shared memory in slice order (fixed order:
// repeatable bits). Each lane loads its weight bytes straight into registers before the PDL wait (weights are never
// written by kernels); the reduction index k is permuted the same way in both operands, so every lane's fragments
// come from contiguous bytes (absorb_q: 4 columns x 8 rows, absorb_o: 16 columns x 4 rows per k64 chunk).
// Fusions: absorb_q may write into the 576-wide MLA query and its RoPE part; absorb_o may run as 16-warp CTAs of
// whole 128-column blocks and also write act_quant of its bf16 output (o_proj's input).
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/mla_absorb_fp8.h"
#include "backend/cuda/mla_combine.cuh"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kLatent = 512;
constexpr int kMaxWarps = 8;
constexpr int kQuantWarps = 16;               // absorb_o with act_quant: 4 n-groups x 4 slices
constexpr int kQuantMaxMtiles = 2;            // its reduction buffer: 3 x 4 x MT x 2 KB <= 48 KB
constexpr int kNT = 4;                        // n8 tiles per warp (32 output columns)
constexpr int kQSlice = 32;                   // absorb_q: weight rows per warp slice
constexpr int kOSlice = 128;                  // absorb_o: weight columns per warp slice (one scale block)
constexpr int kRedBytesPerTile = 16 * 8 * 4;  // one warp's partial sums per m16n8 tile
constexpr int kMaxSmem = 48 * 1024;

__device__ __forceinline__ uint32_t load_weight4(const uint8_t* p) {
    uint32_t v;
    asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(v) : "l"(p));
    return v;
}

// Two e4m3 codes (low byte first) -> two bf16 (low half first); exact: e4m3 -> f16 -> f32 -> bf16 loses nothing.
__device__ __forceinline__ uint32_t e4m3x2_to_bf16x2(uint32_t pair) {
    const __half2_raw h2 = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair & 0xffffu), __NV_E4M3);
    const float2 f = __half22float2(__half2(h2));
    return pack_bf16x2(f.x, f.y);
}

// 8 bf16 of an activation row (16 bytes at p), zeros for a padding row.
__device__ __forceinline__ uint4 load_act16(const uint16_t* p, bool valid) {
    return valid ? __ldg(reinterpret_cast<const uint4*>(p)) : make_uint4(0, 0, 0, 0);
}

template <int MT, int NT>
__device__ __forceinline__ void scale_acc(float (&acc)[MT][NT][4], float s) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[mt][j][r] *= s;
}

// Slices 1.. store their scaled partials; slice 0 adds them in slice order. red: (slices - 1) regions per n-group,
// element e of lane l at [e * 32 + l] (conflict free).
template <int MT, int NT>
__device__ __forceinline__ void reduce_slices(float (&acc)[MT][NT][4], float* red, int slice, int slices, int lane) {
    constexpr int kElems = MT * NT * 4;
    if (slice > 0) {
        float* mine = red + (slice - 1) * kElems * 32;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int r = 0; r < 4; ++r) mine[((mt * NT + j) * 4 + r) * 32 + lane] = acc[mt][j][r];
    }
    __syncthreads();
    if (slice != 0) return;
    for (int s = 1; s < slices; ++s) {
        const float* theirs = red + (s - 1) * kElems * 32;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int r = 0; r < 4; ++r) acc[mt][j][r] += theirs[((mt * NT + j) * 4 + r) * 32 + lane];
    }
}

// The MLA query's RoPE part for head h of tokens m0 + i, i = first, first + stride, .. < rows (one warp per row;
// mla_query_kernel's math: lane l rotates pair l of x's last 64 values into y[512 + ..]).
__device__ __forceinline__ void absorb_q_rope(const AbsorbFp8Params& p, int64_t h, int64_t m0, int rows, int first,
                                              int stride, int lane) {
    constexpr int kHalf = 32;
    const AbsorbQRope& r = p.rope;
    const int ia = r.interleaved ? 2 * lane : lane, ib = r.interleaved ? 2 * lane + 1 : lane + kHalf;
    for (int i = first; i < rows; i += stride) {
        const int64_t m = m0 + i;
        if (m >= p.tokens) break;
        const int64_t pos = r.positions[m];
        if (pos < 0 || pos >= r.max_positions) __trap();  // broken invariant (device data)
        const int64_t row = m * p.heads + h;
        const uint16_t* pe = p.x + row * p.x_ld + p.nope_dim;
        float ra, rb;
        rope_rotate(bf16_bits_to_f32(pe[ia]), bf16_bits_to_f32(pe[ib]), r.cos[pos * kHalf + lane],
                    r.sin[pos * kHalf + lane], ra, rb);
        uint16_t* out = p.y + row * p.y_ld + kLatent;
        out[ia] = f32_to_bf16_bits(ra);
        out[ib] = f32_to_bf16_bits(rb);
    }
}

// absorb_q. Warp slice s covers weight rows h*B + 32s + [0, 32) and 32 columns n0 + [0, 32). Lane (g, q) loads
// rows 32s + 8q + [0, 8) at columns n0 + 4g + [0, 4): k16 step u uses rows 8q + 4u + {0,1} (b0) and {2,3} (b1);
// n tile j takes byte j, so its column c (= g) is n0 + 4c + j. Grid (512 / (32 NG), H, token tile groups), block
// 32 x S x NG. x / y rows of head h are x_ld / y_ld apart; with p.rope, the warps of a head's CTAs also write the
// query's RoPE part of its tokens (one row each; at B = 1 the last warp of column group 0).
template <int MT>
__global__ void __launch_bounds__(kMaxWarps * 32) absorb_q_fp8_kernel(AbsorbFp8Params p, int ngroups) {
    constexpr int NT = kNT;
    extern __shared__ float red[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
    const int slices = static_cast<int>(p.nope_dim / kQSlice), slice = warp % slices, ng = warp / slices;
    const int64_t h = blockIdx.y, block = p.nope_dim + p.v_dim;
    const int n0 = (blockIdx.x * ngroups + ng) * (NT * 8);
    const int64_t m0 = static_cast<int64_t>(blockIdx.z) * MT * 16;
    const int64_t row0 = h * block + slice * kQSlice;
    const uint8_t* wp = p.w + (row0 + 8 * q) * kLatent + n0 + NT * g;
    uint32_t wv[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) wv[i] = load_weight4(wp + i * kLatent);
    const float scale = __ldg(p.w_scale + (row0 / 128) * p.scale_ld + n0 / 128);
    pdl_wait();
    pdl_trigger();
    uint4 av[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int64_t m = m0 + mt * 16 + hf * 8 + g;
            av[mt][hf] = load_act16(p.x + (m * p.heads + h) * p.x_ld + slice * kQSlice + 8 * q, m < p.tokens);
        }
    if (p.rope.positions != nullptr) {  // the rows over all warps of the head's CTAs, while av is in flight
        const int warps = static_cast<int>(blockDim.x / 32);
        absorb_q_rope(p, h, m0, MT * 16, static_cast<int>(blockIdx.x) * warps + (warps - 1 - warp),
                      static_cast<int>(gridDim.x) * warps, lane);  // the last warp first (slice 0 reduces)
    }
    float acc[MT][NT][4] = {};
#pragma unroll
    for (int u = 0; u < 2; ++u) {
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            const uint32_t sel01 = static_cast<uint32_t>(j) | static_cast<uint32_t>(4 + j) << 4;
            const uint32_t b0 = e4m3x2_to_bf16x2(__byte_perm(wv[4 * u], wv[4 * u + 1], sel01));
            const uint32_t b1 = e4m3x2_to_bf16x2(__byte_perm(wv[4 * u + 2], wv[4 * u + 3], sel01));
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                const uint32_t* lo = reinterpret_cast<const uint32_t*>(&av[mt][0]);
                const uint32_t* hi = reinterpret_cast<const uint32_t*>(&av[mt][1]);
                const uint32_t a[4] = {lo[2 * u], hi[2 * u], lo[2 * u + 1], hi[2 * u + 1]};
                mma_bf16(acc[mt][j], a, b0, b1);
            }
        }
    }
    scale_acc<MT, NT>(acc, scale);
    reduce_slices<MT, NT>(acc, red + ng * (slices - 1) * MT * NT * 4 * 32, slice, slices, lane);
    // Lane (g, q) holds columns n0 + 8q + [0, 8) of rows g and g + 8: tile j's c0/c2 at 8q + j, c1/c3 at
    // 8q + 4 + j.
    if (slice != 0) return;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int64_t m = m0 + mt * 16 + hf * 8 + g;
            if (m >= p.tokens) continue;
            uint32_t o[NT];
#pragma unroll
            for (int i = 0; i < NT; ++i) {
                const int c = i < NT / 2 ? 2 * hf : 2 * hf + 1, j = 2 * (i % (NT / 2));
                o[i] = pack_bf16x2(acc[mt][j][c], acc[mt][j + 1][c]);
            }
            uint4* dst = reinterpret_cast<uint4*>(p.y + (m * p.heads + h) * p.y_ld + n0 + 2 * NT * q);
            *dst = make_uint4(o[0], o[1], o[2], o[3]);
        }
    }
}

// absorb_o's act_quant epilogue (QUANT): the CTA holds whole 128-column blocks (4 n-groups of 32 columns); each
// slice-0 warp rounds its sums to bf16 (the y values), takes its rows' amax over its 32 columns, and the four
// warps' maxima meet in shared memory (reusing the reduction buffer after a barrier). Then act_quant's scale and
// codes of the bf16 values (act_quant.cuh): the bytes launch_act_quant makes from y. Every thread must call it.
template <int MT>
__device__ __forceinline__ void absorb_o_quant_store(const AbsorbFp8Params& p, const float (&acc)[MT][kNT][4],
                                                     float* red, int slice, int ng, int lane, int64_t h, int n0,
                                                     int64_t m0) {
    const int g = lane >> 2, q = lane & 3;
    constexpr int kRows = MT * 16;
    uint32_t v[MT][2][kNT];
    __syncthreads();  // every slice-0 warp has read the partials in red
    if (slice == 0) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                float amax = 0.0f;
#pragma unroll
                for (int j = 0; j < kNT; ++j) {
                    v[mt][hf][j] = pack_bf16x2(acc[mt][j][2 * hf], acc[mt][j][2 * hf + 1]);
                    amax = fmaxf(amax, fabsf(__uint_as_float(v[mt][hf][j] << 16)));
                    amax = fmaxf(amax, fabsf(__uint_as_float(v[mt][hf][j] & 0xffff0000u)));
                }
                amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
                amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
                const int r = mt * 16 + hf * 8 + g;
                if (q == 0) red[ng * kRows + r] = amax;
                const int64_t m = m0 + r;
                if (m >= p.tokens) continue;
                uint16_t* yp = p.y + (m * p.heads + h) * p.v_dim + n0 + 2 * q;
#pragma unroll
                for (int j = 0; j < kNT; ++j) *reinterpret_cast<uint32_t*>(yp + 8 * j) = v[mt][hf][j];
            }
        }
    }
    __syncthreads();
    if (slice != 0) return;
    const int64_t width = p.heads * p.v_dim;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int r = mt * 16 + hf * 8 + g;
            const int64_t m = m0 + r;
            if (m >= p.tokens) continue;
            const float amax = fmaxf(fmaxf(red[r], red[kRows + r]), fmaxf(red[2 * kRows + r], red[3 * kRows + r]));
            const float s = act_quant_scale(amax, p.ue8m0);
            const int64_t col = h * p.v_dim + n0 + 2 * q;
            if (ng == 0 && q == 0) p.q8_scales[((h * p.v_dim + n0) / 128) * p.tokens + m] = s;
#pragma unroll
            for (int j = 0; j < kNT; ++j) {
                const uint32_t w = v[mt][hf][j];
                const uint32_t c0 = act_quant_code(__uint_as_float(w << 16), s);
                const uint32_t c1 = act_quant_code(__uint_as_float(w & 0xffff0000u), s);
                *reinterpret_cast<uint16_t*>(p.q8 + m * width + col + 8 * j) = static_cast<uint16_t>(c0 | c1 << 8);
            }
        }
    }
}

// ---- absorb_o's split-K merge (COMBINE): the head's O rows of the CTA's tokens from the attention partials ----
// Shared memory before the MMA (reused by the slice reduction after a barrier): the bf16 O tile [MT * 16][kOLd],
// the rows' split weights and sums, 1 / sum per row and (MT = 1, up to 4 rows) the chains 1..3 of each row.
constexpr int kOLd = kLatent + 8;  // padded row: the fragment loads of a warp's 8 rows hit distinct banks
constexpr int kCombineBatch = 8;   // partial loads in flight per thread
constexpr int kByChainRows = 4;    // up to this many rows a chain per thread (4 x 128 threads), else all four

template <int MT>
constexpr int combine_chain_offset() {
    return MT * 16 * kOLd * 2 + 2 * static_cast<int>(kAbsorbCombineMax) * 4 + MT * 16 * 4;
}
template <int MT>
constexpr int combine_bytes() {
    return combine_chain_offset<MT>() + (MT == 1 ? kByChainRows * (kCombineChains - 1) * 128 * 16 : 0);
}
static_assert(combine_bytes<1>() <= kMaxSmem && combine_bytes<2>() <= kMaxSmem, "absorb_o combine buffers");
static_assert(combine_chain_offset<1>() % 16 == 0, "chain buffer alignment");

// Splits z_first, z_first + step, .. (kCombineBatch of them; zeros past the last) of O row `grow` at columns col..+4.
__device__ __forceinline__ void load_splits(const AbsorbFp8Params& p, int64_t grow, int z_first, int step, int col,
                                            float4 (&v)[kCombineBatch]) {
    const int64_t all_rows = p.tokens * p.heads;
#pragma unroll
    for (int i = 0; i < kCombineBatch; ++i) {
        const int64_t z = z_first + i * step;
        v[i] = z < p.splits ? __ldg(reinterpret_cast<const float4*>(p.part_o + (z * all_rows + grow) * kLatent + col))
                            : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
}

// The chain sums of one row at 4 columns, v holding the first batch. ALL: splits 0, 1, .. into chains z % 4, then
// the combine kernel's padding terms where it has them; else the chain of z_first (z_first, z_first + 4, ..) into
// acc[0] in the combine kernel's batches (zero terms past the last split included). Each chain in split order.
template <bool ALL>
__device__ __forceinline__ void sum_splits(const AbsorbFp8Params& p, int64_t grow, int z_first, int col, const float* w,
                                           float4 (&v)[kCombineBatch], float4 (&acc)[kCombineChains]) {
    static_assert(kCombineBatch == kCombineChainBatch, "the combine kernel's batch");
    constexpr int step = ALL ? 1 : kCombineChains;
    for (int z0 = z_first;;) {
#pragma unroll
        for (int i = 0; i < kCombineBatch; ++i) {
            const int z = z0 + i * step;
            if constexpr (ALL) {
                if (z < p.splits) combine_fma(acc[i % kCombineChains], v[i], w[z]);
            } else {
                combine_fma(acc[0], v[i], z < p.splits ? w[z] : 0.0f);  // v[i] = 0 past the last split
            }
        }
        z0 += kCombineBatch * step;
        if (z0 >= p.splits) break;
        load_splits(p, grow, z0, step, col, v);
    }
    if constexpr (ALL) {
#pragma unroll
        for (int c = 0; c < kCombineChains; ++c) {
            if (combine_chain_padded(p.splits, c)) combine_pad(acc[c]);
        }
    }
}

// Writes the merged bf16 O rows m0 + [0, rows) of head h into the tile; every thread calls it (barriers inside).
// Up to 4 rows (MT = 1): thread (chain c, col4) sums chain c of each row, chain 0's thread adds the others from
// shared memory (the combine kernel's groups); more rows: a thread per (row, col4) item sums all four chains.
template <int MT>
__device__ __forceinline__ void absorb_o_combine(const AbsorbFp8Params& p, int64_t h, int64_t m0, uint8_t* smem) {
    constexpr int kRowsMax = MT * 16, kThreads = kQuantWarps * 32;
    uint16_t* otile = reinterpret_cast<uint16_t*>(smem);
    float* wts = reinterpret_cast<float*>(smem + kRowsMax * kOLd * 2);
    float* sums = wts + kAbsorbCombineMax;
    float* inv = sums + kAbsorbCombineMax;
    float4* chains = reinterpret_cast<float4*>(smem + combine_chain_offset<MT>());
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, col = (tid & 127) * 4, sub = tid >> 7;
    const int rows = static_cast<int>(p.tokens - m0 < kRowsMax ? p.tokens - m0 : kRowsMax);
    const int splits = static_cast<int>(p.splits);
    const bool by_chain = MT == 1 && rows <= kByChainRows;
    auto grow = [&](int r) { return (m0 + r) * p.heads + h; };
    float4 v[kCombineBatch];
    const int r_first = by_chain ? 0 : sub;  // this thread's first row (its loads in flight during the weights)
    if (r_first < rows) load_splits(p, grow(r_first), by_chain ? sub : 0, by_chain ? kCombineChains : 1, col, v);
    for (int r = warp; r < rows; r += kQuantWarps) {
        const float l =
            combine_row_weights(p.part_ml, p.tokens * p.heads, grow(r), splits, wts + r * splits, sums + r * splits);
        if (lane == 0) inv[r] = combine_inv(l);
    }
    __syncthreads();
    if (by_chain) {
        float4 own[kByChainRows];
#pragma unroll
        for (int r = 0; r < kByChainRows; ++r) {
            if (r >= rows) break;
            if (r > 0) load_splits(p, grow(r), sub, kCombineChains, col, v);
            float4 acc[kCombineChains] = {};
            sum_splits<false>(p, grow(r), sub, col, wts + r * splits, v, acc);
            own[r] = acc[0];
            if (sub > 0) chains[(r * (kCombineChains - 1) + sub - 1) * 128 + (tid & 127)] = acc[0];
        }
        __syncthreads();
        if (sub == 0) {
#pragma unroll
            for (int r = 0; r < kByChainRows; ++r) {
                if (r >= rows) break;
#pragma unroll
                for (int c = 0; c < kCombineChains - 1; ++c) {
                    combine_add(own[r], chains[(r * (kCombineChains - 1) + c) * 128 + tid]);
                }
                *reinterpret_cast<uint2*>(otile + r * kOLd + col) = combine_round(own[r], inv[r]);
            }
        }
    } else {
        for (int item = tid; item < rows * 128; item += kThreads) {
            const int r = item >> 7;
            if (item != tid) load_splits(p, grow(r), 0, 1, col, v);
            float4 acc[kCombineChains] = {};
            sum_splits<true>(p, grow(r), 0, col, wts + r * splits, v, acc);
#pragma unroll
            for (int c = 1; c < kCombineChains; ++c) combine_add(acc[0], acc[c]);
            *reinterpret_cast<uint2*>(otile + r * kOLd + col) = combine_round(acc[0], inv[r]);
        }
    }
    __syncthreads();
}

// absorb_o. Warp slice s covers weight columns 128s + [0, 128) of the 32 rows h*B + d_n + n0 + [0, 32). Lane
// (g, q) loads, per k64 chunk c and n tile j, row n0 + 8j + g at columns 128s + 64c + 16q + [0, 16): k16 step u
// uses bytes 4u + {0,1} (b0) and {2,3} (b1). Grid (d_v / (32 NG), H), block 32 x 4 x NG. QUANT: NG = 4 (a CTA per
// 128-column block of a head) and the act_quant epilogue. COMBINE (with QUANT): the activations come from the O tile
// that absorb_o_combine merges from the split-K partials (in the shared memory the reduction reuses afterwards).
template <int MT, bool QUANT, bool COMBINE = false>
__global__ void __launch_bounds__(QUANT ? kQuantWarps * 32 : kMaxWarps * 32)
    absorb_o_fp8_kernel(AbsorbFp8Params p, int ngroups) {
    static_assert(QUANT || !COMBINE, "the fused combine runs in the 16-warp CTAs");
    extern __shared__ float red[];
    constexpr int slices = kLatent / kOSlice;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
    const int slice = warp % slices, ng = warp / slices;
    const int64_t h = blockIdx.y, block = p.nope_dim + p.v_dim;
    const int n0 = (blockIdx.x * ngroups + ng) * (kNT * 8);
    const int64_t m0 = static_cast<int64_t>(blockIdx.z) * MT * 16;
    const int64_t row0 = h * block + p.nope_dim + n0;
    const int k0 = slice * kOSlice;
    uint4 wv[2][kNT];
#pragma unroll
    for (int c = 0; c < 2; ++c)
#pragma unroll
        for (int j = 0; j < kNT; ++j)
            wv[c][j] = load_stream16(p.w + (row0 + 8 * j + g) * kLatent + k0 + 64 * c + 16 * q);
    const float scale = __ldg(p.w_scale + (row0 / 128) * p.scale_ld + k0 / 128);
    pdl_wait();
    pdl_trigger();
    if constexpr (COMBINE) absorb_o_combine<MT>(p, h, m0, reinterpret_cast<uint8_t*>(red));
    float acc[MT][kNT][4] = {};
#pragma unroll
    for (int c = 0; c < 2; ++c) {
        uint4 av[MT][2][2];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int64_t m = m0 + mt * 16 + hf * 8 + g;
                if constexpr (COMBINE) {  // the O tile's row mt * 16 + hf * 8 + g
                    const uint4* sp = reinterpret_cast<const uint4*>(
                        reinterpret_cast<const uint16_t*>(red) + (mt * 16 + hf * 8 + g) * kOLd + k0 + 64 * c + 16 * q);
                    av[mt][hf][0] = m < p.tokens ? sp[0] : make_uint4(0, 0, 0, 0);
                    av[mt][hf][1] = m < p.tokens ? sp[1] : make_uint4(0, 0, 0, 0);
                } else {
                    const uint16_t* xp = p.x + (m * p.heads + h) * kLatent + k0 + 64 * c + 16 * q;
                    av[mt][hf][0] = load_act16(xp, m < p.tokens);
                    av[mt][hf][1] = load_act16(xp + 8, m < p.tokens);
                }
            }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
#pragma unroll
            for (int j = 0; j < kNT; ++j) {
                const uint32_t word = reinterpret_cast<const uint32_t*>(&wv[c][j])[u];
                const uint32_t b0 = e4m3x2_to_bf16x2(word), b1 = e4m3x2_to_bf16x2(word >> 16);
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    // Step u's k values 16q + 4u + [0, 4) are words 2u, 2u + 1 of the row's 32 bytes.
                    const uint32_t* lo = reinterpret_cast<const uint32_t*>(&av[mt][0][u / 2]);
                    const uint32_t* hi = reinterpret_cast<const uint32_t*>(&av[mt][1][u / 2]);
                    const int w0 = (2 * u) % 4;
                    const uint32_t a[4] = {lo[w0], hi[w0], lo[w0 + 1], hi[w0 + 1]};
                    mma_bf16(acc[mt][j], a, b0, b1);
                }
            }
        }
    }
    if constexpr (COMBINE) __syncthreads();  // every warp has read the O tile before the reduction overwrites it
    scale_acc<MT, kNT>(acc, scale);
    reduce_slices<MT, kNT>(acc, red + ng * (slices - 1) * MT * kNT * 4 * 32, slice, slices, lane);
    if constexpr (QUANT) {
        absorb_o_quant_store<MT>(p, acc, red, slice, ng, lane, h, n0, m0);
        return;
    }
    // Lane (g, q) holds columns n0 + 8j + 2q + {0, 1} of rows g (c0, c1) and g + 8 (c2, c3).
    if (slice != 0) return;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int64_t m = m0 + mt * 16 + hf * 8 + g;
            if (m >= p.tokens) continue;
            uint16_t* yp = p.y + (m * p.heads + h) * p.v_dim + n0 + 2 * q;
#pragma unroll
            for (int j = 0; j < kNT; ++j) {
                *reinterpret_cast<uint32_t*>(yp + 8 * j) = pack_bf16x2(acc[mt][j][2 * hf], acc[mt][j][2 * hf + 1]);
            }
        }
    }
}

bool common_supported(const AbsorbFp8Params& p) {
    return p.tokens >= 1 && p.tokens <= kAbsorbFp8MaxTokens && p.heads >= 1 && p.heads <= 65535 && p.nope_dim > 0 &&
           p.v_dim > 0 && p.nope_dim % 32 == 0 && p.v_dim % 32 == 0 && p.scale_ld >= kLatent / 128 &&
           host::aligned16(p.x) && host::aligned16(p.w) && host::aligned16(p.y) && p.w_scale != nullptr;
}

int mtiles(int64_t tokens) { return static_cast<int>((tokens + 15) / 16); }

// absorb_q's row pitches (0: contiguous).
int64_t q_x_ld(const AbsorbFp8Params& p) { return p.x_ld > 0 ? p.x_ld : p.nope_dim; }
int64_t q_y_ld(const AbsorbFp8Params& p) { return p.y_ld > 0 ? p.y_ld : kLatent; }

std::atomic<int> g_max_mtiles{0}, g_ngroups{0};  // set_absorb_fp8_tuning; 0: default
// Defaults from the H200 round (absorb_bench, DeepSeek-V3.2 shape): one 32-column group per CTA was faster at every
// B (e.g. B = 1 absorb_q 5.45 vs 5.78 us with two), and at most 2 m16 token tiles per CTA from 33 tokens on (the
// rest along grid z; B = 64 absorb_o 10.0 vs 11.1 us with 4 per CTA; equal at B = 32).
constexpr int kDefaultMaxMtiles = 2, kDefaultNgroups = 1;

// m16 tiles per CTA: all of the tokens' up to the cap; the rest go to more CTAs along z.
int cta_mtiles(int64_t tokens) {
    const int all = mtiles(tokens), forced = g_max_mtiles.load(std::memory_order_relaxed);
    const int cap = forced > 0 ? forced : kDefaultMaxMtiles;
    return cap < all ? cap : all;
}

// Shared bytes of the slice reduction for `slices` warps per n-group, mt m16 tiles and nt n8 tiles per warp.
int red_bytes(int slices, int ngroups, int mt, int nt) { return (slices - 1) * ngroups * mt * nt * kRedBytesPerTile; }

bool ngroups_fit(int ng, int slices, int64_t columns, int mt, int nt) {
    return ng >= 1 && ng * slices <= kMaxWarps && columns % (8 * nt * ng) == 0 &&
           red_bytes(slices, ng, mt, nt) <= kMaxSmem;
}

// n-groups per CTA (more: a head's activations read by fewer CTAs): the forced or default count when it fits, else 1.
int pick_ngroups(int slices, int64_t columns, int mt, int nt) {
    const int forced = g_ngroups.load(std::memory_order_relaxed), ng = forced > 0 ? forced : kDefaultNgroups;
    return ngroups_fit(ng, slices, columns, mt, nt) ? ng : 1;
}

template <int MT>
void launch_q(const AbsorbFp8Params& p, cudaStream_t stream) {
    const int slices = static_cast<int>(p.nope_dim / kQSlice), ng = pick_ngroups(slices, kLatent, MT, kNT);
    const dim3 grid(kLatent / (8 * kNT * ng), static_cast<unsigned>(p.heads), (mtiles(p.tokens) + MT - 1) / MT);
    AbsorbFp8Params k = p;
    k.x_ld = q_x_ld(p), k.y_ld = q_y_ld(p);
    host::launch_pdl(absorb_q_fp8_kernel<MT>, grid, dim3(32 * slices * ng),
                     static_cast<size_t>(red_bytes(slices, ng, MT, kNT)), stream, k, ng);
}

template <int MT>
void launch_o(const AbsorbFp8Params& p, cudaStream_t stream) {
    constexpr int slices = kLatent / kOSlice;
    if constexpr (MT <= kQuantMaxMtiles) {
        if (p.q8 != nullptr) {  // whole 128-column blocks per CTA
            constexpr int ng = kQuantWarps / slices;
            const dim3 grid(static_cast<unsigned>(p.v_dim / (32 * ng)), static_cast<unsigned>(p.heads),
                            (mtiles(p.tokens) + MT - 1) / MT);
            const int red = red_bytes(slices, ng, MT, kNT);
            if (p.part_o != nullptr) {
                const int bytes = red > combine_bytes<MT>() ? red : combine_bytes<MT>();
                return host::launch_pdl(absorb_o_fp8_kernel<MT, true, true>, grid, dim3(32 * slices * ng),
                                        static_cast<size_t>(bytes), stream, p, ng);
            }
            return host::launch_pdl(absorb_o_fp8_kernel<MT, true>, grid, dim3(32 * slices * ng),
                                    static_cast<size_t>(red), stream, p, ng);
        }
    }
    DSA_CHECK(p.q8 == nullptr && p.part_o == nullptr)
        << "absorb_o_fp8: act_quant outputs / partials at " << MT << " token tiles per CTA";
    const int ng = pick_ngroups(slices, p.v_dim, MT, kNT);
    const dim3 grid(static_cast<unsigned>(p.v_dim / (32 * ng)), static_cast<unsigned>(p.heads),
                    (mtiles(p.tokens) + MT - 1) / MT);
    host::launch_pdl(absorb_o_fp8_kernel<MT, false>, grid, dim3(32 * slices * ng),
                     static_cast<size_t>(red_bytes(slices, ng, MT, kNT)), stream, p, ng);
}

}  // namespace

bool absorb_fp8_wanted(bool absorb_q, int64_t tokens) {
    const char* v = std::getenv("DSA_MLA_ABSORB");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) {
        return tokens <= (absorb_q ? kAbsorbQAutoTokens : kAbsorbFp8MaxTokens);
    }
    if (std::strcmp(v, "bf16") == 0) return false;
    DSA_CHECK(std::strcmp(v, "fp8") == 0) << "DSA_MLA_ABSORB must be 'auto', 'fp8' or 'bf16', not '" << v << "'";
    return true;
}

bool absorb_q_fp8_supported(const AbsorbFp8Params& p) {
    if (!common_supported(p)) return false;
    const int slices = static_cast<int>(p.nope_dim / kQSlice);
    const int64_t x_ld = q_x_ld(p), y_ld = q_y_ld(p);
    if (x_ld < p.nope_dim || x_ld % 8 != 0 || y_ld < kLatent || y_ld % 8 != 0) return false;
    if (p.rope.positions != nullptr &&
        (x_ld != p.nope_dim + 64 || y_ld != kLatent + 64 || p.rope.cos == nullptr || p.rope.sin == nullptr)) {
        return false;
    }
    return slices <= kMaxWarps && red_bytes(slices, 1, mtiles(p.tokens), kNT) <= kMaxSmem;
}

bool absorb_o_fp8_supported(const AbsorbFp8Params& p) {
    if (!common_supported(p)) return false;
    if (p.part_o != nullptr) {  // the merge's buffers: rows per CTA x splits weights; 16-byte partial rows
        const int64_t rows = static_cast<int64_t>(cta_mtiles(p.tokens)) * 16;
        if (p.q8 == nullptr || p.part_ml == nullptr || p.splits < 2 ||
            (rows < p.tokens ? rows : p.tokens) * p.splits > kAbsorbCombineMax || !host::aligned16(p.part_o) ||
            (reinterpret_cast<uintptr_t>(p.part_ml) & 7u) != 0) {
            return false;
        }
    }
    return p.q8 == nullptr || (p.q8_scales != nullptr && p.v_dim % 128 == 0 && p.tokens <= kAbsorbOQuantMaxTokens);
}

void set_absorb_fp8_tuning(int max_mtiles, int ngroups) {
    g_max_mtiles.store(max_mtiles, std::memory_order_relaxed);
    g_ngroups.store(ngroups, std::memory_order_relaxed);
}

void launch_absorb_q_fp8(const AbsorbFp8Params& p, cudaStream_t stream) {
    DSA_CHECK(absorb_q_fp8_supported(p)) << "absorb_q_fp8: unsupported shape (tokens " << p.tokens << ", d_n "
                                         << p.nope_dim << ", d_v " << p.v_dim << ")";
    switch (cta_mtiles(p.tokens)) {
        case 1:
            return launch_q<1>(p, stream);
        case 2:
            return launch_q<2>(p, stream);
        case 3:
            return launch_q<3>(p, stream);
        default:
            return launch_q<4>(p, stream);
    }
}

void launch_absorb_o_fp8(const AbsorbFp8Params& p, cudaStream_t stream) {
    DSA_CHECK(absorb_o_fp8_supported(p)) << "absorb_o_fp8: unsupported shape (tokens " << p.tokens << ", d_n "
                                         << p.nope_dim << ", d_v " << p.v_dim << ")";
    const int mt = cta_mtiles(p.tokens);
    switch (p.q8 != nullptr && mt > kQuantMaxMtiles ? kQuantMaxMtiles : mt) {
        case 1:
            return launch_o<1>(p, stream);
        case 2:
            return launch_o<2>(p, stream);
        case 3:
            return launch_o<3>(p, stream);
        default:
            return launch_o<4>(p, stream);
    }
}

}  // namespace dsa::backend::cuda
