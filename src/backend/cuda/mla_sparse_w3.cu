// Sparse absorbed MLA attention on Hopper wgmma, kernel "w3" (the default from kW3MinTokens query tokens; FP8 store
// and 128 heads, else s1). Warp-specialized CTA of three warpgroups per (query token, 64-head group), two 64-row tile
// buffers in s1's shared layout. Warpgroup 0: S = Q K^T of a tile (m64n64k16, Q and K from shared memory), the
// online softmax, P (bf16, by stmatrix) and the rows' rescale factors into shared memory, O columns 0..255 += P V (P
// from registers). Warpgroup 1: O columns 256..511 += P V with P from shared memory. Warpgroup 2 (few registers):
// gathers and dequantizes the rows, the next tile's loads in flight while it waits for a free buffer. The two head
// groups of a token are a cluster of 2 ("crossover"): each producer does 32 rows of every tile and writes them into
// its own buffer and, by st.async completing on the peer's "full" mbarrier, into the peer's. Hand-overs by mbarriers
// only (full / freed per buffer, P ready / P free). Same arithmetic and order as s1: the same output bits.
// DSA_MLA_W3_CLOCKS=1 builds it with per-step clock sums (profiling).
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <string>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/mla_sparse_cluster.cuh"
#include "backend/cuda/mla_sparse_s3.cuh"
#include "backend/cuda/mla_sparse_w3.h"
#include "backend/cuda/mla_sparse_wgmma.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"
#include "base/env.h"

