// MLA attention kernels. Sparse (absorbed): one CTA of 8 warps per (query token, 64-head group) loops over the
// token's slot list in tiles of 64 gathered latent rows (bf16 rows by cp.async, FP8 rows loaded into registers a
// tile ahead and dequantized into shared memory), S = Q K^T and O += P V on bf16 mma.sync with an FP32 online
// softmax. Warp w owns heads 16 (w % 4) .. +16; for S it takes keys 32 (w / 4) .. +32 of the tile, for O the
// output columns 256 (w / 4) .. +256, so the two column halves exchange row maxima and P through shared memory.
// Small batches split each token's list over grid.z (FP32 partials + a combine kernel) to fill the SMs.
// Dense (expanded MHA): a tensor-core flash-attention kernel for the model's head shapes, and a plain
// one-warp-per-(token, head) kernel (FP32 CUDA-core math) for any other shape.
#include <cuda_fp8.h>

#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/mla_combine.cuh"
#include "backend/cuda/mla_kernels.h"
#include "backend/cuda/mla_sparse_common.cuh"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kKvDim = 576, kLatent = 512;
constexpr int kFp8RowBytes = 656, kFp8ScaleOffset = 512, kFp8RopeOffset = 528, kBf16RowBytes = 1152;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kNoMax = -1e30f;  // running-max start: finite, so an all-masked tile gives exp2(-inf) = 0, no NaN

// ---- sparse ----
constexpr int kHeads = 64;                      // heads per CTA
constexpr int kRows = 64;                       // gathered rows per tile
constexpr int kThreads = 256;                   // 8 warps
constexpr int kRowChunks = kKvDim / 8;          // 72 16-byte chunks per 576-wide bf16 row
constexpr int kTileBytes = kRows * kKvDim * 2;  // 73728 (also the Q tile: 64 heads x 576)
constexpr int kPChunks = kRows / 8;             // P tile: 64 heads x 64 rows bf16, 8 chunks per row
constexpr int kPBytes = kHeads * kRows * 2;

struct SparseSmem {
    uint8_t q[kTileBytes];
    uint8_t kv[2][kTileBytes];
    uint8_t p[kPBytes];
    float row_max[2][kHeads];  // per column half
    float row_sum[2][kHeads];
    int32_t slot[2][kRows];  // per buffer: slot of each row (-1: masked)
};
constexpr size_t kSparseSmemBytes = sizeof(SparseSmem);
static_assert(kSparseSmemBytes <= 227 * 1024, "sparse MLA shared memory exceeds the sm_90 per-CTA limit");

__device__ __forceinline__ int32_t slot_at(const MlaSparseKernelParams& p, int64_t tok, int64_t j) {
    if (j >= p.width) return -1;
    const int32_t s = __ldg(p.slots + tok * p.width + j);
    if (s >= p.num_slots) __trap();  // the CPU reference aborts on an out-of-range slot
    return s < 0 ? -1 : s;
}

// FP8 rows in flight: this thread's 16-byte c_kv chunk (chunk tid % 32) of rows tid / 32 + 8 i, and its scale.
struct Fp8Stage {
    uint4 raw[8];
    float scale[8];
};

// Issues the loads of tile `tile` into buffer `buf`: bf16 rows and FP8 k_pe by cp.async (zero-filled for
// masked rows), FP8 c_kv into `st` (converted later by fp8_store). Rows' slots go to smem.slot[buf].
__device__ __forceinline__ void issue_tile(const MlaSparseKernelParams& p, SparseSmem& sm, int64_t tok, int64_t tile,
                                           int buf, Fp8Stage& st) {
    const int tid = threadIdx.x;
    const int64_t j0 = tile * kRows;
    if (tid < kRows) sm.slot[buf][tid] = slot_at(p, tok, j0 + tid);
    uint8_t* dst = sm.kv[buf];
    if (!p.fp8) {
        for (int idx = tid; idx < kRows * kRowChunks; idx += kThreads) {
            const int r = idx / kRowChunks, c = idx % kRowChunks;
            const int32_t s = slot_at(p, tok, j0 + r);
            const uint8_t* src = p.store + static_cast<int64_t>(s < 0 ? 0 : s) * kBf16RowBytes + c * 16;
            cp_async16(dst + swz(r, c * 8, kRowChunks), src, s >= 0);
        }
        return;
    }
    for (int idx = tid; idx < kRows * 8; idx += kThreads) {  // k_pe: 8 chunks per row
        const int r = idx >> 3, c = idx & 7;
        const int32_t s = slot_at(p, tok, j0 + r);
        const uint8_t* src = p.store + static_cast<int64_t>(s < 0 ? 0 : s) * kFp8RowBytes + kFp8RopeOffset + c * 16;
        cp_async16(dst + swz(r, kLatent + c * 8, kRowChunks), src, s >= 0);
    }
    const int c = tid & 31;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int r = (tid >> 5) + 8 * i;
        const int32_t s = slot_at(p, tok, j0 + r);
        if (s >= 0) {
            const uint8_t* row = p.store + static_cast<int64_t>(s) * kFp8RowBytes;
            st.raw[i] = __ldg(reinterpret_cast<const uint4*>(row + c * 16));
            st.scale[i] = __ldg(reinterpret_cast<const float*>(row + kFp8ScaleOffset) + (c >> 3));
        } else {
            st.raw[i] = make_uint4(0, 0, 0, 0);
            st.scale[i] = 0.0f;
        }
    }
}

