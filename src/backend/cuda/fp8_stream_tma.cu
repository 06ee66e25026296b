// The opt-in FP8 stream GEMM for 17..64 token rows (DSA_FP8_STREAM_M64=tma | tma32; plan: fp8_stream_tma_plan),
// warp-specialized: one CTA per SM, a producer warp and two math warpgroups. The producer streams, per 128-K block,
// the 128 x 128 weight block and the token block by TMA (128-byte swizzle, OOB rows zero) plus the block's scales
// (cp.async) into a ring of full / empty mbarriers; the math warpgroups issue a block's four m64nNk32 wgmma and,
// while they run, scale the previous block into the accumulators (one block's wgmma in flight). The CTA's units
// (128-row block, K block) are a stream-K run; a row block cut between CTAs sums their partials in CTA order.
#include <cuda.h>
#include <cudaTypedefs.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_stream_common.cuh"
#include "backend/cuda/fp8_stream_gemm.h"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/wgmma_util.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kMathWarps = 8;  // two warpgroups of 64 weight rows each
constexpr int kTmaThreads = (kMathWarps + 1) * 32;
constexpr int kBlockRows = 128;
constexpr int64_t kKB = kFp8StreamKBlock;

template <int NT>
struct TmaCfg {
    static constexpr int kXRows = NT * 8;
    static constexpr int kWBytes = kBlockRows * 128;
    static constexpr int kXBytes = kXRows * 128;
    static constexpr int kStageBytes = kWBytes + kXBytes;  // a multiple of 1024 (swizzle atoms)
    static constexpr int kStages = NT == 8 ? 8 : 10;
    static constexpr int kScaleBytes = 512;  // token scales at [0, kXRows), the weight block scale at [64]
    static constexpr int kSmem = 1024 + kStages * (kStageBytes + kScaleBytes) + 2 * kStages * 8;
};

struct TmaMaps {
    CUtensorMap w, w2, x;  // weight (gate_up: gate half), up half (else = w), tokens
};

// Shared-memory addresses of stage s's parts and barriers.
template <int NT>
struct Ring {
    using C = TmaCfg<NT>;
    uint32_t base;
    __device__ uint32_t stage(int s) const { return base + s * C::kStageBytes; }
    __device__ uint32_t scales(int s) const { return base + C::kStages * C::kStageBytes + s * C::kScaleBytes; }
    __device__ uint32_t full(int s) const { return base + C::kStages * (C::kStageBytes + C::kScaleBytes) + 8 * s; }
    __device__ uint32_t empty(int s) const { return full(C::kStages + s); }
};

__device__ __forceinline__ void tma_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar,
                                       uint64_t pol) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.L2::cache_hint"
        " [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dst),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar), "l"(pol)
        : "memory");
}
__device__ __forceinline__ void tma_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
        : "memory");
}
__device__ __forceinline__ void cp_async4_zfill(uint32_t dst, const void* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0) : "memory");
}
// The mbarrier's arrival when this thread's earlier cp.async copies have landed (counted in its init count).
__device__ __forceinline__ void cp_async_mbar_arrive_noinc(uint32_t bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ float lds32f(uint32_t addr) {
    float r;
    asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(r) : "r"(addr) : "memory");
    return r;
}
__device__ __forceinline__ float2 lds64f2(uint32_t addr) {
    float2 r;
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n" : "=f"(r.x), "=f"(r.y) : "r"(addr) : "memory");
    return r;
}

// Row block rb's weight rows: the map, its first row there, and its scale row.
struct WeightBlock {
    const CUtensorMap* map;
    int row;
    const float* scale;
};
__device__ __forceinline__ WeightBlock weight_block(const Fp8StreamParams& p, const TmaMaps& m, int64_t rb) {
    const int64_t r0 = rb * kBlockRows, f = p.gate_up ? p.n / 2 : p.n;
    if (r0 < f) return {&m.w, static_cast<int>(r0), p.w_scale + rb * p.scale_ld};
    return {&m.w2, static_cast<int>(r0 - f), p.w2_scale + (r0 - f) / kBlockRows * p.scale_ld};
}

