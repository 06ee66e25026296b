// The FP8 stream GEMM's 33..64-token variants (DSA_FP8_STREAM_M64=xreg | xreg1, opt-in; fp8_stream_gemm.h): the
// wgmma kernel's CTA (8 warps, 128 weight rows x a K run, warpgroup g multiplying rows 64g..64g+63 by all 64 token
// rows with m64n64k32 e4m3) with a cp.async ring of weights only (16 KB stages: more weight bytes in flight than
// the 25 KB weight + activation stages) and the activation block of K block i + 1 loaded into registers during
// block i - 1 and stored into a double buffer. Dense launches (one weight or a dense gate_up); split-K as the
// staged kernels (partials per warp, the last warp of a tile sums them in split order).
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/fp8_stream_gemm.h"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/wgmma_util.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRows = 128;             // weight rows per CTA
constexpr int kTokens = 64;            // token rows (n of the wgmma)
constexpr int kWStage = kRows * 128;   // one 128-K block of the CTA's weights
constexpr int kXSlot = kTokens * 128;  // one 128-K block of the activations
constexpr int64_t kKB = kFp8StreamKBlock;

// Shared memory: S weight stages, 2 activation slots, 2 scale slots (64 f32), 1 KB to align the base.
template <int S>
struct Wg64Layout {
    static constexpr int kXOff = S * kWStage;
    static constexpr int kScOff = kXOff + 2 * kXSlot;
    static constexpr int kSmem = kScOff + 2 * kTokens * 4 + 1024;
};

// Byte offset of 16-byte chunk c of 128-byte row r in the wgmma 128-byte swizzle (1024-byte atoms of 8 rows).
__device__ __forceinline__ uint32_t swz128(int r, int c) {
    return static_cast<uint32_t>(r * 128 + ((c ^ (r & 7)) << 4));
}

__device__ __forceinline__ uint64_t evict_first() {
    uint64_t pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));
    return pol;
}

__device__ __forceinline__ void cp_async16_pol(uint32_t dst, const void* src, bool valid, uint64_t pol) {
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(dst), "l"(src),
                 "r"(valid ? 16 : 0), "l"(pol)
                 : "memory");
}

// Output feature `row`'s weight row (dense gate_up: rows [n/2, n) from w2); null past N.
__device__ __forceinline__ const uint8_t* weight_row(const Fp8StreamParams& p, int64_t row) {
    if (row >= p.n) return nullptr;
    if (!p.gate_up) return p.w + row * p.k;
    const int64_t f = p.n / 2;
    return row < f ? p.w + row * p.k : p.w2 + (row - f) * p.k;
}

// The scale row of 16-row tile `tile` (gate_up: F % 16 == 0, so a tile lies in one weight).
__device__ __forceinline__ const float* scale_row(const Fp8StreamParams& p, int64_t tile) {
    int64_t r = tile * 16;
    const float* s = p.w_scale;
    if (p.gate_up && r >= p.n / 2) r -= p.n / 2, s = p.w2_scale;
    return s + (r / kKB) * p.scale_ld;
}

// This thread's 4 weight chunks of one stage: rows tid / 8 + 32 i, chunk tid % 8.
__device__ __forceinline__ void load_w(uint32_t stage, const uint8_t* const (&src)[4], int64_t kb, const void* dummy,
                                       uint64_t pol) {
    const int tid = threadIdx.x;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        cp_async16_pol(stage + swz128(tid / 8 + 32 * i, tid % 8), src[i] != nullptr ? src[i] + kb * kKB : dummy,
                       src[i] != nullptr, pol);
    }
}

// One activation block in registers: chunks tid and tid + 256 (row idx / 8, chunk idx % 8) and token tid's scale.
struct XRegs {
    uint4 v[2];
    float sc;
};

__device__ __forceinline__ void load_x(XRegs& r, const uint8_t* const (&src)[2], const float* sc, int64_t kb,
                                       int64_t sc_ld) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        r.v[i] = src[i] != nullptr ? __ldcg(reinterpret_cast<const uint4*>(src[i] + kb * kKB)) : make_uint4(0, 0, 0, 0);
    }
    r.sc = sc != nullptr ? __ldcg(sc + kb * sc_ld) : 0.0f;
}

__device__ __forceinline__ void store_x(uint32_t xslot, uint32_t scslot, const XRegs& r) {
    const int tid = threadIdx.x;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int idx = tid + kThreads * i;
        asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(xslot + swz128(idx / 8, idx % 8)),
                     "r"(r.v[i].x), "r"(r.v[i].y), "r"(r.v[i].z), "r"(r.v[i].w)
                     : "memory");
    }
    if (tid < kTokens) asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(scslot + 4 * tid), "f"(r.sc) : "memory");
}