// Dequantizes the staged FP8 chunks (16 e4m3 -> 16 bf16 = two 16-byte chunks) into buffer `buf`.
__device__ __forceinline__ void fp8_store(SparseSmem& sm, int buf, const Fp8Stage& st) {
    const int tid = threadIdx.x, c = tid & 31;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int r = (tid >> 5) + 8 * i;
        const uint16_t* pairs = reinterpret_cast<const uint16_t*>(&st.raw[i]);
        uint32_t out[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const __half2_raw h2 = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pairs[k]), __NV_E4M3);
            const float2 f = __half22float2(__half2(h2));
            out[k] = pack_bf16x2(f.x * st.scale[i], f.y * st.scale[i]);  // exact: power-of-two scale
        }
        uint4* d0 = reinterpret_cast<uint4*>(sm.kv[buf] + swz(r, c * 16, kRowChunks));
        uint4* d1 = reinterpret_cast<uint4*>(sm.kv[buf] + swz(r, c * 16 + 8, kRowChunks));
        *d0 = make_uint4(out[0], out[1], out[2], out[3]);
        *d1 = make_uint4(out[4], out[5], out[6], out[7]);
    }
}

// Merges the splits of one (token, head) row: out = sum_z O_z 2^(m_z - M) / sum_z l_z 2^(m_z - M), M = max m_z;
// a row whose splits saw no valid slot (all l_z = 0) is zero. One CTA per row: 4 groups of 128 threads (4 columns
// each) take every 4th split, 8 coalesced float4 loads in flight per thread. The first batch of partials is loaded
// before warp 0 turns the splits' (max, sum) pairs into weights in shared memory, so the two loads overlap (with up
// to 32 splits, the usual decode case, that is all of them); group 0 adds the groups' sums. Launched with PDL.
constexpr int kCombineGroups = 4, kCombineThreads = 128 * kCombineGroups, kCombineBatch = 8;
constexpr int kMaxCombineSplits = 512;
static_assert(kCombineGroups == kCombineChains && kCombineBatch == kCombineChainBatch, "mla_combine.cuh's chains");

// The partials of splits z0, z0 + 4, ... (kCombineBatch of them; zeros past the last split) at this thread's columns.
__device__ __forceinline__ void load_partials(const MlaSparseKernelParams& p, int64_t row, int64_t z0, int col,
                                              float4 (&v)[kCombineBatch]) {
    const int64_t rows = p.num_tokens * p.heads;
#pragma unroll
    for (int i = 0; i < kCombineBatch; ++i) {
        const int64_t z = z0 + i * kCombineGroups;
        v[i] = z < p.splits ? *reinterpret_cast<const float4*>(p.part_o + (z * rows + row) * kLatent + col)
                            : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
}

__global__ void __launch_bounds__(kCombineThreads) mla_sparse_combine_kernel(MlaSparseKernelParams p) {
    __shared__ float w[2 * kMaxCombineSplits];  // weights, then (until replaced) the splits' sums
    __shared__ float4 part[kCombineGroups - 1][128];
    __shared__ float inv_l;
    pdl_wait();  // the partials come from the sparse kernel just before (launched with PDL)
    pdl_trigger();
    const int64_t row = blockIdx.x;  // tok * heads + head
    const int grp = threadIdx.x >> 7, col = (threadIdx.x & 127) * 4;
    float4 v[kCombineBatch];
    load_partials(p, row, grp, col, v);  // in flight while warp 0 computes the weights
    if (threadIdx.x < 32) {
        const float l = combine_row_weights(p.part_ml, p.num_tokens * p.heads, row, p.splits, w, w + kMaxCombineSplits);
        if (threadIdx.x == 0) inv_l = combine_inv(l);
    }
    __syncthreads();
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int64_t z0 = grp;;) {
#pragma unroll
        for (int i = 0; i < kCombineBatch; ++i) {
            const int64_t z = z0 + i * kCombineGroups;
            const float wz = z < p.splits ? w[z] : 0.0f;
            combine_fma(acc, v[i], wz);
        }
        z0 += kCombineGroups * kCombineBatch;
        if (z0 >= p.splits) break;
        load_partials(p, row, z0, col, v);
    }
    if (grp > 0) part[grp - 1][threadIdx.x & 127] = acc;
    __syncthreads();
    if (grp > 0) return;
#pragma unroll
    for (int g = 0; g < kCombineGroups - 1; ++g) {
        combine_add(acc, part[g][threadIdx.x]);
    }
    const uint2 o = combine_round(acc, inv_l);
    uint16_t* out = p.out + row * kLatent + col;  // 4-byte aligned (launch check)
    *reinterpret_cast<uint32_t*>(out) = o.x;
    *reinterpret_cast<uint32_t*>(out + 2) = o.y;
}

