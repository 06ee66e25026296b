// Sparse absorbed MLA attention on Hopper wgmma, kernel "s1" (the default below w3's 16 query tokens;
// DSA_MLA_KERNEL=legacy selects the mma.sync one of mla_attention.cu). One CTA of two
// warpgroups per (query token, 64-head group); the token's slot list is walked in tiles of 64 gathered latent rows,
// double-buffered in shared memory in the 128-byte-swizzled wgmma layout. Warpgroup 0 computes S of the whole tile
// (m64n64k16, Q and K from shared memory) and the softmax and hands the row rescale factors to warpgroup 1 through
// shared memory; warpgroup c accumulates output columns 256c .. +256 (m64n256k16, P and V = the tile's first 512
// columns read MN-major). Both warpgroups gather the tiles. Split-K partials as the mma.sync kernel.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/mla_sparse_s3.h"
#include "backend/cuda/mla_sparse_wgmma.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

using namespace mla_wg;

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
        store_fp8_chunk(sm.kv[buf], r, c0 + 4 * k, st.raw[k], keep, scales[k >> 1]);  // c / 8 = k / 2 (c0 < 4)
    }
}

__global__ void __launch_bounds__(kThreads, 1) mla_sparse_wgmma_s1_kernel(MlaSparseKernelParams p) {
    extern __shared__ __align__(128) uint8_t smem_raw[];
    const uint32_t pad = (1024u - (smem_addr(smem_raw) & 1023u)) & 1023u;
    WgSmem& sm = *reinterpret_cast<WgSmem*>(smem_raw + pad);
    const int64_t tok = blockIdx.x, h0 = static_cast<int64_t>(blockIdx.y) * kHeads;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int ch = warp >> 2, r0 = (warp & 3) * 16, g = lane >> 2, t = lane & 3;
    const TileRange tiles = cta_tiles(p);
    const int64_t total_tiles = tiles.total, first = tiles.first, num_tiles = tiles.count;
    float* alpha_sm = sm.row_max[0];  // this variant's per-row O rescale factors (no row-max exchange)

    pdl_wait();  // q, the slot lists and the store are written by earlier kernels
    pdl_trigger();
    load_q_tile<kThreads>(p, sm.q, tok, h0);
    check_slots<kThreads>(p, tok, first * kRows, (first + num_tiles) * kRows);
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
        if (any_valid && ch == 0) issue_s_tile(s, q_addr, kv_addr);
        if (next) issue_tile(p, sm, raw_next, buf ^ 1, st);
        cp_async_commit();
        raw_next = load_slot(p, tok, min(first + tile + 2, total_tiles) * kRows + row);
        if (!any_valid) {
            if (p.fp8 && next) fp8_store(sm, buf ^ 1, st);
            continue;
        }
        float alpha[2];
        softmax_issue_pv(sm, buf, s, o, m_run, l_run, alpha_sm, p_addr, kv_addr, ch, r0, g, t, scale_log2, alpha);
        if (p.fp8 && next) fp8_store(sm, buf ^ 1, st);
        wgmma_wait_all();
        fence_regs<128>(&o[0][0]);
    }
    cp_async_wait<0>();
    wgmma_wait_all();
    fence_regs<128>(&o[0][0]);
    finish_tile_walk(p, sm, o, m_run, l_run, tok, h0, ch, r0, g, t);
}

}  // namespace

void check_mla_sparse_wgmma_params(const MlaSparseKernelParams& p) {
    DSA_CHECK(host::aligned16(p.q) && host::aligned16(p.store))
        << "sparse MLA: q and the store must be 16-byte aligned";
    DSA_CHECK((reinterpret_cast<uintptr_t>(p.out) & 3u) == 0) << "sparse MLA: out must be 4-byte aligned";
    DSA_CHECK(p.width >= 0 && p.num_slots <= 0x7fffffff) << "sparse MLA: width " << p.width;
    const int64_t head_groups = (p.heads + kHeads - 1) / kHeads;
    DSA_CHECK(p.num_tokens <= 0x7fffffff && head_groups <= 65535) << "sparse MLA grid";
    DSA_CHECK(p.splits >= 1 && (p.splits == 1 || (p.part_o != nullptr && p.part_ml != nullptr &&
                                                  p.tiles_per_split * (p.splits - 1) < (p.width + kRows - 1) / kRows)))
        << "sparse MLA: bad split " << p.splits << " x " << p.tiles_per_split;
}

void launch_mla_sparse_wgmma(const MlaSparseKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.heads == 0) return;
    // The FP8 gather reads row 0 for masked entries, so an empty store goes to the mma.sync kernel.
    if (p.num_slots == 0) return launch_mla_sparse_attention(p, stream);
    launch_sparse_grid(mla_sparse_wgmma_s1_kernel, kThreads, kSmemBytes, p, stream);
}

}  // namespace dsa::backend::cuda
