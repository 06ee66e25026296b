// The fused MoE router for decode batches (moe_kernels.h, MoeRouterParams): a split-K bf16 GEMV of the router
// weight over all SMs (weights prefetched into registers before the programmatic-launch wait), a deterministic
// last-CTA reduction per 16-row block into the FP32 logits, and the routing selection (moe_route.cuh) in the
// last CTA to finish. One launch replaces the cuBLASLt router GEMM and the route kernel (opt-in:
// DSA_MOE_ROUTER=fused; it measured slower than those two on the H200).
#include <atomic>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/moe_kernels.h"
#include "backend/cuda/moe_route.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kWarps = static_cast<int>(kMoeRouterRows);
constexpr int kThreads = kWarps * 32;
constexpr int kMaxVec = static_cast<int>(kMoeRouterMaxVecPerLane);
constexpr int kTok = 4;  // tokens per pass over the register-resident weight chunk
constexpr size_t kMaxSmem = 48 * 1024;

// acc += w · x over 8 bf16 pairs, in element order.
__device__ __forceinline__ float dot8(const uint4& w, const uint4& x, float acc) {
    const uint32_t ws[4] = {w.x, w.y, w.z, w.w}, xs[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        acc = fmaf(__uint_as_float(ws[i] << 16), __uint_as_float(xs[i] << 16), acc);
        acc = fmaf(__uint_as_float(ws[i] & 0xffff0000u), __uint_as_float(xs[i] & 0xffff0000u), acc);
    }
    return acc;
}

// Thread 0 counts this CTA in; true in every thread of the CTA that counted last (it resets the counter).
__device__ __forceinline__ bool last_to_arrive(int32_t* counter, int expected, int* flag) {
    __threadfence();  // this CTA's global writes before its arrival
    __syncthreads();
    if (threadIdx.x == 0) {
        const int old = atomicAdd(counter, 1);
        *flag = old == expected - 1;
        if (*flag) *counter = 0;  // every launch leaves the counters zero
    }
    __syncthreads();
    const bool last = *flag != 0;
    if (last) __threadfence();
    return last;
}

// The selection in the last CTA: a warp per token.
__device__ __forceinline__ void route_tokens(const MoeRouteParams& r, int warp, int lane, float* scratch) {
    for (int64_t t = warp; t < r.tokens; t += kWarps) moe_route_detail::route_token_any(r, t, lane, scratch);
}

// grid (experts / 16, splits), 512 threads (one CTA per SM: 119 registers, no spills); dynamic shared memory: the
// routing scratch of 16 warps.
__global__ void __launch_bounds__(kThreads, 1) moe_router_kernel(MoeRouterParams p, int64_t chunk_vecs) {
    extern __shared__ float route_smem[];
    __shared__ int s_flag;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t E = p.route.experts, T = p.route.tokens;
    const int64_t e = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
    const int64_t split = blockIdx.y, nvec = p.dim / 8;
    const int64_t v0 = split * chunk_vecs, v1 = v0 + chunk_vecs < nvec ? v0 + chunk_vecs : nvec;
    // The router weight is written by no kernel: its chunk is loaded before the wait.
    const auto* wrow = reinterpret_cast<const uint4*>(p.w + e * p.dim);
    uint4 wv[kMaxVec];
#pragma unroll
    for (int i = 0; i < kMaxVec; ++i) {
        const int64_t v = v0 + lane + 32 * i;
        wv[i] = v < v1 ? __ldg(wrow + v) : make_uint4(0, 0, 0, 0);
    }
    pdl_wait();  // x comes from the previous kernel; ws / counters / outputs may still be in use before this
    pdl_trigger();
    // kTok tokens at a time: their x loads are all in flight before the FMAs.
    for (int64_t t0 = 0; t0 < T; t0 += kTok) {
        uint4 xv[kTok][kMaxVec];
#pragma unroll
        for (int j = 0; j < kTok; ++j) {
            const auto* xrow = reinterpret_cast<const uint4*>(p.x + (t0 + j < T ? t0 + j : t0) * p.dim);
#pragma unroll
            for (int i = 0; i < kMaxVec; ++i) {
                const int64_t v = v0 + lane + 32 * i;
                xv[j][i] = t0 + j < T && v < v1 ? __ldg(xrow + v) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int j = 0; j < kTok; ++j) {
            float acc = 0.0f;
#pragma unroll
            for (int i = 0; i < kMaxVec; ++i) {
                if (v0 + lane + 32 * i < v1) acc = dot8(wv[i], xv[j][i], acc);
            }
            acc = warp_sum(acc);
            if (lane == 0 && t0 + j < T) p.ws[(split * T + t0 + j) * E + e] = acc;
        }
    }
    if (!last_to_arrive(p.counters + blockIdx.x, static_cast<int>(gridDim.y), &s_flag)) return;
    // Last split of this row block: logits = partials summed in split order.
    const int splits = static_cast<int>(gridDim.y);
    for (int64_t i = threadIdx.x; i < T * kWarps; i += kThreads) {
        const int64_t t = i / kWarps, ee = static_cast<int64_t>(blockIdx.x) * kWarps + i % kWarps;
        float z = 0.0f;
        for (int s = 0; s < splits; ++s) z += __ldcg(p.ws + (s * T + t) * E + ee);
        p.route.scores[t * E + ee] = z;
    }
    if (!last_to_arrive(p.counters + gridDim.x, static_cast<int>(gridDim.x), &s_flag)) return;
    // Last row block: every logit is written; a warp per token selects its experts.
    float* scratch = route_smem + warp * moe_route_detail::route_warp_floats(E, p.route.groups);
    route_tokens(p.route, warp, lane, scratch);
}

std::atomic<int64_t> g_launches{0};

size_t route_smem_bytes(int64_t experts, int64_t groups) {
    return static_cast<size_t>(kWarps * moe_route_detail::route_warp_floats(experts, groups)) * sizeof(float);
}

}  // namespace

