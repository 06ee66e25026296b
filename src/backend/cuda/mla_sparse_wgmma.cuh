// Device pieces of the wgmma sparse MLA kernel (mla_sparse_wgmma.cu: s1, two warpgroups that gather and compute):
// shared-memory layout (the 128-byte-swizzled wgmma tiles), descriptors, the m64n64 S and m64n256 P V wgmma
// issues, FP8 chunk dequantization, slot reads, the whole-tile softmax and the output / split-K epilogue; pieces s3
// shares (online-softmax step, P pair, O rescale) and the host-side grid launch of both kernels.
#pragma once

#include <cuda_fp8.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/mla_kernels.h"
#include "backend/cuda/mla_sparse_common.cuh"
#include "backend/cuda/mla_sparse_s3.h"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/wgmma_util.cuh"

namespace dsa::backend::cuda::mla_wg {

constexpr int kKvDim = 576, kLatent = 512;
constexpr int kFp8RowBytes = 656, kFp8ScaleOffset = 512, kFp8RopeOffset = 528, kBf16RowBytes = 1152;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kNoMax = -1e30f;  // finite running-max start: an all-masked tile gives exp2(-inf) = 0, no NaN

constexpr int kHeads = 64, kRows = 64, kThreads = 256;
constexpr int kChunks = kKvDim / 8;                    // 72 16-byte chunks per bf16 row
constexpr int kBlockBytes = 64 * 128;                  // one 64-column block of a 64-row tile (8 swizzle atoms)
constexpr int kTileBytes = kChunks / 8 * kBlockBytes;  // 9 blocks = 73728

struct WgSmem {
    uint8_t q[kTileBytes];
    uint8_t kv[2][kTileBytes];
    uint8_t p[kBlockBytes];  // 64 heads x 64 keys bf16, one swizzled block
    float row_max[2][kHeads];
    float row_sum[2][kHeads];
    int32_t slot[2][kRows];
};
constexpr size_t kSmemBytes = sizeof(WgSmem) + 1024;  // + slack to align the tiles to 1024 bytes
static_assert(kSmemBytes <= 227 * 1024, "wgmma sparse MLA shared memory exceeds the sm_90 per-CTA limit");

// Byte offset of 16-byte chunk `chunk` (8 bf16 columns) of row `row` in a 64-row tile: 64-column blocks of
// 64 rows x 128 bytes, chunk index XOR (row & 7) inside the block (the wgmma 128-byte swizzle, 1024-byte atoms).
__device__ __forceinline__ uint32_t sw128(int row, int chunk) {
    return static_cast<uint32_t>((chunk >> 3) * kBlockBytes + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
}

// The f32 accumulator of an m64n256 wgmma in inline asm: its register list (%0 .. %127, then ", ") and its 128
// "+f" operands d[0 .. 127].
#define DSA_WGMMA_ACC128_REGS \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
    "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
    "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
    "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
    "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
#define DSA_WGMMA_ACC128_OPS(d) \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), \
    "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), \
    "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), \
    "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), \
    "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), \
    "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), \
    "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), \
    "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), \
    "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), \
    "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), \
    "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), \
    "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), \
    "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), \
    "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
    "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), \
    "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), \
    "+f"(d[126]), "+f"(d[127])

// D(64 x 256) += A(64 x 16, K-major) B(16 x 256, MN-major: transposed); scale-d = 1.
__device__ __forceinline__ void wgmma_m64n256_ss_tb(float* d, uint64_t a, uint64_t b) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
        DSA_WGMMA_ACC128_REGS
        "%128, %129, p, 1, 1, 0, 1;\n}\n"
        : DSA_WGMMA_ACC128_OPS(d)
        : "l"(a), "l"(b), "r"(1));
}

// One e4m3 pair (two codes) times its power-of-two scale (exact in bf16), packed bf16x2.
__device__ __forceinline__ uint32_t dequant_fp8_pair(uint16_t pair, float sc) {
    const __half2_raw h2 = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair), __NV_E4M3);
    const float2 f = __half22float2(__half2(h2));
    return pack_bf16x2(f.x * sc, f.y * sc);
}

