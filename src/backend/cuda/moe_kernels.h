// Parameter structs and launchers of the CUDA MoE kernels (moe_kernels.cu): the routing kernel (sigmoid, group
// limit, top-k, weights; one warp per token), the (token, slot) pair grouping by expert, the activation prep
// (f32 copy, DeepSeek act_quant applied), the grouped expert GEMV kernels (gate/up + SwiGLU, down) and the
// combine. Pair p = t * top_k + j is slot j of token t. bf16 data is passed as uint16_t bit patterns.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::backend::cuda {

// ---- routing ----
// Per token: s = sigmoid(logit) (written back over the logits), selection on s + bias, group score = sum of the
// top-2 biased scores of a group (max without bias), top topk_groups groups kept, top_k experts (ties: lower
// id), weights = s / (sum + 1e-20) (when normalize) * scale, summed in selection order.
struct MoeRouteParams {
    float* scores = nullptr;      // [tokens, experts] f32: logits in, sigmoid scores out
    const float* bias = nullptr;  // optional [experts] f32
    int32_t* ids = nullptr;       // [tokens, top_k] i32
    float* weights = nullptr;     // [tokens, top_k] f32
    int64_t tokens = 0, experts = 0, groups = 1, topk_groups = 1, top_k = 0;
    float scale = 1.0f;
    bool normalize = true;
};
constexpr int64_t kMoeRouteMaxExperts = 1024;
void launch_moe_route(const MoeRouteParams& p, cudaStream_t stream);

// ---- grouping of pairs by expert ----
// A group is one expert with its pairs: rows[start .. start + count) are pair indices in ascending order.
// Packed i32 buffer: [num_groups | expert[max_groups] | start[max_groups] | count[max_groups] | rows[pairs]].
struct MoeGroups {
    const int32_t* num_groups = nullptr;  // [1]
    const int32_t* expert = nullptr;      // [max_groups]
    const int32_t* start = nullptr;       // [max_groups]
    const int32_t* count = nullptr;       // [max_groups]
    const int32_t* rows = nullptr;        // [pairs]
    int64_t max_groups = 0;
};
inline int64_t moe_groups_words(int64_t max_groups, int64_t pairs) { return 1 + 3 * max_groups + pairs; }
inline MoeGroups moe_groups_view(const int32_t* packed, int64_t max_groups) {
    return {packed,    packed + 1, packed + 1 + max_groups, packed + 1 + 2 * max_groups, packed + 1 + 3 * max_groups,
            max_groups};
}

// Groups the pairs of ids [pairs] (each in [0, num_experts), else the kernel traps) by expert, experts
// ascending, into the packed buffer with max_groups = min(pairs, num_experts). One CTA: pairs <= 1024.
struct MoeGroupBuildParams {
    const int32_t* ids = nullptr;  // [pairs] i32
    int32_t* packed = nullptr;     // moe_groups_words(max_groups, pairs) i32
    int64_t pairs = 0, num_experts = 0, max_groups = 0;
};
constexpr int64_t kMoeGroupMaxPairs = 1024;
void launch_moe_group_pairs(const MoeGroupBuildParams& p, cudaStream_t stream);

// ---- activation prep ----
// out = f32(x), or with act_quant the DeepSeek act_quant value fp8(q) * s per row per 128 columns
// (s = max(amax, 1e-4) / 448, a power of two with ue8m0), exactly as the CPU reference computes it.
struct MoePrepParams {
    const uint16_t* x = nullptr;  // [rows, cols] bf16
    float* out = nullptr;         // [rows, cols] f32
    int64_t rows = 0, cols = 0;
    bool act_quant = false, ue8m0 = false;
};
void launch_moe_prep(const MoePrepParams& p, cudaStream_t stream);

// ---- grouped expert GEMV ----
// Device pointers of one routed expert. FP8 weights come with scales [ceil(N/128), scale_ld] f32; bf16 weights
// have null scale pointers.
struct MoeExpertPtrs {
    const void* gate = nullptr;  // [F, D]
    const void* up = nullptr;    // [F, D]
    const void* down = nullptr;  // [D, F]
    const float* gate_scale = nullptr;
    const float* up_scale = nullptr;
    const float* down_scale = nullptr;
};

// One launch over all groups (grid.y = max_groups; groups past *num_groups exit). For the pairs of a group the
// input row is x[pair / x_row_div] (gate/up: x_row_div = top_k, token rows; down: 1, pair rows).
//  gate_up: out[pair, n] = bf16(silu(g) * u), g = bf16(x · gate[n]), u = bf16(x · up[n]), n < F   (out [pairs, F])
//  down:    out[pair, n] = bf16(x · down[n]), n < D                                               (out [pairs, D])
// with x · w = sum over 128-blocks kb of scale[n / 128, kb] * sum_{k in kb} w8[n, k] * x[k] (FP32).
struct MoeGemvParams {
    const MoeExpertPtrs* experts = nullptr;  // [num_experts] device table
    MoeGroups groups;
    const float* x = nullptr;  // [*, k] f32 (from launch_moe_prep)
    uint16_t* out = nullptr;   // [pairs, n] bf16
    int64_t x_row_div = 1;
    int64_t n = 0, k = 0;  // output features, input features
    int64_t scale_ld = 0;  // FP8: row length of the scale tensors
    bool fp8 = true;       // weights e4m3 (else bf16)
};
void launch_moe_gate_up(const MoeGemvParams& p, cudaStream_t stream);
void launch_moe_down(const MoeGemvParams& p, cudaStream_t stream);

// ---- combine ----
// out[t, c] = bf16(sum_j weights[t, j] * y[t * top_k + j, c]) with FP32 accumulation in slot order.
struct MoeCombineParams {
    const uint16_t* y = nullptr;     // [tokens * top_k, dim] bf16
    const float* weights = nullptr;  // [tokens, top_k] f32
    uint16_t* out = nullptr;         // [tokens, dim] bf16
    int64_t tokens = 0, top_k = 0, dim = 0;
};
void launch_moe_combine(const MoeCombineParams& p, cudaStream_t stream);

// ---- row gather / scatter (the GEMM path of large groups) ----
// gather: dst[i] = src[map[i] / div]; scatter: dst[map[i]] = src[i] (div unused); rows of `cols` bf16.
struct MoeRowCopyParams {
    const uint16_t* src = nullptr;
    uint16_t* dst = nullptr;
    const int32_t* map = nullptr;  // [rows]
    int64_t rows = 0, cols = 0, div = 1;
    bool gather = true;
};
void launch_moe_row_copy(const MoeRowCopyParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