namespace dsa::backend::cuda {
namespace {

using namespace mla_wg;
using namespace mla_cluster;
using mla_s3::mbar_wait_flat;
using mla_s3::setmaxnreg_dec;
using mla_s3::setmaxnreg_inc;

constexpr int kW3Threads = 384;
// setmaxnreg per warpgroup (S + softmax + O half; O half; producer): 504 x 128 = the 168 x 384 of the launch.
// ptxas allocates each role within its value: 208 / 160 / 136 is the split without spills (192 for warpgroup 0
// spills; the one-CTA form at 64 heads, 4 staged rows per producer thread, spills at every split tried).
constexpr int kWg0Regs = 208, kWg1Regs = 160, kProducerRegs = 136;
static_assert(kWg0Regs + kWg1Regs + kProducerRegs <= 504, "setmaxnreg budget exceeds the register file");

struct W3Smem {
    WgSmem t;           // s1's layout: Q, two tile buffers, P, row_max[0] = the rescale factors, row sums, slots
    uint64_t full[2];   // tile in buffer b complete: 128 producer arrivals (+ the peer's bytes by st.async)
    uint64_t freed[2];  // buffer b released by the consumer warps of both CTAs (8 per CTA)
    uint64_t p_ready;   // P and the factors of a tile written: 128 arrivals of warpgroup 0
    uint64_t p_free;    // warpgroup 1 done with P and the factors: one arrival per warp
};
constexpr size_t kW3SmemBytes = sizeof(W3Smem) + 1024;  // + slack to align the tiles to 1024 bytes
static_assert(kW3SmemBytes <= 227 * 1024, "w3 sparse MLA shared memory exceeds the sm_90 per-CTA limit");
static_assert(offsetof(W3Smem, full) % 8 == 0, "mbarriers must be 8-byte aligned");
// Bytes the peer writes into a tile of this CTA: 32 rows of 72 16-byte chunks and their slots.
constexpr uint32_t kPeerBytes = kRows / 2 * (kChunks * 16 + 4);

// DSA_MLA_W3_CLOCKS=1 (profiling, same output): thread 0 of each warpgroup adds the clock64 cycles of its steps
// into g_w3_clk (summed over all CTAs and tiles; slots W3Clock in mla_sparse_w3.h; mla_sparse_w3_clock_report
// reads and clears them).
__device__ unsigned long long g_w3_clk[kW3ClockSlots];
template <bool kOn>
struct W3Clk {
    long long t = 0;
    __device__ __forceinline__ void start() {
        if constexpr (kOn) t = clock64();
    }
    __device__ __forceinline__ void lap(int e) {
        if constexpr (kOn) {
            const long long now = clock64();
            if ((threadIdx.x & 127) == 0) atomicAdd(&g_w3_clk[e], static_cast<unsigned long long>(now - t));
            t = now;
        }
    }
    __device__ __forceinline__ void count(int e) {
        if constexpr (kOn) {
            if ((threadIdx.x & 127) == 0) atomicAdd(&g_w3_clk[e], 1ull);
        }
    }
};

// Shared addresses of the barriers (index b: + 8 b) and, with the crossover, of the peer's.
struct W3Bars {
    uint32_t full, freed, p_ready, p_free, full_peer, freed_peer;
};

// D(64 x 256) += A(64 x 16, registers: the m16n8k16 A fragment of each warp's 16 rows) B(16 x 256, MN-major).
__device__ __forceinline__ void wgmma_m64n256_rs_tb(float* d, const uint32_t (&a)[4], uint64_t b) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %133, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
        DSA_WGMMA_ACC128_REGS
        "{%128, %129, %130, %131}, %132, p, 1, 1, 1;\n}\n"
        : DSA_WGMMA_ACC128_OPS(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

// O(64 heads x columns 0..255) += P(64 x 64 keys, bf16 pairs from the softmax) V(64 keys x 256, MN-major): k-step
// kk takes keys 16 kk .. +16 = the accumulator blocks 2 kk, 2 kk + 1 (s1's order and B descriptors).
__device__ __forceinline__ void issue_pv_rs(float (&o)[32][4], const uint32_t (&pf)[8][2], uint32_t kv_addr) {
#pragma unroll
    for (int kk = 0; kk < kRows / 16; ++kk) {
        const uint32_t a[4] = {pf[2 * kk][0], pf[2 * kk][1], pf[2 * kk + 1][0], pf[2 * kk + 1][1]};
        wgmma_m64n256_rs_tb(&o[0][0], a, sw128_desc(kv_addr + kk * 16 * 128, kBlockBytes, 1024));
    }
}

// Waits until tile i is in buffer i % 2; whether any of its 64 rows is a key (else the consumers skip it, as s1).
__device__ __forceinline__ bool wait_tile(const W3Smem& sm, const W3Bars& bars, int i) {
    const int b = i & 1;
    mbar_wait_flat(bars.full + 8 * b, (i >> 1) & 1);
    fence_async_smem();  // the producers' stores (own: fenced by the writer; peer: st.async) -> wgmma
    const int lane = threadIdx.x & 31;
    return __any_sync(0xffffffffu, sm.t.slot[b][lane] >= 0 || sm.t.slot[b][lane + 32] >= 0);
}

// A consumer warp is done with buffer b: one arrival here and one on the peer's barrier (its producer writes into
// this CTA's buffer too).
__device__ __forceinline__ void release_buffer(const W3Bars& bars, int b) {
    __syncwarp();
    if ((threadIdx.x & 31) == 0) {
        mbar_arrive(bars.freed + 8 * b);
        mbar_arrive_cluster(bars.freed_peer + 8 * b);
    }
}

// Four 8 x 8 bf16 matrices to shared memory (lane l gives the address of row l % 8 of matrix l / 8; register j
// holds matrix j's pair of row lane / 4, columns 2 (lane % 4) + 0, 1: the mma accumulator fragment).
__device__ __forceinline__ void stmatrix_x4(uint32_t addr, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r0), "r"(r1),
                 "r"(r2), "r"(r3)
                 : "memory");
}

// softmax_tile64 with the P block written by 4 stmatrix.x4 per thread instead of 16 4-byte stores (the same values
// and row sums: softmax_pair in the same order). Matrix pair (nt, nt + 1): rows r0 .. +7 / r0 + 8 .. +15 of keys
// 8 nt .. and 8 (nt + 1) ..; each matrix row is one 16-byte swizzled chunk of the P block.
__device__ __forceinline__ void softmax_tile64_stm(const int32_t* slot, uint32_t p_addr, float (&s)[8][4],
                                                   float (&m_run)[2], float (&l_run)[2], float (&alpha)[2],
                                                   float* alpha_out, uint32_t (&pf)[8][2], int r0, int g, int t,
                                                   float scale_log2) {
    softmax_tile64_max(slot, s, m_run, l_run, alpha, alpha_out, r0, g, t, scale_log2);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int hlf = 0; hlf < 2; ++hlf) {
            pf[nt][hlf] = softmax_pair(s[nt][2 * hlf], s[nt][2 * hlf + 1], m_run[hlf], l_run[hlf]);
        }
    }
    const int lane = threadIdx.x & 31, mi = lane >> 3;
    const int row = r0 + 8 * (mi & 1) + (lane & 7);