// The producer warp: block i (unit u0 + i) into stage i % S once the math warps released its last use. Weights of
// the first S blocks go before pdl_wait (never written by kernels); tokens and scales after it.
template <int NT>
__device__ void produce(const Fp8StreamParams& p, const TmaMaps& m, const Ring<NT>& ring, int64_t u0, int n, int lane) {
    using C = TmaCfg<NT>;
    const int64_t nkb = p.k / kKB;
    const uint64_t pol = fp8s::evict_first_policy();
    auto issue_w = [&](int i) {
        const int s = i % C::kStages;
        const int64_t u = u0 + i;
        const WeightBlock wb = weight_block(p, m, u / nkb);
        mbar_arrive_expect_tx(ring.full(s), C::kStageBytes);
        tma_2d(ring.stage(s), wb.map, static_cast<int>(u % nkb * kKB), wb.row, ring.full(s), pol);
    };
    const int pre = n < C::kStages ? n : C::kStages;
    if (lane == 0) {
        for (int i = 0; i < pre; ++i) issue_w(i);
    }
    pdl_wait();
    for (int i = 0; i < n; ++i) {
        const int s = i % C::kStages;
        if (i >= C::kStages) {
            mbar_wait(ring.empty(s), (i / C::kStages - 1) & 1);
            if (lane == 0) issue_w(i);
        }
        const int64_t u = u0 + i, kb = u % nkb;
        if (lane == 0) tma_2d(ring.stage(s) + C::kWBytes, &m.x, static_cast<int>(kb * kKB), 0, ring.full(s));
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int tok = lane + 32 * h;
            if (tok < C::kXRows) {
                cp_async4_zfill(ring.scales(s) + 4 * tok, p.x_scale + kb * p.x_scale_ld + (tok < p.m ? tok : 0),
                                tok < p.m);
            }
        }
        if (lane == 0) cp_async4_zfill(ring.scales(s) + 4 * 64, weight_block(p, m, u / nkb).scale + kb, true);
        cp_async_mbar_arrive_noinc(ring.full(s));
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");  // no copies of an exited thread in flight
}

// acc[nt][c] += d[4 nt + c] * x_scale(token 8 nt + 2t + (c & 1)) * w_scale for the block in stage s, then the
// stage is released (its wgmma has completed).
template <int NT>
__device__ __forceinline__ void promote(float (&acc)[NT][4], const float* d, const Ring<NT>& ring, int64_t blk,
                                        int lane) {
    const int s = static_cast<int>(blk % TmaCfg<NT>::kStages), t = lane & 3;
    const uint32_t sc = ring.scales(s);
    const float sw = lds32f(sc + 4 * 64);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        const float2 sx = lds64f2(sc + 4 * (nt * 8 + 2 * t));
        const float s0 = sx.x * sw, s1 = sx.y * sw;
        acc[nt][0] = fmaf(d[4 * nt + 0], s0, acc[nt][0]);
        acc[nt][1] = fmaf(d[4 * nt + 1], s1, acc[nt][1]);
        acc[nt][2] = fmaf(d[4 * nt + 2], s0, acc[nt][2]);
        acc[nt][3] = fmaf(d[4 * nt + 3], s1, acc[nt][3]);
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(ring.empty(s));
}

// Block blk: wait for its stage, issue its wgmma into dc; then (has_prev) finish block blk - 1 held in dp.
template <int NT>
__device__ __forceinline__ void step(float (&acc)[NT][4], float (&dc)[NT * 4], float (&dp)[NT * 4],
                                     const Ring<NT>& ring, int64_t blk, bool has_prev, int wg, int lane) {
    using C = TmaCfg<NT>;
    const int s = static_cast<int>(blk % C::kStages);
    mbar_wait(ring.full(s), static_cast<uint32_t>(blk / C::kStages) & 1);
    const uint32_t a = ring.stage(s) + wg * 64 * 128, b = ring.stage(s) + C::kWBytes;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        wgmma_e4m3<8 * NT>(dc, sw128_kmajor_desc(a + 32 * kk), sw128_kmajor_desc(b + 32 * kk), kk > 0 ? 1 : 0);
    }
    wgmma_commit();
    if (has_prev) {
        wgmma_wait<1>();
        fence_regs<NT * 4>(dp);
        promote<NT>(acc, dp, ring, blk - 1, lane);
    }
}

