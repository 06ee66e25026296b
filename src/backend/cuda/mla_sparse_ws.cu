// Sparse absorbed MLA attention, warp-specialized kernel "ws" (DSA_MLA_KERNEL=ws). One CTA of three warpgroups
// per (query token, 64-head group): warpgroup 2 is the producer (gathers Q and the 64-row KV tiles into the two
// shared-memory buffers, dequantizes FP8 rows, signals "full" mbarriers); warpgroup 0 computes S of the whole tile,
// the softmax, publishes P and the row rescale factors, and accumulates output columns 0 .. 255; warpgroup 1
// rescales and accumulates columns 256 .. 511 with the same P. Consumers free a buffer through an "empty"
// mbarrier; P is handed over with two named barriers. Same arithmetic as s1, so the same bits. "wsc"
// (DSA_MLA_KERNEL=wsc, 128 heads): clusters of the two head groups of a token, each producer gathers half of
// every tile into both CTAs' shared memory (distributed shared memory, mbarriers of both CTAs).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/mla_sparse_wgmma.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda::mla_wg {
namespace {

constexpr int kWsThreads = 384, kWgThreads = 128;
constexpr int kBarFull = 0, kBarEmpty = 2, kBarQ = 4;  // indices into WgSmem::bar (full / empty per buffer)
constexpr int kNamedPFull = 1, kNamedPFree = 2;        // named barriers of the two consumer warpgroups (256)
constexpr int kConsumerThreads = 2 * kWgThreads;

__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
    asm volatile("mbarrier.init.shared.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
// Arrive (release semantics at CTA scope).
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared.b64 st, [%0];\n}\n" ::"r"(smem_addr(bar)) : "memory");
}
// Blocks until the phase of parity `parity` has completed (acquire semantics at CTA or, kClusterScope, cluster
// scope: also the peer CTA's arrivals). A hand-over that never completes (a protocol bug) traps after 2^22 tests
// (well under a second of spinning, seconds if every test suspends) instead of hanging the GPU.
#define DSA_MBAR_WAIT_LOOP(SEM)                                 \
    "{\n.reg .pred p;\n.reg .u32 n;\nmov.u32 n, 0;\nWS_WAIT:\n" \
    "mbarrier.try_wait.parity" SEM                              \
    ".shared::cta.b64 p, [%0], %1;\n"                           \
    "@p bra WS_DONE;\nadd.u32 n, n, 1;\nsetp.lt.u32 p, n, 4194304;\n@p bra WS_WAIT;\ntrap;\nWS_DONE:\n}\n"
template <bool kClusterScope = false>
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
    if constexpr (kClusterScope) {
        asm volatile(DSA_MBAR_WAIT_LOOP(".acquire.cluster")::"r"(smem_addr(bar)), "r"(parity) : "memory");
    } else {
        asm volatile(DSA_MBAR_WAIT_LOOP("")::"r"(smem_addr(bar)), "r"(parity) : "memory");
    }
}
#undef DSA_MBAR_WAIT_LOOP

__device__ __forceinline__ void named_sync(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_arrive(int id, int threads) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
template <int N>
__device__ __forceinline__ void regs_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void regs_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}