// acc += (W_blk · X_blk^T) * sw * x_scale for one 128-K block: acc[nt][c] = d[4 nt + c] (weight row 16 (warp % 4) +
// g (+ 8 for c >= 2) of the warpgroup's 64, token 8 nt + 2t + (c & 1)).
__device__ __forceinline__ void mma_block(float (&acc)[8][4], uint32_t a, uint32_t b, uint32_t sc, int lane,
                                          bool has_tile, float sw) {
    float d[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) d[i] = 0.0f;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        wgmma_e4m3<64>(d, sw128_kmajor_desc(a + 32 * kk), sw128_kmajor_desc(b + 32 * kk), kk > 0 ? 1 : 0);
    }
    wgmma_commit();
    wgmma_wait_all();
    fence_regs<32>(d);
    if (!has_tile) return;
    const int t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
        float2 sx;
        asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n" : "=f"(sx.x), "=f"(sx.y) : "r"(sc + 4 * (nt * 8 + 2 * t)));
        acc[nt][0] = fmaf(d[4 * nt + 0], sx.x * sw, acc[nt][0]);
        acc[nt][1] = fmaf(d[4 * nt + 1], sx.y * sw, acc[nt][1]);
        acc[nt][2] = fmaf(d[4 * nt + 2], sx.x * sw, acc[nt][2]);
        acc[nt][3] = fmaf(d[4 * nt + 3], sx.y * sw, acc[nt][3]);
    }
}

__device__ __forceinline__ void store_tile(const float (&acc)[8][4], const Fp8StreamParams& p, int64_t tile, int lane) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int64_t row = tile * 16 + g + (c >= 2 ? 8 : 0);
            const int tok = nt * 8 + 2 * t + (c & 1);
            if (row < p.n && tok < p.m) p.out[tok * p.n + row] = f32_to_bf16_bits(acc[nt][c]);
        }
    }
}

// Split-K: partials [split][tile][lane][8] float4 (the staged kernels' layout); the last warp of a tile to arrive
// sums them in split order, stores the tile and resets its counter.
__device__ __forceinline__ void finish_split(float (&acc)[8][4], const Fp8StreamParams& p, const Fp8StreamPlan& plan,
                                             int64_t tile, int64_t split, int lane) {
    const int64_t stride = plan.tiles * 32 * 8;
    float4* base = reinterpret_cast<float4*>(p.ws) + tile * 32 * 8 + lane * 8;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
        base[split * stride + nt] = make_float4(acc[nt][0], acc[nt][1], acc[nt][2], acc[nt][3]);
    }
    __threadfence();
    __syncwarp();
    int last = 0;
    if (lane == 0) {
        int32_t* c = p.counters + tile;
        last = atomicAdd(c, 1) == plan.splits - 1;
        if (last) atomicExch(c, 0);
    }
    if (__shfl_sync(0xffffffffu, last, 0) == 0) return;
    __threadfence();
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    // Two partials per round trip (loads first); added in split order: the same sums as one at a time.
    for (int64_t sp = 0; sp < plan.splits; sp += 2) {
        const bool two = sp + 1 < plan.splits;
        float4 v0[8], v1[8];
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
            v0[nt] = __ldcg(base + sp * stride + nt);  // L2: written by other SMs
            v1[nt] = two ? __ldcg(base + (sp + 1) * stride + nt) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
            acc[nt][0] += v0[nt].x;
            acc[nt][1] += v0[nt].y;
            acc[nt][2] += v0[nt].z;
            acc[nt][3] += v0[nt].w;
            if (two) {
                acc[nt][0] += v1[nt].x;
                acc[nt][1] += v1[nt].y;
                acc[nt][2] += v1[nt].z;
                acc[nt][3] += v1[nt].w;
            }
        }
    }
    store_tile(acc, p, tile, lane);
}