// The warp's accumulators over the n blocks blk0 .. blk0 + n - 1 of the CTA's run.
template <int NT>
__device__ __forceinline__ void run_job(float (&acc)[NT][4], const Ring<NT>& ring, int64_t blk0, int n, int wg,
                                        int lane) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    float d0[NT * 4], d1[NT * 4];
#pragma unroll
    for (int i = 0; i < NT * 4; ++i) d0[i] = d1[i] = 0.0f;
    for (int b = 0; b < n; b += 2) {
        step<NT>(acc, d0, d1, ring, blk0 + b, b > 0, wg, lane);
        if (b + 1 < n) step<NT>(acc, d1, d0, ring, blk0 + b + 1, true, wg, lane);
    }
    wgmma_wait<0>();
    if ((n - 1) & 1) {
        fence_regs<NT * 4>(d1);
        promote<NT>(acc, d1, ring, blk0 + n - 1, lane);
    } else {
        fence_regs<NT * 4>(d0);
        promote<NT>(acc, d0, ring, blk0 + n - 1, lane);
    }
}

// The math warps: for each row block of the CTA's run, the accumulators, then the output or the split-K partial.
template <int NT>
__device__ void consume(const Fp8StreamParams& p, const Fp8StreamPlan& plan, const Ring<NT>& ring, int64_t cta,
                        int64_t u0, int64_t u1, int warp, int lane) {
    pdl_wait();  // before the output / workspace writes
    const int64_t nkb = p.k / kKB, q = plan.chunk;
    float acc[NT][4];
    int64_t blk = 0;
    for (int64_t u = u0; u < u1;) {
        const int64_t rb = u / nkb, kb = u % nkb, n = nkb - kb < u1 - u ? nkb - kb : u1 - u;
        run_job<NT>(acc, ring, blk, static_cast<int>(n), warp >> 2, lane);
        const int64_t tile = rb * kMathWarps + warp;
        if (tile < plan.tiles) {
            fp8s::WarpJob j;
            j.row0 = tile * kFp8StreamTileRows;
            j.count = static_cast<int>(p.m);
            const int64_t seg0 = rb * nkb / q, nseg = ((rb + 1) * nkb - 1) / q - seg0 + 1;
            if (nseg == 1) {
                fp8s::store_out<NT>(acc, p, j, lane);
            } else {
                fp8s::split_k_finish<NT>(acc, p, plan, j, 0, cta - seg0, nseg, tile, lane);
            }
        }
        blk += n;
        u += n;
    }
}

template <int NT>
__global__ void __launch_bounds__(kTmaThreads, 1)
    fp8_tma_kernel(Fp8StreamParams p, Fp8StreamPlan plan, const __grid_constant__ TmaMaps maps) {
    extern __shared__ __align__(1024) uint8_t smem[];
    using C = TmaCfg<NT>;
    pdl_trigger();
    const Ring<NT> ring{(smem_addr(smem) + 1023u) & ~1023u};
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int s = 0; s < C::kStages; ++s) {
            mbar_init(ring.full(s), 33);  // the producer's expect_tx arrival + 32 lanes' cp.async arrivals
            mbar_init(ring.empty(s), kMathWarps);
        }
        mbar_fence_init();
    }
    __syncthreads();
    const int64_t cta = blockIdx.x, u0 = cta * plan.chunk;
    const int64_t u1 = u0 + plan.chunk < plan.streamk_units ? u0 + plan.chunk : plan.streamk_units;
    if (u0 >= u1) {  // the plan never makes such a CTA
        pdl_wait();
        return;
    }
    if (warp == kMathWarps) {
        if (lane == 0) {
            asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&maps.w)) : "memory");
            asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&maps.x)) : "memory");
        }
        produce<NT>(p, maps, ring, u0, static_cast<int>(u1 - u0), lane);
    } else {
        consume<NT>(p, plan, ring, cta, u0, u1, warp, lane);
    }
}

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
        void* f = nullptr;
        cudaDriverEntryPointQueryResult q{};
        DSA_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
        DSA_CHECK(q == cudaDriverEntryPointSuccess && f != nullptr) << "fp8 stream tma: no cuTensorMapEncodeTiled";
        return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
    }();
    return fn;
}