// Dequantizes one 16-byte e4m3 chunk (bytes AND `keep`: a masked row's codes, maybe NaN, become zeros) times its
// scale: 16 bf16 values, the first 8 in `lo`.
__device__ __forceinline__ void dequant_fp8_chunk(uint4 raw, uint32_t keep, float sc, uint4& lo, uint4& hi) {
    raw = make_uint4(raw.x & keep, raw.y & keep, raw.z & keep, raw.w & keep);
    const uint16_t* pairs = reinterpret_cast<const uint16_t*>(&raw);
    uint32_t out[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = dequant_fp8_pair(pairs[i], sc);
    lo = make_uint4(out[0], out[1], out[2], out[3]);
    hi = make_uint4(out[4], out[5], out[6], out[7]);
}

// The same for 8 e4m3 values (an 8-byte half chunk): one 16-byte chunk of 8 bf16 values.
__device__ __forceinline__ uint4 dequant_fp8_8(uint2 raw, uint32_t keep, float sc) {
    raw = make_uint2(raw.x & keep, raw.y & keep);
    const uint16_t* pairs = reinterpret_cast<const uint16_t*>(&raw);
    uint32_t out[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) out[i] = dequant_fp8_pair(pairs[i], sc);
    return make_uint4(out[0], out[1], out[2], out[3]);
}

// The same into bf16 chunks 2c and 2c + 1 of row r of tile `dst`.
__device__ __forceinline__ void store_fp8_chunk(uint8_t* dst, int r, int c, uint4 raw, uint32_t keep, float sc) {
    uint4 lo, hi;
    dequant_fp8_chunk(raw, keep, sc, lo, hi);
    *reinterpret_cast<uint4*>(dst + sw128(r, 2 * c)) = lo;
    *reinterpret_cast<uint4*>(dst + sw128(r, 2 * c + 1)) = hi;
}

// Entry j of the token's list: -1 past the width or when negative. The range check against num_slots is done once
// per CTA by check_slots before the first wgmma: a trap branch near an in-flight wgmma would serialize them all.
__device__ __forceinline__ int32_t load_slot(const MlaSparseKernelParams& p, int64_t tok, int64_t j) {
    const int32_t s = __ldg(p.slots + tok * p.width + (j < p.width ? j : 0));  // width > 0 here
    return j < p.width && s >= 0 ? s : -1;
}

// This CTA's tiles of its token's list: [first, first + count) of `total` (split-K: blockIdx.z's share).
struct TileRange {
    int64_t total, first, count;
};
__device__ __forceinline__ TileRange cta_tiles(const MlaSparseKernelParams& p) {
    const int64_t total = (p.width + kRows - 1) / kRows;
    const int64_t first = static_cast<int64_t>(blockIdx.z) * (p.splits > 1 ? p.tiles_per_split : total);
    return {total, first, p.splits > 1 ? min(p.tiles_per_split, total - first) : total};
}

// Q rows h0 .. h0 + 63 of token `tok` (576 columns; heads past p.heads zero-filled) into the swizzled tile `q` by
// cp.async (the caller commits).
template <int kNumThreads>
__device__ __forceinline__ void load_q_tile(const MlaSparseKernelParams& p, uint8_t* q, int64_t tok, int64_t h0) {
    for (int idx = threadIdx.x; idx < kHeads * kChunks; idx += kNumThreads) {
        const int r = idx / kChunks, c = idx % kChunks;
        const bool ok = h0 + r < p.heads;
        cp_async16(q + sw128(r, c), p.q + (tok * p.heads + (ok ? h0 + r : 0)) * kKvDim + c * 8, ok);
    }
}

// Traps on any entry of list positions [j0, j1) that is >= num_slots (the CPU reference aborts on those).
template <int kNumThreads>
__device__ __forceinline__ void check_slots(const MlaSparseKernelParams& p, int64_t tok, int64_t j0, int64_t j1) {
    bool bad = false;
    for (int64_t j = j0 + threadIdx.x; j < min(j1, p.width); j += kNumThreads) {
        bad |= __ldg(p.slots + tok * p.width + j) >= p.num_slots;
    }
    if (bad) __trap();
}

// O(64 heads x columns 256 ch .. +256) += P(64 x 64 keys) V(64 keys x 256): V read MN-major, 64-column blocks
// 8 KB apart (leading offset), 8-key groups 1 KB apart (stride offset).
__device__ __forceinline__ void issue_pv(float (&o)[32][4], uint32_t p_addr, uint32_t kv_addr, int ch) {
#pragma unroll
    for (int kk = 0; kk < kRows / 16; ++kk) {
        wgmma_m64n256_ss_tb(&o[0][0], sw128_desc(p_addr + kk * 32, 16, 1024),
                            sw128_desc(kv_addr + 4 * ch * kBlockBytes + kk * 16 * 128, kBlockBytes, 1024));
    }
}

// D(64 x 64) += A(64 x 16, K-major) B(16 x 64, K-major); scale-d = 1.
__device__ __forceinline__ void wgmma_m64n64_ss(float* d, uint64_t a, uint64_t b) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
          "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
          "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(a), "l"(b), "r"(1));
}

