// The lean wgmma kernel of the FP8 stream GEMM (fp8_wgmma_lean.h, DSA_FP8_WGMMA_LEAN, default auto). The CTA, stage
// layout, 128-byte swizzle, k order, wgmma m64nNk32 per warpgroup, scaling and split-K finishes are fp8_wgmma_kernel's
// (the same bits); the per-128-K-block chain is shorter: copy sources are running pointers and their shared offsets
// fixed per thread, the accumulators are carried across blocks (each block's first k-step has scale-d = 0: no
// zeroing), the weight scale is loaded a block ahead, the token scales sit per lane for 128-bit reads, token rows past
// M are zero-filled. Weights stream without an L2 hint: CUDA 13.0's ptxas compiles a hinted cp.async here to an LDGSTS
// whose cache-policy descriptor register is never written (the copies faulted on the H200).
#include <atomic>
#include <string>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_stream_cluster.cuh"
#include "backend/cuda/fp8_stream_common.cuh"
#include "backend/cuda/fp8_wgmma_lean.h"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/wgmma_util.cuh"
#include "base/check.h"
#include "base/env.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kThreads = 256;  // 8 warps, 2 warpgroups of 64 weight rows
constexpr int kRows = 128;
constexpr int64_t kKB = kFp8StreamKBlock;

// The wgmma kernel's stage (fp8_stream_gemm.cu, Staged<NT, true>): weights, token block, token scales, 1 KB aligned.
template <int NT>
struct Lean {
    static constexpr int kStages = NT <= 2 ? 5 : 4;
    static constexpr int kXRows = NT * 8;
    static constexpr int kWBytes = kRows * 128;
    static constexpr int kXBytes = kXRows * 128;
    static constexpr int kStageBytes = (kWBytes + kXBytes + kXRows * 4 + 1023) / 1024 * 1024;
    static constexpr int kRingBytes = kStages * kStageBytes;
    static constexpr int kSmem = kRingBytes + 1024;  // room to align the base to 1 KB
    static constexpr int kXPer = (NT * 64 + kThreads - 1) / kThreads;  // token-block copies per thread
};

__device__ __forceinline__ void cp16(uint32_t dst, const void* src, uint32_t bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp4(uint32_t dst, const void* src, uint32_t bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ float4 lds128f(uint32_t addr) {
    float4 r;
    asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n" : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w) : "r"(addr)
                 : "memory");
    return r;
}

// This thread's copies of a stage: weight rows r0 + 32 i (i < 4) and token rows r0 + 32 i (i < kXPer), 16-byte chunk
// c = tid % 8 each, all at shared offset off + 4096 i (the swizzle of row r0 + 32 i is row r0's); one token scale
// (tid < NT * 8). Sources advance by one 128-K block per issued stage; invalid rows read nothing and zero-fill.
template <int NT>
struct LeanCopies {
    const uint8_t* w[4];
    const uint8_t* x[Lean<NT>::kXPer];
    const float* sc;
    uint32_t wbytes[4], xbytes[Lean<NT>::kXPer], scbytes;
    uint32_t off, sc_off;
    int64_t sc_step;
    bool x_on[Lean<NT>::kXPer], sc_on;

    __device__ __forceinline__ void init(const Fp8StreamParams& p, int64_t rb, int64_t kb0) {
        using L = Lean<NT>;
        const int tid = threadIdx.x, r0 = tid >> 3, c = tid & 7;
        off = static_cast<uint32_t>(r0 * 128 + ((c ^ (r0 & 7)) << 4));
        const int64_t half = p.n / 2;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int64_t row = rb * kRows + r0 + 32 * i;
            const bool valid = row < p.n;
            const uint8_t* base = p.w + (valid ? row : 0) * p.k;
            if (valid && p.gate_up && row >= half) base = p.w2 + (row - half) * p.k;  // dense gate_up: up rows
            w[i] = base + 16 * c + kb0 * kKB;
            wbytes[i] = valid ? 16u : 0u;
        }
#pragma unroll
        for (int i = 0; i < L::kXPer; ++i) {
            const int r = r0 + 32 * i;
            x_on[i] = tid + kThreads * i < NT * 64;  // r < NT * 8
            const bool valid = r < p.m;
            x[i] = p.x + (valid ? r : 0) * p.k + 16 * c + kb0 * kKB;
            xbytes[i] = valid ? 16u : 0u;
        }
        // Token r's scale at 4 pos(r), pos(r) = 2 NT ((r % 8) / 2) + 2 (r / 8) + r % 2: lane t reads its 2 NT scales
        // (tokens 8 nt + 2t, + 1 for nt < NT) as one contiguous run.
        sc_on = tid < NT * 8;
        sc_off = static_cast<uint32_t>(L::kWBytes + L::kXBytes +
                                       4 * (2 * NT * ((tid & 7) >> 1) + 2 * (tid >> 3) + (tid & 1)));
        sc = p.x_scale + kb0 * p.x_scale_ld + (tid < p.m ? tid : 0);
        scbytes = tid < p.m ? 4u : 0u;
        sc_step = p.x_scale_ld;
    }
    __device__ __forceinline__ void weights(uint32_t stage) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            cp16(stage + off + 4096 * i, w[i], wbytes[i]);
            w[i] += kKB;
        }
    }
    // After pdl_wait(): the activations are the previous kernel's output.
    __device__ __forceinline__ void tokens(uint32_t stage) {
#pragma unroll
        for (int i = 0; i < Lean<NT>::kXPer; ++i) {
            if (x_on[i]) cp16(stage + Lean<NT>::kWBytes + off + 4096 * i, x[i], xbytes[i]);
            x[i] += kKB;
        }
        if (sc_on) cp4(stage + sc_off, sc, scbytes);
        sc += sc_step;
    }
};

