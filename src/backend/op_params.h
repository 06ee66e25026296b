// Parameter and result structs of the backend ops (backend.h). Plain data: tensors, pointers to KV stores and
// scalars, each field commented with its shape and dtype. "act" means the backend's activation dtype (CPU: f32).
// Positions are token indices within a request (0..len-1); slots are rows of a KV store (kv_layout.h).
#pragma once

#include <cstdint>
#include <span>

#include "backend/kv_layout.h"
#include "backend/linear_weight.h"
#include "tensor/tensor.h"

namespace dsa::backend {

// Whether a linear's output is an activation (rounded per Numerics) or kept in FP32.
enum class LinearOutput : uint8_t { kActivation, kF32 };

// An activation that feeds FP8 linears, as a norm returned it (Backend::rms_norm_q8 / add_rms_norm_q8): the
// activation itself and, where the backend's norm also quantized it (the CUDA decode path), exactly what the
// linears' own DeepSeek act_quant of x would make (same e4m3 rounding, same ue8m0 rule). linear_multi_q8 then
// skips its quantization; without q8 it quantizes x as linear_multi does.
struct QuantizedAct {
    Tensor x;       // [T, K] act
    Tensor q8;      // optional [T, K] e4m3 on the backend's device: act_quant(x) per token per 128 channels
    Tensor scales;  // with q8: [K / 128, T] f32, the scale of 128-block kb of token t at [kb, t]
    bool has_q8() const { return q8.defined(); }
};

// ---- RoPE ----
enum class RopeLayout : uint8_t {
    kInterleaved,  // pairs (2i, 2i+1): MLA in both models, GLM-5 indexer
    kNeox,         // pairs (i, i + R/2): DeepSeek-V3.2 indexer
};

struct RopeTable {
    Tensor cos;  // [max_positions, R/2] f32, cos(p * inv_freq[i]) with the angle computed in f32
    Tensor sin;  // [max_positions, R/2] f32
    int64_t rot_dim() const { return cos.dim(1) * 2; }
    int64_t max_positions() const { return cos.dim(0); }
};

struct RopeParams {
    Tensor x;                           // [T, H, D] act, rotated in place on dims [dim_offset, dim_offset + R)
    Tensor positions;                   // [T] i32, each < table->max_positions()
    const RopeTable* table = nullptr;   // R = table->rot_dim()
    RopeLayout layout = RopeLayout::kInterleaved;
    int64_t dim_offset = 0;             // MLA q: d_n (rope part last); k_pe: 0; indexer q/k: 0 (rope part first)
};

// ---- MLA ----
struct MlaHeadDims {
    int64_t num_heads = 0;  // H
    int64_t nope_dim = 0;   // d_n: 128 (DeepSeek) / 192 (GLM)
    int64_t v_dim = 0;      // d_v: 128 / 256
    // kv_b_proj is [H * (d_n + d_v), 512]; head h rows [h(d_n+d_v), h(d_n+d_v) + d_n) are W_UK[h], the next d_v
    // rows W_UV[h].
};

struct MlaExpandedKv {
    Tensor k;  // [S, H, d_n + 64] f32/act: [k_nope ; k_pe]
    Tensor v;  // [S, H, d_v] act
};

struct MlaKvWriteParams {
    Tensor c_kv;                  // [T, 512] act, after kv_a_layernorm
    Tensor k_pe;                  // [T, 64] act, after RoPE
    Tensor slots;                 // [T] i32, rows of *store (a slot < 0 is skipped)
    MlaKvStore* store = nullptr;  // written in its format (FP8: per-128 power-of-two scales, FlashMLA rule)
};

// The latent KV of new tokens from the kv_a projection (MODEL_SPEC §3.4): c_kv = RMSNorm(kv_a[:, :512]),
// k_pe = RoPE(kv_a[:, 512:576]) at each token's position, both written into the token's slot (mla_kv_write).
// Equal to rms_norm + apply_rope + mla_kv_write (the Backend default runs exactly those); kv_a is not modified.
struct MlaLatentWriteParams {
    Tensor kv_a;                        // [T, 512 + R] act, R = table->rot_dim() (64)
    Tensor norm_weight;                 // [512] kv_a_layernorm weight
    float eps = 1e-6f;
    Tensor positions;                   // [T] i32, each < table->max_positions()
    const RopeTable* table = nullptr;
    RopeLayout layout = RopeLayout::kInterleaved;
    Tensor slots;                       // [T] i32, rows of *store (a slot < 0 is skipped)
    MlaKvStore* store = nullptr;
};

// The absorbed attention's query (MlaSparseParams::q): [q_absorbed ; RoPE(q[..., d_n : d_n + R])] per head.
// Equal to narrow_last + apply_rope + concat_last (the Backend default runs exactly those); q is not modified.
struct MlaQueryParams {
    Tensor q_absorbed;                  // [T, H, 512] act: mla_absorb_q of q_nope
    Tensor q;                           // [T, H, d_n + R] act, the q_b output with its rope part NOT yet rotated
    Tensor positions;                   // [T] i32, each < table->max_positions()
    const RopeTable* table = nullptr;   // R = table->rot_dim()
    RopeLayout layout = RopeLayout::kInterleaved;
};

// Absorbed ("MQA mode") sparse attention: one latent KV head shared by all H query heads.
//   score[t,h,s] = scale * q[t,h,:] · kv[slot_s, :]  (576 dims), softmax over the valid slots of row t,
//   out[t,h,:] = sum_s P * kv[slot_s, 0:512].  A row with no valid slot outputs zeros.
struct MlaSparseParams {
    Tensor q;                           // [T, H, 576] act: [q̃ = W_UK^T q_nope (512) ; roped q_pe (64)]
    const MlaKvStore* kv = nullptr;     // latent store, read dequantized
    Tensor slots;                       // [T, K] i32, slots each query attends; -1 = unused entry
    float softmax_scale = 0.0f;         // d_qk^-0.5 * mscale^2 (NOT 576^-0.5)
};

// Expanded (MHA) attention over the keys of one request, keys at positions 0..S-1.
//   key s is visible to query t iff s <= q_positions[t] and (allowed undefined or s in allowed[t, :]).
struct MlaDenseParams {
    Tensor q;             // [T, H, d_qk] act: [q_nope ; roped q_pe]
    Tensor k;             // [S, H, d_qk] act
    Tensor v;             // [S, H, d_v] act
    Tensor q_positions;   // [T] i32, position of each query within the request
    Tensor allowed;       // optional [T, K] i32 positions (-1 = unused): the indexer's top-k mask
    float softmax_scale = 0.0f;
};

// ---- lightning indexer ----
struct IndexerKWriteParams {
    Tensor k;                          // [T, 128] act, after k_norm LayerNorm and RoPE (first 64 dims)
    Tensor slots;                      // [T] i32 (a slot < 0 is skipped)
    IndexerKeyStore* store = nullptr;  // format must equal Numerics::indexer_key_format()
};

// The indexer key of new tokens (MODEL_SPEC §4.8): k = LayerNorm(wk_x) with RoPE on its first R dims, written
// into each token's slot (indexer_k_write). Equal to layer_norm + apply_rope + indexer_k_write (the Backend
// default runs exactly those); wk_x is not modified.
struct IndexerKeyWriteParams {
    Tensor wk_x;                        // [T, 128] act, the wk projection of x
    Tensor norm_weight, norm_bias;      // [128] k_norm LayerNorm
    float eps = 1e-6f;
    Tensor positions;                   // [T] i32, each < table->max_positions()
    const RopeTable* table = nullptr;   // R = table->rot_dim() <= 128
    RopeLayout layout = RopeLayout::kNeox;
    Tensor slots;                       // [T] i32 (a slot < 0 is skipped)
    IndexerKeyStore* store = nullptr;   // format must equal Numerics::indexer_key_format()
};

// I[t,s] = sum_j w[t,j] * H_I^-0.5 * 128^-0.5 * ReLU(q[t,j] · k[s])  for s = 0..query_limit[t].
// With indexer_fp8 the op itself applies the Hadamard rotation to q and evaluates the DeepSeek fp8_index form
//   I = sk[s] * sum_j ReLU(q8[t,j] · k8[s]) * (w[t,j] * H_I^-0.5 * 128^-0.5 * sq[t,j]).
// Top-k is exact: order by score descending, equal scores -> lower position first; row t keeps
// min(index_topk, query_limit[t] + 1) entries, the rest of the row is -1.
struct IndexerTopkParams {
    Tensor q;                                 // [T, H_I, 128] act, NOT Hadamard-rotated or quantized; after RoPE
                                              // unless q_rope is set
    Tensor weights;                           // [T, H_I] f32, raw weights_proj output (the op applies the scales)
    const IndexerKeyStore* keys = nullptr;    // paged key store, written by indexer_k_write
    Tensor key_slots;                         // [B, max_len] i32: slot of position p of request b
    Tensor query_request;                     // [T] i32: row of key_slots each query belongs to
    Tensor query_limit;                       // [T] i32: last visible position (inclusive), < max_len
    int64_t index_topk = 2048;                // output width
    bool return_scores = false;               // also return the scores (tests, debugging)
    // Optional: q's first R = q_rope->rot_dim() dims are not rotated yet; the op applies apply_rope's rotation at
    // q_positions first (CUDA FP8: inside the q preparation, q only read; else apply_rope on q in place).
    const RopeTable* q_rope = nullptr;
    RopeLayout q_rope_layout = RopeLayout::kNeox;
    Tensor q_positions{};                     // [T] i32, each < q_rope->max_positions() (with q_rope)
};

struct IndexerTopkResult {
    Tensor positions;  // [T, index_topk] i32 positions within the request, -1 padded
    Tensor slots;      // [T, index_topk] i32 key_slots of those positions, -1 padded
    Tensor scores;     // [T, max_len] f32, -inf past query_limit; only with return_scores
};

struct CausalIndicesParams {
    Tensor key_slots;      // [B, max_len] i32
    Tensor query_request;  // [T] i32
    Tensor query_limit;    // [T] i32, inclusive; row t gets positions 0..limit (ascending), -1 padded
    int64_t width = 0;     // output width; must be >= every query_limit + 1
};

// ---- MoE / MLP ----
struct MlpWeights {
    LinearWeight gate;  // [F, D]
    LinearWeight up;    // [F, D]
    LinearWeight down;  // [D, F]
};

// Sigmoid router (noaux_tc). Scores s = sigmoid(W x) in FP32; selection uses s + bias; group score = sum of
// the top-2 biased scores of the group (max score when there is no bias); the top topk_groups groups are kept;
// then top_k experts (ties: lower expert id). weights = s[ids] / (sum s[ids] + 1e-20) * scaling (normalized
// only when `normalize`).
struct RouterParams {
    Tensor x;                           // [T, D] act
    Tensor weight;                      // [E, D] bf16 | f32 (mlp.gate.weight)
    Tensor bias;                        // optional [E] f32 e_score_correction_bias
    int64_t num_groups = 1;             // n_group (E % num_groups == 0)
    int64_t topk_groups = 1;            // topk_group
    int64_t top_k = 8;                  // num_experts_per_tok
    float routed_scaling_factor = 1.0f;
    bool normalize = true;              // norm_topk_prob
};

struct RouterResult {
    Tensor ids;      // [T, top_k] i32, descending biased score
    Tensor weights;  // [T, top_k] f32
    Tensor scores;   // [T, E] f32 unbiased sigmoid scores (for tests / debugging)
};

struct MoeParams {
    Tensor x;                             // [T, D] act
    Tensor ids;                           // [T, k] i32 expert ids (from moe_route)
    Tensor weights;                       // [T, k] f32
    std::span<const MlpWeights> experts;  // all routed experts, indexed by id
    // Optional shared expert: the result is then add(routed, dense_mlp(x, *shared)) (backends may fuse it).
    const MlpWeights* shared = nullptr;
    // Optional act_quant(x) made by x's norm (QuantizedAct::q8 / scales): a backend may read it instead of
    // quantizing x again.
    Tensor x_q8 = Tensor(), x_scales = Tensor();
};

// ---- decode steps with device-resident inputs ----
struct DecodeSlots {
    Tensor key_slots;  // [B, width] i32
    Tensor out_slots;  // [B] i32
};

// A captured sequence of ops (Backend::capture_graph); the backend's own type behind it.
class BackendGraph {
public:
    virtual ~BackendGraph() = default;
};

}  // namespace dsa::backend
