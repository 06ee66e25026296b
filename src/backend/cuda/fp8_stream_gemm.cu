// The FP8 weight-streaming decode GEMM (fp8_stream_gemm.h), two variants. Ring (the first): one warp owns 16 weight
// rows x a run of 128-K blocks and keeps kRing blocks of weight loads in registers. Staged (default): a CTA of 8
// warps streams 128 rows through a cp.async shared-memory ring holding weights and activations (see below). Inside
// every 128-K block the same permutation of k is applied to weights and activations, so a lane's fragments are two
// 16-byte pieces per row: lane (g, t) of k-step s (0..3) takes the 8 bytes at 64 * (s / 2) + 16 t + 8 * (s % 2) of
// the block, which the mma sees as k = 32 s + 4 t + {0..3} and 32 s + 16 + 4 t + {0..3} — a bijection of [0, 128).
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/fp8_stream_cluster.cuh"
#include "backend/cuda/fp8_stream_common.cuh"
#include "backend/cuda/fp8_stream_gemm.h"
#include "backend/cuda/fp8_wgmma_lean.h"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/wgmma_util.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRing = 4;  // 128-K weight blocks (2 KB per warp each) in flight per warp
constexpr int64_t kKBlock = kFp8StreamKBlock;
using fp8s::evict_first_policy;
using fp8s::lds64f;
using fp8s::split_k_finish;
using fp8s::store_out;
using fp8s::WarpJob;

// 16 weight bytes, read once: not kept in L1, first out of L2.
__device__ __forceinline__ uint4 ld_weight(const uint8_t* p, uint64_t pol) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;\n"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p), "l"(pol));
    return r;
}

__device__ __forceinline__ uint32_t word(const uint4& u, int i) {
    return i == 0 ? u.x : i == 1 ? u.y : i == 2 ? u.z : u.w;
}

// d += a · b: A 16x32 e4m3 (a0: row g k 4t.., a1: row g+8 k 4t.., a2: row g k 16+4t.., a3: row g+8 k 16+4t..),
// B 32x8 e4m3 (b0: k 4t.. col g, b1: k 16+4t.. col g), D f32 (d0,d1: row g cols 2t,2t+1; d2,d3: row g+8).
__device__ __forceinline__ void mma_e4m3(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Loads one 128-K block of the tile: [0], [1] = row g pieces at 16t and 64 + 16t; [2], [3] = row g + 8.
__device__ __forceinline__ void load_block(uint4 (&b)[4], const WarpJob& j, int64_t kb, uint64_t pol) {
    const uint4 z = make_uint4(0, 0, 0, 0);
    const int64_t off = kb * kKBlock;
    b[0] = j.w0 != nullptr ? ld_weight(j.w0 + off, pol) : z;
    b[1] = j.w0 != nullptr ? ld_weight(j.w0 + off + 64, pol) : z;
    b[2] = j.w1 != nullptr ? ld_weight(j.w1 + off, pol) : z;
    b[3] = j.w1 != nullptr ? ld_weight(j.w1 + off + 64, pol) : z;
}

// acc[nt] += (W_blk · X_blk^T) * w_scale * x_scale for one 128-K block.
template <int NT>
__device__ __forceinline__ void block_mma(float (&acc)[NT][4], const uint4 (&wb)[4], const Fp8StreamParams& p,
                                          const int (&xrow)[NT], int count, float sw, int64_t kb, int lane) {
    const int t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        if (nt * 8 >= count) break;  // warp-uniform
        uint4 x0 = make_uint4(0, 0, 0, 0), x1 = x0;
        float sx = 0.0f;
        if (xrow[nt] >= 0) {
            const uint8_t* xp = p.x + static_cast<int64_t>(xrow[nt]) * p.k + kb * kKBlock + 16 * t;
            x0 = __ldg(reinterpret_cast<const uint4*>(xp));
            x1 = __ldg(reinterpret_cast<const uint4*>(xp + 64));
            sx = __ldg(p.x_scale + kb * p.x_scale_ld + xrow[nt]);
        }
        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            const uint4& lo = s < 2 ? wb[0] : wb[1];
            const uint4& hi = s < 2 ? wb[2] : wb[3];
            const uint4& xb = s < 2 ? x0 : x1;
            const int w = (s & 1) * 2;
            mma_e4m3(d, word(lo, w), word(hi, w), word(lo, w + 1), word(hi, w + 1), word(xb, w), word(xb, w + 1));
        }
        // d[c] holds token columns 2t (c even) and 2t + 1 (c odd): their scales sit with lanes g = 2t, 2t + 1.
        const float s_even = __shfl_sync(0xffffffffu, sx, 8 * t) * sw;
        const float s_odd = __shfl_sync(0xffffffffu, sx, 8 * t + 4) * sw;
        acc[nt][0] = fmaf(d[0], s_even, acc[nt][0]);
        acc[nt][1] = fmaf(d[1], s_odd, acc[nt][1]);
        acc[nt][2] = fmaf(d[2], s_even, acc[nt][2]);
        acc[nt][3] = fmaf(d[3], s_odd, acc[nt][3]);
    }
}