// CTA blockIdx.x: row block x % rowblocks, K split x / rowblocks. Per K block i: wait for weight stage i, barrier
// (stage i and activation slot i % 2 complete; block i - 1's stage and slot free), issue weight block i + S - 1 into
// block i - 1's stage, store the registers' activation block i + 1 into the other slot and load block i + 2, then
// multiply. PDL: the weight prologue streams before pdl_wait(); activations, scales and outputs after it.
template <int S>
__global__ void __launch_bounds__(kThreads, S <= 6 ? 2 : 1) fp8_wg64_kernel(Fp8StreamParams p, Fp8StreamPlan plan) {
    using L = Wg64Layout<S>;
    extern __shared__ __align__(1024) uint8_t smem[];
    pdl_trigger();
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int64_t rowblocks = (plan.tiles + 7) / 8, rb = blockIdx.x % rowblocks, split = blockIdx.x / rowblocks;
    const int64_t nkb = p.k / kKB, kb0 = split * plan.chunk;
    const int nblk = static_cast<int>(std::min<int64_t>(kb0 + plan.chunk, nkb) - kb0);
    if (nblk <= 0) {  // CTA-uniform; the plan never makes one
        pdl_wait();
        return;
    }
    const uint32_t base = (smem_addr(smem) + 1023u) & ~1023u;
    const uint64_t pol = evict_first();
    const uint8_t* wsrc[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint8_t* w = weight_row(p, rb * kRows + tid / 8 + 32 * i);
        wsrc[i] = w != nullptr ? w + 16 * (tid % 8) : nullptr;
    }
#pragma unroll
    for (int s = 0; s < S - 1; ++s) {
        if (s < nblk) load_w(base + s * kWStage, wsrc, kb0 + s, p.w, pol);
        cp_async_commit();
    }
    pdl_wait();
    const uint8_t* xsrc[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int idx = tid + kThreads * i;
        xsrc[i] = idx / 8 < p.m ? p.x + (idx / 8) * p.k + 16 * (idx % 8) : nullptr;
    }
    const float* scsrc = tid < p.m ? p.x_scale + tid : nullptr;
    XRegs xr;
    load_x(xr, xsrc, scsrc, kb0, p.x_scale_ld);
    store_x(base + L::kXOff, base + L::kScOff, xr);
    if (nblk > 1) load_x(xr, xsrc, scsrc, kb0 + 1, p.x_scale_ld);
    const int64_t tile = rb * 8 + warp;
    const bool has_tile = tile < plan.tiles;
    const float* wscale = has_tile ? scale_row(p, tile) : nullptr;
    float acc[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    for (int i = 0; i < nblk; ++i) {
        cp_async_wait<S - 2>();  // weight block i (this thread's copies) has landed ...
        fence_async_smem();      // ... and it and this thread's activation stores are visible to wgmma ...
        __syncthreads();         // ... everyone's; block i - 1's stage and slot are free
        if (i + S - 1 < nblk) load_w(base + ((i + S - 1) % S) * kWStage, wsrc, kb0 + i + S - 1, p.w, pol);
        cp_async_commit();
        const int slot = i & 1;
        if (i + 1 < nblk) {
            store_x(base + L::kXOff + (slot ^ 1) * kXSlot, base + L::kScOff + (slot ^ 1) * kTokens * 4, xr);
            if (i + 2 < nblk) load_x(xr, xsrc, scsrc, kb0 + i + 2, p.x_scale_ld);
        }
        const float sw = has_tile ? __ldg(wscale + kb0 + i) : 0.0f;
        mma_block(acc, base + (i % S) * kWStage + (warp >> 2) * 64 * 128, base + L::kXOff + slot * kXSlot,
                  base + L::kScOff + slot * kTokens * 4, lane, has_tile, sw);
    }
    cp_async_wait<0>();
    if (!has_tile) return;
    if (plan.splits == 1) {
        store_tile(acc, p, tile, lane);
    } else {
        finish_split(acc, p, plan, tile, split, lane);
    }
}

template <int S>
void launch_wg64(const Fp8StreamParams& p, const Fp8StreamPlan& plan, cudaStream_t stream) {
    constexpr int smem = Wg64Layout<S>::kSmem;
    const int64_t ctas = (plan.tiles + 7) / 8 * plan.splits;
    DSA_CHECK(ctas <= 0x7fffffff) << "fp8 stream GEMM grid";
    DSA_CUDA_CHECK(cudaFuncSetAttribute(fp8_wg64_kernel<S>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    host::launch_pdl(fp8_wg64_kernel<S>, dim3(static_cast<unsigned>(ctas)), dim3(kThreads), smem, stream, p, plan);
}

}  // namespace

bool launch_fp8_stream_wg64(const Fp8StreamParams& p, const Fp8StreamPlan& plan, cudaStream_t stream) {
    if (plan.kernel != Fp8StreamKernel::kWg64 && plan.kernel != Fp8StreamKernel::kWg64Solo) return false;
    if (p.experts != nullptr || plan.nt != 8 || plan.streamk_units > 0) {  // not this kernel's launches
        Fp8StreamPlan q = plan;
        q.kernel = Fp8StreamKernel::kWgmma;
        launch_fp8_stream_gemm(p, q, stream);
        return true;
    }
    DSA_CHECK(p.m >= 1 && p.m <= kTokens) << "fp8 stream GEMM (wg64): " << p.m << " token rows";
    DSA_CHECK(plan.chunk >= 1 && plan.splits == (p.k / kKB + plan.chunk - 1) / plan.chunk)
        << "fp8 stream GEMM (wg64): plan of " << plan.splits << " splits of " << plan.chunk << " for K " << p.k;
    if (plan.kernel == Fp8StreamKernel::kWg64Solo) {
        launch_wg64<12>(p, plan, stream);
    } else {
        launch_wg64<5>(p, plan, stream);
    }
    return true;
}

}  // namespace dsa::backend::cuda