// S(64 heads x the tile's 64 keys) = Q K^T over the 576 dims (36 k-steps of 16).
__device__ __forceinline__ void issue_qk64(float (&s)[8][4], uint32_t q_addr, uint32_t kv_addr) {
#pragma unroll
    for (int kk = 0; kk < kKvDim / 16; ++kk) {
        const uint32_t off = (kk >> 2) * kBlockBytes + (kk & 3) * 32;
        wgmma_m64n64_ss(&s[0][0], sw128_desc(q_addr + off, 16, 1024), sw128_desc(kv_addr + off, 16, 1024));
    }
}

// One online-softmax step of a row: the tile's row max over the quad (this thread's `mx`), the new running max,
// and the factor exp2(m_old - m_new) applied to the running sum. Returns the factor (the O rows' rescale).
__device__ __forceinline__ float running_max_step(float mx, float& m_run, float& l_run) {
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m_run, mx);
    const float alpha = exp2f(m_run - m_new);
    m_run = m_new;
    l_run *= alpha;
    return alpha;
}

using mla_sparse::rescale_o;
using mla_sparse::softmax_pair;

// The first part of the softmax of warpgroup 0's S fragment (rows g, g + 8 of warp rows r0; keys 8 nt + 2 t + e):
// mask (slot[key] < 0), scale, row max over the whole tile (a quad shuffle), rescale the running state and write
// the rows' O rescale factors into `alpha_out` (for the other warpgroups); `alpha` gets the factors.
template <class SlotT>
__device__ __forceinline__ void softmax_tile64_max(const SlotT* slot, float (&s)[8][4], float (&m_run)[2],
                                                   float (&l_run)[2], float (&alpha)[2], float* alpha_out, int r0,
                                                   int g, int t, float scale_log2) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int key = nt * 8 + 2 * t + (e & 1);
            s[nt][e] = slot[key] >= 0 ? s[nt][e] * scale_log2 : -INFINITY;
            mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
        }
    }
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) alpha[hlf] = running_max_step(mx[hlf], m_run[hlf], l_run[hlf]);
    if (t == 0) {
        alpha_out[r0 + g] = alpha[0];
        alpha_out[r0 + g + 8] = alpha[1];
    }
}

// The whole softmax of the fragment: softmax_tile64_max, then bf16 P into the swizzled P block `p_tile`, its pairs
// also kept in `pf` (w3's warpgroup 0 uses them as the A operand of its P V; s1 drops them).
template <class SlotT>
__device__ __forceinline__ void softmax_tile64(const SlotT* slot, uint8_t* p_tile, float (&s)[8][4], float (&m_run)[2],
                                               float (&l_run)[2], float (&alpha)[2], float* alpha_out,
                                               uint32_t (&pf)[8][2], int r0, int g, int t, float scale_log2) {
    softmax_tile64_max(slot, s, m_run, l_run, alpha, alpha_out, r0, g, t, scale_log2);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int hlf = 0; hlf < 2; ++hlf) {
            const int row = r0 + g + 8 * hlf, key = nt * 8 + 2 * t;
            pf[nt][hlf] = softmax_pair(s[nt][2 * hlf], s[nt][2 * hlf + 1], m_run[hlf], l_run[hlf]);
            *reinterpret_cast<uint32_t*>(p_tile + sw128(row, key >> 3) + (key & 7) * 2) = pf[nt][hlf];
        }
    }
}

