// CUDA MoE kernels (moe_kernels.h): the one-warp-per-token router selection, the pair grouping by expert, the
// activation prep (DeepSeek act_quant with the CPU reference's arithmetic), the grouped weight-streaming expert
// GEMVs (each warp streams two weight rows once per group of <= 4 tokens on CUDA cores, FP32 accumulation,
// 128-block scales applied per 16-weight partial; SwiGLU fused into gate/up), the combine and row copies.
#include <cuda_fp8.h>

#include <climits>

#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/moe_kernels.h"
#include "backend/cuda/moe_route.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// routing (one warp per token; the selection itself is in moe_route.cuh)

constexpr int kRouteWarps = 4;

__device__ __forceinline__ void group_pairs_warp(const MoeRouteParams& p, bool shared, int32_t* packed, int lane);

__global__ void moe_route_kernel(MoeRouteParams p) {
    extern __shared__ float route_smem[];
    pdl_wait();  // the logits come from the router GEMM
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t t = static_cast<int64_t>(blockIdx.x) * kRouteWarps + warp;
    if (p.group_packed == nullptr) {
        if (t >= p.tokens) return;  // no block-wide synchronization below
        moe_route_detail::route_token_any(p, t, lane,
                                          route_smem + warp * moe_route_detail::route_warp_floats(p.experts, p.groups));
        return;
    }
    // With the grouping (one CTA holds every token): the selections, then warp 0 groups the pairs, warp 1 the pairs
    // with the shared slot.
    if (t < p.tokens) {
        moe_route_detail::route_token_any(p, t, lane,
                                          route_smem + warp * moe_route_detail::route_warp_floats(p.experts, p.groups));
    }
    __syncthreads();  // the ids are visible to the block
    if (warp == 0) group_pairs_warp(p, false, p.group_packed, lane);
    if (warp == 1 && p.group_packed_shared != nullptr) group_pairs_warp(p, true, p.group_packed_shared, lane);
}

// ---------------------------------------------------------------------------------------------------------------
// grouping

// The expert of pair i (traps on an id outside the table or a routed id naming the shared expert's slot).
__device__ __forceinline__ int32_t group_pair_expert(const MoeGroupBuildParams& p, int i) {
    int32_t e;
    if (p.shared_expert >= 0) {
        const int slots = static_cast<int>(p.top_k) + 1, t = i / slots, j = i % slots;
        e = j == p.top_k ? p.shared_expert : p.ids[t * p.top_k + j];
        if (j < p.top_k && e == p.shared_expert) __trap();
    } else {
        e = p.ids[i];
    }
    if (e < 0 || e >= p.num_experts) __trap();
    return e;
}

// Inclusive block-wide sum of v over threads 0..blockDim-1 (warp shuffles, then the warp totals); scratch holds
// 32 ints (free again when it returns: the leading barrier orders an earlier call's reads before the writes).
// Every thread of the block calls it.
__device__ __forceinline__ int block_inclusive_sum(int v, int* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int d = 1; d < 32; d <<= 1) {
        const int u = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v += u;
    }
    __syncthreads();
    if (lane == 31) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const int warps = static_cast<int>(blockDim.x >> 5);
        int w = lane < warps ? scratch[lane] : 0;
        for (int d = 1; d < 32; d <<= 1) {
            const int u = __shfl_up_sync(0xffffffffu, w, d);
            if (lane >= d) w += u;
        }
        scratch[lane] = w;  // inclusive over warps
    }
    __syncthreads();
    return warp > 0 ? v + scratch[warp - 1] : v;
}

// moe_group_kernel's output for <= 32 pairs of the route's ids, by one warp: lane i holds pair i's expert (as
// group_pair_expert, with the shared expert `experts` as slot top_k when `shared`); its group and first row are the
// numbers of distinct experts / pairs with a lower id, its rank the lanes of its expert below it.
__device__ __forceinline__ void group_pairs_warp(const MoeRouteParams& p, bool shared, int32_t* packed, int lane) {
    const int k = static_cast<int>(p.top_k), slots = shared ? k + 1 : k, n = static_cast<int>(p.tokens) * slots;
    const int ne = static_cast<int>(p.experts) + (shared ? 1 : 0), max_groups = n < ne ? n : ne;
    int32_t e = -1;
    if (lane < n) {
        const int t = lane / slots, j = lane % slots;
        e = j == k ? static_cast<int32_t>(p.experts) : p.ids[t * k + j];
        if (e < 0 || e >= ne || (j < k && e == static_cast<int32_t>(p.experts) && shared)) __trap();
    }
    const unsigned same = __match_any_sync(0xffffffffu, e);
    const bool leader = e >= 0 && lane == __ffs(same) - 1;
    const unsigned leaders = __ballot_sync(0xffffffffu, leader);
    int before = 0, groups_before = 0;
    for (int j = 0; j < 32; ++j) {
        const int32_t ej = __shfl_sync(0xffffffffu, e, j);
        if (ej >= 0 && ej < e) {
            ++before;
            groups_before += static_cast<int>((leaders >> j) & 1u);
        }
    }
    int32_t* expert = packed + 1;
    int32_t* start = expert + max_groups;
    int32_t* count = start + max_groups;
    int32_t* rows = count + max_groups;
    if (leader) {
        expert[groups_before] = e;
        start[groups_before] = before;
        count[groups_before] = __popc(same);
    }
    if (e >= 0) rows[before + __popc(same & ((1u << lane) - 1u))] = lane;
    if (lane == 0) packed[0] = __popc(leaders);
}