__global__ void __launch_bounds__(kThreads, 1) mla_sparse_kernel(MlaSparseKernelParams p) {
    extern __shared__ __align__(128) uint8_t smem_raw[];
    SparseSmem& sm = *reinterpret_cast<SparseSmem*>(smem_raw);
    const int64_t tok = blockIdx.x;
    const int64_t h0 = static_cast<int64_t>(blockIdx.y) * kHeads;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int rg = warp & 3, ch = warp >> 2;  // head rows 16 rg .. +16; key half / output-column half ch
    const int r0 = rg * 16, g = lane >> 2, t = lane & 3;

    // Q tile: heads h0 .. h0 + 63 (zero rows past the last head).
    for (int idx = tid; idx < kHeads * kRowChunks; idx += kThreads) {
        const int r = idx / kRowChunks, c = idx % kRowChunks;
        const bool ok = h0 + r < p.heads;
        const uint16_t* src = p.q + ((tok * p.heads + (ok ? h0 + r : 0)) * kKvDim + c * 8);
        cp_async16(sm.q + swz(r, c * 8, kRowChunks), src, ok);
    }
    cp_async_commit();
    const int64_t all_tiles = (p.width + kRows - 1) / kRows;
    const int64_t first = p.splits > 1 ? static_cast<int64_t>(blockIdx.z) * p.tiles_per_split : 0;
    const int64_t num_tiles = p.splits > 1 ? min(p.tiles_per_split, all_tiles - first) : all_tiles;
    Fp8Stage st;
    if (num_tiles > 0) issue_tile(p, sm, tok, first, 0, st);
    cp_async_commit();
    if (p.fp8 && num_tiles > 0) fp8_store(sm, 0, st);

    const float scale_log2 = p.softmax_scale * kLog2e;
    float o[32][4];  // 16 rows x 256 columns: n-tile i = columns 256 ch + 8 i
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};  // rows g and g + 8

    for (int64_t tile = 0; tile < num_tiles; ++tile) {
        const int buf = static_cast<int>(tile & 1);
        const bool next = tile + 1 < num_tiles;
        if (next) issue_tile(p, sm, tok, first + tile + 1, buf ^ 1, st);
        cp_async_commit();
        cp_async_wait<1>();
        // Tile `tile` (and Q) resident, slots visible; a tile without a valid slot (list tails) is skipped.
        const bool any_valid = __syncthreads_or(tid < kRows && sm.slot[buf][tid] >= 0) != 0;

        if (any_valid) {
            // S = Q K^T for rows r0..r0+15, keys 32 ch .. +32.
            float s[4][4] = {};
            const uint8_t* kv = sm.kv[buf];
#pragma unroll 4
            for (int k0 = 0; k0 < kKvDim; k0 += 16) {
                uint32_t a[4];
                ldmatrix_x4(a, sm.q + swz(r0 + (lane & 7) + ((lane >> 3) & 1) * 8, k0 + (lane >> 4) * 8, kRowChunks));
#pragma unroll
                for (int np = 0; np < 2; ++np) {
                    uint32_t b[4];
                    const int key = ch * 32 + np * 16 + (lane & 7) + (lane >> 4) * 8;
                    ldmatrix_x4(b, kv + swz(key, k0 + ((lane >> 3) & 1) * 8, kRowChunks));
                    mma_bf16(s[2 * np], a, b[0], b[1]);
                    mma_bf16(s[2 * np + 1], a, b[2], b[3]);
                }
            }
            // Mask, scale to log2 units, row maxima over this warp's 32 keys.
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int key = ch * 32 + nt * 8 + 2 * t + (e & 1);
                    s[nt][e] = sm.slot[buf][key] >= 0 ? s[nt][e] * scale_log2 : -INFINITY;
                    mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
                }
            }
