// ModelWeights: the typed tensors of a DSA model (MODEL_SPEC §2), built from a Checkpoint and checked against a
// ModelConfig: every shape, dtype and FP8 scale pairing. Large weights are zero-copy views over the mapped
// shards (FP8 e4m3 + float32 weight_scale_inv [ceil(out/128), ceil(in/128)], or BF16/F32); norm vectors and
// biases are converted to owned F32 tensors. IndexCache Shared layers may lack indexer tensors; the MTP layers
// (model.layers.{num_hidden_layers + k}) are loaded only on request.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backend/linear_weight.h"
#include "base/status.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "tensor/tensor.h"

namespace dsa::model {

using backend::LinearWeight;

struct IndexerWeights {
    LinearWeight wq_b;     // [index_n_heads * index_head_dim, q_lora_rank]
    LinearWeight wk;       // [index_head_dim, hidden]
    Tensor k_norm_weight;  // [index_head_dim] f32 (LayerNorm)
    Tensor k_norm_bias;    // [index_head_dim] f32
    Tensor weights_proj;   // [index_n_heads, hidden] bf16 | f32 (not quantized)
};

struct AttentionWeights {
    // With q LoRA (q_lora_rank > 0): q_a_proj [q_lora_rank, hidden], q_a_layernorm [q_lora_rank] f32,
    // q_b_proj [heads * qk_head_dim, q_lora_rank]. Without: q_proj [heads * qk_head_dim, hidden].
    LinearWeight q_a_proj;
    Tensor q_a_layernorm;
    LinearWeight q_b_proj;
    LinearWeight q_proj;
    LinearWeight kv_a_proj_with_mqa;        // [kv_lora_rank + qk_rope_head_dim, hidden] (576 rows)
    Tensor kv_a_layernorm;                  // [kv_lora_rank] f32
    LinearWeight kv_b_proj;                 // [heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]
    LinearWeight o_proj;                    // [hidden, heads * v_head_dim]
    std::optional<IndexerWeights> indexer;  // absent on IndexCache Shared layers without indexer tensors
};

struct MlpWeights {          // SwiGLU: down(silu(gate x) * up x)
    LinearWeight gate_proj;  // [width, hidden]
    LinearWeight up_proj;    // [width, hidden]
    LinearWeight down_proj;  // [hidden, width]
};

struct MoeWeights {
    Tensor router_weight;                      // [n_routed_experts, hidden] bf16 | f32 (mlp.gate.weight)
    Tensor e_score_correction_bias;            // [n_routed_experts] f32; selection only (topk_method noaux_tc)
    std::vector<MlpWeights> experts;           // n_routed_experts, width moe_intermediate_size
    std::optional<MlpWeights> shared_experts;  // width moe_intermediate_size * n_shared_experts
};

struct LayerWeights {
    int64_t layer_index = 0;
    Tensor input_layernorm;           // [hidden] f32
    Tensor post_attention_layernorm;  // [hidden] f32
    AttentionWeights attn;
    std::optional<MlpWeights> dense_mlp;  // layers < first_k_dense_replace (or not MoE by moe_layer_freq)
    std::optional<MoeWeights> moe;

    bool is_moe() const { return moe.has_value(); }
};

// One MTP / NextN module at model.layers.{num_hidden_layers + k} (MODEL_SPEC §6).
struct MtpWeights {
    Tensor enorm;             // [hidden] f32, applied to the token embedding
    Tensor hnorm;             // [hidden] f32, applied to the previous hidden state
    LinearWeight eh_proj;     // [hidden, 2 * hidden]; input columns [0, hidden) take enorm(embedding)
    Tensor shared_head_norm;  // [hidden] f32
    Tensor shared_head_head;  // [vocab, hidden]: the layer's own copy, else the main lm_head
    Tensor embed_tokens;      // [vocab, hidden]: the layer's own copy, else the main embed_tokens
    bool has_own_head = false;
    bool has_own_embed = false;
    LayerWeights layer;  // a full decoder block: MLA + indexer (always) + FFN
};

struct ModelWeights {
    Tensor embed_tokens;               // [vocab, hidden] bf16 | f32
    Tensor final_norm;                 // [hidden] f32 (model.norm.weight)
    Tensor lm_head;                    // [vocab, hidden] bf16 | f32; the embedding when tie_word_embeddings
    std::vector<LayerWeights> layers;  // num_hidden_layers
    std::vector<MtpWeights> mtp;       // num_nextn_predict_layers when loaded, else empty
    // Checkpoint tensors nothing consumed (a misnamed tensor shows up here); skipped MTP layers not included.
    std::vector<std::string> unused_tensor_names;
};

enum class MtpLoad : uint8_t { kSkip, kLoad };

struct WeightLoadOptions {
    MtpLoad mtp = MtpLoad::kSkip;
};

// Builds ModelWeights from `ckpt`, checking every tensor against `config`. Errors name the tensor, the shard
// file that holds it, and the expected vs actual shape or dtype.
StatusOr<ModelWeights> load_model_weights(const Checkpoint& ckpt, const ModelConfig& config,
                                          const WeightLoadOptions& options = {});

// Calls fn(weight tensor name, linear) for every LinearWeight of the model (main layers, then MTP).
void for_each_linear(const ModelWeights& weights,
                     const std::function<void(const std::string&, const LinearWeight&)>& fn);

}  // namespace dsa::model