// acc[nt] += d (this warp's 16 rows x the token block) * x_scale * w_scale: fmaf(d, sx * sw, acc) as the wgmma
// kernel. sc: this lane's scale run (2 NT floats).
template <int NT>
__device__ __forceinline__ void lean_scale(float (&acc)[NT][4], const float (&d)[NT * 4], uint32_t sc, float sw) {
    float sx[2 * NT];
    if constexpr (NT == 1) {
        const float2 v = fp8s::lds64f(sc);
        sx[0] = v.x, sx[1] = v.y;
    } else {
#pragma unroll
        for (int q = 0; q < NT / 2; ++q) {
            const float4 v = lds128f(sc + 16 * q);
            sx[4 * q] = v.x, sx[4 * q + 1] = v.y, sx[4 * q + 2] = v.z, sx[4 * q + 3] = v.w;
        }
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        const float s0 = sx[2 * nt] * sw, s1 = sx[2 * nt + 1] * sw;
        acc[nt][0] = fmaf(d[4 * nt + 0], s0, acc[nt][0]);
        acc[nt][1] = fmaf(d[4 * nt + 1], s1, acc[nt][1]);
        acc[nt][2] = fmaf(d[4 * nt + 2], s0, acc[nt][2]);
        acc[nt][3] = fmaf(d[4 * nt + 3], s1, acc[nt][3]);
    }
}

// One block's 4 k-steps of wgmma m64nNk32 into d (the first with scale-d = 0: d's old values are not read, so d
// needs no zeroing per block), committed as one group; a, b: the operand tiles' shared addresses.
template <int N>
__device__ __forceinline__ void lean_wgmma(float* d, uint32_t a, uint32_t b) {
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        wgmma_e4m3<N>(d, sw128_kmajor_desc(a + 32 * kk), sw128_kmajor_desc(b + 32 * kk), kk > 0 ? 1 : 0);
    }
    wgmma_commit();
}

// The weight scale row of warp tile `tile` (dense gate_up: the up weight's rows from n / 2).
__device__ __forceinline__ const float* tile_scale(const Fp8StreamParams& p, int64_t tile) {
    int64_t r = tile * kFp8StreamTileRows;
    const float* ws = p.w_scale;
    if (p.gate_up && r >= p.n / 2) ws = p.w2_scale, r -= p.n / 2;
    return ws + (r / kKB) * p.scale_ld;
}