// Resolves the warp's weight tile; false when the group does not exist (surplus grid rows).
__device__ __forceinline__ bool resolve(const Fp8StreamParams& p, int64_t grp, int64_t tile, int lane, WarpJob& j) {
    const uint8_t* w = p.w;
    const float* ws = p.w_scale;
    int64_t wrows = p.n, wr0 = tile * kFp8StreamTileRows;
    j.row0 = wr0;
    j.count = static_cast<int>(p.m);
    if (p.experts != nullptr) {
        if (grp >= *p.groups.num_groups) return false;
        const MoeExpertPtrs& e = p.experts[p.groups.expert[grp]];
        j.count = p.groups.count[grp];
        j.start = p.groups.start[grp];
        if (p.gate_up) {
            wrows = p.n / 2;
            const bool up = wr0 >= wrows;
            w = static_cast<const uint8_t*>(up ? e.up : e.gate);
            ws = up ? e.up_scale : e.gate_scale;
            if (up) wr0 -= wrows;
        } else {
            w = static_cast<const uint8_t*>(e.down);
            ws = e.down_scale;
        }
    } else if (p.gate_up) {
        wrows = p.n / 2;
        if (wr0 >= wrows) {
            w = p.w2;
            ws = p.w2_scale;
            wr0 -= wrows;
        }
    }
    const int g = lane >> 2, t = lane & 3;
    j.w0 = wr0 + g < wrows ? w + (wr0 + g) * p.k + 16 * t : nullptr;
    j.w1 = wr0 + g + 8 < wrows ? w + (wr0 + g + 8) * p.k + 16 * t : nullptr;
    j.w_scale = ws + (wr0 / kKBlock) * p.scale_ld;
    return true;
}

// The warp's 16 rows x its K run for the token rows tok0 .. tok0 + count of its job (count <= NT * 8).
template <int NT>
__device__ __forceinline__ void run_pass(float (&acc)[NT][4], const Fp8StreamParams& p, const Fp8StreamPlan& plan,
                                         const WarpJob& j, int64_t split, int lane, uint64_t pol) {
    int xrow[NT];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        const int tok = j.tok0 + nt * 8 + (lane >> 2);
        xrow[nt] = nt * 8 + (lane >> 2) >= j.count ? -1
                   : p.experts != nullptr          ? static_cast<int>(p.groups.rows[j.start + tok] / p.x_row_div)
                                                   : tok;
    }
    const int64_t nkb = p.k / kKBlock, kb0 = split * plan.chunk;
    const int nblk = static_cast<int>((kb0 + plan.chunk < nkb ? kb0 + plan.chunk : nkb) - kb0);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    uint4 ring[kRing][4];
#pragma unroll
    for (int r = 0; r < kRing; ++r) {
        if (r < nblk) load_block(ring[r], j, kb0 + r, pol);
    }
    for (int i = 0; i < nblk; i += kRing) {
#pragma unroll
        for (int r = 0; r < kRing; ++r) {
            if (i + r >= nblk) break;  // warp-uniform
            const uint4 cur[4] = {ring[r][0], ring[r][1], ring[r][2], ring[r][3]};
            if (i + r + kRing < nblk) load_block(ring[r], j, kb0 + i + r + kRing, pol);
            const int64_t kb = kb0 + i + r;
            block_mma<NT>(acc, cur, p, xrow, j.count, __ldg(j.w_scale + kb), kb, lane);
        }
    }
}

template <int NT>
__global__ void __launch_bounds__(kThreads) fp8_stream_kernel(Fp8StreamParams p, Fp8StreamPlan plan) {
    pdl_trigger();
    pdl_wait();  // this variant prefetches nothing: it waits for the previous kernel first
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t unit = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
    if (unit >= plan.tiles * plan.splits) return;  // no block-wide synchronization in this kernel
    const int64_t split = unit / plan.tiles, tile = unit % plan.tiles, grp = blockIdx.y;
    WarpJob j;
    if (!resolve(p, grp, tile, lane, j)) return;
    const int total = j.count;
    if (plan.splits > 1 && total > NT * 8) __trap();  // the host plans one pass whenever it splits K
    const uint64_t pol = evict_first_policy();
    float acc[NT][4];
    // More rows than NT * 8 (a group with repeated (token, expert) pairs): passes, each streaming the tile again.
    for (int tok0 = 0; tok0 < total; tok0 += NT * 8) {
        j.tok0 = tok0;
        j.count = total - tok0 < NT * 8 ? total - tok0 : NT * 8;
        run_pass<NT>(acc, p, plan, j, split, lane, pol);
        if (plan.splits == 1) {
            store_out<NT>(acc, p, j, lane);
        } else {
            split_k_finish<NT>(acc, p, plan, j, grp, split, plan.splits, tile, lane);
        }
    }
}


// ---- The staged kernel: a CTA of 8 warps owns 128 weight rows (warp w: rows 16w..16w+15) x a K run. Stage s of a
// kStages-deep cp.async ring holds the 128 x 128 weight block, the token rows' 128-byte activation block and their
// scales; every warp reads its fragments from shared memory (the same k permutation as above). Rows are 128 bytes;
// 16-byte chunk c of row r sits at chunk c ^ 4 (r & 1), so a quarter-warp's fragment loads (rows g = 2q, 2q + 1,
// chunks t or 4 + t) touch all 32 banks once.
constexpr int kSWarps = static_cast<int>(kFp8StreamCtaWarps);
constexpr int kSThreads = kSWarps * 32;
constexpr int kSRows = kSWarps * static_cast<int>(kFp8StreamTileRows);