// Warpgroup 0's S of a tile (zero-started, issued and committed; waited for in softmax_issue_pv).
__device__ __forceinline__ void issue_s_tile(float (&s)[8][4], uint32_t q_addr, uint32_t kv_addr) {
#pragma unroll
    for (int i = 0; i < 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
    fence_regs<32>(&s[0][0]);
    wgmma_fence();
    issue_qk64(s, q_addr, kv_addr);
    wgmma_commit();
}

// A tile after warpgroup 0 issued its S wgmma: warpgroup 0 waits for S and runs the softmax (P and the rescale
// factors into shared memory), every warpgroup takes its rows' factors (`alpha`, declared by the caller: that keeps
// s1's code as it was), rescales its O columns and issues P V; the caller works beside it, then waits
// (wgmma_wait_all, fence_regs). The tile loop of s1.
__device__ __forceinline__ void softmax_issue_pv(WgSmem& sm, int buf, float (&s)[8][4], float (&o)[32][4],
                                                 float (&m_run)[2], float (&l_run)[2], float* alpha_sm,
                                                 uint32_t p_addr, uint32_t kv_addr, int ch, int r0, int g, int t,
                                                 float scale_log2, float (&alpha)[2]) {
    if (ch == 0) {
        wgmma_wait_all();
        fence_regs<32>(&s[0][0]);
        uint32_t pf[8][2];
        softmax_tile64(sm.slot[buf], sm.p, s, m_run, l_run, alpha, alpha_sm, pf, r0, g, t, scale_log2);
    }
    fence_async_smem();
    __syncthreads();  // P and the rescale factors complete
    if (ch != 0) {
        alpha[0] = alpha_sm[r0 + g];
        alpha[1] = alpha_sm[r0 + g + 8];
    }
    rescale_o(o, alpha);
    fence_regs<128>(&o[0][0]);
    wgmma_fence();
    issue_pv(o, p_addr, kv_addr, ch);
    wgmma_commit();
}

// The normalized output rows row, row + 8 (columns col + 8 i) of this thread; the row sums from sm.row_sum[0 / 1].
template <class Smem>
__device__ __forceinline__ void write_output(const MlaSparseKernelParams& p, const Smem& sm, const float (&o)[32][4],
                                             int64_t tok, int64_t h0, int row, int col) {
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        const int r = row + 8 * hlf;
        const int64_t head = h0 + r;
        if (head >= p.heads) continue;
        const float l = sm.row_sum[0][r] + sm.row_sum[1][r];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        uint16_t* out = p.out + (tok * p.heads + head) * kLatent + col;
#pragma unroll
        for (int i = 0; i < 32; ++i) {
            *reinterpret_cast<uint32_t*>(out + i * 8) = pack_bf16x2(o[i][2 * hlf] * inv, o[i][2 * hlf + 1] * inv);
        }
    }
}

// After the tile walk: the rows' sums (both warpgroups' parts) through shared memory, then the normalized output
// or the split's partials (m from warpgroup 0).
__device__ __forceinline__ void finish_tile_walk(const MlaSparseKernelParams& p, WgSmem& sm, const float (&o)[32][4],
                                                 const float (&m_run)[2], float (&l_run)[2], int64_t tok, int64_t h0,
                                                 int ch, int r0, int g, int t) {
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
    } else {
        write_output(p, sm, o, tok, h0, r0 + g, ch * 256 + 2 * t);
    }
}

// Launches a wgmma sparse kernel (s1, s3) over (tokens, 64-head groups, splits) with PDL, then the split-K combine.
template <class Kernel>
void launch_sparse_grid(Kernel kernel, int threads, size_t smem, const MlaSparseKernelParams& p, cudaStream_t stream) {
    check_mla_sparse_wgmma_params(p);
    const int64_t head_groups = (p.heads + kHeads - 1) / kHeads;
    DSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(head_groups),
                    static_cast<unsigned>(p.splits));
    host::launch_pdl(kernel, grid, dim3(threads), smem, stream, p);
    if (p.splits > 1) launch_mla_sparse_combine(p, stream);
}

}  // namespace dsa::backend::cuda::mla_wg