#pragma unroll
    for (int nt = 0; nt < 8; nt += 2) {
        stmatrix_x4(p_addr + sw128(row, nt + (mi >> 1)), pf[nt][0], pf[nt][1], pf[nt + 1][0], pf[nt + 1][1]);
    }
}

// Warpgroup 0's work on tile i (in buffer b) once its S is complete: softmax (P + factors -> shared memory for
// warpgroup 1, P pairs in registers), O[:, 0..255] rescaled, P V issued and committed (not waited for).
template <bool kClk>
__device__ __forceinline__ void softmax_issue_pv_l(W3Smem& sm, const W3Bars& bars, float (&s)[8][4], float (&o)[32][4],
                                                   float (&m_run)[2], float (&l_run)[2], int& hand, uint32_t kv_addr,
                                                   int b, int r0, int g, int t, float scale_log2, W3Clk<kClk>& clk) {
    fence_regs<32>(&s[0][0]);
    if (hand > 0) mbar_wait_flat(bars.p_free, (hand - 1) & 1);  // warpgroup 1 done with the last P
    clk.lap(kClkWg0PFree);
    uint32_t pf[8][2];
    float alpha[2];
    softmax_tile64_stm(sm.t.slot[b], smem_addr(sm.t.p), s, m_run, l_run, alpha, sm.t.row_max[0], pf, r0, g, t,
                       scale_log2);
    fence_async_smem();
    mbar_arrive(bars.p_ready);
    ++hand;
    clk.lap(kClkWg0Softmax);
    rescale_o(o, alpha);
    fence_regs<128>(&o[0][0]);
    wgmma_fence();
    issue_pv_rs(o, pf, kv_addr);
    wgmma_commit();
    clk.lap(kClkWg0PvIssue);
}

// Warpgroup 0: per tile S, softmax (P + factors -> shared memory, for warpgroup 1), O[:, 0..255] += P V, then the
// buffer's release.
template <bool kClk>
__device__ __forceinline__ void w3_score_wg(const MlaSparseKernelParams& p, W3Smem& sm, const W3Bars& bars,
                                            float (&o)[32][4], float (&m_run)[2], float (&l_run)[2], int n, int r0,
                                            int g, int t, W3Clk<kClk>& clk) {
    const float scale_log2 = p.softmax_scale * kLog2e;
    const uint32_t q_addr = smem_addr(sm.t.q), kv0 = smem_addr(sm.t.kv[0]);
    int hand = 0;  // P hand-overs to warpgroup 1 so far
    float s[8][4];
    for (int i = 0; i < n; ++i) {
        const int b = i & 1;
        const uint32_t kv_addr = kv0 + b * kTileBytes;
        const bool valid = wait_tile(sm, bars, i);
        clk.lap(kClkWg0Full);
        if (valid) {
            clk.count(kClkWg0Tiles);
            issue_s_tile(s, q_addr, kv_addr);
            wgmma_wait_all();
            clk.lap(kClkWg0S);
            softmax_issue_pv_l(sm, bars, s, o, m_run, l_run, hand, kv_addr, b, r0, g, t, scale_log2, clk);
            wgmma_wait_all();
            fence_regs<128>(&o[0][0]);
            clk.lap(kClkWg0PvWait);
        }
        if (i + 2 < n) release_buffer(bars, b);  // nobody waits for the last two releases
    }
}