// A stable counting sort of the pairs by expert: the warps in turn rank their pairs within each expert (lanes of
// one expert found by __match_any_sync), then block scans over the experts give each expert's first row and group
// index. O(pairs + experts) work with one __syncthreads per warp.
__global__ void moe_group_kernel(MoeGroupBuildParams p) {
    __shared__ int32_t s_count[kMoeGroupMaxExperts];
    __shared__ int32_t s_start[kMoeGroupMaxExperts];
    __shared__ int s_scan[32];
    pdl_wait();  // ids come from the router
    pdl_trigger();
    const int i = threadIdx.x, n = static_cast<int>(p.pairs), ne = static_cast<int>(p.num_experts);
    const int lane = i & 31, warp = i >> 5, warps = static_cast<int>(blockDim.x >> 5);
    const int32_t e = i < n ? group_pair_expert(p, i) : -1;
    for (int x = i; x < ne; x += blockDim.x) s_count[x] = 0;
    __syncthreads();
    const unsigned same = __match_any_sync(0xffffffffu, e);
    int rank = 0;
    for (int w = 0; w < warps; ++w) {
        if (warp == w && e >= 0) {
            rank = s_count[e] + __popc(same & ((1u << lane) - 1u));
            __syncwarp(same);
            if (lane == __ffs(same) - 1) s_count[e] += __popc(same);
        }
        __syncthreads();
    }
    const int cnt = i < ne ? s_count[i] : 0;  // blockDim >= num_experts
    const int rows_before = block_inclusive_sum(cnt, s_scan) - cnt;
    const int group = block_inclusive_sum(cnt > 0 ? 1 : 0, s_scan) - (cnt > 0 ? 1 : 0);
    int32_t* expert = p.packed + 1;
    int32_t* start = expert + p.max_groups;
    int32_t* count = start + p.max_groups;
    int32_t* rows = count + p.max_groups;
    if (i < ne) s_start[i] = rows_before;
    if (cnt > 0) {
        expert[group] = i;
        start[group] = rows_before;
        count[group] = cnt;
    }
    if (i == ne - 1) p.packed[0] = group + (cnt > 0 ? 1 : 0);
    __syncthreads();
    if (e >= 0) rows[s_start[e] + rank] = i;
}

// ---------------------------------------------------------------------------------------------------------------
// activation prep (act_quant as quant_kernels.cu / the CPU reference)

__device__ __forceinline__ float e4m3_to_f32(uint8_t v) {
    const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(v), __NV_E4M3);
    return __half2float(__half(h));
}

__global__ void moe_prep_kernel(MoePrepParams p) {
    const int64_t num_kb = (p.cols + 127) / 128;
    const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (warp >= p.rows * num_kb) return;  // whole warps exit together
    const int64_t row = warp / num_kb, c0 = (warp % num_kb) * 128 + lane * 4;
    float v[4];
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        v[j] = c0 + j < p.cols ? bf16_bits_to_f32(p.x[row * p.cols + c0 + j]) : 0.0f;
        amax = fmaxf(amax, fabsf(v[j]));
    }
    if (p.act_quant) {
        amax = warp_max(amax);
        const float s = act_quant_scale(amax, p.ue8m0);
#pragma unroll
        for (int j = 0; j < 4; ++j) v[j] = e4m3_to_f32(act_quant_code(v[j], s)) * s;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if (c0 + j < p.cols) p.out[row * p.cols + c0 + j] = v[j];
    }
}

// ---------------------------------------------------------------------------------------------------------------
// grouped expert GEMV

constexpr int kGemvWarps = 8;
constexpr int kGemvThreads = kGemvWarps * 32;
constexpr int kGemvTok = 4;  // tokens per pass over a weight row