// WG: the wgmma variant's stage (below): 1024-byte aligned stages (128-byte swizzle atoms), fewer of them for NT <= 2.
template <int NT, bool WG = false>
struct Staged {
    static constexpr int kStages = NT <= 2 ? (WG ? 5 : 6) : 4;
    static constexpr int kXRows = NT * 8;
    static constexpr int kWBytes = kSRows * 128;
    static constexpr int kXBytes = kXRows * 128;
    static constexpr int kRawBytes = kWBytes + kXBytes + kXRows * 4;
    static constexpr int kStageBytes = WG ? (kRawBytes + 1023) / 1024 * 1024 : kRawBytes;
    static constexpr int kSmem = kStages * kStageBytes + (WG ? 1024 : 0);  // WG: room to align the base to 1 KB
    static constexpr int kXPer = (NT * 64 + kSThreads - 1) / kSThreads;  // activation chunks per thread
};

// Byte offset of 16-byte chunk c of 128-byte row r: the staged kernel's XOR 4 (r & 1), or the wgmma 128-byte swizzle
// (chunk c ^ (r & 7) inside 1024-byte atoms of 8 rows).
template <bool WG = false>
__device__ __forceinline__ uint32_t swz(int r, int c) {
    return WG ? static_cast<uint32_t>(r * 128 + ((c ^ (r & 7)) << 4))
              : static_cast<uint32_t>(r * 128 + ((c ^ ((r & 1) << 2)) << 4));
}

__device__ __forceinline__ void cp_async16_hint(uint32_t dst, const void* src, bool valid, uint64_t pol) {
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(dst), "l"(src),
                 "r"(valid ? 16 : 0), "l"(pol)
                 : "memory");
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0) : "memory");
}
__device__ __forceinline__ uint4 lds128(uint32_t addr) {
    uint4 r;
    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "r"(addr)
                 : "memory");
    return r;
}

// Output feature `row`'s weight row (grouped: of expert e; gate_up: gate rows then up rows); null past N.
__device__ __forceinline__ const uint8_t* weight_row(const Fp8StreamParams& p, const MoeExpertPtrs* e, int64_t row) {
    if (row >= p.n) return nullptr;
    if (!p.gate_up) return (e == nullptr ? p.w : static_cast<const uint8_t*>(e->down)) + row * p.k;
    const int64_t f = p.n / 2;
    if (e == nullptr) return row < f ? p.w + row * p.k : p.w2 + (row - f) * p.k;
    return row < f ? static_cast<const uint8_t*>(e->gate) + row * p.k
                   : static_cast<const uint8_t*>(e->up) + (row - f) * p.k;
}

// The x row of pass-local token i (valid i < j.count).
__device__ __forceinline__ int64_t x_row(const Fp8StreamParams& p, const WarpJob& j, int i) {
    return p.experts != nullptr ? p.groups.rows[j.start + j.tok0 + i] / p.x_row_div : j.tok0 + i;
}

// This thread's share of one stage: 4 weight chunks, kXPer activation chunks, one token scale.
template <int NT>
struct StageSrc {
    const uint8_t* w[4];
    const uint8_t* x[Staged<NT>::kXPer];
    const float* sc;
};

// The weight part of a stage (weights only: may be issued before pdl_wait()).
template <int NT, bool WG>
__device__ __forceinline__ void load_stage_w(uint32_t stage, const StageSrc<NT>& s, int64_t kb,
                                             const Fp8StreamParams& p, uint64_t pol) {
    const int tid = threadIdx.x;
    const void* dummy = p.w != nullptr ? static_cast<const void*>(p.w) : static_cast<const void*>(p.x);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint32_t dst = stage + swz<WG>(tid / 8 + 32 * i, tid % 8);
        cp_async16_hint(dst, s.w[i] != nullptr ? s.w[i] + kb * kKBlock : dummy, s.w[i] != nullptr, pol);
    }
}

// The activation and scale part of a stage (after pdl_wait()).
template <int NT, bool WG>
__device__ __forceinline__ void load_stage_x(uint32_t stage, const StageSrc<NT>& s, int64_t kb, int used,
                                             const Fp8StreamParams& p) {
    using S = Staged<NT, WG>;
    const int tid = threadIdx.x;
    const void* dummy = p.x;  // zero-filled copies read nothing; any global address will do
#pragma unroll
    for (int i = 0; i < S::kXPer; ++i) {
        const int idx = tid + kSThreads * i, r = idx / 8;
        if (idx < NT * 64 && r < used) {
            const uint32_t dst = stage + S::kWBytes + swz<WG>(r, idx % 8);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst),
                         "l"(s.x[i] != nullptr ? s.x[i] + kb * kKBlock : dummy), "r"(s.x[i] != nullptr ? 16 : 0)
                         : "memory");
        }
    }
    if (tid < used) {
        cp_async4(stage + S::kWBytes + S::kXBytes + 4 * tid, s.sc != nullptr ? s.sc + kb * p.x_scale_ld : dummy,
                  s.sc != nullptr);
    }
}