// Warpgroup 1: per tile O[:, 256..511] += P V with warpgroup 0's P and factors.
template <bool kClk>
__device__ __forceinline__ void w3_output_wg(W3Smem& sm, const W3Bars& bars, float (&o)[32][4], int n, int r0, int g,
                                             W3Clk<kClk>& clk) {
    const uint32_t p_addr = smem_addr(sm.t.p);
    const float* alpha_sm = sm.t.row_max[0];
    int hand = 0;
    clk.start();
    for (int i = 0; i < n; ++i) {
        const int b = i & 1;
        const bool valid = wait_tile(sm, bars, i);
        clk.lap(kClkWg1Full);
        if (valid) {
            clk.count(kClkWg1Tiles);
            mbar_wait_flat(bars.p_ready, hand & 1);
            ++hand;
            clk.lap(kClkWg1PReady);
            const float alpha[2] = {alpha_sm[r0 + g], alpha_sm[r0 + g + 8]};
            rescale_o(o, alpha);
            fence_regs<128>(&o[0][0]);
            wgmma_fence();
            issue_pv(o, p_addr, smem_addr(sm.t.kv[b]), 1);
            wgmma_commit();
            wgmma_wait_all();
            fence_regs<128>(&o[0][0]);
            __syncwarp();
            if ((threadIdx.x & 31) == 0) mbar_arrive(bars.p_free);
            clk.lap(kClkWg1Pv);
        }
        if (i + 2 < n) release_buffer(bars, b);
    }
}

// Where the producer writes buffer 0 (buffer 1: + kTileBytes; slots + kRows entries), here and in the peer.
struct ProducerAddr {
    uint32_t kv, slot, kv_peer, slot_peer;
};

// Dequantizes one staged row into row r of buffer b here and in the peer, by st.async completing on the peer's
// full[b]; a masked row becomes zeros (k_pe included); its slot into both slot lists.
__device__ __forceinline__ void store_row(const ProducerAddr& a, uint32_t peer_bar, int b, int r, const RowStage& st) {
    const int c0 = threadIdx.x & 7;
    const bool ok = st.slot >= 0;
    const uint32_t keep = ok ? 0xffffffffu : 0u;
    const float sc[4] = {ok ? st.scale.x : 0.0f, ok ? st.scale.y : 0.0f, ok ? st.scale.z : 0.0f,
                         ok ? st.scale.w : 0.0f};
    const uint32_t kv = a.kv + b * kTileBytes, kv_peer = a.kv_peer + b * kTileBytes;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
        const uint4 v = dequant_fp8_8(st.raw[k], keep, sc[k >> 1]);
        const uint32_t off = sw128(r, c0 + 8 * k);
        st_local16(kv + off, v);
        st_async16(kv_peer + off, v, peer_bar);
    }
    const uint4 pe = make_uint4(st.pe.x & keep, st.pe.y & keep, st.pe.z & keep, st.pe.w & keep);
    const uint32_t off = sw128(r, kLatent / 8 + c0);
    st_local16(kv + off, pe);
    st_async16(kv_peer + off, pe, peer_bar);
    if (c0 == 0) {
        const uint32_t so = (b * kRows + r) * 4;
        st_local4(a.slot + so, st.slot);
        st_async4(a.slot_peer + so, st.slot, peer_bar);
    }
}

constexpr int kPasses = 2;  // rows per producer thread and tile (16 rows per pass, 32 per CTA)

