// Device code of the MoE router selection shared by the stand-alone route kernel (moe_kernels.cu) and the fused
// router GEMV + route kernel (moe_router.cu): one warp selects the experts of one token from its FP32 logits,
// with the CPU reference's order of operations (sigmoid, + bias, group score, kept groups, top-k with ties to
// the lower id, weights summed in selection order). route_token_fast keeps everything in registers (256 experts:
// the V3.2 / GLM-5 shapes); route_token (shared memory) serves every other shape.
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

// ---- register-resident selection: 256 experts, 8 per lane (lane l holds experts 8l .. 8l + 7) ----
// Same results as route_token: group top-2 merged by shuffles (the multiset top-2 the sequential loop finds),
// kept groups by rank (value desc, id asc = topk_groups rounds of arg-max with lower-id ties), top-k by k rounds
// of a warp max over order-preserving keys then a warp min over the ids holding it.
constexpr int kFastPerLane = 8;
constexpr int kFastExperts = 32 * kFastPerLane;

// Whether route_token_fast handles p: 256 experts, top_k <= 32, groups of whole lanes (1, 2, 4 ... 32 lanes).
__host__ __device__ constexpr bool route_fast_supported(int64_t experts, int64_t groups, int64_t top_k) {
    if (experts != kFastExperts || top_k < 1 || top_k > 32 || groups < 1 || experts % groups != 0) return false;
    const int64_t per = experts / groups;
    if (groups == 1) return true;
    if (per % kFastPerLane != 0) return false;
    const int64_t lanes = per / kFastPerLane;
    return lanes >= 1 && lanes <= 32 && (lanes & (lanes - 1)) == 0;
}

// Order-preserving key of a non-NaN float (-0 counted as +0, as the float compares do); 0 = taken.
__device__ __forceinline__ uint32_t order_key(float f) {
    f = f == 0.0f ? 0.0f : f;
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);
}

// Keeps the topk_groups best groups (group score as route_group_limit); b of the other groups' experts -> -inf.
__device__ __forceinline__ void route_group_limit_fast(const MoeRouteParams& p, float (&b)[kFastPerLane], int lane) {
    const int G = static_cast<int>(p.groups), lpg = kFastExperts / G / kFastPerLane;  // lanes per group
    float m1 = kNegInf, m2 = kNegInf;
#pragma unroll
    for (int j = 0; j < kFastPerLane; ++j) {
        if (b[j] > m1) {
            m2 = m1;
            m1 = b[j];
        } else if (b[j] > m2) {
            m2 = b[j];
        }
    }
    for (int o = 1; o < lpg; o <<= 1) {
        const float o1 = __shfl_xor_sync(0xffffffffu, m1, o), o2 = __shfl_xor_sync(0xffffffffu, m2, o);
        const float hi = fmaxf(m1, o1), lo = fmaxf(fminf(m1, o1), fmaxf(m2, o2));
        m1 = hi;
        m2 = lo;
    }
    const float score = p.bias != nullptr && kFastExperts / G >= 2 ? m1 + m2 : m1;
    const float gs = isnan(score) ? kNegInf : score;
    const int g = lane / lpg;
    int rank = 0;
    for (int k = 0; k < G; ++k) {
        const float o = __shfl_sync(0xffffffffu, gs, k * lpg);
        rank += (o > gs || (o == gs && k < g)) ? 1 : 0;
    }
    if (rank >= p.topk_groups) {
#pragma unroll
        for (int j = 0; j < kFastPerLane; ++j) b[j] = kNegInf;
    }
}

// route_token for route_fast_supported(p) shapes, every value in registers.
__device__ __forceinline__ void route_token_fast(const MoeRouteParams& p, int64_t t, int lane) {
    float* row = p.scores + t * kFastExperts + lane * kFastPerLane;
    float z[kFastPerLane], bias[kFastPerLane], s[kFastPerLane], b[kFastPerLane];
#pragma unroll
    for (int j = 0; j < kFastPerLane; ++j) z[j] = __ldcg(row + j);  // the logits may come from another CTA
#pragma unroll
    for (int j = 0; j < kFastPerLane; ++j) bias[j] = p.bias != nullptr ? p.bias[lane * kFastPerLane + j] : 0.0f;
#pragma unroll
    for (int j = 0; j < kFastPerLane; ++j) {
        s[j] = 1.0f / (1.0f + expf(-z[j]));
        const float biased = p.bias != nullptr ? s[j] + bias[j] : s[j];
        b[j] = isnan(biased) ? kNegInf : biased;
    }
#pragma unroll
    for (int j = 0; j < kFastPerLane; ++j) row[j] = s[j];
    if (p.groups > 1) route_group_limit_fast(p, b, lane);
    uint32_t key[kFastPerLane];
#pragma unroll
    for (int j = 0; j < kFastPerLane; ++j) key[j] = order_key(b[j]);
    float sum = 0.0f, my_w = 0.0f;
    int my_id = 0;
    for (int r = 0; r < p.top_k; ++r) {
        uint32_t best = 0;
#pragma unroll
        for (int j = 0; j < kFastPerLane; ++j) best = key[j] > best ? key[j] : best;
        best = __reduce_max_sync(0xffffffffu, best);
        uint32_t mine = 0xffffffffu;
#pragma unroll
        for (int j = kFastPerLane - 1; j >= 0; --j) mine = key[j] == best ? lane * kFastPerLane + j : mine;
        const uint32_t id = __reduce_min_sync(0xffffffffu, mine);
        float sel = 0.0f;
#pragma unroll
        for (int j = 0; j < kFastPerLane; ++j) {
            if (static_cast<uint32_t>(lane * kFastPerLane + j) == id) {
                sel = s[j];
                key[j] = 0;  // taken
            }
        }
        sel = __shfl_sync(0xffffffffu, sel, static_cast<int>(id / kFastPerLane));
        sum = __fadd_rn(sum, sel);
        if (lane == r) {
            my_id = static_cast<int>(id);
            my_w = sel;
        }
    }
    if (lane < p.top_k) {
        float v = my_w;
        if (p.normalize) v = __fdiv_rn(v, __fadd_rn(sum, 1e-20f));
        p.ids[t * p.top_k + lane] = my_id;
        p.weights[t * p.top_k + lane] = __fmul_rn(v, p.scale);
    }
}

// The selection of token t by one warp: the register path where it applies, else the shared-memory one.
__device__ __forceinline__ void route_token_any(const MoeRouteParams& p, int64_t t, int lane, float* smem) {
    if (!p.force_generic && route_fast_supported(p.experts, p.groups, p.top_k)) {
        route_token_fast(p, t, lane);
    } else {
        route_token(p, t, lane, smem);
    }
}

}  // namespace dsa::backend::cuda::moe_route_detail
