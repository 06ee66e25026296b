// DsaModel: the DeepSeek-V3.2 / GLM-5 forward pass (MLA + lightning indexer + sparse attention + MoE, and the
// MTP layer) written once against the backend op set. One call computes one ForwardBatch: it writes the new
// tokens' latent KV and indexer keys into the KvStores, attends over each query's top-k (or every visible
// token when there are at most index_topk), and returns FP32 logits for the requested rows. Device-agnostic: the
// batch's index tensors are uploaded once per call, activations and KV stay on the backend's device, and the
// logits come back to the host once per call (or stay on the device for Backend::sample).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/forward_batch.h"
#include "model/weights.h"

namespace dsa::model {

// How MLA attention is evaluated. Both forms are the same math (MODEL_SPEC §3.5-3.6).
enum class AttentionForm : uint8_t {
    kAuto,      // expanded (MHA) for prefill chunks whose sequences are at most ModelOptions::dense_prefill_max_kv
                // long, absorbed (sparse over the top-k) for longer ones and for single-token steps
    kAbsorbed,  // the 576/512 "MQA" form everywhere (what the sparse kernels run)
    kExpanded,  // k_nope / v up-projected from the latent everywhere
};

struct ForwardOptions {
    AttentionForm attention_form = AttentionForm::kAuto;
    // Tests: per layer that runs its own indexer (index = layer), [T, k] i32 positions to use instead of the
    // indexer's top-k (the indexer still runs and still writes its keys). Empty = use the indexer.
    const std::vector<Tensor>* injected_topk = nullptr;
    // Tests: return the top-k positions each Full layer selected.
    bool capture_topk = false;
    // Leave the logits on the backend's device (the input of Backend::sample) instead of downloading them.
    bool logits_on_device = false;
};

struct ForwardOutput {
    Tensor logits;             // [R, V] f32 (host; the device with logits_on_device), rows = batch.logit_rows
    Tensor hidden;             // [T, D] activations after the final norm, on the backend's device (MTP input)
    std::vector<Tensor> topk;  // host, per layer (index = layer; MTP layer at num_hidden_layers), when captured
};

// A decode step whose inputs already live on the backend's device at fixed addresses (what a CUDA graph
// replays): row b is one new token of sequence b at positions[b], attending to its positions 0..positions[b]
// through page_table row b. Logits are computed for every row.
struct DecodeInputs {
    Tensor token_ids;      // [B] i32
    Tensor positions;      // [B] i32, < width
    Tensor page_table;     // [B, P] i32, pages of each sequence (P * page_size > every position)
    Tensor query_request;  // [B] i32: 0, 1, ..., B - 1
    int64_t page_size = 64;
    int64_t width = 0;  // length of the key-slot rows the step builds (> every position)
};

struct ModelOptions {
    // Number of positions the RoPE table covers (at least the longest sequence served).
    int64_t max_positions = 0;
    // AttentionForm::kAuto: a prefill step runs the expanded (dense MHA) form only while every prefilling
    // sequence has at most this many keys; beyond it the absorbed sparse form (SGLang's
    // SGLANG_NSA_PREFILL_DENSE_ATTN_KV_LEN_THRESHOLD, default 2048). Both apply the same top-k mask; the expanded
    // form up-projects the whole history (keys x heads x (qk + v) values), which long contexts cannot afford.
    int64_t dense_prefill_max_kv = 2048;
};

class DsaModel {
public:
    DsaModel(const ModelConfig& config, const ModelWeights& weights, backend::Backend& backend,
             const ModelOptions& options);

    const ModelConfig& config() const { return config_; }
    int64_t num_layers() const { return config_.num_hidden_layers; }
    bool has_mtp() const { return !weights_.mtp.empty(); }
    // Where activations and KV stores live (the backend's device).
    Device device() const { return be_.device(); }
    backend::Backend& backend() const { return be_; }

    // Main model: embeds batch.token_ids, runs every layer, returns logits for batch.logit_rows.
    ForwardOutput forward(const ForwardBatch& batch, KvStores& kv, const ForwardOptions& options = {});
    // The same step for DecodeInputs: no host data is read or uploaded (capturable in a CUDA graph); absorbed
    // attention, logits [B, V] f32 left on the backend's device. Equal to forward() of the same batch.
    ForwardOutput forward_decode(const DecodeInputs& in, KvStores& kv);

    // MTP layer 0 (MODEL_SPEC §6): batch.token_ids are the NEXT tokens (t+1) at the positions of the
    // main-model tokens t, `prev_hidden` [T, D] the main model's post-final-norm hidden state at t. The MTP
    // layer keeps its own KV in kv.mla[num_hidden_layers] / kv.indexer[num_hidden_layers].
    ForwardOutput forward_mtp(const ForwardBatch& batch, const Tensor& prev_hidden, KvStores& kv,
                              const ForwardOptions& options = {});

private:
    struct StepTensors;  // per-call device copies of the batch metadata
    StepTensors make_step_tensors(const ForwardBatch& batch);
    // Embedding, every main layer, final norm and logits over prepared step tensors.
    ForwardOutput run_main(const StepTensors& st, KvStores& kv, const ForwardOptions& options);
    // x: the input norm's output (with its act_quant where the backend made one).
    Tensor attention(const LayerWeights& lw, int64_t layer, const backend::QuantizedAct& x, const StepTensors& st,
                     KvStores& kv, const ForwardOptions& options, backend::IndexerTopkResult* shared,
                     ForwardOutput* out);
    // wq_r: the indexer's q projection W_qb q_resid (computed with q_b). The layer's keys are written already
    // (attention() writes them with the latent, beside the q_a norm).
    backend::IndexerTopkResult select_tokens(const AttentionWeights& aw, int64_t layer, const Tensor& x,
                                             const Tensor& wq_r, const StepTensors& st, KvStores& kv,
                                             const ForwardOptions& options);
    // The absorbed attention's query [T, H, 576] from q [T, H, d_qk] (its rope part not yet rotated).
    Tensor absorbed_query(const AttentionWeights& aw, const Tensor& q, const StepTensors& st);
    // Sparse attention of q_mla (absorbed_query) over the selected slots, back to [T, H * d_v] (o_proj's input,
    // with its act_quant where the backend made one).
    backend::QuantizedAct attend_absorbed(const AttentionWeights& aw, const Tensor& q_mla, const Tensor& slots,
                                          KvStores& kv, int64_t layer);
    Tensor attend_expanded(const AttentionWeights& aw, const Tensor& q, const Tensor& positions_topk,
                           const StepTensors& st, KvStores& kv, int64_t layer);
    // The layer's MLP or MoE of x.x (x.q8: its norm's act_quant, where the backend made one).
    Tensor ffn(const LayerWeights& lw, const backend::QuantizedAct& x);
    Tensor logits_for_rows(const Tensor& normed, const Tensor& head, const StepTensors& st, bool on_device);
    bool use_expanded(const StepTensors& st, const ForwardOptions& options) const;

    const ModelConfig& config_;
    const ModelWeights& weights_;
    backend::Backend& be_;
    backend::MlaHeadDims head_dims_;
    backend::RopeTable rope_;
    float softmax_scale_ = 0.0f;
    int64_t dense_prefill_max_kv_ = 2048;
    // Routed experts per layer in the backend's struct (index = layer; MTP layers after the main ones).
    std::vector<std::vector<backend::MlpWeights>> experts_;
};

}  // namespace dsa::model