template <int NT, bool WG>
__device__ __forceinline__ void load_stage(uint32_t stage, const StageSrc<NT>& s, int64_t kb, int used,
                                           const Fp8StreamParams& p, uint64_t pol) {
    load_stage_w<NT, WG>(stage, s, kb, p, pol);
    load_stage_x<NT, WG>(stage, s, kb, used, p);
}

// acc[nt] += (W_blk · X_blk^T) * w_scale * x_scale for the warp's 16 rows of one staged block.
template <int NT>
__device__ __forceinline__ void staged_mma(float (&acc)[NT][4], uint32_t stage, int warp, int lane, int count,
                                           float sw) {
    using S = Staged<NT>;
    const int g = lane >> 2, t = lane & 3, r = 16 * warp + g;
    const uint4 wb[4] = {lds128(stage + swz(r, t)), lds128(stage + swz(r, 4 + t)), lds128(stage + swz(r + 8, t)),
                         lds128(stage + swz(r + 8, 4 + t))};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        if (nt * 8 >= count) break;  // warp-uniform
        const uint32_t xs = stage + S::kWBytes;
        const uint4 x0 = lds128(xs + swz(nt * 8 + g, t)), x1 = lds128(xs + swz(nt * 8 + g, 4 + t));
        // d[c] holds token columns 2t (c even) and 2t + 1 (c odd).
        const float2 sx = lds64f(xs + S::kXBytes + 4 * (nt * 8 + 2 * t));
        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            const uint4& lo = s < 2 ? wb[0] : wb[1];
            const uint4& hi = s < 2 ? wb[2] : wb[3];
            const uint4& xb = s < 2 ? x0 : x1;
            const int w = (s & 1) * 2;
            mma_e4m3(d, word(lo, w), word(hi, w), word(lo, w + 1), word(hi, w + 1), word(xb, w), word(xb, w + 1));
        }
        acc[nt][0] = fmaf(d[0], sx.x * sw, acc[nt][0]);
        acc[nt][1] = fmaf(d[1], sx.y * sw, acc[nt][1]);
        acc[nt][2] = fmaf(d[2], sx.x * sw, acc[nt][2]);
        acc[nt][3] = fmaf(d[3], sx.y * sw, acc[nt][3]);
    }
}

// One staged 128-K block on tensor cores, warpgroup-wide: warpgroup w/4 multiplies weight rows 64 (w/4) .. + 63 by
// the token block in four k32 steps (+32 bytes inside the swizzled rows), then each warp scales its 16 rows. The
// fragment of warp w (rows 16 (w % 4) + g, + 8 of the warpgroup; columns 8 nt + 2t, + 1) is mma.sync's per n-tile,
// so acc[nt][c] = d[4 nt + c] and the staged kernel's store and split-K code apply unchanged.
template <int NT>
__device__ __forceinline__ void wg_block_mma(float (&acc)[NT][4], uint32_t stage, int warp, int lane, bool has_tile,
                                             float sw) {
    using S = Staged<NT, true>;
    const uint32_t a = stage + (warp >> 2) * 64 * 128, b = stage + S::kWBytes;
    float d[NT * 4];
#pragma unroll
    for (int i = 0; i < NT * 4; ++i) d[i] = 0.0f;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        wgmma_e4m3<8 * NT>(d, sw128_kmajor_desc(a + 32 * kk), sw128_kmajor_desc(b + 32 * kk), kk > 0 ? 1 : 0);
    }
    wgmma_commit();
    wgmma_wait_all();
    fence_regs<NT * 4>(d);  // no reads before the wait
    if (!has_tile) return;
    const int t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        const float2 sx = lds64f(b + S::kXBytes + 4 * (nt * 8 + 2 * t));
        acc[nt][0] = fmaf(d[4 * nt + 0], sx.x * sw, acc[nt][0]);
        acc[nt][1] = fmaf(d[4 * nt + 1], sx.y * sw, acc[nt][1]);
        acc[nt][2] = fmaf(d[4 * nt + 2], sx.x * sw, acc[nt][2]);
        acc[nt][3] = fmaf(d[4 * nt + 3], sx.y * sw, acc[nt][3]);
    }
}