// Warpgroup 2: tile i's rows (staged in `st` one tile ahead) into buffer i % 2 once both CTAs' consumers freed it,
// then the loads of tile i + 1 (issued before the next wait) and the slots of tile i + 2.
template <bool kClk>
__device__ __forceinline__ void w3_producer(const MlaSparseKernelParams& p, const W3Bars& bars, const ProducerAddr& a,
                                            RowStage (&st)[kPasses], const TileRange& tiles, int64_t tok, int row0,
                                            int n, W3Clk<kClk>& clk) {
    const bool lead = (threadIdx.x & 127) == 0;
    int32_t ahead[kPasses];
#pragma unroll
    for (int k = 0; k < kPasses; ++k) {
        ahead[k] = load_slot(p, tok, min(tiles.first + 1, tiles.total) * kRows + row0 + 16 * k);
    }
    for (int i = 0; i < n; ++i) {
        const int b = i & 1;
        if (i >= 2) mbar_wait_cluster(bars.freed + 8 * b, ((i - 2) >> 1) & 1);
        clk.lap(kClkProdFree);
        clk.count(kClkProdTiles);
#pragma unroll
        for (int k = 0; k < kPasses; ++k) store_row(a, bars.full_peer + 8 * b, b, row0 + 16 * k, st[k]);
        fence_async_smem();  // this thread's local stores -> the consumers' wgmma
        if (lead) {
            mbar_arrive_expect_tx(bars.full + 8 * b, kPeerBytes);  // the peer's st.async bytes of this tile
        } else {
            mbar_arrive(bars.full + 8 * b);
        }
        clk.lap(kClkProdStore);
        if (i + 1 < n) {
#pragma unroll
            for (int k = 0; k < kPasses; ++k) load_stage(p, ahead[k], st[k]);
#pragma unroll
            for (int k = 0; k < kPasses; ++k) {
                ahead[k] = load_slot(p, tok, min(tiles.first + i + 2, tiles.total) * kRows + row0 + 16 * k);
            }
        }
        clk.lap(kClkProdLoad);
    }
}

// Consumers after the walk: the rows' sums through shared memory (named barrier 1 of the 256 consumer threads),
// then the normalized output or the split's partials, as s1.
__device__ __forceinline__ void w3_finish(const MlaSparseKernelParams& p, W3Smem& sm, const float (&o)[32][4],
                                          const float (&m_run)[2], float (&l_run)[2], int64_t tok, int64_t h0, int ch,
                                          int r0, int g, int t) {
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        l_run[hlf] += __shfl_xor_sync(0xffffffffu, l_run[hlf], 1);
        l_run[hlf] += __shfl_xor_sync(0xffffffffu, l_run[hlf], 2);
    }
    if (t == 0) {
        sm.t.row_sum[ch][r0 + g] = l_run[0];
        sm.t.row_sum[ch][r0 + g + 8] = l_run[1];
    }
    asm volatile("bar.sync 1, 256;\n" ::: "memory");
    if (p.splits > 1) {
        mla_sparse::write_partials(p, sm.t, o, m_run, tok, h0, r0 + g, ch * 256 + 2 * t, ch == 0 && t == 0);
    } else {
        write_output(p, sm.t, o, tok, h0, r0 + g, ch * 256 + 2 * t);
    }
}