#pragma unroll
            for (int hlf = 0; hlf < 2; ++hlf) {
                mx[hlf] = fmaxf(mx[hlf], __shfl_xor_sync(0xffffffffu, mx[hlf], 1));
                mx[hlf] = fmaxf(mx[hlf], __shfl_xor_sync(0xffffffffu, mx[hlf], 2));
            }
            if (t == 0) {
                sm.row_max[ch][r0 + g] = mx[0];
                sm.row_max[ch][r0 + g + 8] = mx[1];
            }
            __syncthreads();
            float alpha[2];
#pragma unroll
            for (int hlf = 0; hlf < 2; ++hlf) {
                const int row = r0 + g + 8 * hlf;
                const float m_new = fmaxf(m_run[hlf], fmaxf(sm.row_max[0][row], sm.row_max[1][row]));
                alpha[hlf] = exp2f(m_run[hlf] - m_new);
                m_run[hlf] = m_new;
                l_run[hlf] *= alpha[hlf];
            }
            // P = bf16(exp2(S - m)), row sums of the rounded values, P to shared memory.
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
                for (int hlf = 0; hlf < 2; ++hlf) {
                    const int key = ch * 32 + nt * 8 + 2 * t;
                    *reinterpret_cast<uint32_t*>(sm.p + swz(r0 + g + 8 * hlf, key, kPChunks)) =
                        mla_sparse::softmax_pair(s[nt][2 * hlf], s[nt][2 * hlf + 1], m_run[hlf], l_run[hlf]);
                }
            }
            mla_sparse::rescale_o(o, alpha);
            __syncthreads();  // P complete
            // O[rows, 256 ch ..] += P[rows, 64 keys] V[64 keys, 256 ch ..]  (V = the tile's first 512 columns).
#pragma unroll
            for (int k0 = 0; k0 < kRows; k0 += 16) {
                uint32_t a[4];
                ldmatrix_x4(a, sm.p + swz(r0 + (lane & 7) + ((lane >> 3) & 1) * 8, k0 + (lane >> 4) * 8, kPChunks));
#pragma unroll
                for (int np = 0; np < 16; ++np) {
                    uint32_t b[4];
                    const int col = ch * 256 + np * 16 + (lane >> 4) * 8;
                    ldmatrix_x4_trans(b, kv + swz(k0 + (lane & 7) + ((lane >> 3) & 1) * 8, col, kRowChunks));
                    mma_bf16(o[2 * np], a, b[0], b[1]);
                    mma_bf16(o[2 * np + 1], a, b[2], b[3]);
                }
            }
        }
        if (p.fp8 && next) fp8_store(sm, buf ^ 1, st);
        __syncthreads();  // all reads of `buf` and P done before they are refilled
    }
    cp_async_wait<0>();

    // Row sums over both key halves, normalize, write bf16.
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        l_run[hlf] += __shfl_xor_sync(0xffffffffu, l_run[hlf], 1);
        l_run[hlf] += __shfl_xor_sync(0xffffffffu, l_run[hlf], 2);
    }
    if (t == 0) {
        sm.row_sum[ch][r0 + g] = l_run[0];
        sm.row_sum[ch][r0 + g + 8] = l_run[1];
    }
    __syncthreads();
    if (p.splits > 1) {
        mla_sparse::write_partials(p, sm, o, m_run, tok, h0, r0 + g, ch * 256 + 2 * t, ch == 0 && t == 0);
        return;
    }
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        const int row = r0 + g + 8 * hlf;
        const int64_t head = h0 + row;
        if (head >= p.heads) continue;
        const float l = sm.row_sum[0][row] + sm.row_sum[1][row];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        uint16_t* out = p.out + (tok * p.heads + head) * kLatent + ch * 256 + 2 * t;
#pragma unroll
        for (int i = 0; i < 32; ++i) {
            *reinterpret_cast<uint32_t*>(out + i * 8) = pack_bf16x2(o[i][2 * hlf] * inv, o[i][2 * hlf + 1] * inv);
        }
    }
}

// ---- dense ----
constexpr int kDenseWarps = 4;
constexpr int kMaxQk = 512, kMaxV = 256;

__device__ __forceinline__ bool dense_visible(const MlaDenseKernelParams& p, int64_t tok, int64_t s, int64_t words) {
    if (p.allowed_bits == nullptr) return true;
    return (p.allowed_bits[tok * words + (s >> 5)] >> (s & 31)) & 1u;
}

