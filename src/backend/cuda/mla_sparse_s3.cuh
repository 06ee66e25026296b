// Device pieces of the sparse MLA kernel s3 (mla_sparse_s3.cu, three warpgroups): its shared-memory layout (three
// 64-key tiles, Q's k_pe block; a half tile's P lives in the k_pe rows its S has read), the register-A (RS) S wgmma
// on 32-key halves, the half-tile softmax, the time-bounded mbarrier wait, setmaxnreg, and the O warpgroups' tile
// gather: bf16 rows by cp.async arriving on the tile's mbarrier; FP8 rows' e4m3 bytes and scales by cp.async into
// the tile itself, dequantized in place later. Swizzle, FP8 chunk dequantization: s1's (mla_sparse_wgmma.cuh).
#pragma once

#include <cstddef>

#include "backend/cuda/mla_sparse_wgmma.cuh"

namespace dsa::backend::cuda::mla_s3 {

using namespace mla_wg;

constexpr int kS3Threads = 384;                       // warpgroup 0: S + softmax; 1, 2: O columns 0..255, 256..511
constexpr int kPeBlock = kLatent / 64 * kBlockBytes;  // byte offset of a tile's k_pe block (columns 512..575)
constexpr int kBufs = 3;
constexpr int kHalf = 32;  // S and the softmax run on 32-key halves of a tile (16 accumulators next to Q's 128)
// setmaxnreg: 184 + 2 x 160 = 504 = 3 x 168, the launch count (an O warpgroup needs 160 for its 128 accumulators).
constexpr int kWg0Regs = 184, kOWgRegs = 160;

struct S3Smem {
    uint8_t kv[kBufs][kTileBytes];  // buffer 2 stages Q's first 512 columns before tile 2 arrives
    uint8_t q_pe[kBlockBytes];      // Q columns 512..575 (the S wgmma's A operand); after the walk: S3RowStats
    float alpha[kBufs][2][kHeads];  // O rescale factors of half h of the tile in buffer b (written by warpgroup 0)
    int8_t valid[kBufs][kRows];     // 0: row r of the tile in buffer b is a key, -1: masked
    int8_t skip[kBufs][2];          // 1: every key of half h of the tile in buffer b is masked (no S, no P V)
    uint64_t full[kBufs];           // tile b in place (bf16: 256 cp.async arrivals + 256 thread arrivals; FP8: 256)
    uint64_t ready[kBufs][2];       // P and alpha of half h of tile b written: 128 arrivals of warpgroup 0
    uint64_t freed[kBufs];          // both O warpgroups' P V of tile b done: 256 arrivals
    uint64_t q_free;                // warpgroup 0 holds Q in registers (buffer 2 may be refilled): 128 arrivals
};
// After the tile walk, in q_pe: the rows' sums ([0]; [1] zeros: write_partials / write_output add both) and max.
struct S3RowStats {
    float row_sum[2][kHeads];
    float row_max[kHeads];
};
constexpr size_t kS3SmemBytes = sizeof(S3Smem) + 1024;  // + slack to align the tiles to 1024 bytes
static_assert(kS3SmemBytes <= 227 * 1024, "s3 sparse MLA shared memory exceeds the sm_90 per-CTA limit");
static_assert(offsetof(S3Smem, full) % 8 == 0, "mbarriers must be 8-byte aligned");
static_assert(offsetof(S3Smem, q_pe) % 1024 == 0, "Q's k_pe block must be 1024-byte aligned");
static_assert(sizeof(S3RowStats) <= kBlockBytes, "row statistics fit in q_pe");

template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}