// kClk: the step clocks (DSA_MLA_W3_CLOCKS).
template <bool kClk>
__global__ void __launch_bounds__(kW3Threads, 1) mla_sparse_w3_kernel(MlaSparseKernelParams p) {
    W3Clk<kClk> clk;
    clk.start();
    const long long t_entry = clk.t;
    extern __shared__ __align__(128) uint8_t smem_raw[];
    const uint32_t pad = (1024u - (smem_addr(smem_raw) & 1023u)) & 1023u;
    W3Smem& sm = *reinterpret_cast<W3Smem*>(smem_raw + pad);
    const int64_t tok = blockIdx.x, h0 = static_cast<int64_t>(blockIdx.y) * kHeads;
    const int tid = threadIdx.x, wg = tid >> 7;
    const TileRange tiles = cta_tiles(p);
    const int n = static_cast<int>(tiles.count);
    const uint32_t rank = cluster_rank();
    W3Bars bars;
    bars.full = smem_addr(sm.full);
    bars.freed = smem_addr(sm.freed);
    bars.p_ready = smem_addr(&sm.p_ready);
    bars.p_free = smem_addr(&sm.p_free);
    bars.full_peer = map_rank(bars.full, rank ^ 1u);
    bars.freed_peer = map_rank(bars.freed, rank ^ 1u);
    if (tid == 0) {
        for (int b = 0; b < 2; ++b) {
            mbar_init(bars.full + 8 * b, 128);
            mbar_init(bars.freed + 8 * b, 16);
        }
        mbar_init(bars.p_ready, 128);
        mbar_init(bars.p_free, 4);
        mbar_fence_init();
    }
    pdl_wait();  // q, the slot lists and the store are written by earlier kernels
    pdl_trigger();
    load_q_tile<kW3Threads>(p, sm.t.q, tok, h0);
    cp_async_commit();
    check_slots<kW3Threads>(p, tok, tiles.first * kRows, (tiles.first + n) * kRows);
    // The producer's rows of every tile: row0 + 16 k (rank r does rows 32 r .. 32 r + 31).
    const int row0 = 32 * static_cast<int>(rank) + ((tid & 127) >> 3);
    RowStage st[kPasses];
    if (wg == 2 && n > 0) {  // tile 0's loads before the barrier
#pragma unroll
        for (int k = 0; k < kPasses; ++k) load_stage(p, load_slot(p, tok, tiles.first * kRows + row0 + 16 * k), st[k]);
    }
    cp_async_wait<0>();
    fence_async_smem();
    cluster_arrive_release();  // barriers initialised in both CTAs, Q here
    cluster_wait_acquire();
    if (wg == 0) clk.lap(kClkPrologue);
    const int warp = tid >> 5, lane = tid & 31;
    const int r0 = (warp & 3) * 16, g = lane >> 2, t = lane & 3;
    if (wg == 0) {
        setmaxnreg_inc<kWg0Regs>();
        float o[32][4];
#pragma unroll
        for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
        float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};
        w3_score_wg(p, sm, bars, o, m_run, l_run, n, r0, g, t, clk);
        w3_finish(p, sm, o, m_run, l_run, tok, h0, 0, r0, g, t);
        clk.t = t_entry;
        clk.lap(kClkTotal);
        clk.count(kClkCtas);
    } else if (wg == 1) {
        setmaxnreg_dec<kWg1Regs>();
        float o[32][4];
#pragma unroll
        for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
        w3_output_wg(sm, bars, o, n, r0, g, clk);
        const float m_run[2] = {kNoMax, kNoMax};
        float l_run[2] = {0.0f, 0.0f};  // warpgroup 0 holds the sums
        w3_finish(p, sm, o, m_run, l_run, tok, h0, 1, r0, g, t);
    } else {
        setmaxnreg_dec<kProducerRegs>();
        ProducerAddr a;
        a.kv = smem_addr(sm.t.kv[0]);
        a.slot = smem_addr(sm.t.slot[0]);
        a.kv_peer = map_rank(a.kv, rank ^ 1u);
        a.slot_peer = map_rank(a.slot, rank ^ 1u);
        clk.start();
        w3_producer(p, bars, a, st, tiles, tok, row0, n, clk);
    }
    // No CTA exits while its peer can still reach it: the peer's last stores into this CTA (tile n - 1) are
    // counted by full[] that this CTA's consumers waited for, and the peer's last remote arrival (tile n - 3)
    // preceded this CTA's producer's last free wait.
}