// One CTA job: 128-row block rb of group grp over the K blocks [kb0, kb0 + nblk), partial `seg` of the `nseg` that
// sum to its tiles' outputs (nseg 1: stored directly). PDL: grouped launches have waited for the previous kernel
// (the groups and the expert table are its outputs); a dense launch's first job (`prefetch`) issues the weight part
// of its first stages, then waits. WG: the wgmma variant (the same ring with the 128-byte swizzle; each warpgroup
// multiplies its 64 rows by wgmma). Ends with a CTA barrier (the next job refills every stage) or CTA-uniformly early.
template <int NT, bool WG, bool CL = true>  // CL: cluster plans possible (not from the stream-K body)
__device__ __forceinline__ void staged_job(const Fp8StreamParams& p, const Fp8StreamPlan& plan, int64_t grp, int64_t rb,
                                           int64_t kb0, int nblk, int64_t seg, int64_t nseg, bool prefetch,
                                           uint8_t* smem) {
    using S = Staged<NT, WG>;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, tid = threadIdx.x;
    const bool dense = p.experts == nullptr;
    const int64_t tile = rb * kSWarps + warp;
    const bool has_tile = tile < plan.tiles;
    WarpJob j;
    if (!resolve(p, grp, has_tile ? tile : 0, lane, j)) return;  // the whole CTA: surplus group (after the wait)
    const MoeExpertPtrs* e = p.experts != nullptr ? p.experts + p.groups.expert[grp] : nullptr;
    const int total = j.count;
    if (nseg > 1 && total > NT * 8) __trap();  // the host plans one pass whenever it splits K
    if (nblk <= 0) {  // CTA-uniform; the plan never makes one
        pdl_wait();
        return;
    }
    const uint64_t pol = evict_first_policy();
    const uint32_t sbase = WG ? (smem_addr(smem) + 1023u) & ~1023u : smem_addr(smem);
    StageSrc<NT> src;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint8_t* w = weight_row(p, e, rb * kSRows + tid / 8 + 32 * i);
        src.w[i] = w != nullptr ? w + 16 * (tid % 8) : nullptr;
    }
    if (dense && prefetch) {
        // Weights are never written by kernels: their first stages stream while the previous kernel finishes.
        // These copies join the first commit group below (block 0's), which the first wait covers.
#pragma unroll
        for (int s = 0; s < S::kStages - 1; ++s) {
            if (s < nblk) load_stage_w<NT, WG>(sbase + s * S::kStageBytes, src, kb0 + s, p, pol);
        }
        pdl_wait();
    }
    float acc[NT][4];
    for (int tok0 = 0; tok0 < total; tok0 += NT * 8) {
        j.tok0 = tok0;
        j.count = total - tok0 < NT * 8 ? total - tok0 : NT * 8;
        const int used = (j.count + 7) & ~7;
#pragma unroll
        for (int i = 0; i < S::kXPer; ++i) {
            const int idx = tid + kSThreads * i, r = idx / 8;
            src.x[i] = idx < NT * 64 && r < j.count ? p.x + x_row(p, j, r) * p.k + 16 * (idx % 8) : nullptr;
        }
        src.sc = tid < j.count ? p.x_scale + x_row(p, j, tid) : nullptr;
        const bool w_issued = dense && prefetch && tok0 == 0;  // the prologue's weights are in flight already
#pragma unroll
        for (int s = 0; s < S::kStages - 1; ++s) {
            if (s < nblk) {
                if (!w_issued) load_stage_w<NT, WG>(sbase + s * S::kStageBytes, src, kb0 + s, p, pol);
                load_stage_x<NT, WG>(sbase + s * S::kStageBytes, src, kb0 + s, used, p);
            }
            cp_async_commit();
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
        for (int i = 0; i < nblk; ++i) {
            cp_async_wait<S::kStages - 2>();  // block i has landed (this thread's copies) ...
            if constexpr (WG) fence_async_smem();  // ... and is visible to wgmma (the async proxy) ...
            __syncthreads();                  // ... everyone's, and block i - 1's slot is free
            const int next = i + S::kStages - 1;
            if (next < nblk) {
                load_stage<NT, WG>(sbase + (next % S::kStages) * S::kStageBytes, src, kb0 + next, used, p, pol);
            }
            cp_async_commit();
            if constexpr (WG) {  // warpgroup-wide: every warp issues, warps past the weight skip the scaling
                wg_block_mma<NT>(acc, sbase + (i % S::kStages) * S::kStageBytes, warp, lane, has_tile,
                                 __ldg(j.w_scale + kb0 + i));
            } else if (has_tile) {
                const float sw = __ldg(j.w_scale + kb0 + i);
                staged_mma<NT>(acc, sbase + (i % S::kStages) * S::kStageBytes, warp, lane, j.count, sw);
            }
        }
        cp_async_wait<0>();
        if constexpr (CL) {
            if (plan.cluster > 1) {  // one pass (the host plans one whenever it splits K); the whole CTA, then done
                fp8s::cluster_finish<NT>(acc, p, plan, rb, j, smem, warp, lane);
                return;
            }
        }
        if (has_tile) {
            if (nseg == 1) {
                store_out<NT>(acc, p, j, lane);
            } else {
                split_k_finish<NT>(acc, p, plan, j, grp, seg, nseg, tile, lane);
            }
        }
        __syncthreads();  // the next pass (or job) refills every stage
    }
}

// CTA `cta` of a launch with this plan (group grp): row block cta % rowblocks, K split cta / rowblocks.
template <int NT, bool WG>
__device__ __forceinline__ void staged_body(const Fp8StreamParams& p, const Fp8StreamPlan& plan, int64_t cta,
                                            int64_t grp, uint8_t* smem) {
    if (p.experts != nullptr) pdl_wait();
    const int64_t rowblocks = (plan.tiles + kSWarps - 1) / kSWarps;
    // Cluster plans: a row block's K splits are consecutive CTAs (one cluster); else split-major.
    const bool cl = plan.cluster > 1;
    const int64_t split = cl ? cta % plan.cluster : cta / rowblocks, rb = cl ? cta / plan.cluster : cta % rowblocks;
    const int64_t nkb = p.k / kKBlock, kb0 = split * plan.chunk;
    const int nblk = static_cast<int>((kb0 + plan.chunk < nkb ? kb0 + plan.chunk : nkb) - kb0);
    staged_job<NT, WG>(p, plan, grp, rb, kb0, nblk, split, plan.splits, /*prefetch=*/true, smem);
}

