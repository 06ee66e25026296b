// Sparse absorbed MLA attention, warp-specialized kernel "ws" (DSA_MLA_KERNEL=ws). One CTA of three warpgroups
// per (query token, 64-head group): warpgroup 2 is the producer (gathers Q and the 64-row KV tiles into the two
// shared-memory buffers, dequantizes FP8 rows, signals "full" mbarriers); warpgroup 0 computes S of the whole tile,
// the softmax, publishes P and the row rescale factors, and accumulates output columns 0 .. 255; warpgroup 1
// rescales and accumulates columns 256 .. 511 with the same P. Consumers free a buffer through an "empty"
// mbarrier; P is handed over with two named barriers. Same arithmetic as s1, so the same bits.
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
// Blocks until the phase of parity `parity` has completed (acquire semantics).
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred done;\nWS_WAIT:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WS_WAIT;\n}\n" ::"r"(smem_addr(bar)),
        "r"(parity)
        : "memory");
}
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
__device__ __forceinline__ void ws_consumer0(WgSmem& sm, float (&o)[32][4], float (&m_run)[2], float (&l_run)[2],
                                             int64_t num_tiles, int r0, int g, int t, float scale_log2) {
    const uint32_t q_addr = smem_addr(sm.q), p_addr = smem_addr(sm.p);
    float* alpha_sm = sm.row_max[0];
    mbar_wait(&sm.bar[kBarQ], 0);
    for (int64_t i = 0; i < num_tiles; ++i) {
        const int buf = static_cast<int>(i & 1);
        mbar_wait(&sm.bar[kBarFull + buf], static_cast<uint32_t>((i >> 1) & 1));
        if (!tile_has_slot(sm, buf)) {
            mbar_arrive(&sm.bar[kBarEmpty + buf]);
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
        mbar_arrive(&sm.bar[kBarEmpty + buf]);
    }
    named_sync(kNamedPFree, kConsumerThreads);  // matches warpgroup 1's last arrival
}

// Warpgroup 1: O_R = rescaled O_R + P V_R once warpgroup 0 has published P.
__device__ __forceinline__ void ws_consumer1(WgSmem& sm, float (&o)[32][4], int64_t num_tiles, int r0, int g) {
    const uint32_t p_addr = smem_addr(sm.p);
    const float* alpha_sm = sm.row_max[0];
    named_arrive(kNamedPFree, kConsumerThreads);  // P is free for the first tile
    for (int64_t i = 0; i < num_tiles; ++i) {
        const int buf = static_cast<int>(i & 1);
        mbar_wait(&sm.bar[kBarFull + buf], static_cast<uint32_t>((i >> 1) & 1));
        if (!tile_has_slot(sm, buf)) {
            mbar_arrive(&sm.bar[kBarEmpty + buf]);
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
        mbar_arrive(&sm.bar[kBarEmpty + buf]);
    }
}

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
        mbar_init(&sm.bar[kBarFull], kWgThreads);
        mbar_init(&sm.bar[kBarFull + 1], kWgThreads);
        mbar_init(&sm.bar[kBarEmpty], kConsumerThreads);
        mbar_init(&sm.bar[kBarEmpty + 1], kConsumerThreads);
        mbar_init(&sm.bar[kBarQ], kWgThreads);
    }
    __syncthreads();
    pdl_wait();  // q, the slot lists and the store are written by earlier kernels
    pdl_trigger();
    if (wg == 2) {
        regs_dec<152>();
        if (p.fp8) {
            ws_producer<true>(p, sm, tok, h0, first, num_tiles);
        } else {
            ws_producer<false>(p, sm, tok, h0, first, num_tiles);
        }
        __syncthreads();  // the consumers' row sums (finish_tile_walk)
        return;
    }
    float o[32][4];
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};  // warpgroup 1 keeps l_run = 0
    if (wg == 0) {
        regs_inc<192>();
        ws_consumer0(sm, o, m_run, l_run, num_tiles, r0, g, t, p.softmax_scale * kLog2e);
    } else {
        regs_dec<160>();
        ws_consumer1(sm, o, num_tiles, r0, g);
    }
    wgmma_wait_all();
    fence_regs<128>(&o[0][0]);
    finish_tile_walk(p, sm, o, m_run, l_run, tok, h0, wg, r0, g, t);
}

}  // namespace

void launch_mla_sparse_ws(const MlaSparseKernelParams& p, cudaStream_t stream) {
    DSA_CUDA_CHECK(cudaFuncSetAttribute(mla_sparse_ws_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(kSmemBytes)));
    const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>((p.heads + kHeads - 1) / kHeads),
                    static_cast<unsigned>(p.splits));
    host::launch_pdl(mla_sparse_ws_kernel, grid, dim3(kWsThreads), kSmemBytes, stream, p);
}

}  // namespace dsa::backend::cuda::mla_wg