// One warp per (token, head): lane j scores key s0 + j of each 32-key step, then all lanes accumulate P·V over
// the step with output columns 2 lane + 64 i, i < VP = v_dim / 64.
template <int VP>
__global__ void __launch_bounds__(kDenseWarps * 32) mla_dense_kernel(MlaDenseKernelParams p) {
    __shared__ float qs[kDenseWarps][kMaxQk];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t pair = static_cast<int64_t>(blockIdx.x) * kDenseWarps + warp;
    if (pair >= p.num_tokens * p.heads) return;  // whole warps exit together; no block barrier below
    const int64_t tok = pair / p.heads, h = pair % p.heads;
    const int32_t qpos = p.q_positions[tok];
    if (qpos < 0 || qpos >= p.num_keys) __trap();  // the CPU reference aborts on this
    const uint16_t* q = p.q + pair * p.qk_dim;
    for (int64_t d = lane; d < p.qk_dim; d += 32) qs[warp][d] = bf16_bits_to_f32(q[d]);
    __syncwarp();
    const int64_t words = (p.num_keys + 31) / 32;
    const float scale_log2 = p.softmax_scale * kLog2e;
    float acc[2 * VP] = {};
    float m_run = kNoMax, l_run = 0.0f;
    for (int64_t s0 = 0; s0 <= qpos; s0 += 32) {
        const int64_t s = s0 + lane;
        float x = -INFINITY;
        if (s <= qpos && dense_visible(p, tok, s, words)) {
            const __nv_bfloat162* k = reinterpret_cast<const __nv_bfloat162*>(p.k + (s * p.heads + h) * p.qk_dim);
            float dot = 0.0f;
            for (int64_t d = 0; d < p.qk_dim / 2; ++d) {
                const float2 kv = __bfloat1622float2(k[d]);
                dot += qs[warp][2 * d] * kv.x + qs[warp][2 * d + 1] * kv.y;
            }
            x = dot * scale_log2;
        }
        const float m_new = fmaxf(m_run, warp_max(x));
        const float alpha = exp2f(m_run - m_new);
        m_run = m_new;
        const float pr = round_bf16(exp2f(x - m_new));
        l_run = l_run * alpha + pr;
#pragma unroll
        for (int i = 0; i < 2 * VP; ++i) acc[i] *= alpha;
        for (int j = 0; j < 32; ++j) {
            const float pj = __shfl_sync(0xffffffffu, pr, j);
            if (pj == 0.0f) continue;  // warp-uniform
            const uint16_t* v = p.v + ((s0 + j) * p.heads + h) * p.v_dim;
#pragma unroll
            for (int i = 0; i < VP; ++i) {
                const float2 vv = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(v + 2 * lane + 64 * i));
                acc[2 * i] += pj * vv.x;
                acc[2 * i + 1] += pj * vv.y;
            }
        }
    }
    const float l = warp_sum(l_run);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    uint16_t* out = p.out + pair * p.v_dim;
#pragma unroll
    for (int i = 0; i < VP; ++i) {
        *reinterpret_cast<uint32_t*>(out + 2 * lane + 64 * i) = pack_bf16x2(acc[2 * i] * inv, acc[2 * i + 1] * inv);
    }
}

// Tensor-core dense kernel for the model's head shapes (d_qk, d_v) = (192, 128) DeepSeek and (256, 256) GLM:
// one CTA of 4 warps per (64 queries, head); warp w owns queries 16 w .. +16 (whole rows, so the softmax needs no
// exchange); K/V tiles of 64 keys double-buffered by cp.async; P goes from the S accumulators straight into the
// A fragments of P·V. Key tiles past the tile's last visible position are skipped.
constexpr int kDenseTcThreads = 128, kDenseTcRows = 64;

template <int QK, int DV>
struct DenseTcSmem {
    uint8_t q[kDenseTcRows * QK * 2];
    uint8_t k[2][kDenseTcRows * QK * 2];
    uint8_t v[2][kDenseTcRows * DV * 2];
    int32_t qpos[kDenseTcRows];
};