// The grid (tokens, 2 head groups, splits) in clusters of (1, 2, 1), with PDL unless the runtime refuses it on a
// cluster launch.
template <bool kClk>
void launch_w3_cluster(const MlaSparseKernelParams& p, cudaStream_t stream) {
    static std::atomic<bool> pdl_ok{true};
    auto* kernel = mla_sparse_w3_kernel<kClk>;
    DSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(kW3SmemBytes)));
    const dim3 grid(static_cast<unsigned>(p.num_tokens), 2, static_cast<unsigned>(p.splits));
    host::launch_pdl_cluster_grid(kernel, grid, dim3(kW3Threads), dim3(1, 2, 1), kW3SmemBytes, stream, pdl_ok, p);
}

}  // namespace

bool mla_sparse_w3_clocks() {
    const int64_t v = env_count("DSA_MLA_W3_CLOCKS", 0,
                                "CUDA sparse MLA w3 (profiling): 1 = sum the clock cycles of each warpgroup's steps "
                                "(mla_bench prints them; the same output, ~10 % slower), 0 = off");
    DSA_CHECK(v <= 1) << "DSA_MLA_W3_CLOCKS=" << v << ": expected 0 or 1";
    return v == 1;
}

bool mla_sparse_w3_applies(const MlaSparseKernelParams& p) {
    return p.fp8 && p.heads == 2 * kHeads && p.num_slots > 0 && p.num_tokens > 0;
}

void launch_mla_sparse_w3(const MlaSparseKernelParams& p, cudaStream_t stream) {
    if (!mla_sparse_w3_applies(p)) return launch_mla_sparse_wgmma(p, stream);
    check_mla_sparse_wgmma_params(p);
    if (mla_sparse_w3_clocks()) {
        launch_w3_cluster<true>(p, stream);
    } else {
        launch_w3_cluster<false>(p, stream);
    }
    if (p.splits > 1) launch_mla_sparse_combine(p, stream);
}

std::string mla_sparse_w3_clock_report() {
    unsigned long long c[kW3ClockSlots] = {};
    DSA_CUDA_CHECK(cudaDeviceSynchronize());
    DSA_CUDA_CHECK(cudaMemcpyFromSymbol(c, g_w3_clk, sizeof(c)));
    const unsigned long long zero[kW3ClockSlots] = {};
    DSA_CUDA_CHECK(cudaMemcpyToSymbol(g_w3_clk, zero, sizeof(zero)));
    auto per = [&](int e, int n) { return c[n] > 0 ? static_cast<double>(c[e]) / static_cast<double>(c[n]) : 0.0; };
    char buf[640];
    std::snprintf(buf, sizeof(buf),
                  "w3 clocks per tile (thread 0 of each warpgroup, %llu CTAs, %.1f tiles each): WG0 full-wait %.0f, "
                  "S %.0f, p_free-wait %.0f, softmax+P %.0f, rescale+PV-issue %.0f, PV-wait %.0f | WG1 full-wait "
                  "%.0f, p_ready-wait %.0f, rescale+PV+wait %.0f | producer free-wait %.0f, store %.0f, loads %.0f | "
                  "per CTA: prologue %.0f, total %.0f",
                  c[kClkCtas], per(kClkWg0Tiles, kClkCtas), per(kClkWg0Full, kClkWg0Tiles), per(kClkWg0S, kClkWg0Tiles),
                  per(kClkWg0PFree, kClkWg0Tiles), per(kClkWg0Softmax, kClkWg0Tiles),
                  per(kClkWg0PvIssue, kClkWg0Tiles), per(kClkWg0PvWait, kClkWg0Tiles), per(kClkWg1Full, kClkWg1Tiles),
                  per(kClkWg1PReady, kClkWg1Tiles), per(kClkWg1Pv, kClkWg1Tiles), per(kClkProdFree, kClkProdTiles),
                  per(kClkProdStore, kClkProdTiles), per(kClkProdLoad, kClkProdTiles), per(kClkPrologue, kClkCtas),
                  per(kClkTotal, kClkCtas));
    return buf;
}

}  // namespace dsa::backend::cuda
