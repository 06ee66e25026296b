// Sparse absorbed MLA attention on Hopper wgmma (the default kernel; mla_attention.cu keeps the mma.sync one as
// the fallback). One CTA of two warpgroups per (query token, 64-head group); the token's slot list is walked in
// tiles of 64 gathered latent rows, double-buffered in shared memory in the 128-byte-swizzled wgmma layout.
// Warpgroup c computes S for keys 32c .. +32 of a tile (m64n32k16, Q and K from shared memory), the two halves
// exchange row maxima, both write bf16 P, and warpgroup c accumulates output columns 256c .. +256 (m64n256k16,
// P and V = the tile's first 512 columns read MN-major). Same semantics and split-K partials as the old kernel.
// The overlap variant (DSA_MLA_KERNEL=overlap) leaves P V of tile i in flight and issues S of tile i + 1 behind it,
// so the tensor pipe runs them back to back; same arithmetic in the same order, so the same bits.
// The s1 variant (DSA_MLA_KERNEL=s1, at the end of the file) has warpgroup 0 compute S for the whole tile; s1o
// is s1 with the overlap.
#include <cuda_fp8.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/mla_kernels.h"
#include "backend/cuda/mla_sparse_common.cuh"
#include "backend/cuda/mma_util.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

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

// wgmma shared-memory descriptor, 128-byte swizzle: start, leading and stride byte offsets (all >> 4).
__device__ __forceinline__ uint64_t sw128_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    return static_cast<uint64_t>((saddr & 0x3FFFFu) >> 4) | (static_cast<uint64_t>((lbo >> 4) & 0x3FFFu) << 16) |
           (static_cast<uint64_t>((sbo >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Waits for all but the most recently committed wgmma group (older groups complete first).
__device__ __forceinline__ void wgmma_wait_one() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
// Generic-proxy shared-memory writes (st.shared, cp.async) made visible to wgmma (async proxy).
__device__ __forceinline__ void fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps the compiler from moving accumulator reads/writes across wgmma issue / wait.
template <int N>
__device__ __forceinline__ void fence_regs(float* r) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// D(64 x 32) += A(64 x 16, K-major) B(16 x 32, K-major); scale-d = 1.
__device__ __forceinline__ void wgmma_m64n32_ss(float* d, uint64_t a, uint64_t b) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
        "%16, %17, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(a), "l"(b), "r"(1));
}

// D(64 x 256) += A(64 x 16, K-major) B(16 x 256, MN-major: transposed); scale-d = 1.
__device__ __forceinline__ void wgmma_m64n256_ss_tb(float* d, uint64_t a, uint64_t b) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
        "%128, %129, p, 1, 1, 0, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
          "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
          "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
          "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
          "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
          "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
          "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]),
          "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]),
          "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]),
          "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]),
          "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]),
          "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]),
          "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]),
          "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]),
          "+f"(d[126]), "+f"(d[127])
        : "l"(a), "l"(b), "r"(1));
}

// Entry j of the token's list: -1 past the width or when negative. The range check against num_slots is done once
// per CTA by check_slots before the first wgmma: a trap branch near an in-flight wgmma would serialize them all.
__device__ __forceinline__ int32_t load_slot(const MlaSparseKernelParams& p, int64_t tok, int64_t j) {
    const int32_t s = __ldg(p.slots + tok * p.width + (j < p.width ? j : 0));  // width > 0 here
    return j < p.width && s >= 0 ? s : -1;
}

// Traps on any entry of list positions [j0, j1) that is >= num_slots (the CPU reference aborts on those).
__device__ __forceinline__ void check_slots(const MlaSparseKernelParams& p, int64_t tok, int64_t j0, int64_t j1) {
    bool bad = false;
    for (int64_t j = j0 + threadIdx.x; j < min(j1, p.width); j += kThreads) {
        bad |= __ldg(p.slots + tok * p.width + j) >= p.num_slots;
    }
    if (bad) __trap();
}

// Each thread gathers one row of a tile (row tid / 4) and its chunks c0 + 4 k, c0 = tid % 4: one slot read per
// thread and tile, 64 contiguous bytes of a row per warp instruction.
static_assert(kThreads == 4 * kRows, "four threads per gathered row");