// Arrives on `bar` once every cp.async this thread issued before has completed (counts as one expected arrival).
__device__ __forceinline__ void cp_async_arrive_noinc(uint32_t bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

// Waits for the phase of parity `parity` of mbarrier `bar`, the retry loop in one asm block (a C++ loop is a
// divergent path to ptxas, which may then serialize wgmmas around it). Traps after ~2^31 clocks (a lost arrival).
__device__ __forceinline__ void mbar_wait_flat(uint32_t bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred p;\n.reg .u64 t0, t1;\n"
        "mov.u64 t0, %%clock64;\n"
        "S3_WAIT:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
        "@p bra.uni S3_DONE;\n"
        "mov.u64 t1, %%clock64;\n"
        "sub.u64 t1, t1, t0;\n"
        "setp.gt.u64 p, t1, 2147483648;\n"
        "@p trap;\n"
        "bra.uni S3_WAIT;\n"
        "S3_DONE:\n}\n" ::"r"(bar),
        "r"(parity)
        : "memory");
}

// D(64 x 32) += A(64 x 16, registers: the m16n8k16 A fragment of each warp's 16 rows) B(16 x 32, K-major smem).
__device__ __forceinline__ void wgmma_m64n32_rs(float* d, const uint32_t (&a)[4], uint64_t b) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %21, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
        "{%16, %17, %18, %19}, %20, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}
// D(64 x 32) += A(64 x 16, K-major smem) B(16 x 32, K-major smem).
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

constexpr int kQRegSteps = kLatent / 16;  // k16 steps of S whose Q operand is held in registers (columns 0..511)

// This thread's A fragments of Q columns 0..511 (rows r0 + g, + 8; columns 16 kk + 2 t, + 8) from the swizzled
// staging tile `q`.
__device__ __forceinline__ void load_q_frags(uint32_t (&qf)[kQRegSteps][4], const uint8_t* q, int r0, int g, int t) {
#pragma unroll
    for (int kk = 0; kk < kQRegSteps; ++kk) {
        qf[kk][0] = *reinterpret_cast<const uint32_t*>(q + sw128(r0 + g, 2 * kk) + 4 * t);
        qf[kk][1] = *reinterpret_cast<const uint32_t*>(q + sw128(r0 + g + 8, 2 * kk) + 4 * t);
        qf[kk][2] = *reinterpret_cast<const uint32_t*>(q + sw128(r0 + g, 2 * kk + 1) + 4 * t);
        qf[kk][3] = *reinterpret_cast<const uint32_t*>(q + sw128(r0 + g + 8, 2 * kk + 1) + 4 * t);
    }
}

// S(64 heads x keys 32 h .. +32 of the tile) = Q K^T in s1's k-step order: 32 steps with Q from registers, then
// k_pe's 4 from shared memory. Half h's K rows start 32 h rows (4 swizzle atoms, 4096 bytes) into every block.
__device__ __forceinline__ void issue_qk32_rs(float (&s)[4][4], const uint32_t (&qf)[kQRegSteps][4], uint32_t q_pe_addr,
                                              uint32_t kv_half_addr) {
#pragma unroll
    for (int kk = 0; kk < kQRegSteps; ++kk) {
        wgmma_m64n32_rs(&s[0][0], qf[kk], sw128_desc(kv_half_addr + (kk >> 2) * kBlockBytes + (kk & 3) * 32, 16, 1024));
    }
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        wgmma_m64n32_ss(&s[0][0], sw128_desc(q_pe_addr + kk * 32, 16, 1024),
                        sw128_desc(kv_half_addr + kPeBlock + kk * 32, 16, 1024));
    }
}

// P of half h (64 heads x 32 keys bf16, 4 KB) is a K-major tile in the 64-byte swizzle (64-byte rows, 16-byte chunk
// c of row r at chunk c ^ ((r >> 1) & 3), 512-byte atoms) at kPeBlock + 4096 h of its tile: exactly the k_pe rows of
// keys 32 h .. +32, which S of that half has read by then (the other half's S still needs its own rows).
constexpr int kPHalfBytes = 64 * kHalf * 2;
__device__ __forceinline__ uint64_t sw64_desc(uint32_t saddr, uint32_t sbo) {
    return static_cast<uint64_t>((saddr & 0x3FFFFu) >> 4) | (static_cast<uint64_t>(1) << 16) |
           (static_cast<uint64_t>((sbo >> 4) & 0x3FFFu) << 32) | (2ull << 62);
}

