// Device pieces shared by the FP8 stream GEMM kernels (fp8_stream_gemm.cu, fp8_stream_cluster.cuh): the evict-first L2
// policy for weights read once, a warp's job (WarpJob), the bf16 output store of a warp's 16 rows x NT * 8 tokens
// in mma.sync's fragment layout, the deterministic split-K finishes (last-arriving warp sums the partials) and a
// multi launch's problem selection; with_nt, the host's dispatch on a plan's token-block width.
// Included by .cu files only.
#pragma once

#include <cstdint>
#include <type_traits>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/fp8_stream_gemm.h"

namespace dsa::backend::cuda::fp8s {

__device__ __forceinline__ uint64_t evict_first_policy() {
    uint64_t pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));
    return pol;
}

// Two floats from shared memory (a token pair's activation scales).
__device__ __forceinline__ float2 lds64f(uint32_t addr) {
    float2 r;
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n" : "=f"(r.x), "=f"(r.y) : "r"(addr) : "memory");
    return r;
}

// What one warp works on, resolved from the launch parameters.
struct WarpJob {
    const uint8_t* w0 = nullptr;     // this lane's row g of the tile, at byte 16 t (null: row past the weight)
    const uint8_t* w1 = nullptr;     // row g + 8
    const float* w_scale = nullptr;  // the tile's scale row
    int64_t row0 = 0;                // first output feature of the tile
    int count = 0, start = 0;        // token rows (grouped: pairs rows[start .. start + count))
    int tok0 = 0;                    // first token row of the current pass
};

template <int NT>
__device__ __forceinline__ void store_out(const float (&acc)[NT][4], const Fp8StreamParams& p, const WarpJob& j,
                                          int lane) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int64_t row = j.row0 + g + (c >= 2 ? 8 : 0);
            const int tok = nt * 8 + 2 * t + (c & 1);
            if (row >= p.n || tok >= j.count) continue;
            const int64_t orow = p.experts != nullptr ? p.groups.rows[j.start + j.tok0 + tok] : j.tok0 + tok;
            p.out[orow * p.n + row] = f32_to_bf16_bits(acc[nt][c]);
        }
    }
}

// Split-K: the last warp of a tile to arrive sums the partials in split order (deterministic), writes the output
// and resets the tile's counter for the next launch. nseg: the partials of this tile (plan.splits, or a stream-K
// tile's segments; at most plan.splits). plan.finish 0 (the first): partials [group][split][tile][lane][NT] float4,
// every lane's fence.sc, lane 0's atomic. 1 (DSA_FP8_STREAM_FINISH=v2): [group][split][tile][NT][lane] (a warp's
// store covers 512 contiguous bytes), a warp barrier, then lane 0's one acq_rel atomic (release of the warp's
// stores, acquire of the others'); the same sums, so the same bits.
template <int NT>
__device__ __forceinline__ void split_k_finish(float (&acc)[NT][4], const Fp8StreamParams& p, const Fp8StreamPlan& plan,
                                               const WarpJob& j, int64_t grp, int64_t split, int64_t nseg, int64_t tile,
                                               int lane) {
    const bool v2 = plan.finish == 1;
    const int64_t stride = plan.tiles * 32 * NT, ns = v2 ? 32 : 1;
    float4* base = reinterpret_cast<float4*>(p.ws) + grp * plan.splits * stride + tile * 32 * NT + lane * (v2 ? 1 : NT);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        base[split * stride + nt * ns] = make_float4(acc[nt][0], acc[nt][1], acc[nt][2], acc[nt][3]);
    }
    if (!v2) __threadfence();
    __syncwarp();
    int last = 0;
    if (lane == 0) {
        int32_t* c = p.counters + grp * plan.tiles + tile;
        int old;
        if (v2) {
            asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], 1;\n" : "=r"(old) : "l"(c) : "memory");
        } else {
            old = atomicAdd(c, 1);
        }
        last = old == nseg - 1;
        if (last) atomicExch(c, 0);  // every warp of the tile has arrived
    }
    if (__shfl_sync(0xffffffffu, last, 0) == 0) return;
    if (v2) {
        __syncwarp();  // lane 0's acquire orders the other lanes' loads
    } else {
        __threadfence();
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    for (int64_t sp = 0; sp < nseg; ++sp) {
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            const float4 v = __ldcg(base + sp * stride + nt * ns);  // L2: written by other SMs
            acc[nt][0] += v.x;
            acc[nt][1] += v.y;
            acc[nt][2] += v.z;
            acc[nt][3] += v.w;
        }
    }
    store_out<NT>(acc, p, j, lane);
}

// A multi launch's CTA: its problem is the last whose first CTA it has reached. p takes that problem's weight,
// scales, output and workspace, plan its plan; returns the CTA's index within the problem.
__device__ __forceinline__ int64_t select_problem(const Fp8StreamMulti& m, Fp8StreamParams& p, Fp8StreamPlan& plan) {
    int sel = 0;
#pragma unroll
    for (int i = 1; i < kFp8StreamMaxProblems; ++i) {
        if (i < m.count && blockIdx.x >= m.prob[i].cta0) sel = i;
    }
    plan = m.prob[0].plan;
    int64_t cta0 = 0;
#pragma unroll
    for (int i = 0; i < kFp8StreamMaxProblems; ++i) {
        if (i == sel) {
            const Fp8StreamProblem& q = m.prob[i];
            p.w = q.w, p.w_scale = q.w_scale, p.out = q.out, p.n = q.n, p.scale_ld = q.scale_ld;
            p.ws = q.ws, p.counters = q.counters;
            plan = q.plan, cta0 = q.cta0;
        }
    }
    return blockIdx.x - cta0;
}

// Host: calls f(std::integral_constant<int, NT>{}) for a plan's token-block width nt (1, 2, 4, else 8), the
// instantiations every launcher of these kernels has.
template <class F>
void with_nt(int nt, F&& f) {
    switch (nt) {
        case 1:
            f(std::integral_constant<int, 1>{});
            break;
        case 2:
            f(std::integral_constant<int, 2>{});
            break;
        case 4:
            f(std::integral_constant<int, 4>{});
            break;
        default:
            f(std::integral_constant<int, 8>{});
            break;
    }
}

}  // namespace dsa::backend::cuda::fp8s