// A 2-D e4m3 [rows, k] row-major map, boxes of 128 bytes x box_rows rows, 128-byte swizzle, zeros out of bounds.
CUtensorMap make_map(const void* base, int64_t rows, int64_t k, int box_rows) {
    CUtensorMap m;
    const cuuint64_t dims[2] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(rows)};
    const cuuint64_t strides[1] = {static_cast<cuuint64_t>(k)};
    const cuuint32_t box[2] = {128, static_cast<cuuint32_t>(box_rows)}, elem[2] = {1, 1};
    const CUresult r = encode_fn()(&m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(base), dims, strides, box,
                                   elem, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                   CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    DSA_CHECK(r == CUDA_SUCCESS) << "fp8 stream tma: cuTensorMapEncodeTiled failed (" << static_cast<int>(r) << ") for "
                                 << rows << " x " << k;
    return m;
}

bool aligned16(const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15u) == 0; }

template <int NT>
void launch_tma_nt(const Fp8StreamParams& p, const Fp8StreamPlan& plan, cudaStream_t stream) {
    const int64_t f = p.gate_up ? p.n / 2 : p.n;
    TmaMaps maps;
    maps.w = make_map(p.w, f, p.k, kBlockRows);
    maps.w2 = p.gate_up ? make_map(p.w2, f, p.k, kBlockRows) : maps.w;
    maps.x = make_map(p.x, p.m, p.k, NT * 8);
    const int64_t ctas = (plan.streamk_units + plan.chunk - 1) / plan.chunk;
    DSA_CHECK(ctas <= 0x7fffffff) << "fp8 stream tma grid";
    constexpr int smem = TmaCfg<NT>::kSmem;
    DSA_CUDA_CHECK(cudaFuncSetAttribute(fp8_tma_kernel<NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    host::launch_pdl(fp8_tma_kernel<NT>, dim3(static_cast<unsigned>(ctas)), dim3(kTmaThreads), smem, stream, p, plan,
                     maps);
}

}  // namespace

void launch_fp8_stream_tma(const Fp8StreamParams& p, const Fp8StreamPlan& plan, cudaStream_t stream) {
    const int64_t rowblocks = (plan.tiles + kMathWarps - 1) / kMathWarps;
    DSA_CHECK(plan.kernel == Fp8StreamKernel::kTma && (plan.nt == 4 || plan.nt == 8) && plan.chunk >= 1 &&
              plan.splits >= 2 && plan.streamk_units == rowblocks * (p.k / kKB))
        << "fp8 stream tma: plan of " << plan.streamk_units << " units, nt " << plan.nt;
    const bool halves = !p.gate_up || ((p.n / 2) % kBlockRows == 0 && p.w2 != nullptr && aligned16(p.w2));
    const bool tma_ok = p.experts == nullptr && halves && aligned16(p.w) && aligned16(p.x) && p.k % 16 == 0 &&
                        p.m >= 1 && p.m <= plan.nt * 8;
    if (!tma_ok) {  // the same units on the stream-K wgmma kernel
        Fp8StreamPlan q = plan;
        q.kernel = Fp8StreamKernel::kWgmma;
        launch_fp8_stream_gemm(p, q, stream);
        return;
    }
    if (plan.nt == 8) {
        launch_tma_nt<8>(p, plan, stream);
    } else {
        launch_tma_nt<4>(p, plan, stream);
    }
}

}  // namespace dsa::backend::cuda