// O(64 x 256) += P(64 x keys 32 h .. +32) V(those keys x 256 columns at v_addr): 2 k16 steps, P K-major (32 bytes
// per step), V MN-major (16 rows = 2048 bytes per step); descriptors as a base plus a constant per step.
__device__ __forceinline__ void issue_pv_half(float (&o)[32][4], uint32_t p_half_addr, uint32_t v_addr, int h) {
    const uint64_t pd = sw64_desc(p_half_addr, 512), vd = sw128_desc(v_addr + h * 4096, kBlockBytes, 1024);
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) wgmma_m64n256_ss_tb(&o[0][0], pd + kk * 2, vd + kk * 128);
}

// Bit k set: key k of the tile whose valid flags are at shared address `valid_addr` is valid (two byte loads and
// ballots per warp: the whole-tile mask in two registers instead of 16 flags).
__device__ __forceinline__ uint64_t valid_mask(uint32_t valid_addr, int lane) {
    int32_t lo_flag, hi_flag;
    asm volatile("ld.shared.s8 %0, [%2];\nld.shared.s8 %1, [%2+32];\n"
                 : "=r"(lo_flag), "=r"(hi_flag)
                 : "r"(valid_addr + lane)
                 : "memory");
    const uint32_t lo = __ballot_sync(0xffffffffu, lo_flag >= 0);
    const uint32_t hi = __ballot_sync(0xffffffffu, hi_flag >= 0);
    return (static_cast<uint64_t>(hi) << 32) | lo;
}

__device__ __forceinline__ void st_shared_u32(uint32_t addr, uint32_t v) {
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ void st_shared_u8(uint32_t addr, uint32_t v) {
    asm volatile("st.shared.u8 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ void st_shared_f32(uint32_t addr, float v) {
    asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(addr), "f"(v) : "memory");
}

// Online softmax of one 32-key half h of a tile (s1's operations per element: scale and mask S, row max by quad
// shuffles, running state, bf16 P) with the tile's key mask as bits and 32-bit shared addresses (warpgroup 0 runs
// near its register limit): P of keys 8 nt + 2 t of the half into its 64-byte-swizzled tile at `p_half_addr`, the
// factors to alpha_addr.
__device__ __forceinline__ void softmax_half(uint32_t mask_bits, uint32_t p_half_addr, uint32_t alpha_addr,
                                             float (&s)[4][4], float (&m_run)[2], float (&l_run)[2], int r0, int g,
                                             int t, float scale_log2) {
    float mx[2] = {-INFINITY, -INFINITY};
    const uint32_t bits = mask_bits >> (2 * t);
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {  // key 32 h + nt * 8 + 2 t + (e & 1)
            const bool ok = (bits >> (nt * 8 + (e & 1))) & 1u;
            s[nt][e] = ok ? s[nt][e] * scale_log2 : -INFINITY;
            mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
        }
    }
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        const float alpha = running_max_step(mx[hlf], m_run[hlf], l_run[hlf]);
        if (t == 0) st_shared_f32(alpha_addr + (r0 + g + 8 * hlf) * 4, alpha);
    }
    // P(row, key 8 nt + 2 t of the half) at row * 64 + ((nt ^ ((row >> 1) & 3)) << 4) + 4 t; (row >> 1) & 3 = g >> 1
    // for both rows r0 + g and r0 + g + 8 (r0 a multiple of 16).
    const uint32_t row_addr = p_half_addr + (r0 + g) * 64 + 4 * t, gx = static_cast<uint32_t>(g >> 1) << 4;
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
        for (int hlf = 0; hlf < 2; ++hlf) {
            st_shared_u32(row_addr + hlf * 8 * 64 + ((static_cast<uint32_t>(nt) << 4) ^ gx),
                          softmax_pair(s[nt][2 * hlf], s[nt][2 * hlf + 1], m_run[hlf], l_run[hlf]));
        }
    }
}