// FP8 row part in flight: this thread's 16-byte e4m3 chunks c0 + 4 k (k < 8) of its row, the row's 4 scales and
// whether the row is valid. The loads are consumed (masked) only in fp8_store, so their latency hides under P V.
struct Fp8Stage {
    uint4 raw[8];
    float4 scale;
    bool ok;
};

// Issues the loads of tile `tile` into buffer `buf`: bf16 rows and FP8 k_pe by cp.async (zero-filled for masked
// rows), FP8 c_kv into `st` (dequantized later by fp8_store). The rows' slots go to smem.slot[buf].
// `s` is this thread's row slot (checked, -1 masked).
__device__ __forceinline__ void issue_tile(const MlaSparseKernelParams& p, WgSmem& sm, int32_t s, int buf,
                                           Fp8Stage& st) {
    const int r = threadIdx.x >> 2, c0 = threadIdx.x & 3;
    if (c0 == 0) sm.slot[buf][r] = s;
    uint8_t* dst = sm.kv[buf];
    const int64_t row = s < 0 ? 0 : s;  // masked rows: a valid address, never read (src size 0)
    if (!p.fp8) {
        const uint8_t* src = p.store + row * kBf16RowBytes;
#pragma unroll
        for (int k = 0; k < kChunks / 4; ++k) cp_async16(dst + sw128(r, c0 + 4 * k), src + (c0 + 4 * k) * 16, s >= 0);
        return;
    }
    const uint8_t* src = p.store + row * kFp8RowBytes;
#pragma unroll
    for (int k = 0; k < 2; ++k) {  // k_pe (bf16): chunks 64 .. 71 of the tile row
        const int c = c0 + 4 * k;
        cp_async16(dst + sw128(r, kLatent / 8 + c), src + kFp8RopeOffset + c * 16, s >= 0);
    }
    // Loaded for masked rows too (row 0; the launcher requires a non-empty store) and zeroed by fp8_store: no
    // branch while the S wgmma is in flight (a divergent path would serialize it).
    st.ok = s >= 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) st.raw[k] = __ldg(reinterpret_cast<const uint4*>(src + (c0 + 4 * k) * 16));
    st.scale = __ldg(reinterpret_cast<const float4*>(src + kFp8ScaleOffset));
}

// Dequantizes the staged FP8 chunks (e4m3 chunk c = 16 values = bf16 chunks 2c and 2c + 1, scale c / 8) into
// buffer `buf`; a masked row becomes zeros (its bytes, maybe NaN codes, are dropped by the mask).
__device__ __forceinline__ void fp8_store(WgSmem& sm, int buf, const Fp8Stage& st) {
    const int r = threadIdx.x >> 2, c0 = threadIdx.x & 3;
    const uint32_t keep = st.ok ? 0xffffffffu : 0u;
    const float scales[4] = {st.ok ? st.scale.x : 0.0f, st.ok ? st.scale.y : 0.0f, st.ok ? st.scale.z : 0.0f,
                             st.ok ? st.scale.w : 0.0f};
#pragma unroll
    for (int k = 0; k < 8; ++k) {
        const int c = c0 + 4 * k;
        const float sc = scales[k >> 1];  // c / 8 = k / 2 since c0 < 4
        const uint4 raw = make_uint4(st.raw[k].x & keep, st.raw[k].y & keep, st.raw[k].z & keep, st.raw[k].w & keep);
        const uint16_t* pairs = reinterpret_cast<const uint16_t*>(&raw);
        uint32_t out[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const __half2_raw h2 = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pairs[i]), __NV_E4M3);
            const float2 f = __half22float2(__half2(h2));
            out[i] = pack_bf16x2(f.x * sc, f.y * sc);  // exact: power-of-two scale
        }
        *reinterpret_cast<uint4*>(sm.kv[buf] + sw128(r, 2 * c)) = make_uint4(out[0], out[1], out[2], out[3]);
        *reinterpret_cast<uint4*>(sm.kv[buf] + sw128(r, 2 * c + 1)) = make_uint4(out[4], out[5], out[6], out[7]);
    }
}