bool moe_router_supported(int64_t tokens, int64_t experts, int64_t groups, int64_t dim) {
    return tokens >= 1 && tokens <= kMoeRouterMaxTokens && experts >= kMoeRouterRows && experts % kMoeRouterRows == 0 &&
           experts <= kMoeRouteMaxExperts && groups >= 1 && experts % groups == 0 && dim >= 8 && dim % 8 == 0 &&
           route_smem_bytes(experts, groups) <= kMaxSmem;
}

MoeRouterPlan moe_router_plan(int64_t tokens, int64_t experts, int64_t dim, int num_sms) {
    const int64_t nvec = dim / 8, blocks = experts / kMoeRouterRows;
    const int64_t min_splits = (nvec + 32 * kMaxVec - 1) / (32 * kMaxVec);  // the register prefetch holds a chunk
    const int64_t want = num_sms / blocks;
    int64_t splits = want > min_splits ? want : min_splits;
    if (splits > nvec) splits = nvec;
    if (splits < 1) splits = 1;
    MoeRouterPlan plan;
    plan.chunk_vecs = (nvec + splits - 1) / splits;
    plan.splits = (nvec + plan.chunk_vecs - 1) / plan.chunk_vecs;  // no empty chunk
    plan.ws_floats = plan.splits * tokens * experts;
    plan.counters = blocks + 1;
    return plan;
}

void launch_moe_router(const MoeRouterParams& p, const MoeRouterPlan& plan, cudaStream_t stream) {
    const MoeRouteParams& r = p.route;
    DSA_CHECK(moe_router_supported(r.tokens, r.experts, r.groups, p.dim))
        << "fused router: tokens " << r.tokens << ", experts " << r.experts << ", groups " << r.groups << ", dim "
        << p.dim;
    DSA_CHECK(r.topk_groups >= 1 && r.topk_groups <= r.groups) << "fused router: topk_groups " << r.topk_groups;
    DSA_CHECK(r.top_k >= 1 && r.top_k <= r.experts / r.groups * r.topk_groups) << "fused router: top_k " << r.top_k;
    DSA_CHECK(plan.chunk_vecs >= 1 && plan.chunk_vecs <= 32 * kMaxVec && plan.splits * plan.chunk_vecs >= p.dim / 8 &&
              plan.splits <= 65535)
        << "fused router plan: " << plan.splits << " splits of " << plan.chunk_vecs << " vectors";
    DSA_CHECK((reinterpret_cast<uintptr_t>(p.w) & 15u) == 0 && (reinterpret_cast<uintptr_t>(p.x) & 15u) == 0)
        << "fused router: x and the weight must be 16-byte aligned";
    const dim3 grid(static_cast<unsigned>(r.experts / kMoeRouterRows), static_cast<unsigned>(plan.splits));
    host::launch_pdl(moe_router_kernel, grid, dim3(kThreads), route_smem_bytes(r.experts, r.groups), stream, p,
                     plan.chunk_vecs);
    DSA_CUDA_CHECK_LAUNCH(moe_router_kernel);
    g_launches.fetch_add(1, std::memory_order_relaxed);
}

int64_t moe_router_launch_count() { return g_launches.load(std::memory_order_relaxed); }

}  // namespace dsa::backend::cuda