// CTA `cta` of a dense launch with this plan: 128-row block rb, K split `split` (cluster plans: the splits of a row
// block are consecutive CTAs), blocks [kb0, kb0 + nblk); then the plan's finish (direct, global or cluster split-K).
template <int NT>
__device__ __forceinline__ void lean_body(const Fp8StreamParams& p, const Fp8StreamPlan& plan, int64_t cta,
                                          uint8_t* smem) {
    using L = Lean<NT>;
    constexpr int S = L::kStages, SB = L::kStageBytes;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t rowblocks = (plan.tiles + 7) / 8;
    const bool cl = plan.cluster > 1;
    const int64_t split = cl ? cta % plan.cluster : cta / rowblocks, rb = cl ? cta / plan.cluster : cta % rowblocks;
    const int64_t nkb = p.k / kKB, kb0 = split * plan.chunk;
    const int nblk = static_cast<int>((kb0 + plan.chunk < nkb ? kb0 + plan.chunk : nkb) - kb0);
    if (nblk <= 0) {  // CTA-uniform; the plans never make one
        pdl_wait();
        return;
    }
    const int64_t tile = rb * 8 + warp;
    const bool has_tile = tile < plan.tiles;
    const float* wsc = tile_scale(p, has_tile ? tile : 0) + kb0;
    const uint32_t sbase = (smem_addr(smem) + 1023u) & ~1023u;
    LeanCopies<NT> cp;
    cp.init(p, rb, kb0);
    // Weights (and their scales) are never written by kernels: the first stages stream before the wait.
#pragma unroll
    for (int s = 0; s < S - 1; ++s) {
        if (s < nblk) cp.weights(sbase + s * SB);
    }
    float sw_next = __ldg(wsc);
    pdl_wait();
#pragma unroll
    for (int s = 0; s < S - 1; ++s) {
        if (s < nblk) cp.tokens(sbase + s * SB);
        cp_async_commit();
    }
    const uint32_t wa = sbase + (warp >> 2) * 64 * 128, wb = sbase + L::kWBytes;  // this warpgroup's A, the B tile
    const uint32_t sc_lane = L::kWBytes + L::kXBytes + (lane & 3) * 8 * NT;
    float acc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    // The wgmma accumulators of a block, carried across blocks (each block's first k-step overwrites them).
    float d[4 * NT];
#pragma unroll
    for (int r = 0; r < 4 * NT; ++r) d[r] = 0.0f;
    uint32_t rd = 0, wr = (S - 1) * SB;  // ring offsets of block i and of block i + S - 1
    for (int i = 0; i < nblk; ++i) {
        cp_async_wait<S - 2>();  // block i has landed (this thread's copies) ...
        fence_async_smem();      // ... and is visible to wgmma (the async proxy) ...
        __syncthreads();         // ... everyone's, and block i - 1's slot is free
        const float sw = sw_next;
        if (i + 1 < nblk) sw_next = __ldg(wsc + i + 1);
        if (i + S - 1 < nblk) {  // refill block i - 1's slot (the wgmma kernel's order: before the tensor cores)
            cp.weights(sbase + wr);
            cp.tokens(sbase + wr);
        }
        cp_async_commit();
        wr = wr + SB == L::kRingBytes ? 0 : wr + SB;
        wgmma_fence();
        lean_wgmma<8 * NT>(d, wa + rd, wb + rd);
        wgmma_wait_all();
        fence_regs<NT * 4>(d);  // no reads before the wait
        if (has_tile) lean_scale<NT>(acc, d, sbase + rd + sc_lane, sw);
        rd = rd + SB == L::kRingBytes ? 0 : rd + SB;
    }
    cp_async_wait<0>();
    fp8s::WarpJob j;
    j.row0 = tile * kFp8StreamTileRows;
    j.count = static_cast<int>(p.m);
    if (cl) {  // the whole CTA (two cluster barriers), then done
        fp8s::cluster_finish<NT>(acc, p, plan, rb, j, smem, warp, lane);
        return;
    }
    if (!has_tile) return;
    if (plan.splits == 1) {
        fp8s::store_out<NT>(acc, p, j, lane);
    } else {
        fp8s::split_k_finish<NT>(acc, p, plan, j, 0, split, plan.splits, tile, lane);
    }
}

template <int NT>
__global__ void __launch_bounds__(kThreads, 2) fp8_wgmma_lean_kernel(Fp8StreamParams p, Fp8StreamPlan plan) {
    extern __shared__ __align__(1024) uint8_t smem[];
    pdl_trigger();
    lean_body<NT>(p, plan, blockIdx.x, smem);
}

// Several dense problems over one x (fp8_staged_multi_kernel's selection): the last problem whose first CTA it reached.
template <int NT>
__global__ void __launch_bounds__(kThreads, 2) fp8_wgmma_lean_multi_kernel(Fp8StreamParams p, Fp8StreamMulti m) {
    extern __shared__ __align__(1024) uint8_t smem[];
    pdl_trigger();
    Fp8StreamPlan plan;
    const int64_t cta = fp8s::select_problem(m, p, plan);
    lean_body<NT>(p, plan, cta, smem);
}