template <int QK, int DV>
__device__ __forceinline__ void dense_tc_issue(const MlaDenseKernelParams& p, DenseTcSmem<QK, DV>& sm, int64_t h,
                                               int64_t s0, int buf) {
    constexpr int kQc = QK / 8, kVc = DV / 8;
    for (int idx = threadIdx.x; idx < kDenseTcRows * kQc; idx += kDenseTcThreads) {
        const int r = idx / kQc, c = idx % kQc;
        const bool ok = s0 + r < p.num_keys;
        cp_async16(sm.k[buf] + swz(r, c * 8, kQc), p.k + ((ok ? s0 + r : 0) * p.heads + h) * QK + c * 8, ok);
    }
    for (int idx = threadIdx.x; idx < kDenseTcRows * kVc; idx += kDenseTcThreads) {
        const int r = idx / kVc, c = idx % kVc;
        const bool ok = s0 + r < p.num_keys;
        cp_async16(sm.v[buf] + swz(r, c * 8, kVc), p.v + ((ok ? s0 + r : 0) * p.heads + h) * DV + c * 8, ok);
    }
}

template <int QK, int DV>
__global__ void __launch_bounds__(kDenseTcThreads) mla_dense_tc_kernel(MlaDenseKernelParams p) {
    constexpr int kQc = QK / 8, kVc = DV / 8, kOt = DV / 8;  // kOt: n8 tiles of the output
    extern __shared__ __align__(128) uint8_t smem_raw[];
    auto& sm = *reinterpret_cast<DenseTcSmem<QK, DV>*>(smem_raw);
    const int64_t t0 = static_cast<int64_t>(blockIdx.x) * kDenseTcRows, h = blockIdx.y;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int r0 = warp * 16, g = lane >> 2, t = lane & 3;
    const int64_t words = (p.num_keys + 31) / 32;

    if (tid < kDenseTcRows) {
        int32_t qp = -1;
        if (t0 + tid < p.num_tokens) {
            qp = p.q_positions[t0 + tid];
            if (qp < 0 || qp >= p.num_keys) __trap();  // the CPU reference aborts on this
        }
        sm.qpos[tid] = qp;
    }
    for (int idx = tid; idx < kDenseTcRows * kQc; idx += kDenseTcThreads) {
        const int r = idx / kQc, c = idx % kQc;
        const bool ok = t0 + r < p.num_tokens;
        cp_async16(sm.q + swz(r, c * 8, kQc), p.q + ((ok ? t0 + r : 0) * p.heads + h) * QK + c * 8, ok);
    }
    cp_async_commit();
    __syncthreads();  // qpos visible
    int32_t last = -1;
    for (int i = 0; i < kDenseTcRows; ++i) last = max(last, sm.qpos[i]);
    const int64_t num_tiles = (static_cast<int64_t>(last) + kDenseTcRows) / kDenseTcRows;  // keys 0..last
    const int32_t qpos_row[2] = {sm.qpos[r0 + g], sm.qpos[r0 + g + 8]};
    if (num_tiles > 0) dense_tc_issue<QK, DV>(p, sm, h, 0, 0);
    cp_async_commit();

    const float scale_log2 = p.softmax_scale * kLog2e;
    float o[kOt][4];
#pragma unroll
    for (int i = 0; i < kOt; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};

    for (int64_t tile = 0; tile < num_tiles; ++tile) {
        const int buf = static_cast<int>(tile & 1);
        const int64_t s0 = tile * kDenseTcRows;
        if (tile + 1 < num_tiles) dense_tc_issue<QK, DV>(p, sm, h, s0 + kDenseTcRows, buf ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        float s[8][4] = {};
#pragma unroll
        for (int k0 = 0; k0 < QK; k0 += 16) {
            uint32_t a[4];
            ldmatrix_x4(a, sm.q + swz(r0 + (lane & 7) + ((lane >> 3) & 1) * 8, k0 + (lane >> 4) * 8, kQc));
#pragma unroll
            for (int np = 0; np < 4; ++np) {
                uint32_t b[4];
                ldmatrix_x4(b,
                            sm.k[buf] + swz(np * 16 + (lane & 7) + (lane >> 4) * 8, k0 + ((lane >> 3) & 1) * 8, kQc));
                mma_bf16(s[2 * np], a, b[0], b[1]);
                mma_bf16(s[2 * np + 1], a, b[2], b[3]);
            }
        }
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int hlf = e >> 1;
                const int64_t key = s0 + nt * 8 + 2 * t + (e & 1);
                const int64_t row = t0 + r0 + g + 8 * hlf;
                bool on = key <= qpos_row[hlf];  // qpos < num_keys, and -1 for rows past the last token
                if (on && p.allowed_bits != nullptr) on = (p.allowed_bits[row * words + (key >> 5)] >> (key & 31)) & 1u;
                s[nt][e] = on ? s[nt][e] * scale_log2 : -INFINITY;
                mx[hlf] = fmaxf(mx[hlf], s[nt][e]);
            }
        }
        float alpha[2];
#pragma unroll
        for (int hlf = 0; hlf < 2; ++hlf) {
            mx[hlf] = fmaxf(mx[hlf], __shfl_xor_sync(0xffffffffu, mx[hlf], 1));
            mx[hlf] = fmaxf(mx[hlf], __shfl_xor_sync(0xffffffffu, mx[hlf], 2));
            const float m_new = fmaxf(m_run[hlf], mx[hlf]);
            alpha[hlf] = exp2f(m_run[hlf] - m_new);
            m_run[hlf] = m_new;
            l_run[hlf] *= alpha[hlf];
        }
        uint32_t pa[4][4];  // A fragments of P for the 4 k-steps of 16 keys
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
            float pr[4];
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                pr[e] = round_bf16(exp2f(s[nt][e] - m_run[e >> 1]));
                l_run[e >> 1] += pr[e];
            }
            pa[nt >> 1][(nt & 1) * 2] = pack_bf16x2(pr[0], pr[1]);      // a0 / a2: row g
            pa[nt >> 1][(nt & 1) * 2 + 1] = pack_bf16x2(pr[2], pr[3]);  // a1 / a3: row g + 8
        }