// One 16-byte weight vector as f32: 16 e4m3 (low byte first) or 8 bf16.
template <bool FP8>
__device__ __forceinline__ void decode_weights(const uint4& u, float (&w)[FP8 ? 16 : 8]) {
    const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if constexpr (FP8) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const auto pair = static_cast<__nv_fp8x2_storage_t>((words[i] >> (16 * h)) & 0xffffu);
                const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3)));
                w[4 * i + 2 * h] = f.x;
                w[4 * i + 2 * h + 1] = f.y;
            }
        } else {
            w[2 * i] = __uint_as_float(words[i] << 16);
            w[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
        }
    }
}

// Warp `unit` of the grid owns weight rows n0, n1: gate[n] and up[n] (GATE_UP) or down[2u], down[2u + 1].
// Lane l reads 16-byte vector v = l, l + 32, ... of each row (every vector lies inside one 128-column scale
// block) with the next two vectors in flight; per group the tokens go in passes of kGemvTok.
template <bool FP8, bool GATE_UP>
__global__ void __launch_bounds__(kGemvThreads, 2) moe_gemv_kernel(MoeGemvParams p) {
    constexpr int kVec = FP8 ? 16 : 8;  // weights per 16-byte vector
    const int64_t a = blockIdx.y;
    if (a >= *p.groups.num_groups) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t unit = static_cast<int64_t>(blockIdx.x) * kGemvWarps + warp;
    const int64_t n0 = GATE_UP ? unit : unit * 2;
    if (n0 >= p.n) return;  // no block-wide synchronization in this kernel
    const int64_t n1 = GATE_UP ? unit : (n0 + 1 < p.n ? n0 + 1 : n0);
    const MoeExpertPtrs ew = p.experts[p.groups.expert[a]];
    constexpr int64_t kBytes = FP8 ? 1 : 2;
    const auto* w0 =
        reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(GATE_UP ? ew.gate : ew.down) + n0 * p.k * kBytes);
    const auto* w1 =
        reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(GATE_UP ? ew.up : ew.down) + n1 * p.k * kBytes);
    const float* s0 = nullptr;
    const float* s1 = nullptr;
    if constexpr (FP8) {
        s0 = (GATE_UP ? ew.gate_scale : ew.down_scale) + (n0 / 128) * p.scale_ld;
        s1 = (GATE_UP ? ew.up_scale : ew.down_scale) + (n1 / 128) * p.scale_ld;
    }
    const int start = p.groups.start[a], count = p.groups.count[a];
    const int64_t nvec = p.k / kVec;
    for (int c0 = 0; c0 < count; c0 += kGemvTok) {
        const int m = count - c0 < kGemvTok ? count - c0 : kGemvTok;
        int32_t pair[kGemvTok];
        const float* xr[kGemvTok];
#pragma unroll
        for (int t = 0; t < kGemvTok; ++t) {
            pair[t] = p.groups.rows[start + c0 + (t < m ? t : m - 1)];
            xr[t] = p.x + (pair[t] / p.x_row_div) * p.k;
        }
        float acc0[kGemvTok], acc1[kGemvTok];
#pragma unroll
        for (int t = 0; t < kGemvTok; ++t) acc0[t] = acc1[t] = 0.0f;
        // Two vectors per row in flight ahead of the one being used: a = v + 32, b = v + 64.
        uint4 a0 = make_uint4(0, 0, 0, 0), a1 = a0, b0 = a0, b1 = a0;
        if (lane < nvec) {
            a0 = __ldcs(w0 + lane);
            a1 = __ldcs(w1 + lane);
        }
        if (lane + 32 < nvec) {
            b0 = __ldcs(w0 + lane + 32);
            b1 = __ldcs(w1 + lane + 32);
        }
        for (int64_t v = lane; v < nvec; v += 32) {
            const uint4 q0 = a0, q1 = a1;
            a0 = b0;
            a1 = b1;
            if (v + 64 < nvec) {
                b0 = __ldcs(w0 + v + 64);
                b1 = __ldcs(w1 + v + 64);
            }
            float f0[kVec], f1[kVec];
            decode_weights<FP8>(q0, f0);
            decode_weights<FP8>(q1, f1);
            const int64_t kk = v * kVec;
            float sc0 = 1.0f, sc1 = 1.0f;
            if constexpr (FP8) {
                sc0 = s0[kk / 128];
                sc1 = s1[kk / 128];
            }
#pragma unroll
            for (int t = 0; t < kGemvTok; ++t) {
                if (t >= m) break;
                const float4* xv = reinterpret_cast<const float4*>(xr[t] + kk);
                float d0 = 0.0f, d1 = 0.0f;
#pragma unroll
                for (int q = 0; q < kVec / 4; ++q) {
                    const float4 x4 = __ldg(xv + q);
                    d0 = fmaf(f0[4 * q], x4.x,
                              fmaf(f0[4 * q + 1], x4.y, fmaf(f0[4 * q + 2], x4.z, fmaf(f0[4 * q + 3], x4.w, d0))));
                    d1 = fmaf(f1[4 * q], x4.x,
                              fmaf(f1[4 * q + 1], x4.y, fmaf(f1[4 * q + 2], x4.z, fmaf(f1[4 * q + 3], x4.w, d1))));
                }
                acc0[t] = fmaf(d0, sc0, acc0[t]);
                acc1[t] = fmaf(d1, sc1, acc1[t]);
            }
        }
#pragma unroll
        for (int t = 0; t < kGemvTok; ++t) {
            if (t >= m) break;  // m is warp-uniform
            acc0[t] = warp_sum(acc0[t]);
            acc1[t] = warp_sum(acc1[t]);
        }
        if (lane == 0) {
#pragma unroll
            for (int t = 0; t < kGemvTok; ++t) {
                if (t >= m) break;
                uint16_t* out = p.out + static_cast<int64_t>(pair[t]) * p.n;
                if constexpr (GATE_UP) {
                    const float g = round_bf16(acc0[t]), u = round_bf16(acc1[t]);
                    out[n0] = f32_to_bf16_bits(g / (1.0f + expf(-g)) * u);
                } else {
                    out[n0] = f32_to_bf16_bits(acc0[t]);
                    if (n1 != n0) out[n1] = f32_to_bf16_bits(acc1[t]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// combine and row copies

__global__ void moe_combine_kernel(MoeCombineParams p) {
    pdl_wait();  // y and the weights come from earlier kernels
    pdl_trigger();
    const int64_t total = p.tokens * p.dim;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t t = i / p.dim, c = i % p.dim, slots = p.top_k + (p.shared ? 1 : 0);
        float acc = 0.0f;
        for (int64_t j = 0; j < p.top_k; ++j) {
            acc += bf16_bits_to_f32(p.y[(t * slots + j) * p.dim + c]) * p.weights[t * p.top_k + j];
        }
        if (p.shared) acc = round_bf16(acc) + bf16_bits_to_f32(p.y[(t * slots + p.top_k) * p.dim + c]);
        if (p.addend != nullptr) acc = round_bf16(acc) + bf16_bits_to_f32(p.addend[i]);
        p.out[i] = f32_to_bf16_bits(acc);
    }
}

__global__ void moe_row_copy_kernel(MoeRowCopyParams p) {
    const int64_t total = p.rows * p.cols;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t r = i / p.cols, c = i % p.cols;
        if (p.gather) {
            p.dst[i] = p.src[(p.map[r] / p.div) * p.cols + c];
        } else {
            p.dst[p.map[r] * p.cols + c] = p.src[i];
        }
    }
}

}  // namespace

void launch_moe_route(const MoeRouteParams& p, cudaStream_t stream) {
    if (p.tokens == 0) return;
    DSA_CHECK(p.experts >= 1 && p.experts <= kMoeRouteMaxExperts) << "moe_route: " << p.experts << " experts";
    DSA_CHECK(p.groups >= 1 && p.experts % p.groups == 0) << "moe_route: groups " << p.groups;
    DSA_CHECK(p.topk_groups >= 1 && p.topk_groups <= p.groups) << "moe_route: topk_groups " << p.topk_groups;
    DSA_CHECK(p.top_k >= 1 && p.top_k <= p.experts / p.groups * p.topk_groups) << "moe_route: top_k " << p.top_k;
    const size_t smem =
        static_cast<size_t>(kRouteWarps * moe_route_detail::route_warp_floats(p.experts, p.groups)) * sizeof(float);
    const auto blocks = static_cast<unsigned>((p.tokens + kRouteWarps - 1) / kRouteWarps);
    DSA_CHECK(p.group_packed == nullptr ||
              (moe_route_groups_supported(p.tokens, p.top_k) &&
               (p.group_packed_shared == nullptr || p.tokens * (p.top_k + 1) <= kMoeRouteGroupMaxPairs)))
        << "moe_route: grouping of " << p.tokens << " x " << p.top_k << " pairs";
    host::launch_pdl(moe_route_kernel, dim3(blocks), dim3(kRouteWarps * 32), smem, stream, p);
    DSA_CUDA_CHECK_LAUNCH(moe_route_kernel);
}

bool moe_route_groups_supported(int64_t tokens, int64_t top_k) {
    return tokens >= 1 && tokens <= kRouteWarps && top_k >= 1 && tokens * top_k <= kMoeRouteGroupMaxPairs;
}

bool moe_route_register_path(int64_t experts, int64_t groups, int64_t top_k) {
    return moe_route_detail::route_fast_supported(experts, groups, top_k);
}

void launch_moe_group_pairs(const MoeGroupBuildParams& p, cudaStream_t stream) {
    if (p.pairs == 0) return;
    DSA_CHECK(p.pairs <= kMoeGroupMaxPairs) << "moe grouping of " << p.pairs << " pairs";
    DSA_CHECK(p.max_groups >= (p.pairs < p.num_experts ? p.pairs : p.num_experts)) << "moe grouping max_groups";
    DSA_CHECK(p.shared_expert < 0 || (p.shared_expert < p.num_experts && p.top_k >= 1 && p.pairs % (p.top_k + 1) == 0))
        << "moe grouping: shared expert " << p.shared_expert << " of " << p.num_experts << ", top_k " << p.top_k
        << ", pairs " << p.pairs;
    DSA_CHECK(p.num_experts >= 1 && p.num_experts <= kMoeGroupMaxExperts)
        << "moe grouping of " << p.num_experts << " experts (1.." << kMoeGroupMaxExperts << ")";
    const int64_t width = p.pairs > p.num_experts ? p.pairs : p.num_experts;
    const auto threads = static_cast<unsigned>((width + 31) / 32 * 32);
    host::launch_pdl(moe_group_kernel, dim3(1), dim3(threads), 0, stream, p);
    DSA_CUDA_CHECK_LAUNCH(moe_group_kernel);
}

void launch_moe_prep(const MoePrepParams& p, cudaStream_t stream) {
    if (p.rows == 0 || p.cols == 0) return;
    const int64_t warps = p.rows * ((p.cols + 127) / 128);
    constexpr int kThreads = 256;
    moe_prep_kernel<<<static_cast<unsigned>((warps * 32 + kThreads - 1) / kThreads), kThreads, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(moe_prep_kernel);
}

namespace {

template <bool GATE_UP>
void launch_gemv(const MoeGemvParams& p, cudaStream_t stream) {
    if (p.groups.max_groups == 0 || p.n == 0) return;
    DSA_CHECK(p.k > 0 && p.k % 16 == 0) << "moe expert GEMV: K = " << p.k << " must be a multiple of 16";
    DSA_CHECK(p.groups.max_groups <= 65535) << "moe expert GEMV: " << p.groups.max_groups << " groups";
    DSA_CHECK(!p.fp8 || p.scale_ld >= (p.k + 127) / 128) << "moe expert GEMV: scale_ld " << p.scale_ld;
    const int64_t units = GATE_UP ? p.n : (p.n + 1) / 2;
    const dim3 grid(static_cast<unsigned>((units + kGemvWarps - 1) / kGemvWarps),
                    static_cast<unsigned>(p.groups.max_groups));
    if (p.fp8) {
        moe_gemv_kernel<true, GATE_UP><<<grid, kGemvThreads, 0, stream>>>(p);
    } else {
        moe_gemv_kernel<false, GATE_UP><<<grid, kGemvThreads, 0, stream>>>(p);
    }
    DSA_CUDA_CHECK_LAUNCH(moe_gemv_kernel);
}

}  // namespace

void launch_moe_gate_up(const MoeGemvParams& p, cudaStream_t stream) { launch_gemv<true>(p, stream); }
void launch_moe_down(const MoeGemvParams& p, cudaStream_t stream) { launch_gemv<false>(p, stream); }

void launch_moe_combine(const MoeCombineParams& p, cudaStream_t stream) {
    if (p.tokens == 0 || p.dim == 0) return;
    DSA_CHECK(!(p.shared && p.addend != nullptr)) << "moe_combine: a shared row and an addend";
    constexpr int kThreads = 256;
    host::launch_pdl(moe_combine_kernel, dim3(host::grid_for(p.tokens * p.dim, kThreads)), dim3(kThreads), 0, stream,
                     p);
    DSA_CUDA_CHECK_LAUNCH(moe_combine_kernel);
}

void launch_moe_row_copy(const MoeRowCopyParams& p, cudaStream_t stream) {
    if (p.rows == 0 || p.cols == 0) return;
    constexpr int kThreads = 256;
    moe_row_copy_kernel<<<host::grid_for(p.rows * p.cols, kThreads), kThreads, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(moe_row_copy_kernel);
}

}  // namespace dsa::backend::cuda