// S(64 heads x keys 32 ch .. +32) = Q K^T over the 576 dims: 36 k-steps of 16 (32 bytes inside a swizzle atom).
__device__ __forceinline__ void issue_qk(float (&s)[4][4], uint32_t q_addr, uint32_t kv_addr, int ch) {
#pragma unroll
    for (int kk = 0; kk < kKvDim / 16; ++kk) {
        const uint32_t off = (kk >> 2) * kBlockBytes + (kk & 3) * 32;
        wgmma_m64n32_ss(&s[0][0], sw128_desc(q_addr + off, 16, 1024),
                        sw128_desc(kv_addr + ch * 32 * 128 + off, 16, 1024));
    }
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

__device__ __forceinline__ void write_output(const MlaSparseKernelParams& p, const WgSmem& sm, const float (&o)[32][4],
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

// Softmax of this thread's S fragment (rows g, g + 8 of warp rows r0; keys 32 ch + 8 nt + 2 t + e): mask, scale,
// exchange the row maxima of the two key halves through shared memory (one block barrier), rescale the running
// state, write bf16 P into the swizzled P block. Returns the O rescale factors.
__device__ __forceinline__ void softmax_tile(WgSmem& sm, float (&s)[4][4], float (&m_run)[2], float (&l_run)[2],
                                             float (&alpha)[2], int buf, int ch, int r0, int g, int t,
                                             float scale_log2) {
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
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        const int row = r0 + g + 8 * hlf;
        const float m_new = fmaxf(m_run[hlf], fmaxf(sm.row_max[0][row], sm.row_max[1][row]));
        alpha[hlf] = exp2f(m_run[hlf] - m_new);
        m_run[hlf] = m_new;
        l_run[hlf] *= alpha[hlf];
    }
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
        for (int hlf = 0; hlf < 2; ++hlf) {
            const float p0 = round_bf16(exp2f(s[nt][2 * hlf] - m_run[hlf]));
            const float p1 = round_bf16(exp2f(s[nt][2 * hlf + 1] - m_run[hlf]));
            l_run[hlf] += p0 + p1;
            const int row = r0 + g + 8 * hlf, key = ch * 32 + nt * 8 + 2 * t;
            *reinterpret_cast<uint32_t*>(sm.p + sw128(row, key >> 3) + (key & 7) * 2) = pack_bf16x2(p0, p1);
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

// kOverlap: P V of a tile stays in flight until S of the next tile has been issued behind it (see the header).
template <bool kOverlap>
__global__ void __launch_bounds__(kThreads, 1) mla_sparse_wgmma_kernel(MlaSparseKernelParams p) {
    extern __shared__ __align__(128) uint8_t smem_raw[];
    const uint32_t pad = (1024u - (smem_addr(smem_raw) & 1023u)) & 1023u;
    WgSmem& sm = *reinterpret_cast<WgSmem*>(smem_raw + pad);
    const int64_t tok = blockIdx.x, h0 = static_cast<int64_t>(blockIdx.y) * kHeads;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int ch = warp >> 2, r0 = (warp & 3) * 16, g = lane >> 2, t = lane & 3;
    const int64_t total_tiles = (p.width + kRows - 1) / kRows;
    const int64_t first = static_cast<int64_t>(blockIdx.z) * (p.splits > 1 ? p.tiles_per_split : total_tiles);
    const int64_t num_tiles = p.splits > 1 ? min(p.tiles_per_split, total_tiles - first) : total_tiles;

    // Q (rows past the last head zero-filled) and the first tile.
    for (int idx = tid; idx < kHeads * kChunks; idx += kThreads) {
        const int r = idx / kChunks, c = idx % kChunks;
        const bool ok = h0 + r < p.heads;
        cp_async16(sm.q + sw128(r, c), p.q + (tok * p.heads + (ok ? h0 + r : 0)) * kKvDim + c * 8, ok);
    }
    check_slots(p, tok, first * kRows, (first + num_tiles) * kRows);
    const int row = tid >> 2;  // this thread's gathered row of every tile
    Fp8Stage st;
    if (num_tiles > 0) {
        issue_tile(p, sm, load_slot(p, tok, first * kRows + row), 0, st);
        if (p.fp8) fp8_store(sm, 0, st);
    }
    cp_async_commit();
    int32_t raw_next = num_tiles > 1 ? load_slot(p, tok, (first + 1) * kRows + row) : -1;

    const float scale_log2 = p.softmax_scale * kLog2e;
    const uint32_t q_addr = smem_addr(sm.q), p_addr = smem_addr(sm.p);
    float o[32][4];  // wgmma accumulator: rows r0 + g (+8), columns 256 ch + 8 i + 2 t (+1)
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};

    for (int64_t tile = 0; tile < num_tiles; ++tile) {
        const int buf = static_cast<int>(tile & 1);
        const bool next = tile + 1 < num_tiles;
        cp_async_wait<0>();
        fence_async_smem();
        // Tile `tile` resident and visible to wgmma; every thread is past the previous tile, so buffer buf ^ 1
        // may be refilled. A tile without a valid slot (list tails) is skipped.
        const bool any_valid = __syncthreads_or(tid < kRows && sm.slot[buf][tid] >= 0) != 0;
        const uint32_t kv_addr = smem_addr(sm.kv[buf]);
        float s[4][4];
        if (any_valid) {  // S on the tensor cores while this thread issues the next tile's loads
#pragma unroll
            for (int i = 0; i < 4; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
            fence_regs<16>(&s[0][0]);
            wgmma_fence();
            issue_qk(s, q_addr, kv_addr, ch);
        }
        // Overlap: a group is committed even for a skipped tile (then empty), so "all but the newest" is always
        // P V of the previous tile.
        if (any_valid || kOverlap) wgmma_commit();
        if constexpr (kOverlap) {
            // P V of the previous tile (reads buffer buf ^ 1 and P) must be complete in both warpgroups before
            // buffer buf ^ 1 is refilled and P rewritten; S of this tile may still run.
            if (!any_valid) wgmma_wait_all();  // no S behind it (the empty group should suffice; be explicit)
            wgmma_wait_one();
            fence_regs<128>(&o[0][0]);
            __syncthreads();
        }
        if (next) issue_tile(p, sm, raw_next, buf ^ 1, st);
        cp_async_commit();
        raw_next = load_slot(p, tok, min(first + tile + 2, total_tiles) * kRows + row);  // -1 past the list
        if (!any_valid) {
            if (p.fp8 && next) fp8_store(sm, buf ^ 1, st);
            continue;
        }
        wgmma_wait_all();
        fence_regs<16>(&s[0][0]);
        float alpha[2];
        softmax_tile(sm, s, m_run, l_run, alpha, buf, ch, r0, g, t, scale_log2);
#pragma unroll
        for (int i = 0; i < 32; ++i) {
            o[i][0] *= alpha[0];
            o[i][1] *= alpha[0];
            o[i][2] *= alpha[1];
            o[i][3] *= alpha[1];
        }
        fence_async_smem();
        __syncthreads();  // P complete and visible to wgmma
        fence_regs<128>(&o[0][0]);
        wgmma_fence();
        issue_pv(o, p_addr, kv_addr, ch);
        wgmma_commit();
        if (p.fp8 && next) fp8_store(sm, buf ^ 1, st);  // dequantize the next tile while P V runs
        if constexpr (!kOverlap) {
            wgmma_wait_all();
            fence_regs<128>(&o[0][0]);
        }
    }
    cp_async_wait<0>();
    wgmma_wait_all();  // nothing in flight here; tells ptxas so on every path out of the loop
    fence_regs<128>(&o[0][0]);

    finish_tile_walk(p, sm, o, m_run, l_run, tok, h0, ch, r0, g, t);
}

// ---- Variant "s1" (DSA_MLA_KERNEL=s1): warpgroup 0 alone computes S for all 64 keys of a tile (m64n64k16: Q is
// read from shared memory once per 64 keys instead of once per 32) and the whole softmax (no row-max exchange);
// the row rescale factors go to warpgroup 1 through shared memory; one barrier less per tile. Both warpgroups
// gather the tiles and run P V as above.

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

// Softmax of warpgroup 0's S fragment (rows g, g + 8 of warp rows r0; keys 8 nt + 2 t + e): mask, scale, row
// max over the whole tile (a quad shuffle), rescale the running state, bf16 P into the P block and the rows' O
// rescale factors into `alpha_out` (for warpgroup 1). Returns the factors.
__device__ __forceinline__ void softmax_tile64(WgSmem& sm, float (&s)[8][4], float (&m_run)[2], float (&l_run)[2],
                                               float (&alpha)[2], float* alpha_out, int buf, int r0, int g, int t,
                                               float scale_log2) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int key = nt * 8 + 2 * t + (e & 1);
            s[nt][e] = sm.slot[buf][key] >= 0 ? s[nt][e] * scale_log2 : -INFINITY;
            mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
        }
    }
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        mx[hlf] = fmaxf(mx[hlf], __shfl_xor_sync(0xffffffffu, mx[hlf], 1));
        mx[hlf] = fmaxf(mx[hlf], __shfl_xor_sync(0xffffffffu, mx[hlf], 2));
        const float m_new = fmaxf(m_run[hlf], mx[hlf]);
        alpha[hlf] = exp2f(m_run[hlf] - m_new);
        m_run[hlf] = m_new;
        l_run[hlf] *= alpha[hlf];
    }
    if (t == 0) {
        alpha_out[r0 + g] = alpha[0];
        alpha_out[r0 + g + 8] = alpha[1];
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int hlf = 0; hlf < 2; ++hlf) {
            const float p0 = round_bf16(exp2f(s[nt][2 * hlf] - m_run[hlf]));
            const float p1 = round_bf16(exp2f(s[nt][2 * hlf + 1] - m_run[hlf]));
            l_run[hlf] += p0 + p1;
            const int row = r0 + g + 8 * hlf, key = nt * 8 + 2 * t;
            *reinterpret_cast<uint32_t*>(sm.p + sw128(row, key >> 3) + (key & 7) * 2) = pack_bf16x2(p0, p1);
        }
    }
}