// Stream-K (plan.streamk_units > 0): the units (group, row block, K block), row-block-major over all groups, in
// runs of plan.chunk per CTA; a row block cut between CTAs sums their partials in CTA order (deterministic).
template <int NT, bool WG>
__device__ __forceinline__ void streamk_body(const Fp8StreamParams& p, const Fp8StreamPlan& plan, uint8_t* smem) {
    if (p.experts != nullptr) pdl_wait();
    const int64_t nkb = p.k / kKBlock, rowblocks = (plan.tiles + kSWarps - 1) / kSWarps, q = plan.chunk;
    const int64_t cta = blockIdx.x, u1 = (cta + 1) * q < plan.streamk_units ? (cta + 1) * q : plan.streamk_units;
    bool first = true;
    for (int64_t u = cta * q; u < u1;) {
        const int64_t row = u / nkb, kb = u % nkb, n = nkb - kb < u1 - u ? nkb - kb : u1 - u;
        const int64_t seg0 = row * nkb / q, nseg = ((row + 1) * nkb - 1) / q - seg0 + 1;
        staged_job<NT, WG, false>(p, plan, row / rowblocks, row % rowblocks, kb, static_cast<int>(n), cta - seg0, nseg,
                                  first, smem);
        first = false;
        u += n;
    }
    if (first) pdl_wait();  // no units (the plan never makes such a CTA)
}

template <int NT>
__global__ void __launch_bounds__(kSThreads, 2) fp8_staged_kernel(Fp8StreamParams p, Fp8StreamPlan plan) {
    extern __shared__ __align__(1024) uint8_t smem[];  // 1024 as every declaration of smem in this file
    pdl_trigger();
    staged_body<NT, false>(p, plan, blockIdx.x, blockIdx.y, smem);
}

template <int NT>
__global__ void __launch_bounds__(kSThreads, 2) fp8_wgmma_kernel(Fp8StreamParams p, Fp8StreamPlan plan) {
    extern __shared__ __align__(1024) uint8_t smem[];
    pdl_trigger();
    staged_body<NT, true>(p, plan, blockIdx.x, blockIdx.y, smem);
}

template <int NT, bool WG>
__global__ void __launch_bounds__(kSThreads, 2) fp8_streamk_kernel(Fp8StreamParams p, Fp8StreamPlan plan) {
    extern __shared__ __align__(1024) uint8_t smem[];
    pdl_trigger();
    streamk_body<NT, WG>(p, plan, smem);
}

// Several dense problems over one x: the CTA's problem is the last whose first CTA it has reached.
template <int NT, bool WG>
__global__ void __launch_bounds__(kSThreads, 2) fp8_staged_multi_kernel(Fp8StreamParams p, Fp8StreamMulti m) {
    extern __shared__ __align__(1024) uint8_t smem[];
    pdl_trigger();
    Fp8StreamPlan plan;
    const int64_t cta = fp8s::select_problem(m, p, plan);
    staged_body<NT, WG>(p, plan, cta, 0, smem);
}

// One warp per (row, 128-column block of h); lane l holds columns 4l .. 4l+3.
__global__ void swiglu_quant_kernel(SwigluQuantParams p) {
    pdl_trigger();
    pdl_wait();
    const int64_t num_kb = p.f / kKBlock;
    const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (warp >= p.rows * num_kb) return;  // whole warps exit together
    const int64_t row = warp / num_kb, kb = warp % num_kb, c0 = kb * kKBlock + lane * 4;
    const uint16_t* gu = p.gu + row * 2 * p.f;
    float h[4];
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float g = bf16_bits_to_f32(gu[c0 + i]), u = bf16_bits_to_f32(gu[p.f + c0 + i]);
        h[i] = round_bf16(g / (1.0f + expf(-g)) * u);  // the grouped GEMV's SwiGLU, then the bf16 h it stores
        amax = fmaxf(amax, fabsf(h[i]));
    }
    amax = warp_max(amax);
    const float s = act_quant_scale(amax, p.ue8m0);
    if (lane == 0) p.scales[kb * p.rows + row] = s;
#pragma unroll
    for (int i = 0; i < 4; ++i) p.q[row * p.f + c0 + i] = act_quant_code(h[i], s);
}

