// Parameter structs and launchers of the CUDA MoE kernels (moe_kernels.cu): the routing kernel (sigmoid, group
// limit, top-k, weights; one warp per token), the fused router GEMV + routing (moe_router.cu), the (token, slot)
// pair grouping by expert, the activation prep (f32 copy, DeepSeek act_quant applied), the grouped expert GEMV
// kernels (gate/up + SwiGLU, down) and the combine. Pair p = t * top_k + j is slot j of token t. bf16 data is
// passed as uint16_t bit patterns.
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
    bool force_generic = false;  // tests: the shared-memory selection even where the register one applies
    // Optional (moe_route_groups_supported): the route kernel also groups the selected pairs by expert, the bytes
    // launch_moe_group_pairs writes (max_groups = min(pairs, experts)); with group_packed_shared also the grouping
    // with the shared expert as slot top_k of every token (id `experts`; tokens * (top_k + 1) <= 32).
    int32_t* group_packed = nullptr;
    int32_t* group_packed_shared = nullptr;
};
constexpr int64_t kMoeRouteMaxExperts = 1024;
void launch_moe_route(const MoeRouteParams& p, cudaStream_t stream);
// Whether the route kernel can also write the grouping: all tokens in its one CTA (<= 4) and pairs <= 32 (one warp).
constexpr int64_t kMoeRouteGroupMaxPairs = 32;
bool moe_route_groups_supported(int64_t tokens, int64_t top_k);
// Whether the selection runs in registers (256 experts, top_k <= 32, groups of whole lanes); else shared memory.
bool moe_route_register_path(int64_t experts, int64_t groups, int64_t top_k);

// ---- fused router GEMV + route (moe_router.cu) ----
// logits[t, e] = sum_k x[t, k] * w[e, k] (bf16 inputs, FP32 sums) split over K: CTA (blk, s) has 16 warps, warp
// i takes expert row blk * 16 + i over K chunk s and writes its partial to ws[(s * tokens + t) * E + e]; the last
// CTA of a row block sums the partials in split order into route.scores (logits); the last row block to finish
// runs the selection of launch_moe_route for every token in one CTA (a warp per token). Counters are zero before
// and after. Deterministic: the same sums in the same order on every launch.
struct MoeRouterParams {
    const uint16_t* x = nullptr;  // [tokens, dim] bf16
    const uint16_t* w = nullptr;  // [experts, dim] bf16 router weight (16-byte aligned rows)
    MoeRouteParams route;         // scores: [tokens, experts] f32 out (sigmoid), ids, weights, bias, limits
    int64_t dim = 0;
    float* ws = nullptr;          // moe_router_ws_floats()
    int32_t* counters = nullptr;  // moe_router_counters(), zero
};
constexpr int64_t kMoeRouterRows = 16;          // expert rows per CTA (one warp each)
constexpr int64_t kMoeRouterMaxTokens = 32;     // larger batches: router GEMM + launch_moe_route
constexpr int64_t kMoeRouterMaxVecPerLane = 4;  // 8-element vectors a lane holds per K chunk (prefetched)
struct MoeRouterPlan {
    int64_t splits = 1, chunk_vecs = 1;  // K chunks of chunk_vecs 8-element vectors
    int64_t ws_floats = 0, counters = 0;
};
// Whether the fused kernel takes these shapes (experts % 16 == 0, dim % 8 == 0, tokens <= max, smem fits).
bool moe_router_supported(int64_t tokens, int64_t experts, int64_t groups, int64_t dim);
MoeRouterPlan moe_router_plan(int64_t tokens, int64_t experts, int64_t dim, int num_sms);
void launch_moe_router(const MoeRouterParams& p, const MoeRouterPlan& plan, cudaStream_t stream);
// Fused router launches so far in this process (tests assert the path was taken).
int64_t moe_router_launch_count();
// moe_experts calls so far that ran the shared expert as one more group of the streamed launches (moe_ops.cpp).
int64_t moe_shared_fused_count();

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
// ascending, into the packed buffer with max_groups = min(pairs, num_experts). One CTA: pairs <= 1024 and
// num_experts <= 1024.
// With shared_expert >= 0 every token gets one more slot, the shared expert: pair p = t * (top_k + 1) + j is
// ids[t * top_k + j] for j < top_k and shared_expert for j == top_k (pairs = tokens * (top_k + 1)).
struct MoeGroupBuildParams {
    const int32_t* ids = nullptr;  // [pairs] i32 ([tokens, top_k] with a shared expert)
    int32_t* packed = nullptr;     // moe_groups_words(max_groups, pairs) i32
    int64_t pairs = 0, num_experts = 0, max_groups = 0;
    int64_t top_k = 0;           // with a shared expert: routed slots per token
    int32_t shared_expert = -1;  // its id in [0, num_experts), or -1
};
constexpr int64_t kMoeGroupMaxPairs = 1024;
constexpr int64_t kMoeGroupMaxExperts = 1024;
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
// out[t, c] = bf16(sum_j weights[t, j] * y[t * top_k + j, c]) with FP32 accumulation in slot order. With
// `shared`, y has top_k + 1 rows per token (the last: the shared expert's output) and
// out[t, c] = bf16(bf16(routed sum) + y[t * (top_k + 1) + top_k, c]) (the routed result plus the shared expert
// as the model's add computes it). With `addend` (not with `shared`) the same with addend[t, c] in place of the
// shared row (the shared expert computed elsewhere: one launch instead of the combine and an add).
struct MoeCombineParams {
    const uint16_t* y = nullptr;     // [tokens * (top_k + shared), dim] bf16
    const float* weights = nullptr;  // [tokens, top_k] f32
    uint16_t* out = nullptr;         // [tokens, dim] bf16
    int64_t tokens = 0, top_k = 0, dim = 0;
    bool shared = false;
    const uint16_t* addend = nullptr;  // [tokens, dim] bf16 or null
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
