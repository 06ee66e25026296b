// Sparse absorbed MLA attention on Hopper wgmma, kernel "x2" (opt-in: DSA_MLA_KERNEL=x2; FP8 store and 128 heads,
// anything else runs s1). s1's CTA (two warpgroups per query token and 64-head group, mla_sparse_wgmma.cu) with the
// two head groups of a token launched as one thread-block cluster of 2 that share the gather ("crossover"): each
// CTA loads and dequantizes half the rows of every 64-row tile (8 threads per row: FP8 part, scales and k_pe) and
// stores each bf16 chunk into its own tile buffer and, through distributed shared memory, into the peer's, one tile
// ahead: warpgroup 1 right after the cluster barrier that frees the buffer (beside S and the softmax), warpgroup 0
// beside P V, so the transfer is spread over the tile. Same arithmetic and order as s1: the same output bits.
#include <atomic>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/mla_sparse_s3.h"
#include "backend/cuda/mla_sparse_wgmma.cuh"
#include "backend/cuda/mla_sparse_x2.h"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

using namespace mla_wg;

constexpr int kHalfRows = kRows / 2;  // rows of a tile one CTA gathers
static_assert(kThreads == 8 * kHalfRows, "eight threads per gathered row");

// ---- cluster / distributed-shared-memory primitives (32-bit shared addresses) ----
__device__ __forceinline__ uint32_t cluster_rank() {
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}
// The address of the same shared-memory offset in CTA `rank` of the cluster (a shared::cluster address).
__device__ __forceinline__ uint32_t map_rank(uint32_t saddr, uint32_t rank) {
    uint32_t r;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(saddr), "r"(rank));
    return r;
}
__device__ __forceinline__ void st_local16(uint32_t addr, uint4 v) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                 : "memory");
}
__device__ __forceinline__ void st_remote16(uint32_t addr, uint4 v) {
    asm volatile("st.shared::cluster.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z),
                 "r"(v.w)
                 : "memory");
}
__device__ __forceinline__ void st_local4(uint32_t addr, int32_t v) {
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ void st_remote4(uint32_t addr, int32_t v) {
    asm volatile("st.shared::cluster.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ void cluster_arrive_release() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_wait_acquire() {
    asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// This thread's generic-proxy shared-memory writes (own CTA and peer) made visible to the async proxy (wgmma).
__device__ __forceinline__ void fence_async_cluster() {
    asm volatile("fence.proxy.async.shared::cluster;\n" ::: "memory");
}

// One thread's part of one gathered row in flight: the 8-byte e4m3 pieces of bf16 chunks c0 + 8 k (k < 8: chunk
// c0 of every 64-column block; scale (c0 + 8 k) / 16 = k / 2), k_pe chunk c0 (bf16 chunk 64 + c0), the row's 4
// scales and its slot (-1 masked). The 8 threads of a row then write whole 128-byte lines (coalesced 32-byte
// segments in the peer, 8 distinct bank groups here).
struct X2Stage {
    uint2 raw[8];
    uint4 pe;
    float4 scale;
    int32_t slot;
};

// Issues the loads of row slot `s` (a masked row reads row 0: no branch, dropped by store_stage).
__device__ __forceinline__ void load_stage(const MlaSparseKernelParams& p, int32_t s, X2Stage& st) {
    const int c0 = threadIdx.x & 7;
    const uint8_t* src = p.store + static_cast<int64_t>(s < 0 ? 0 : s) * kFp8RowBytes;
    st.slot = s;
#pragma unroll
    for (int k = 0; k < 8; ++k) st.raw[k] = __ldg(reinterpret_cast<const uint2*>(src + (c0 + 8 * k) * 8));
    st.pe = __ldg(reinterpret_cast<const uint4*>(src + kFp8RopeOffset + c0 * 16));
    st.scale = __ldg(reinterpret_cast<const float4*>(src + kFp8ScaleOffset));
}

// Shared addresses of one tile buffer and its slot list, here (`local`) and in the peer CTA (`peer`).
struct BufAddr {
    uint32_t local, peer, slot_local, slot_peer;
};

__device__ __forceinline__ BufAddr buffer(const BufAddr& b0, int b) {
    static_assert(offsetof(WgSmem, kv[1]) - offsetof(WgSmem, kv[0]) == kTileBytes &&
                      offsetof(WgSmem, slot[1]) - offsetof(WgSmem, slot[0]) == kRows * 4,
                  "buffer 1 right after buffer 0");
    const uint32_t kv = b * kTileBytes, sl = b * kRows * 4;
    return {b0.local + kv, b0.peer + kv, b0.slot_local + sl, b0.slot_peer + sl};
}

// Dequantizes the staged row into row r of a buffer in both CTAs (a masked row becomes zeros, k_pe included), and
// its slot into both slot lists.
__device__ __forceinline__ void store_stage(const BufAddr& b, int r, const X2Stage& st) {
    const int c0 = threadIdx.x & 7;
    const bool ok = st.slot >= 0;
    const uint32_t keep = ok ? 0xffffffffu : 0u;
    const float sc[4] = {ok ? st.scale.x : 0.0f, ok ? st.scale.y : 0.0f, ok ? st.scale.z : 0.0f,
                         ok ? st.scale.w : 0.0f};
#pragma unroll
    for (int k = 0; k < 8; ++k) {
        const uint4 v = dequant_fp8_8(st.raw[k], keep, sc[k >> 1]);
        const uint32_t off = sw128(r, c0 + 8 * k);
        st_local16(b.local + off, v);
        st_remote16(b.peer + off, v);
    }
    const uint4 pe = make_uint4(st.pe.x & keep, st.pe.y & keep, st.pe.z & keep, st.pe.w & keep);
    const uint32_t off = sw128(r, kLatent / 8 + c0);
    st_local16(b.local + off, pe);
    st_remote16(b.peer + off, pe);
    if (c0 == 0) {
        st_local4(b.slot_local + 4 * r, st.slot);
        st_remote4(b.slot_peer + 4 * r, st.slot);
    }
}

__global__ void __launch_bounds__(kThreads, 1) mla_sparse_x2_kernel(MlaSparseKernelParams p) {
    extern __shared__ __align__(128) uint8_t smem_raw[];
    const uint32_t pad = (1024u - (smem_addr(smem_raw) & 1023u)) & 1023u;
    WgSmem& sm = *reinterpret_cast<WgSmem*>(smem_raw + pad);
    cluster_arrive_release();  // with the wait before the first store into the peer: both CTAs are running
    const int64_t tok = blockIdx.x, h0 = static_cast<int64_t>(blockIdx.y) * kHeads;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int ch = warp >> 2, r0 = (warp & 3) * 16, g = lane >> 2, t = lane & 3;
    const TileRange tiles = cta_tiles(p);
    const int64_t first = tiles.first, num_tiles = tiles.count;
    const uint32_t rank = cluster_rank();
    const int row = static_cast<int>(rank) * kHalfRows + (tid >> 3);  // this thread's gathered row of every tile
    BufAddr buf0;  // buffer 0; buffer 1 follows at + kTileBytes (slots: + kRows entries)
    buf0.local = smem_addr(sm.kv[0]);
    buf0.peer = map_rank(buf0.local, rank ^ 1u);
    buf0.slot_local = smem_addr(sm.slot[0]);
    buf0.slot_peer = map_rank(buf0.slot_local, rank ^ 1u);
    float* alpha_sm = sm.row_max[0];  // the per-row O rescale factors (as s1)

    pdl_wait();  // q, the slot lists and the store are written by earlier kernels
    pdl_trigger();
    load_q_tile<kThreads>(p, sm.q, tok, h0);
    cp_async_commit();
    check_slots<kThreads>(p, tok, first * kRows, (first + num_tiles) * kRows);
    X2Stage st;
    if (num_tiles > 0) load_stage(p, load_slot(p, tok, first * kRows + row), st);
    cluster_wait_acquire();
    if (num_tiles > 0) store_stage(buf0, row, st);
    if (num_tiles > 1) load_stage(p, load_slot(p, tok, (first + 1) * kRows + row), st);
    // Slot of tile + 2 (past the list: -1), read one tile before its loads are issued.
    int32_t slot_ahead = load_slot(p, tok, min(first + 2, tiles.total) * kRows + row);

    const float scale_log2 = p.softmax_scale * kLog2e;
    const uint32_t q_addr = smem_addr(sm.q), p_addr = smem_addr(sm.p);
    float o[32][4];
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};  // warpgroup 1 keeps l_run = 0
    // This thread's rows of tile + 1 into the other buffer `b` of both CTAs, then its loads of tile + 2 (slot read a
    // tile earlier) and the slot of tile + 3.
    auto advance = [&](int b, int64_t tile) {
        store_stage(buffer(buf0, b), row, st);
        if (tile + 2 < num_tiles) load_stage(p, slot_ahead, st);
        slot_ahead = load_slot(p, tok, min(first + tile + 3, tiles.total) * kRows + row);
    };

    for (int64_t tile = 0; tile < num_tiles; ++tile) {
        const int buf = static_cast<int>(tile & 1);
        // Cluster barrier: both halves of tile `tile` are in both CTAs' buffer `buf` (stored during the previous
        // tile), and both CTAs finished P V of tile - 1, so the other buffer is free in both.
        cp_async_wait<0>();     // Q
        fence_async_cluster();  // this thread's stores (own and peer buffers) -> async proxy
        cluster_arrive_release();
        cluster_wait_acquire();
        fence_async_smem();
        const bool any_valid = __any_sync(0xffffffffu, sm.slot[buf][lane] >= 0 || sm.slot[buf][lane + 32] >= 0);
        const uint32_t kv_addr = buffer(buf0, buf).local;
        float s[8][4];
        if (any_valid && ch == 0) issue_s_tile(s, q_addr, kv_addr);
        // Warpgroup 1 (idle until P is ready) sends its rows of the next tile now, beside S and the softmax;
        // warpgroup 0 beside P V. The peer transfer is spread over the whole tile.
        const bool next = tile + 1 < num_tiles;
        if (next && (ch != 0 || !any_valid)) advance(buf ^ 1, tile);
        if (!any_valid) continue;
        float alpha[2];
        softmax_issue_pv(sm, buf, s, o, m_run, l_run, alpha_sm, p_addr, kv_addr, ch, r0, g, t, scale_log2, alpha);
        if (next && ch == 0) advance(buf ^ 1, tile);
        wgmma_wait_all();
        fence_regs<128>(&o[0][0]);
    }
    cp_async_wait<0>();
    wgmma_wait_all();
    fence_regs<128>(&o[0][0]);
    // No store into this CTA is pending: the peer's last one (tile num_tiles - 1) preceded its arrival at the last
    // barrier, so either CTA may finish and exit on its own.
    finish_tile_walk(p, sm, o, m_run, l_run, tok, h0, ch, r0, g, t);
}

// The x2 grid (tokens, 2 head groups, splits) in clusters of (1, 2, 1), with PDL unless the runtime refuses it on
// a cluster launch (then without it from then on).
void launch_x2_grid(const MlaSparseKernelParams& p, cudaStream_t stream) {
    static std::atomic<bool> pdl_ok{true};
    DSA_CUDA_CHECK(cudaFuncSetAttribute(mla_sparse_x2_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(kSmemBytes)));
    const dim3 grid(static_cast<unsigned>(p.num_tokens), 2, static_cast<unsigned>(p.splits));
    host::launch_pdl_cluster_grid(mla_sparse_x2_kernel, grid, dim3(kThreads), dim3(1, 2, 1), kSmemBytes, stream,
                                  pdl_ok, p);
}

}  // namespace

bool mla_sparse_x2_applies(const MlaSparseKernelParams& p) {
    return p.fp8 && p.heads == 2 * kHeads && p.num_slots > 0 && p.num_tokens > 0;
}

void launch_mla_sparse_x2(const MlaSparseKernelParams& p, cudaStream_t stream) {
    if (!mla_sparse_x2_applies(p)) return launch_mla_sparse_wgmma(p, stream);
    check_mla_sparse_wgmma_params(p);
    launch_x2_grid(p, stream);
    if (p.splits > 1) launch_mla_sparse_combine(p, stream);
}

}  // namespace dsa::backend::cuda