// ---- cluster of two CTAs (heads 0-63 / 64-127 of one token): distributed shared memory and cluster barriers.
__device__ __forceinline__ uint32_t cluster_rank() {
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}
__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// The address of the same shared-memory byte in CTA `rank` of the cluster.
__device__ __forceinline__ uint32_t peer_addr(uint32_t local, uint32_t rank) {
    uint32_t r;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(local), "r"(rank));
    return r;
}
__device__ __forceinline__ void st_cluster_v4(uint32_t addr, uint4 v) {
    asm volatile("st.shared::cluster.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z),
                 "r"(v.w)
                 : "memory");
}
__device__ __forceinline__ void st_cluster_s32(uint32_t addr, int32_t v) {
    asm volatile("st.shared::cluster.s32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
// Arrive on an mbarrier of any CTA of the cluster (release at cluster scope).
__device__ __forceinline__ void mbar_arrive_cluster(uint32_t cluster_addr) {
    asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" ::"r"(cluster_addr) : "memory");
}
template <bool kCluster>
__device__ __forceinline__ void wait_bar(uint64_t* bar, uint32_t parity) {
    mbar_wait<kCluster>(bar, parity);  // cluster: also acquires the peer's arrivals
}
// A consumer is done with buffer `buf`. Cluster: one arrival per warp on both CTAs' "empty" barrier (the peer's
// producer writes into this CTA's buffer too); else one per thread on this CTA's.
template <bool kCluster>
__device__ __forceinline__ void release_buffer(WgSmem& sm, int buf) {
    if constexpr (kCluster) {
        if ((threadIdx.x & 31) == 0) {
            const uint32_t local = smem_addr(&sm.bar[kBarEmpty + buf]);
            const uint32_t rank = cluster_rank();
            mbar_arrive_cluster(peer_addr(local, rank));
            mbar_arrive_cluster(peer_addr(local, rank ^ 1u));
        }
    } else {
        mbar_arrive(&sm.bar[kBarEmpty + buf]);
    }
}

// Whether the tile in `buf` has a valid slot (the same answer in every consumer warp: no block barrier).
__device__ __forceinline__ bool tile_has_slot(const WgSmem& sm, int buf) {
    const int lane = threadIdx.x & 31;
    return __any_sync(0xffffffffu, sm.slot[buf][lane] >= 0 || sm.slot[buf][lane + 32] >= 0) != 0;
}

// ---- producer (warpgroup 2): thread pt gathers row pt / 2 of every tile, 16-byte chunks of parity pt % 2.

// This thread's FP8 part of a row, loaded one tile ahead (before the buffer is free): e4m3 chunks h + 2 k
// (k < 16), the row's 4 scales, whether the row is valid.
struct WsFp8Stage {
    uint4 raw[16];
    float4 scale;
    bool ok;
};

__device__ __forceinline__ void ws_fp8_load(const MlaSparseKernelParams& p, int32_t s, int h, WsFp8Stage& st) {
    const uint8_t* src = p.store + static_cast<int64_t>(s < 0 ? 0 : s) * kFp8RowBytes;  // masked: row 0, dropped
    st.ok = s >= 0;
#pragma unroll
    for (int k = 0; k < 16; ++k) st.raw[k] = __ldg(reinterpret_cast<const uint4*>(src + (h + 2 * k) * 16));
    st.scale = __ldg(reinterpret_cast<const float4*>(src + kFp8ScaleOffset));
}

// Writes this thread's part of row r of buffer `buf`: bf16 rows by cp.async; FP8: k_pe by cp.async and the staged
// e4m3 chunks dequantized (chunk c = bf16 chunks 2c, 2c + 1, scale c / 8 = k / 4); masked rows become zeros.
template <bool kFp8>
__device__ __forceinline__ void ws_write_row(const MlaSparseKernelParams& p, WgSmem& sm, int32_t s, int r, int h,
                                             int buf, const WsFp8Stage& st) {
    uint8_t* dst = sm.kv[buf];
    const int64_t row = s < 0 ? 0 : s;
    if constexpr (!kFp8) {
        const uint8_t* src = p.store + row * kBf16RowBytes + h * 16;
#pragma unroll 4
        for (int k = 0; k < kChunks / 2; ++k) cp_async16(dst + sw128(r, h + 2 * k), src + k * 32, s >= 0);
        return;
    } else {
        const uint8_t* src = p.store + row * kFp8RowBytes;
#pragma unroll
        for (int k = 0; k < 4; ++k) {  // k_pe: bf16 chunks 64 .. 71
            const int c = h + 2 * k;
            cp_async16(dst + sw128(r, kLatent / 8 + c), src + kFp8RopeOffset + c * 16, s >= 0);
        }
        const uint32_t keep = st.ok ? 0xffffffffu : 0u;
#pragma unroll
        for (int k = 0; k < 16; ++k) {
            const float sc = !st.ok ? 0.0f : k < 4 ? st.scale.x : k < 8 ? st.scale.y : k < 12 ? st.scale.z : st.scale.w;
            store_fp8_chunk(dst, r, h + 2 * k, st.raw[k], keep, sc);
        }
    }
}

// Q and then every tile of this CTA's part of the list; buffer b is refilled once both consumers freed it.
template <bool kFp8>
__device__ __forceinline__ void ws_producer(const MlaSparseKernelParams& p, WgSmem& sm, int64_t tok, int64_t h0,
                                            int64_t first, int64_t num_tiles) {
    const int pt = threadIdx.x - 2 * kWgThreads, r = pt >> 1, h = pt & 1;
    for (int idx = pt; idx < kHeads * kChunks; idx += kWgThreads) {
        const int qr = idx / kChunks, c = idx % kChunks;
        const bool ok = h0 + qr < p.heads;
        cp_async16(sm.q + sw128(qr, c), p.q + (tok * p.heads + (ok ? h0 + qr : 0)) * kKvDim + c * 8, ok);
    }
    check_slots<kWgThreads>(p, tok, first * kRows, (first + num_tiles) * kRows);
    WsFp8Stage st;
    int32_t s = num_tiles > 0 ? load_slot(p, tok, first * kRows + r) : -1;
    if (kFp8 && num_tiles > 0) ws_fp8_load(p, s, h, st);
    for (int64_t i = 0; i < num_tiles; ++i) {
        const int buf = static_cast<int>(i & 1);
        if (i >= 2) mbar_wait(&sm.bar[kBarEmpty + buf], static_cast<uint32_t>(((i >> 1) & 1) ^ 1));
        if (h == 0) sm.slot[buf][r] = s;
        ws_write_row<kFp8>(p, sm, s, r, h, buf, st);
        cp_async_commit();
        if (i + 1 < num_tiles) {  // the next tile's FP8 loads fly while this one lands and the consumers work
            s = load_slot(p, tok, (first + i + 1) * kRows + r);
            if (kFp8) ws_fp8_load(p, s, h, st);
        }
        cp_async_wait<0>();
        fence_async_smem();
        if (i == 0) mbar_arrive(&sm.bar[kBarQ]);
        mbar_arrive(&sm.bar[kBarFull + buf]);
    }
    if (num_tiles == 0) {
        cp_async_commit();
        cp_async_wait<0>();
        fence_async_smem();
        mbar_arrive(&sm.bar[kBarQ]);
    }
}

// ---- cluster producer: this CTA gathers rows 32 rank .. +32 of every tile (4 threads per row, 16-byte chunks
// q + 4 k) into registers one tile ahead (the loads fly while it waits for the buffer) and writes them into both
// CTAs' buffers, so each row crosses L2 once per token instead of once per 64-head group.
struct WscStage {
    uint4 v[18];  // bf16: chunks q + 4 k; FP8: e4m3 chunks q + 4 k in v[0, 8), k_pe chunks 64 + q + 4 k in v[8, 10)
    float4 scale;
    int32_t s;
};

template <bool kFp8>
__device__ __forceinline__ void wsc_load(const MlaSparseKernelParams& p, int32_t s, int q, WscStage& st) {
    st.s = s;
    const int64_t row = s < 0 ? 0 : s;  // masked: row 0 (the store is not empty), zeroed in wsc_write
    if constexpr (!kFp8) {
        const uint4* src = reinterpret_cast<const uint4*>(p.store + row * kBf16RowBytes);
#pragma unroll
        for (int k = 0; k < 18; ++k) st.v[k] = __ldg(src + q + 4 * k);
    } else {
        const uint4* src = reinterpret_cast<const uint4*>(p.store + row * kFp8RowBytes);
#pragma unroll
        for (int k = 0; k < 8; ++k) st.v[k] = __ldg(src + q + 4 * k);
#pragma unroll
        for (int k = 0; k < 2; ++k) st.v[8 + k] = __ldg(src + kFp8RopeOffset / 16 + q + 4 * k);
        st.scale = __ldg(reinterpret_cast<const float4*>(p.store + row * kFp8RowBytes + kFp8ScaleOffset));
    }
}

// 16 bytes into chunk `chunk` of row r of buffer `buf` here and at the same offset of the peer's buffer
// (`remote`: its cluster address; a CTA's shared window is contiguous in the cluster space).
__device__ __forceinline__ void wsc_put(WgSmem& sm, int buf, uint32_t remote, int r, int chunk, uint4 v) {
    const uint32_t off = sw128(r, chunk);
    *reinterpret_cast<uint4*>(sm.kv[buf] + off) = v;
    st_cluster_v4(remote + off, v);
}

template <bool kFp8>
__device__ __forceinline__ void wsc_write(WgSmem& sm, const WscStage& st, int r, int q, int buf, uint32_t peer) {
    const uint32_t keep = st.s >= 0 ? 0xffffffffu : 0u;
    const auto masked = [keep](uint4 v) { return make_uint4(v.x & keep, v.y & keep, v.z & keep, v.w & keep); };
    if (q == 0) {
        sm.slot[buf][r] = st.s;
        st_cluster_s32(peer_addr(smem_addr(&sm.slot[buf][r]), peer), st.s);
    }
    const uint32_t remote = peer_addr(smem_addr(sm.kv[buf]), peer);
    if constexpr (!kFp8) {
#pragma unroll
        for (int k = 0; k < 18; ++k) wsc_put(sm, buf, remote, r, q + 4 * k, masked(st.v[k]));
    } else {
#pragma unroll
        for (int k = 0; k < 2; ++k) wsc_put(sm, buf, remote, r, kLatent / 8 + q + 4 * k, masked(st.v[8 + k]));
#pragma unroll
        for (int k = 0; k < 8; ++k) {  // e4m3 chunk c = q + 4 k: scale c / 8 = k / 2
            const float sc = keep == 0 ? 0.0f
                             : k < 2   ? st.scale.x
                             : k < 4   ? st.scale.y
                             : k < 6   ? st.scale.z
                                       : st.scale.w;
            uint4 lo, hi;
            dequant_fp8_chunk(st.v[k], keep, sc, lo, hi);
            wsc_put(sm, buf, remote, r, 2 * (q + 4 * k), lo);
            wsc_put(sm, buf, remote, r, 2 * (q + 4 * k) + 1, hi);
        }
    }
}

template <bool kFp8>
__device__ __forceinline__ void wsc_producer(const MlaSparseKernelParams& p, WgSmem& sm, int64_t tok, int64_t h0,
                                             int64_t first, int64_t num_tiles) {
    const int pt = threadIdx.x - 2 * kWgThreads, q = pt & 3;
    const uint32_t rank = cluster_rank(), peer = rank ^ 1u;
    const int r = 32 * static_cast<int>(rank) + (pt >> 2);
    for (int idx = pt; idx < kHeads * kChunks; idx += kWgThreads) {  // this CTA's own Q
        const int qr = idx / kChunks, c = idx % kChunks;
        const bool ok = h0 + qr < p.heads;
        cp_async16(sm.q + sw128(qr, c), p.q + (tok * p.heads + (ok ? h0 + qr : 0)) * kKvDim + c * 8, ok);
    }
    cp_async_commit();
    check_slots<kWgThreads>(p, tok, first * kRows, (first + num_tiles) * kRows);
    WscStage st;
    if (num_tiles > 0) wsc_load<kFp8>(p, load_slot(p, tok, first * kRows + r), q, st);
    for (int64_t i = 0; i < num_tiles; ++i) {
        const int buf = static_cast<int>(i & 1);
        // Both CTAs' consumers are done with tile i - 2 (they arrive on both CTAs' "empty" barriers).
        if (i >= 2) mbar_wait<true>(&sm.bar[kBarEmpty + buf], static_cast<uint32_t>(((i >> 1) & 1) ^ 1));
        wsc_write<kFp8>(sm, st, r, q, buf, peer);
        if (i + 1 < num_tiles) wsc_load<kFp8>(p, load_slot(p, tok, (first + i + 1) * kRows + r), q, st);
        if (i == 0) {
            cp_async_wait<0>();
            fence_async_smem();
        }
        asm volatile("fence.proxy.async.shared::cluster;\n" ::: "memory");  // both CTAs' copies, for wgmma
        if (i == 0) mbar_arrive(&sm.bar[kBarQ]);
        const uint32_t full = smem_addr(&sm.bar[kBarFull + buf]);
        mbar_arrive_cluster(peer_addr(full, rank));
        mbar_arrive_cluster(peer_addr(full, peer));
    }
    if (num_tiles == 0) {
        cp_async_wait<0>();
        fence_async_smem();
        mbar_arrive(&sm.bar[kBarQ]);
    }
}

__device__ __forceinline__ void scale_rows(float (&o)[32][4], const float (&alpha)[2]) {
#pragma unroll
    for (int i = 0; i < 32; ++i) {
        o[i][0] *= alpha[0];
        o[i][1] *= alpha[0];
        o[i][2] *= alpha[1];
        o[i][3] *= alpha[1];
    }
}

// Warpgroup 0: S, softmax, P and the rescale factors to shared memory, O_L += P V_L.
template <bool kCluster>
__device__ __forceinline__ void ws_consumer0(WgSmem& sm, float (&o)[32][4], float (&m_run)[2], float (&l_run)[2],
                                             int64_t num_tiles, int r0, int g, int t, float scale_log2) {
    const uint32_t q_addr = smem_addr(sm.q), p_addr = smem_addr(sm.p);
    float* alpha_sm = sm.row_max[0];
    mbar_wait(&sm.bar[kBarQ], 0);
    for (int64_t i = 0; i < num_tiles; ++i) {
        const int buf = static_cast<int>(i & 1);
        wait_bar<kCluster>(&sm.bar[kBarFull + buf], static_cast<uint32_t>((i >> 1) & 1));
        if (!tile_has_slot(sm, buf)) {
            release_buffer<kCluster>(sm, buf);
            continue;
        }
        const uint32_t kv_addr = smem_addr(sm.kv[buf]);
        float s[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
        fence_regs<32>(&s[0][0]);
        wgmma_fence();
        issue_qk64(s, q_addr, kv_addr);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs<32>(&s[0][0]);
        named_sync(kNamedPFree, kConsumerThreads);  // warpgroup 1 is done with the previous P and factors
        float alpha[2];
        softmax_tile64(sm, s, m_run, l_run, alpha, alpha_sm, buf, r0, g, t, scale_log2);
        fence_async_smem();
        named_sync(kNamedPFull, kConsumerThreads);  // P complete (also among warpgroup 0's own warps)
        scale_rows(o, alpha);
        fence_regs<128>(&o[0][0]);
        wgmma_fence();
        issue_pv(o, p_addr, kv_addr, 0);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs<128>(&o[0][0]);
        release_buffer<kCluster>(sm, buf);
    }
    named_sync(kNamedPFree, kConsumerThreads);  // matches warpgroup 1's last arrival
}

// Warpgroup 1: O_R = rescaled O_R + P V_R once warpgroup 0 has published P.
template <bool kCluster>
__device__ __forceinline__ void ws_consumer1(WgSmem& sm, float (&o)[32][4], int64_t num_tiles, int r0, int g) {
    const uint32_t p_addr = smem_addr(sm.p);
    const float* alpha_sm = sm.row_max[0];
    named_arrive(kNamedPFree, kConsumerThreads);  // P is free for the first tile
    for (int64_t i = 0; i < num_tiles; ++i) {
        const int buf = static_cast<int>(i & 1);
        wait_bar<kCluster>(&sm.bar[kBarFull + buf], static_cast<uint32_t>((i >> 1) & 1));
        if (!tile_has_slot(sm, buf)) {
            release_buffer<kCluster>(sm, buf);
            continue;
        }
        named_sync(kNamedPFull, kConsumerThreads);
        const float alpha[2] = {alpha_sm[r0 + g], alpha_sm[r0 + g + 8]};
        scale_rows(o, alpha);
        fence_regs<128>(&o[0][0]);
        wgmma_fence();
        issue_pv(o, p_addr, smem_addr(sm.kv[buf]), 1);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs<128>(&o[0][0]);
        named_arrive(kNamedPFree, kConsumerThreads);
        release_buffer<kCluster>(sm, buf);
    }
}

// kCluster: launched in clusters of two CTAs along the head groups (wsc_producer; consumers release buffers in
// both CTAs); else ws_producer.
template <bool kCluster>
__global__ void __launch_bounds__(kWsThreads, 1) mla_sparse_ws_kernel(MlaSparseKernelParams p) {
    extern __shared__ __align__(128) uint8_t smem_raw[];
    const uint32_t pad = (1024u - (smem_addr(smem_raw) & 1023u)) & 1023u;
    WgSmem& sm = *reinterpret_cast<WgSmem*>(smem_raw + pad);
    const int64_t tok = blockIdx.x, h0 = static_cast<int64_t>(blockIdx.y) * kHeads;
    const int tid = threadIdx.x, wg = tid / kWgThreads, lane = tid & 31;
    const int r0 = ((tid >> 5) & 3) * 16, g = lane >> 2, t = lane & 3;
    const int64_t total_tiles = (p.width + kRows - 1) / kRows;
    const int64_t first = static_cast<int64_t>(blockIdx.z) * (p.splits > 1 ? p.tiles_per_split : total_tiles);
    const int64_t num_tiles = p.splits > 1 ? min(p.tiles_per_split, total_tiles - first) : total_tiles;
    if (tid == 0) {
        const int full = kCluster ? 2 * kWgThreads : kWgThreads;                      // producer threads of both CTAs
        const int empty = kCluster ? 2 * (kConsumerThreads / 32) : kConsumerThreads;  // warps of both CTAs
        mbar_init(&sm.bar[kBarFull], full);
        mbar_init(&sm.bar[kBarFull + 1], full);
        mbar_init(&sm.bar[kBarEmpty], empty);
        mbar_init(&sm.bar[kBarEmpty + 1], empty);
        mbar_init(&sm.bar[kBarQ], kWgThreads);
        if (kCluster) asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    if constexpr (kCluster) {
        cluster_sync();  // the peer's barriers exist before the first remote write or arrival
    } else {
        __syncthreads();
    }
    pdl_wait();  // q, the slot lists and the store are written by earlier kernels
    pdl_trigger();
    if (wg == 2) {
        regs_dec<kCluster ? 160 : 152>();  // 192 + 160 + 160 = 512 per thread triple
        if (p.fp8) {
            kCluster ? wsc_producer<true>(p, sm, tok, h0, first, num_tiles)
                     : ws_producer<true>(p, sm, tok, h0, first, num_tiles);
        } else {
            kCluster ? wsc_producer<false>(p, sm, tok, h0, first, num_tiles)
                     : ws_producer<false>(p, sm, tok, h0, first, num_tiles);
        }
        __syncthreads();  // the consumers' row sums (finish_tile_walk)
        if (kCluster) cluster_sync();
        return;
    }
    float o[32][4];
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};  // warpgroup 1 keeps l_run = 0
    if (wg == 0) {
        regs_inc<192>();
        ws_consumer0<kCluster>(sm, o, m_run, l_run, num_tiles, r0, g, t, p.softmax_scale * kLog2e);
    } else {
        regs_dec<160>();
        ws_consumer1<kCluster>(sm, o, num_tiles, r0, g);
    }
    wgmma_wait_all();
    fence_regs<128>(&o[0][0]);
    finish_tile_walk(p, sm, o, m_run, l_run, tok, h0, wg, r0, g, t);
    if (kCluster) cluster_sync();  // no CTA exits while its peer may still arrive on its barriers
}

}  // namespace

void launch_mla_sparse_ws(const MlaSparseKernelParams& p, cudaStream_t stream, bool cluster) {
    const int64_t groups = (p.heads + kHeads - 1) / kHeads;
    const bool pair = cluster && groups % 2 == 0;  // one head group (GLM-5): no peer, the plain kernel
    const auto kernel = pair ? mla_sparse_ws_kernel<true> : mla_sparse_ws_kernel<false>;
    DSA_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemBytes)));
    const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(groups),
                    static_cast<unsigned>(p.splits));
    if (!pair) return host::launch_pdl(kernel, grid, dim3(kWsThreads), kSmemBytes, stream, p);
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(kWsThreads);
    cfg.dynamicSmemBytes = kSmemBytes;
    cfg.stream = stream;
    cudaLaunchAttribute attr[2];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 1;
    attr[0].val.clusterDim.y = 2;
    attr[0].val.clusterDim.z = 1;
    attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[1].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = host::pdl_enabled() ? 2 : 1;
    DSA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, p));
}

}  // namespace dsa::backend::cuda::mla_wg