template <int NT>
void launch_lean_nt(const Fp8StreamParams& p, const Fp8StreamPlan& plan, cudaStream_t stream) {
    constexpr int smem = Lean<NT>::kSmem;
    const int64_t ctas = (plan.tiles + 7) / 8 * plan.splits;
    DSA_CHECK(ctas <= 0x7fffffff) << "fp8 wgmma lean grid";
    auto* kernel = fp8_wgmma_lean_kernel<NT>;
    if (plan.cluster > 1) {
        host::launch_fp8_cluster(kernel, ctas, kThreads, plan.cluster, smem, stream, p, plan);
        return;
    }
    DSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    host::launch_pdl(kernel, dim3(static_cast<unsigned>(ctas)), dim3(kThreads), smem, stream, p, plan);
}

template <int NT>
void launch_lean_multi_nt(const Fp8StreamParams& p, const Fp8StreamMulti& m, int64_t ctas, cudaStream_t stream) {
    constexpr int smem = Lean<NT>::kSmem;
    auto* kernel = fp8_wgmma_lean_multi_kernel<NT>;
    if (m.prob[0].plan.cluster > 1) {
        host::launch_fp8_cluster(kernel, ctas, kThreads, m.prob[0].plan.cluster, smem, stream, p, m);
        return;
    }
    DSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    host::launch_pdl(kernel, dim3(static_cast<unsigned>(ctas)), dim3(kThreads), smem, stream, p, m);
}

std::atomic<int> g_lean{-1};  // -1: not yet read from the environment

}  // namespace

int fp8_wgmma_lean_mode() {
    int v = g_lean.load(std::memory_order_relaxed);
    if (v < 0) {
        const std::string e = env_string("DSA_FP8_WGMMA_LEAN", "auto",
                                         "CUDA: FP8 stream GEMM, the lean wgmma kernel (the wgmma kernel's bits, a "
                                         "shorter per-block chain): auto (default) = dense wgmma plans without a "
                                         "global split-K workspace, 1 = every dense wgmma plan, 0 = none");
        DSA_CHECK(e == "auto" || e == "0" || e == "1") << "DSA_FP8_WGMMA_LEAN=" << e << ": auto, 0 or 1";
        v = e == "auto" ? kFp8WgmmaLeanAuto : e == "1" ? kFp8WgmmaLeanAll : kFp8WgmmaLeanOff;
        g_lean.store(v, std::memory_order_relaxed);
    }
    return v;
}

void set_fp8_wgmma_lean_mode(int mode) {
    const bool known = mode == kFp8WgmmaLeanAll || mode == kFp8WgmmaLeanAuto;
    g_lean.store(known ? mode : kFp8WgmmaLeanOff, std::memory_order_relaxed);
}

bool fp8_wgmma_lean() { return fp8_wgmma_lean_mode() == kFp8WgmmaLeanAll; }

void set_fp8_wgmma_lean(bool on) { set_fp8_wgmma_lean_mode(on ? kFp8WgmmaLeanAll : kFp8WgmmaLeanOff); }

bool fp8_wgmma_lean_applies(const Fp8StreamPlan& plan, bool dense) {
    const int mode = fp8_wgmma_lean_mode();
    if (mode == kFp8WgmmaLeanOff || !dense || plan.kernel != Fp8StreamKernel::kWgmma || plan.streamk_units != 0) {
        return false;
    }
    // auto: unsplit and cluster plans (H200, M = 33 / 64: 0.90-0.97x the wgmma kernel's time); with the global
    // split-K workspace it measured 1.00-1.06x (8192x1536, 4096x7168, 2048x7168).
    return mode == kFp8WgmmaLeanAll || plan.splits == 1 || plan.cluster > 1;
}

void launch_fp8_wgmma_lean(const Fp8StreamParams& p, const Fp8StreamPlan& plan, cudaStream_t stream) {
    DSA_CHECK(p.experts == nullptr && p.m <= plan.nt * 8 && plan.streamk_units == 0)
        << "fp8 wgmma lean: dense plans of one pass only";
    fp8s::with_nt(plan.nt, [&](auto nt) { launch_lean_nt<decltype(nt)::value>(p, plan, stream); });
}

void launch_fp8_wgmma_lean_multi(const Fp8StreamParams& p, const Fp8StreamMulti& m, int64_t ctas,
                                 cudaStream_t stream) {
    fp8s::with_nt(m.prob[0].plan.nt, [&](auto nt) { launch_lean_multi_nt<decltype(nt)::value>(p, m, ctas, stream); });
}

}  // namespace dsa::backend::cuda