#pragma unroll
        for (int i = 0; i < kOt; ++i) {
            o[i][0] *= alpha[0];
            o[i][1] *= alpha[0];
            o[i][2] *= alpha[1];
            o[i][3] *= alpha[1];
        }
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
            for (int np = 0; np < DV / 16; ++np) {
                uint32_t b[4];
                ldmatrix_x4_trans(
                    b, sm.v[buf] + swz(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, np * 16 + (lane >> 4) * 8, kVc));
                mma_bf16(o[2 * np], pa[kk], b[0], b[1]);
                mma_bf16(o[2 * np + 1], pa[kk], b[2], b[3]);
            }
        }
        __syncthreads();  // all reads of `buf` done before it is refilled
    }
    cp_async_wait<0>();
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        l_run[hlf] += __shfl_xor_sync(0xffffffffu, l_run[hlf], 1);
        l_run[hlf] += __shfl_xor_sync(0xffffffffu, l_run[hlf], 2);
        const int64_t row = t0 + r0 + g + 8 * hlf;
        if (row >= p.num_tokens) continue;
        const float inv = l_run[hlf] > 0.0f ? 1.0f / l_run[hlf] : 0.0f;
        uint16_t* out = p.out + (row * p.heads + h) * DV + 2 * t;
#pragma unroll
        for (int i = 0; i < kOt; ++i) {
            *reinterpret_cast<uint32_t*>(out + i * 8) = pack_bf16x2(o[i][2 * hlf] * inv, o[i][2 * hlf + 1] * inv);
        }
    }
}

template <int QK, int DV>
void launch_dense_tc(const MlaDenseKernelParams& p, cudaStream_t stream) {
    constexpr size_t bytes = sizeof(DenseTcSmem<QK, DV>);
    DSA_CUDA_CHECK(cudaFuncSetAttribute(mla_dense_tc_kernel<QK, DV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(bytes)));
    const int64_t tiles = (p.num_tokens + kDenseTcRows - 1) / kDenseTcRows;
    DSA_CHECK(tiles <= 0x7fffffff && p.heads <= 65535) << "dense MLA grid";
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(p.heads));
    mla_dense_tc_kernel<QK, DV><<<grid, kDenseTcThreads, bytes, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(mla_dense_tc_kernel);
}

__global__ void allowed_bits_kernel(AllowedBitsParams p) {
    const int64_t total = p.num_tokens * p.width;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int32_t pos = p.allowed[idx];
        if (pos < 0) continue;
        if (pos >= p.num_keys) __trap();
        const int64_t tok = idx / p.width;
        atomicOr(p.bits + tok * p.words + (pos >> 5), 1u << (pos & 31));
    }
}

}  // namespace