// O-warpgroup thread u (0..255) gathers row r = u / 4 of a tile, part c0 = u % 4.
// bf16: chunks c0 + 4 k (k < 18) by cp.async, then its arrivals on full[buf] (cp.async completion + this one).
// FP8: for block-rows (blk = c0 and 4 + c0, row r): e4m3 chunk 4 blk + k (k < 4) into the slot of its first bf16
// chunk (2 (4 blk + k)), the row's 16-byte scales into the slot of bf16 chunk 8 blk + 1 (both free until the
// in-place dequantization, dequant_fp8_row, writes them), and k_pe chunks 64 + c0 + 4 k (k < 2). A masked row is
// zero-filled (zero codes times zero scales: zeros).
__device__ __forceinline__ void gather_row(const MlaSparseKernelParams& p, S3Smem& sm, int buf, int32_t s, int r,
                                           int c0) {
    uint8_t* dst = sm.kv[buf];
    if (c0 == 0) sm.valid[buf][r] = s >= 0 ? 0 : -1;
    const int64_t row = s < 0 ? 0 : s;  // masked rows: a valid address, never read (src size 0)
    const bool ok = s >= 0;
    if (!p.fp8) {
        const uint8_t* src = p.store + row * kBf16RowBytes;
#pragma unroll
        for (int k = 0; k < kChunks / 4; ++k) cp_async16(dst + sw128(r, c0 + 4 * k), src + (c0 + 4 * k) * 16, ok);
        const uint32_t bar = smem_addr(&sm.full[buf]);
        cp_async_arrive_noinc(bar);
        fence_async_smem();
        mbar_arrive(bar);
        return;
    }
    const uint8_t* src = p.store + row * kFp8RowBytes;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int blk = c0 + 4 * h;
#pragma unroll
        for (int k = 0; k < 4; ++k) cp_async16(dst + sw128(r, 8 * blk + 2 * k), src + (4 * blk + k) * 16, ok);
        cp_async16(dst + sw128(r, 8 * blk + 1), src + kFp8ScaleOffset, ok);
    }
#pragma unroll
    for (int k = 0; k < 2; ++k) {
        const int c = c0 + 4 * k;
        cp_async16(dst + sw128(r, kLatent / 8 + c), src + kFp8RopeOffset + c * 16, ok);
    }
}

// FP8 only, after this thread's cp.async of the tile completed: its block-row (blk, r) dequantized in place (the
// scale read first; e4m3 chunk k's bf16 pair overwrites only its own slot and a free one).
__device__ __forceinline__ void dequant_fp8_block_row(S3Smem& sm, int buf, int r, int blk) {
    uint8_t* dst = sm.kv[buf];
    const float sc = reinterpret_cast<const float*>(dst + sw128(r, 8 * blk + 1))[blk >> 1];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const uint4 raw = *reinterpret_cast<const uint4*>(dst + sw128(r, 8 * blk + 2 * k));
        store_fp8_chunk(dst, r, 4 * blk + k, raw, 0xffffffffu, sc);
    }
}
// This thread's arrival on full[buf] once its stores are made visible to the async proxy.
__device__ __forceinline__ void fp8_row_done(S3Smem& sm, int buf) {
    fence_async_smem();
    mbar_arrive(smem_addr(&sm.full[buf]));
}
// Both block-rows of this thread (c0 and 4 + c0), then its arrival.
__device__ __forceinline__ void dequant_fp8_row(S3Smem& sm, int buf, int r, int c0) {
    dequant_fp8_block_row(sm, buf, r, c0);
    dequant_fp8_block_row(sm, buf, r, c0 + 4);
    fp8_row_done(sm, buf);
}

}  // namespace dsa::backend::cuda::mla_s3