// kOverlap (DSA_MLA_KERNEL=s1o): P V of a tile stays in flight while warpgroup 0 issues S of the next tile.
template <bool kOverlap>
__global__ void __launch_bounds__(kThreads, 1) mla_sparse_wgmma_s1_kernel(MlaSparseKernelParams p) {
    extern __shared__ __align__(128) uint8_t smem_raw[];
    const uint32_t pad = (1024u - (smem_addr(smem_raw) & 1023u)) & 1023u;
    WgSmem& sm = *reinterpret_cast<WgSmem*>(smem_raw + pad);
    const int64_t tok = blockIdx.x, h0 = static_cast<int64_t>(blockIdx.y) * kHeads;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int ch = warp >> 2, r0 = (warp & 3) * 16, g = lane >> 2, t = lane & 3;
    const int64_t total_tiles = (p.width + kRows - 1) / kRows;
    const int64_t first = static_cast<int64_t>(blockIdx.z) * (p.splits > 1 ? p.tiles_per_split : total_tiles);
    const int64_t num_tiles = p.splits > 1 ? min(p.tiles_per_split, total_tiles - first) : total_tiles;
    float* alpha_sm = sm.row_max[0];  // this variant's per-row O rescale factors (no row-max exchange)

    for (int idx = tid; idx < kHeads * kChunks; idx += kThreads) {
        const int r = idx / kChunks, c = idx % kChunks;
        const bool ok = h0 + r < p.heads;
        cp_async16(sm.q + sw128(r, c), p.q + (tok * p.heads + (ok ? h0 + r : 0)) * kKvDim + c * 8, ok);
    }
    check_slots(p, tok, first * kRows, (first + num_tiles) * kRows);
    const int row = tid >> 2;
    Fp8Stage st;
    if (num_tiles > 0) {
        issue_tile(p, sm, load_slot(p, tok, first * kRows + row), 0, st);
        if (p.fp8) fp8_store(sm, 0, st);
    }
    cp_async_commit();
    int32_t raw_next = num_tiles > 1 ? load_slot(p, tok, (first + 1) * kRows + row) : -1;

    const float scale_log2 = p.softmax_scale * kLog2e;
    const uint32_t q_addr = smem_addr(sm.q), p_addr = smem_addr(sm.p);
    float o[32][4];
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};  // warpgroup 1 keeps l_run = 0

    for (int64_t tile = 0; tile < num_tiles; ++tile) {
        const int buf = static_cast<int>(tile & 1);
        const bool next = tile + 1 < num_tiles;
        cp_async_wait<0>();
        fence_async_smem();
        const bool any_valid = __syncthreads_or(tid < kRows && sm.slot[buf][tid] >= 0) != 0;
        const uint32_t kv_addr = smem_addr(sm.kv[buf]);
        float s[8][4];
        if (any_valid && ch == 0) {
#pragma unroll
            for (int i = 0; i < 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
            fence_regs<32>(&s[0][0]);
            wgmma_fence();
            issue_qk64(s, q_addr, kv_addr);
        }
        if (ch == 0 && (any_valid || kOverlap)) wgmma_commit();  // overlap: an empty group for a skipped tile
        if constexpr (kOverlap) {
            // P V of the previous tile (buffer buf ^ 1, P, the rescale factors) complete in both warpgroups.
            if (ch == 0) {
                if (!any_valid) wgmma_wait_all();
                wgmma_wait_one();
            } else {
                wgmma_wait_all();
            }
            fence_regs<128>(&o[0][0]);
            __syncthreads();
        }
        if (next) issue_tile(p, sm, raw_next, buf ^ 1, st);
        cp_async_commit();
        raw_next = load_slot(p, tok, min(first + tile + 2, total_tiles) * kRows + row);
        if (!any_valid) {
            if (p.fp8 && next) fp8_store(sm, buf ^ 1, st);
            continue;
        }
        float alpha[2];
        if (ch == 0) {
            wgmma_wait_all();
            fence_regs<32>(&s[0][0]);
            softmax_tile64(sm, s, m_run, l_run, alpha, alpha_sm, buf, r0, g, t, scale_log2);
        }
        fence_async_smem();
        __syncthreads();  // P and the rescale factors complete
        if (ch != 0) {
            alpha[0] = alpha_sm[r0 + g];
            alpha[1] = alpha_sm[r0 + g + 8];
        }
#pragma unroll
        for (int i = 0; i < 32; ++i) {
            o[i][0] *= alpha[0];
            o[i][1] *= alpha[0];
            o[i][2] *= alpha[1];
            o[i][3] *= alpha[1];
        }
        fence_regs<128>(&o[0][0]);
        wgmma_fence();
        issue_pv(o, p_addr, kv_addr, ch);
        wgmma_commit();
        if (p.fp8 && next) fp8_store(sm, buf ^ 1, st);
        if constexpr (!kOverlap) {
            wgmma_wait_all();
            fence_regs<128>(&o[0][0]);
        }
    }
    cp_async_wait<0>();
    wgmma_wait_all();
    fence_regs<128>(&o[0][0]);
    finish_tile_walk(p, sm, o, m_run, l_run, tok, h0, ch, r0, g, t);
}

}  // namespace

