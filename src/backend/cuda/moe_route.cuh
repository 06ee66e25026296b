// Device code of the MoE router selection shared by the stand-alone route kernel (moe_kernels.cu) and the fused
// router GEMV + route kernel (moe_router.cu): one warp selects the experts of one token from its FP32 logits,
// with the CPU reference's order of operations (sigmoid, + bias, group score, kept groups, top-k with ties to
// the lower id, weights summed in selection order).
#pragma once

#include <climits>
#include <cstdint>

#include "backend/cuda/moe_kernels.h"

namespace dsa::backend::cuda::moe_route_detail {

constexpr float kNegInf = -__builtin_huge_valf();

// Arg-max over v[0, n) skipping NaN entries (taken ones); ties -> lower index. Every lane gets the result;
// bi stays INT_MAX only when every entry is NaN.
__device__ __forceinline__ void warp_argmax(const float* v, int n, int lane, float& bv, int& bi) {
    bv = kNegInf;
    bi = INT_MAX;
    for (int i = lane; i < n; i += 32) {
        const float x = v[i];
        if (x > bv || (x == bv && i < bi)) {
            bv = x;
            bi = i;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) {
            bv = ov;
            bi = oi;
        }
    }
}

// Shared memory floats one warp needs: s[E] (unbiased scores), b[E] (biased, NaN once taken), gs[G].
__host__ __device__ constexpr int64_t route_warp_floats(int64_t experts, int64_t groups) {
    return 2 * experts + groups;
}

// Group limit: group score = sum of the top-2 biased scores (max without bias); all but the best topk_groups
// groups get -inf in b. Kept groups are marked NaN in gs.
__device__ __forceinline__ void route_group_limit(const MoeRouteParams& p, float* b, float* gs, int lane) {
    const int E = static_cast<int>(p.experts), G = static_cast<int>(p.groups), per = E / G;
    for (int g = lane; g < G; g += 32) {
        float m1 = kNegInf, m2 = kNegInf;
        for (int i = 0; i < per; ++i) {
            const float v = b[g * per + i];
            if (v > m1) {
                m2 = m1;
                m1 = v;
            } else if (v > m2) {
                m2 = v;
            }
        }
        const float score = p.bias != nullptr && per >= 2 ? m1 + m2 : m1;
        gs[g] = isnan(score) ? kNegInf : score;
    }
    __syncwarp();
    for (int r = 0; r < p.topk_groups; ++r) {
        float bv;
        int bi;
        warp_argmax(gs, G, lane, bv, bi);
        if (lane == 0 && bi != INT_MAX) gs[bi] = __int_as_float(0x7fffffff);
        __syncwarp();
    }
    for (int e = lane; e < E; e += 32) {
        if (!isnan(gs[e / per])) b[e] = kNegInf;
    }
    __syncwarp();
}

// Token t: logits p.scores[t, :] (read through L2: another CTA may have written them) -> sigmoid scores written
// back, ids and weights. `smem` holds route_warp_floats(E, G) floats of this warp.
__device__ __forceinline__ void route_token(const MoeRouteParams& p, int64_t t, int lane, float* smem) {
    const int E = static_cast<int>(p.experts);
    float* s = smem;
    float* b = s + E;
    float* gs = b + E;
    float* row = p.scores + t * E;
    for (int e = lane; e < E; e += 32) {
        const float v = 1.0f / (1.0f + expf(-__ldcg(row + e)));
        row[e] = v;
        s[e] = v;
        const float biased = p.bias != nullptr ? v + p.bias[e] : v;
        b[e] = isnan(biased) ? kNegInf : biased;
    }
    __syncwarp();
    if (p.groups > 1) route_group_limit(p, b, gs, lane);
    float sum = 0.0f;
    int32_t* ids = p.ids + t * p.top_k;
    float* w = p.weights + t * p.top_k;
    for (int r = 0; r < p.top_k; ++r) {
        float bv;
        int bi;
        warp_argmax(b, E, lane, bv, bi);
        if (lane == 0) {
            ids[r] = bi;
            w[r] = s[bi];
            sum = __fadd_rn(sum, s[bi]);
            b[bi] = __int_as_float(0x7fffffff);
        }
        __syncwarp();
    }
    if (lane == 0) {
        for (int r = 0; r < p.top_k; ++r) {
            float v = w[r];
            if (p.normalize) v = __fdiv_rn(v, __fadd_rn(sum, 1e-20f));
            w[r] = __fmul_rn(v, p.scale);
        }
    }
}

}  // namespace dsa::backend::cuda::moe_route_detail