template <int NT, bool WG>
void launch_streamk_wg(const Fp8StreamParams& p, const Fp8StreamPlan& plan, int64_t ctas, cudaStream_t stream) {
    constexpr int smem = Staged<NT, WG>::kSmem;
    DSA_CUDA_CHECK(cudaFuncSetAttribute(fp8_streamk_kernel<NT, WG>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    host::launch_pdl(fp8_streamk_kernel<NT, WG>, dim3(static_cast<unsigned>(ctas)), dim3(kSThreads), smem, stream, p,
                     plan);
}

template <int NT>
void launch_streamk(const Fp8StreamParams& p, const Fp8StreamPlan& plan, int64_t groups, cudaStream_t stream) {
    const int64_t units = groups * ((plan.tiles + kSWarps - 1) / kSWarps) * (p.k / kKBlock);
    DSA_CHECK(plan.streamk_units == units && plan.chunk >= 1 && plan.splits >= 2)
        << "fp8 stream GEMM: stream-K plan of " << plan.streamk_units << " units for " << units;
    DSA_CHECK(p.experts != nullptr || p.m <= NT * 8) << "fp8 stream GEMM: stream-K plans one pass";
    const int64_t ctas = (units + plan.chunk - 1) / plan.chunk;
    DSA_CHECK(ctas <= 0x7fffffff) << "fp8 stream GEMM grid";
    if (plan.kernel == Fp8StreamKernel::kWgmma) {
        launch_streamk_wg<NT, true>(p, plan, ctas, stream);
    } else {
        launch_streamk_wg<NT, false>(p, plan, ctas, stream);
    }
}

template <int NT>
void launch_nt(const Fp8StreamParams& p, const Fp8StreamPlan& plan, int64_t groups, cudaStream_t stream) {
    if (plan.kernel == Fp8StreamKernel::kRing) {
        const int64_t ctas = (plan.tiles * plan.splits + kWarps - 1) / kWarps;
        const dim3 grid(static_cast<unsigned>(ctas), static_cast<unsigned>(groups));
        host::launch_pdl(fp8_stream_kernel<NT>, grid, dim3(kThreads), 0, stream, p, plan);
        return;
    }
    if (plan.streamk_units > 0) {
        launch_streamk<NT>(p, plan, groups, stream);
        return;
    }
    if (fp8_wgmma_lean_applies(plan, p.experts == nullptr)) {  // DSA_FP8_WGMMA_LEAN (fp8_wgmma_lean.cu)
        launch_fp8_wgmma_lean(p, plan, stream);
        return;
    }
    const int64_t ctas = (plan.tiles + kSWarps - 1) / kSWarps * plan.splits;
    DSA_CHECK(ctas <= 0x7fffffff) << "fp8 stream GEMM grid";
    if (plan.cluster > 1) {
        DSA_CHECK(groups == 1 && plan.splits == plan.cluster) << "fp8 stream GEMM: cluster plan for " << groups
                                                              << " groups";
        if (plan.kernel == Fp8StreamKernel::kWgmma) {
            host::launch_fp8_cluster(fp8_wgmma_kernel<NT>, ctas, kSThreads, plan.cluster, Staged<NT, true>::kSmem,
                                     stream, p, plan);
        } else {
            host::launch_fp8_cluster(fp8_staged_kernel<NT>, ctas, kSThreads, plan.cluster, Staged<NT>::kSmem, stream,
                                     p, plan);
        }
        return;
    }
    const dim3 grid(static_cast<unsigned>(ctas), static_cast<unsigned>(groups));
    // Per function and device; cheap on the host, so set on every launch (any device may be current).
    if (plan.kernel == Fp8StreamKernel::kWgmma) {
        constexpr int smem = Staged<NT, true>::kSmem;
        DSA_CUDA_CHECK(cudaFuncSetAttribute(fp8_wgmma_kernel<NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        host::launch_pdl(fp8_wgmma_kernel<NT>, grid, dim3(kSThreads), smem, stream, p, plan);
        return;
    }
    DSA_CUDA_CHECK(cudaFuncSetAttribute(fp8_staged_kernel<NT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        Staged<NT>::kSmem));
    host::launch_pdl(fp8_staged_kernel<NT>, grid, dim3(kSThreads), Staged<NT>::kSmem, stream, p, plan);
}

template <int NT, bool WG>
void launch_multi_wg(const Fp8StreamParams& p, const Fp8StreamMulti& m, int64_t ctas, cudaStream_t stream) {
    constexpr int smem = Staged<NT, WG>::kSmem;
    if (m.prob[0].plan.cluster > 1) {
        host::launch_fp8_cluster(fp8_staged_multi_kernel<NT, WG>, ctas, kSThreads, m.prob[0].plan.cluster, smem, stream,
                                 p, m);
        return;
    }
    DSA_CUDA_CHECK(
        cudaFuncSetAttribute(fp8_staged_multi_kernel<NT, WG>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    host::launch_pdl(fp8_staged_multi_kernel<NT, WG>, dim3(static_cast<unsigned>(ctas)), dim3(kSThreads), smem, stream,
                     p, m);
}

template <int NT>
void launch_multi_nt(const Fp8StreamParams& p, const Fp8StreamMulti& m, int64_t ctas, cudaStream_t stream) {
    if (fp8_wgmma_lean_applies(m.prob[0].plan, true)) {  // DSA_FP8_WGMMA_LEAN (fp8_wgmma_lean.cu)
        launch_fp8_wgmma_lean_multi(p, m, ctas, stream);
    } else if (m.prob[0].plan.kernel == Fp8StreamKernel::kWgmma) {
        launch_multi_wg<NT, true>(p, m, ctas, stream);
    } else {
        launch_multi_wg<NT, false>(p, m, ctas, stream);
    }
}

}  // namespace

void launch_fp8_stream_gemm(const Fp8StreamParams& p, const Fp8StreamPlan& planned, cudaStream_t stream) {
    Fp8StreamPlan plan = planned;
    plan.finish = fp8_stream_finish_v2() ? 1 : 0;
    const int64_t groups = p.experts != nullptr ? p.groups.max_groups : 1;
    if (groups == 0 || p.n == 0 || (p.experts == nullptr && p.m == 0)) return;
    DSA_CHECK(p.k >= kKBlock && p.k % kKBlock == 0) << "fp8 stream GEMM: K = " << p.k << " (a multiple of 128)";
    DSA_CHECK(p.scale_ld >= p.k / kKBlock) << "fp8 stream GEMM: scale_ld " << p.scale_ld;
    DSA_CHECK(!p.gate_up || (p.n % (2 * kFp8StreamTileRows) == 0)) << "fp8 stream GEMM: gate_up N = " << p.n;
    DSA_CHECK(!p.gate_up || p.experts != nullptr || (p.w2 != nullptr && p.w2_scale != nullptr))
        << "fp8 stream GEMM: dense gate_up without the up weight";
    DSA_CHECK(plan.tiles == (p.n + kFp8StreamTileRows - 1) / kFp8StreamTileRows) << "fp8 stream GEMM: plan mismatch";
    DSA_CHECK(p.experts != nullptr || p.m <= plan.nt * 8) << "fp8 stream GEMM: " << p.m << " rows > plan";
    DSA_CHECK(plan.splits == 1 || plan.cluster > 1 || (p.ws != nullptr && p.counters != nullptr))
        << "fp8 stream GEMM: no workspace";
    DSA_CHECK(groups <= 65535) << "fp8 stream GEMM: " << groups << " groups";
    fp8s::with_nt(plan.nt, [&](auto nt) { launch_nt<decltype(nt)::value>(p, plan, groups, stream); });
}

void launch_fp8_stream_multi(const Fp8StreamParams& shared, Fp8StreamMulti multi, cudaStream_t stream) {
    DSA_CHECK(multi.count >= 1 && multi.count <= kFp8StreamMaxProblems)
        << "fp8 stream multi: " << multi.count << " problems (1.." << kFp8StreamMaxProblems << ")";
    DSA_CHECK(shared.experts == nullptr && !shared.gate_up) << "fp8 stream multi: dense problems only";
    if (shared.m == 0) return;
    const Fp8StreamPlan& first = multi.prob[0].plan;
    bool staged = first.kernel != Fp8StreamKernel::kRing;  // staged or wgmma: one launch
    for (int i = 0; i < multi.count; ++i) {
        const Fp8StreamProblem& q = multi.prob[i];
        DSA_CHECK(q.n > 0 && q.w != nullptr && q.w_scale != nullptr && q.out != nullptr)
            << "fp8 stream multi: problem " << i;
        DSA_CHECK(q.plan.nt == first.nt) << "fp8 stream multi: problems planned for different token counts";
        staged = staged && q.plan.kernel == first.kernel && q.plan.cluster == first.cluster;
    }
    if (!staged) {  // the ring variant or unequal clusters: one launch per problem, the same results
        for (int i = 0; i < multi.count; ++i) {
            const Fp8StreamProblem& q = multi.prob[i];
            Fp8StreamParams p = shared;
            p.w = q.w, p.w_scale = q.w_scale, p.out = q.out, p.n = q.n, p.scale_ld = q.scale_ld;
            p.ws = q.ws, p.counters = q.counters;
            launch_fp8_stream_gemm(p, q.plan, stream);
        }
        return;
    }
    DSA_CHECK(shared.k >= kKBlock && shared.k % kKBlock == 0) << "fp8 stream multi: K = " << shared.k;
    DSA_CHECK(shared.m <= first.nt * 8) << "fp8 stream multi: " << shared.m << " rows > plan";
    int64_t ctas = 0;
    for (int i = 0; i < multi.count; ++i) {
        Fp8StreamProblem& q = multi.prob[i];
        q.plan.finish = fp8_stream_finish_v2() ? 1 : 0;
        DSA_CHECK(q.scale_ld >= shared.k / kKBlock) << "fp8 stream multi: scale_ld " << q.scale_ld;
        DSA_CHECK(q.plan.tiles == (q.n + kFp8StreamTileRows - 1) / kFp8StreamTileRows) << "fp8 stream multi: plan";
        DSA_CHECK(q.plan.splits == 1 || q.plan.cluster > 1 || (q.ws != nullptr && q.counters != nullptr))
            << "fp8 stream multi: workspace";
        q.cta0 = ctas;
        ctas += (q.plan.tiles + kSWarps - 1) / kSWarps * q.plan.splits;
    }
    DSA_CHECK(ctas <= 0x7fffffff) << "fp8 stream multi grid";
    fp8s::with_nt(first.nt, [&](auto nt) { launch_multi_nt<decltype(nt)::value>(shared, multi, ctas, stream); });
}

void launch_swiglu_quant(const SwigluQuantParams& p, cudaStream_t stream) {
    if (p.rows == 0) return;
    DSA_CHECK(p.f > 0 && p.f % kKBlock == 0) << "swiglu_quant: F = " << p.f << " (a multiple of 128)";
    const int64_t warps = p.rows * (p.f / kKBlock);
    constexpr int kT = 256;
    host::launch_pdl(swiglu_quant_kernel, dim3(static_cast<unsigned>((warps * 32 + kT - 1) / kT)), dim3(kT), 0, stream,
                     p);
}

}  // namespace dsa::backend::cuda