void launch_mla_sparse_attention(const MlaSparseKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.heads == 0) return;
    DSA_CHECK(host::aligned16(p.q) && host::aligned16(p.store))
        << "sparse MLA: q and the store must be 16-byte aligned";
    DSA_CHECK((reinterpret_cast<uintptr_t>(p.out) & 3u) == 0) << "sparse MLA: out must be 4-byte aligned";
    DSA_CHECK(p.width >= 0 && p.num_slots <= 0x7fffffff) << "sparse MLA: width " << p.width;
    const int64_t head_groups = (p.heads + kHeads - 1) / kHeads;
    DSA_CHECK(p.num_tokens <= 0x7fffffff && head_groups <= 65535) << "sparse MLA grid";
    // Per function and device; cheap on the host, so set on every launch (any device may be current).
    DSA_CUDA_CHECK(cudaFuncSetAttribute(mla_sparse_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(kSparseSmemBytes)));
    DSA_CHECK(p.splits >= 1 && (p.splits == 1 || (p.part_o != nullptr && p.part_ml != nullptr &&
                                                  p.tiles_per_split * (p.splits - 1) < (p.width + kRows - 1) / kRows)))
        << "sparse MLA: bad split " << p.splits << " x " << p.tiles_per_split;
    const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(head_groups),
                    static_cast<unsigned>(p.splits));
    mla_sparse_kernel<<<grid, kThreads, kSparseSmemBytes, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(mla_sparse_kernel);
    if (p.splits > 1) launch_mla_sparse_combine(p, stream);
}

void launch_mla_sparse_combine(const MlaSparseKernelParams& p, cudaStream_t stream) {
    const int64_t rows = p.num_tokens * p.heads;
    if (rows == 0 || p.combine_deferred) return;
    DSA_CHECK(p.splits > 1 && p.splits <= kMaxCombineSplits && p.part_o != nullptr && p.part_ml != nullptr &&
              rows <= 0x7fffffff)
        << "sparse MLA combine: " << p.splits << " splits (at most " << kMaxCombineSplits << ")";
    host::launch_pdl(mla_sparse_combine_kernel, dim3(static_cast<unsigned>(rows)), dim3(kCombineThreads), 0, stream, p);
}

int64_t mla_sparse_splits(int64_t num_tokens, int64_t heads, int64_t width, int num_sms) {
    const int64_t ctas = num_tokens * ((heads + kHeads - 1) / kHeads);
    const int64_t tiles = (width + kRows - 1) / kRows;
    if (ctas <= 0 || tiles <= 1 || ctas * 2 > num_sms) return 1;
    return std::min<int64_t>({tiles, num_sms / ctas, kMaxCombineSplits});
}

void launch_mla_dense_attention(const MlaDenseKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.heads == 0) return;
    DSA_CHECK(p.qk_dim > 0 && p.qk_dim % 2 == 0 && p.qk_dim <= kMaxQk)
        << "dense MLA: qk_dim " << p.qk_dim << " must be even and <= " << kMaxQk;
    DSA_CHECK(p.v_dim > 0 && p.v_dim % 64 == 0 && p.v_dim <= kMaxV)
        << "dense MLA: v_dim " << p.v_dim << " must be a multiple of 64, <= " << kMaxV;
    DSA_CHECK((reinterpret_cast<uintptr_t>(p.q) & 3u) == 0 && (reinterpret_cast<uintptr_t>(p.k) & 3u) == 0 &&
              (reinterpret_cast<uintptr_t>(p.v) & 3u) == 0 && (reinterpret_cast<uintptr_t>(p.out) & 3u) == 0)
        << "dense MLA: operands must be 4-byte aligned";
    const bool aligned = host::aligned16(p.q) && host::aligned16(p.k) && host::aligned16(p.v);
    if (aligned && p.qk_dim == 192 && p.v_dim == 128) return launch_dense_tc<192, 128>(p, stream);
    if (aligned && p.qk_dim == 256 && p.v_dim == 256) return launch_dense_tc<256, 256>(p, stream);
    const int64_t warps = p.num_tokens * p.heads;
    const int64_t blocks = (warps + kDenseWarps - 1) / kDenseWarps;
    DSA_CHECK(blocks <= 0x7fffffff) << "dense MLA grid";
    const unsigned grid = static_cast<unsigned>(blocks);
    switch (p.v_dim / 64) {
        case 1:
            mla_dense_kernel<1><<<grid, kDenseWarps * 32, 0, stream>>>(p);
            break;
        case 2:
            mla_dense_kernel<2><<<grid, kDenseWarps * 32, 0, stream>>>(p);
            break;
        case 3:
            mla_dense_kernel<3><<<grid, kDenseWarps * 32, 0, stream>>>(p);
            break;
        default:
            mla_dense_kernel<4><<<grid, kDenseWarps * 32, 0, stream>>>(p);
            break;
    }
    DSA_CUDA_CHECK_LAUNCH(mla_dense_kernel);
}

void launch_allowed_bits(const AllowedBitsParams& p, cudaStream_t stream) {
    const int64_t total = p.num_tokens * p.width;
    if (total == 0) return;
    constexpr int kThreadsBits = 256;
    allowed_bits_kernel<<<host::grid_for(total, kThreadsBits), kThreadsBits, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(allowed_bits_kernel);
}

}  // namespace dsa::backend::cuda