void launch_mla_sparse_wgmma(const MlaSparseKernelParams& p, cudaStream_t stream, WgmmaVariant variant) {
    if (p.num_tokens == 0 || p.heads == 0) return;
    // The FP8 gather reads row 0 for masked entries, so an empty store goes to the mma.sync kernel.
    if (p.num_slots == 0) return launch_mla_sparse_attention(p, stream);
    DSA_CHECK(host::aligned16(p.q) && host::aligned16(p.store))
        << "sparse MLA: q and the store must be 16-byte aligned";
    DSA_CHECK((reinterpret_cast<uintptr_t>(p.out) & 3u) == 0) << "sparse MLA: out must be 4-byte aligned";
    DSA_CHECK(p.width >= 0 && p.num_slots <= 0x7fffffff) << "sparse MLA: width " << p.width;
    const int64_t head_groups = (p.heads + kHeads - 1) / kHeads;
    DSA_CHECK(p.num_tokens <= 0x7fffffff && head_groups <= 65535) << "sparse MLA grid";
    DSA_CHECK(p.splits >= 1 && (p.splits == 1 || (p.part_o != nullptr && p.part_ml != nullptr &&
                                                  p.tiles_per_split * (p.splits - 1) < (p.width + kRows - 1) / kRows)))
        << "sparse MLA: bad split " << p.splits << " x " << p.tiles_per_split;
    const auto kernel = variant == WgmmaVariant::kOverlap     ? mla_sparse_wgmma_kernel<true>
                        : variant == WgmmaVariant::kS1        ? mla_sparse_wgmma_s1_kernel<false>
                        : variant == WgmmaVariant::kS1Overlap ? mla_sparse_wgmma_s1_kernel<true>
                                                              : mla_sparse_wgmma_kernel<false>;
    DSA_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemBytes)));
    const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(head_groups),
                    static_cast<unsigned>(p.splits));
    kernel<<<grid, kThreads, kSmemBytes, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(mla_sparse_wgmma_kernel);
    if (p.splits > 1) launch_mla_sparse_combine(p, stream);
}

}  // namespace dsa::backend::cuda
