// The DSA forward pass: embedding -> [MLA + indexer + sparse attention, dense MLP or MoE] x L -> norm -> logits,
// and the MTP layer. Every numeric step is a backend op; this file only sequences them (MODEL_SPEC §3-§6).
// Host <-> device traffic per forward: the batch's index tensors up once (StepTensors), the logits down once.
// Only the test hooks (injected / captured top-k) move data per layer.
#include "model/transformer.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "base/check.h"

namespace dsa::model {

using backend::IndexerTopkResult;
using backend::LinearOutput;
using backend::QuantizedAct;
using backend::RopeLayout;

// The batch's index tensors on the backend's device, uploaded once per forward (CPU backend: the host tensors).
struct DsaModel::StepTensors {
    const ForwardBatch* batch = nullptr;
    Tensor token_ids;      // [T] i32
    Tensor positions;      // [T] i32
    Tensor out_slots;      // [T] i32
    Tensor key_slots;      // [B, max_len] i32
    Tensor query_request;  // [T] i32
    Tensor logit_rows;     // [R] i32
    int64_t num_tokens = 0;
    bool all_rows = false;  // logit_rows is 0 .. num_tokens - 1 (logits of every row, no gather)
};

namespace {

backend::MlpWeights to_backend(const MlpWeights& w) { return {w.gate_proj, w.up_proj, w.down_proj}; }

// Whether host logit_rows [R] is 0, 1, ..., num_tokens - 1 (then no gather is needed).
bool rows_are_all_tokens(const Tensor& rows, int64_t num_tokens) {
    if (rows.dim(0) != num_tokens) return false;
    for (int64_t i = 0; i < num_tokens; ++i) {
        if (rows.data<int32_t>()[i] != i) return false;
    }
    return true;
}

// Test hook only (ForwardOptions::injected_topk): translates host [T, k] positions to slots through
// key_slots[query_request[t]] on the host, -1 kept. The indexer's own selection comes with its slots.
Tensor positions_to_slots_host(const Tensor& positions, const ForwardBatch& batch) {
    const int64_t num_tokens = positions.dim(0), width = positions.dim(1), max_len = batch.key_slots.dim(1);
    Tensor slots = Tensor::empty({num_tokens, width}, DType::kI32, Device::kCPU, "injected_slots");
    const int32_t* p = positions.data<int32_t>();
    const int32_t* ks = batch.key_slots.data<int32_t>();
    const int32_t* qr = batch.query_request.data<int32_t>();
    const int32_t* qpos = batch.positions.data<int32_t>();
    int32_t* s = slots.data<int32_t>();
    for (int64_t t = 0; t < num_tokens; ++t) {
        for (int64_t j = 0; j < width; ++j) {
            int32_t pos = p[t * width + j];
            DSA_CHECK_LE(pos, qpos[t]) << "injected top-k position is not causal for token " << t;
            s[t * width + j] = pos < 0 ? -1 : ks[qr[t] * max_len + pos];
        }
    }
    return slots;
}

}  // namespace

DsaModel::DsaModel(const ModelConfig& config, const ModelWeights& weights, backend::Backend& backend,
                   const ModelOptions& options)
    : config_(config), weights_(weights), be_(backend) {
    head_dims_ = {config.num_attention_heads, config.qk_nope_head_dim, config.v_head_dim};
    softmax_scale_ = static_cast<float>(config.softmax_scale());
    dense_prefill_max_kv_ = options.dense_prefill_max_kv;
    const int64_t max_positions = options.max_positions > 0 ? options.max_positions : 4096;
    std::vector<float> inv_freq = config.rope_inv_freq();
    rope_ = be_.make_rope_table(inv_freq, max_positions);
    auto add_experts = [&](const LayerWeights& lw) {
        std::vector<backend::MlpWeights> e;
        if (lw.moe) {
            for (const MlpWeights& w : lw.moe->experts) e.push_back(to_backend(w));
        }
        experts_.push_back(std::move(e));
    };
    for (const LayerWeights& lw : weights.layers) add_experts(lw);
    for (const MtpWeights& m : weights.mtp) add_experts(m.layer);
}

DsaModel::StepTensors DsaModel::make_step_tensors(const ForwardBatch& batch) {
    StepTensors st;
    st.batch = &batch;
    st.num_tokens = batch.num_tokens();
    st.token_ids = be_.to_device(batch.token_ids);
    st.positions = be_.to_device(batch.positions);
    st.out_slots = be_.to_device(batch.out_slots);
    st.key_slots = be_.to_device(batch.key_slots);
    st.query_request = be_.to_device(batch.query_request);
    st.logit_rows = be_.to_device(batch.logit_rows);
    st.all_rows = rows_are_all_tokens(batch.logit_rows, st.num_tokens);
    return st;
}

bool DsaModel::use_expanded(const StepTensors& st, const ForwardOptions& options) const {
    switch (options.attention_form) {
        case AttentionForm::kAbsorbed: return false;
        case AttentionForm::kExpanded: return true;
        case AttentionForm::kAuto: break;
    }
    bool prefill = false;
    for (const SequenceSpan& s : st.batch->seqs) {
        if (s.num_new <= 1) continue;
        if (s.length() > dense_prefill_max_kv_) return false;
        prefill = true;
    }
    return prefill;
}

ForwardOutput DsaModel::forward(const ForwardBatch& batch, KvStores& kv, const ForwardOptions& options) {
    return run_main(make_step_tensors(batch), kv, options);
}

ForwardOutput DsaModel::forward_decode(const DecodeInputs& in, KvStores& kv) {
    StepTensors st;
    st.num_tokens = in.token_ids.dim(0);
    DSA_CHECK(in.positions.dim(0) == st.num_tokens && in.query_request.dim(0) == st.num_tokens &&
              in.page_table.dim(0) == st.num_tokens)
        << "forward_decode: " << st.num_tokens << " tokens, " << in.positions.dim(0) << " positions, "
        << in.page_table.dim(0) << " page-table rows";
    st.token_ids = in.token_ids;
    st.positions = in.positions;
    st.query_request = in.query_request;
    backend::DecodeSlots slots = be_.decode_slots(in.page_table, in.positions, in.page_size, in.width);
    st.key_slots = slots.key_slots;
    st.out_slots = slots.out_slots;
    st.all_rows = true;
    ForwardOptions options;
    options.attention_form = AttentionForm::kAbsorbed;  // one token per sequence: the absorbed form
    options.logits_on_device = true;
    return run_main(st, kv, options);
}

ForwardOutput DsaModel::run_main(const StepTensors& st, KvStores& kv, const ForwardOptions& options) {
    ForwardOutput out;
    if (options.capture_topk) out.topk.resize(config_.num_hidden_layers + weights_.mtp.size());
    Tensor h = be_.embedding(weights_.embed_tokens, st.token_ids);  // residual stream
    h.set_name("residual");
    const float eps = static_cast<float>(config_.rms_norm_eps);
    // The input norms feed FP8 projections: they may also return the act_quant of their output (QuantizedAct).
    QuantizedAct x = be_.rms_norm_q8(h, weights_.layers.at(0).input_layernorm, eps);
    IndexerTopkResult shared_topk;  // the last Full layer's selection, reused by IndexCache Shared layers
    const int64_t num_layers = config_.num_hidden_layers;
    for (int64_t l = 0; l < num_layers; ++l) {
        const LayerWeights& lw = weights_.layers[l];
        Tensor a = attention(lw, l, x, st, kv, options, &shared_topk, &out);
        Tensor f = ffn(lw, be_.add_rms_norm_q8(h, a, lw.post_attention_layernorm, eps));
        if (l + 1 < num_layers) {
            x = be_.add_rms_norm_q8(h, f, weights_.layers[l + 1].input_layernorm, eps);
        } else {
            x = QuantizedAct{be_.add_rms_norm(h, f, weights_.final_norm, eps), Tensor(), Tensor()};
        }
    }
    out.hidden = x.x;
    out.logits = logits_for_rows(x.x, weights_.lm_head, st, options.logits_on_device);
    return out;
}

ForwardOutput DsaModel::forward_mtp(const ForwardBatch& batch, const Tensor& prev_hidden, KvStores& kv,
                                    const ForwardOptions& options) {
    DSA_CHECK(has_mtp()) << "forward_mtp without MTP weights (load with MtpLoad::kLoad)";
    const MtpWeights& m = weights_.mtp.at(0);
    const int64_t layer = config_.num_hidden_layers;
    const float eps = static_cast<float>(config_.rms_norm_eps);
    StepTensors st = make_step_tensors(batch);
    DSA_CHECK_EQ(prev_hidden.dim(0), st.num_tokens);

    ForwardOutput out;
    if (options.capture_topk) out.topk.resize(layer + 1);
    Tensor e = be_.embedding(m.embed_tokens, st.token_ids);
    const Tensor parts[2] = {be_.rms_norm(e, m.enorm, eps), be_.rms_norm(prev_hidden, m.hnorm, eps)};
    Tensor h = be_.linear(be_.concat_last(parts), m.eh_proj);  // embedding half first (MODEL_SPEC §6)
    h.set_name("mtp_residual");
    const QuantizedAct xa = be_.rms_norm_q8(h, m.layer.input_layernorm, eps);
    IndexerTopkResult shared_topk;
    Tensor a = attention(m.layer, layer, xa, st, kv, options, &shared_topk, &out);
    Tensor f = ffn(m.layer, be_.add_rms_norm_q8(h, a, m.layer.post_attention_layernorm, eps));
    Tensor x = be_.add_rms_norm(h, f, m.shared_head_norm, eps);
    out.hidden = x;
    out.logits = logits_for_rows(x, m.shared_head_head, st, options.logits_on_device);
    return out;
}

Tensor DsaModel::logits_for_rows(const Tensor& normed, const Tensor& head, const StepTensors& st, bool on_device) {
    // The row gather is an embedding lookup with `normed` as the table (exact: its rows are activations already).
    Tensor rows = st.all_rows ? normed : be_.embedding(normed, st.logit_rows);
    backend::LinearWeight head_weight{head, Tensor()};
    Tensor logits = be_.lm_head(rows, head_weight);
    return on_device ? logits : be_.to_host(logits);
}

Tensor DsaModel::attention(const LayerWeights& lw, int64_t layer, const QuantizedAct& x, const StepTensors& st,
                           KvStores& kv, const ForwardOptions& options, IndexerTopkResult* shared,
                           ForwardOutput* out) {
    const AttentionWeights& aw = lw.attn;
    const float eps = static_cast<float>(config_.rms_norm_eps);
    const int64_t num_tokens = st.num_tokens, num_heads = config_.num_attention_heads;
    const int64_t d_n = config_.qk_nope_head_dim, d_qk = config_.qk_head_dim(), r_kv = config_.kv_lora_rank;

    // The projections that read x (q_a, kv_a and the indexer's wk, where present) in one linear_multi: the CUDA
    // backend quantizes x once and runs them in one launch; the results equal separate linear() calls.
    std::vector<const backend::LinearWeight*> x_proj;
    if (aw.q_a_proj.defined()) x_proj.push_back(&aw.q_a_proj);
    x_proj.push_back(&aw.kv_a_proj_with_mqa);
    if (aw.indexer) x_proj.push_back(&aw.indexer->wk);
    const std::vector<Tensor> x_out = be_.linear_multi_q8(x, x_proj);
    const Tensor& kv_a = x_out[aw.q_a_proj.defined() ? 1 : 0];

    // Latent KV: c_kv = RMSNorm(kv_a[:512]), k_pe = RoPE(kv_a[512:]), written before attending (one op); the
    // indexer's key k^I = RoPE(LayerNorm(W_k x)) on the first 64 dims, written for every token (MODEL_SPEC §4.8).
    // Both only need x's projections: they go with the q_a norm (one op; one launch where the backend can).
    const RopeLayout mla_layout = config_.rope_interleave ? RopeLayout::kInterleaved : RopeLayout::kNeox;
    DSA_CHECK_EQ(kv_a.dim(1), r_kv + config_.qk_rope_head_dim) << "kv_a width";
    const backend::MlaLatentWriteParams latent{kv_a,          aw.kv_a_layernorm, eps, st.positions, &rope_,
                                               mla_layout,    st.out_slots,      &kv.mla.at(layer)};
    std::optional<backend::IndexerKeyWriteParams> key;
    if (aw.indexer) {
        DSA_CHECK(kv.indexer.at(layer).data.defined()) << "layer " << layer << " has no indexer key store";
        const RopeLayout layout = config_.indexer_rope_interleave ? RopeLayout::kInterleaved : RopeLayout::kNeox;
        key = backend::IndexerKeyWriteParams{x_out.back(), aw.indexer->k_norm_weight, aw.indexer->k_norm_bias, 1e-6f,
                                             st.positions, &rope_, layout, st.out_slots, &kv.indexer.at(layer)};
    }
    bool written = false;

    // Queries (MODEL_SPEC §3.3): q_resid = RMSNorm(W_qa x) also feeds the indexer, so q_b and the indexer's wq_b
    // run as one linear_multi (one act_quant, made by the norm where the backend can).
    Tensor q, wq_r;
    if (aw.q_a_proj.defined()) {
        const QuantizedAct q_resid =
            be_.rms_norm_q8_and_writes(x_out[0], aw.q_a_layernorm, eps, latent, key ? &*key : nullptr);
        written = true;
        std::vector<const backend::LinearWeight*> r_proj = {&aw.q_b_proj};
        if (aw.indexer) r_proj.push_back(&aw.indexer->wq_b);
        const std::vector<Tensor> r_out = be_.linear_multi_q8(q_resid, r_proj);
        q = r_out[0].view({num_tokens, num_heads, d_qk});
        if (aw.indexer) wq_r = r_out[1];
    } else {
        q = be_.linear(x.x, aw.q_proj).view({num_tokens, num_heads, d_qk});
    }
    const bool expanded = use_expanded(st, options);  // absorbed: q's RoPE is applied where its query is built
    if (expanded) be_.apply_rope({q, st.positions, &rope_, mla_layout, d_n});
    if (!written) {
        be_.mla_latent_write(latent);
        if (key) be_.indexer_key_write(*key);
    }

    // The absorbed attention's query (q_nope · W_UK joined to the rotated rope part) does not depend on the token
    // selection: where the backend branches (small decode steps on the GPU), it runs beside the indexer.
    backend::SideBranch branch(be_, !expanded && aw.indexer ? num_tokens : 0);
    Tensor q_mla;
    if (branch.active()) {
        q_mla = absorbed_query(aw, q, st);
        branch.end();
    }

    // Token selection: own indexer (Full layer) or the previous Full layer's choice (IndexCache Shared). Every
    // layer indexes the same slot space, so the Full layer's slots are valid for the Shared layers as they are.
    IndexerTopkResult sel;
    if (aw.indexer) {
        DSA_CHECK(wq_r.defined()) << "the indexer needs q_lora_rank > 0";
        sel = select_tokens(aw, layer, x.x, wq_r, st, kv, options);
        *shared = sel;
        if (options.capture_topk) out->topk.at(layer) = be_.to_host(sel.positions);
    } else {
        DSA_CHECK(shared->positions.defined() && shared->slots.defined())
            << "layer " << layer << " shares top-k but no Full layer precedes it";
        sel = *shared;
    }

    branch.join();
    if (!expanded && !q_mla.defined()) q_mla = absorbed_query(aw, q, st);
    if (expanded) {
        Tensor o = attend_expanded(aw, q, sel.positions, st, kv, layer);
        return be_.linear(o.view({num_tokens, num_heads * config_.v_head_dim}), aw.o_proj);
    }
    // o_proj's input may come with its act_quant made by absorb_o (QuantizedAct, as the norms' outputs).
    const backend::LinearWeight* o_proj[1] = {&aw.o_proj};
    return be_.linear_multi_q8(attend_absorbed(aw, q_mla, sel.slots, kv, layer), o_proj)[0];
}

IndexerTopkResult DsaModel::select_tokens(const AttentionWeights& aw, int64_t layer, const Tensor& x,
                                          const Tensor& wq_r, const StepTensors& st, KvStores& kv,
                                          const ForwardOptions& options) {
    const IndexerWeights& iw = *aw.indexer;
    const int64_t num_tokens = st.num_tokens, num_heads = config_.index_n_heads, dim = config_.index_head_dim;
    const RopeLayout layout = config_.indexer_rope_interleave ? RopeLayout::kInterleaved : RopeLayout::kNeox;

    // q's first 64 dims are rotated by indexer_topk (the CUDA FP8 path inside its q preparation: no launch).
    Tensor q = wq_r.view({num_tokens, num_heads, dim});
    Tensor w = be_.linear(x, backend::LinearWeight{iw.weights_proj, Tensor()}, LinearOutput::kF32);

    if (options.injected_topk != nullptr && layer < static_cast<int64_t>(options.injected_topk->size()) &&
        (*options.injected_topk)[layer].defined()) {
        IndexerTopkResult r;
        const Tensor& pos = (*options.injected_topk)[layer];
        r.positions = be_.to_device(pos);
        r.slots = be_.to_device(positions_to_slots_host(pos, *st.batch));
        return r;
    }
    backend::IndexerTopkParams p;
    p.q = q;
    p.q_rope = &rope_;
    p.q_rope_layout = layout;
    p.q_positions = st.positions;
    p.weights = w;
    p.keys = &kv.indexer.at(layer);
    p.key_slots = st.key_slots;
    p.query_request = st.query_request;
    p.query_limit = st.positions;
    p.index_topk = config_.index_topk;
    return be_.indexer_topk(p);
}

Tensor DsaModel::absorbed_query(const AttentionWeights& aw, const Tensor& q, const StepTensors& st) {
    // q's rope part is not rotated yet: it is rotated while joined to the absorbed q_nope (mla_query).
    const RopeLayout layout = config_.rope_interleave ? RopeLayout::kInterleaved : RopeLayout::kNeox;
    return be_.mla_absorbed_query(q, aw.kv_b_proj, head_dims_, st.positions, &rope_, layout);
}

QuantizedAct DsaModel::attend_absorbed(const AttentionWeights& aw, const Tensor& q_mla, const Tensor& slots,
                                       KvStores& kv, int64_t layer) {
    backend::MlaSparseParams p;
    p.q = q_mla;
    p.kv = &kv.mla.at(layer);
    p.slots = slots;
    p.softmax_scale = softmax_scale_;
    return be_.mla_sparse_attention_o_q8(p, aw.kv_b_proj, head_dims_);
}

Tensor DsaModel::attend_expanded(const AttentionWeights& aw, const Tensor& q, const Tensor& positions_topk,
                                 const StepTensors& st, KvStores& kv, int64_t layer) {
    // Per sequence: up-project its whole latent history, attend with the causal + top-k mask. The per-sequence
    // inputs are row views of the step's device tensors (no copies); the outputs are joined in token order.
    const ForwardBatch& batch = *st.batch;
    const int64_t num_heads = config_.num_attention_heads, d_v = config_.v_head_dim;
    std::vector<Tensor> outs;
    for (int64_t b = 0; b < batch.num_seqs(); ++b) {
        const SequenceSpan& s = batch.seqs[b];
        const int64_t begin = s.token_offset, end = s.token_offset + s.num_new;
        Tensor latent = be_.mla_kv_read(kv.mla.at(layer), st.key_slots.select(b).slice(0, s.length()));
        backend::MlaExpandedKv kvx = be_.mla_expand_kv(latent, aw.kv_b_proj, head_dims_);
        backend::MlaDenseParams p;
        p.q = q.slice(begin, end);
        p.k = kvx.k;
        p.v = kvx.v;
        p.q_positions = st.positions.slice(begin, end);
        p.allowed = positions_topk.slice(begin, end);
        p.softmax_scale = softmax_scale_;
        // [n, H, d_v] -> [1, n * H * d_v]: concatenating these along the last dim stacks the rows in token order.
        outs.push_back(be_.mla_dense_attention(p).view({1, s.num_new * num_heads * d_v}));
    }
    if (outs.size() == 1) return outs[0].view({st.num_tokens, num_heads, d_v});
    return be_.concat_last(outs).view({st.num_tokens, num_heads, d_v});
}

Tensor DsaModel::ffn(const LayerWeights& lw, const QuantizedAct& xa) {
    if (!lw.moe) return be_.dense_mlp_q8(xa, to_backend(*lw.dense_mlp));
    const Tensor& x = xa.x;
    const MoeWeights& moe = *lw.moe;
    backend::RouterParams rp;
    rp.x = x;
    rp.weight = moe.router_weight;
    rp.bias = moe.e_score_correction_bias;
    rp.num_groups = config_.n_group;
    rp.topk_groups = config_.topk_group;
    rp.top_k = config_.num_experts_per_tok;
    rp.routed_scaling_factor = static_cast<float>(config_.routed_scaling_factor);
    rp.normalize = config_.norm_topk_prob;
    backend::RouterResult route = be_.moe_route(rp);
    const int64_t layer = lw.layer_index;
    DSA_CHECK(layer >= 0 && layer < static_cast<int64_t>(experts_.size())) << "no experts for layer " << layer;
    const auto& experts = experts_[layer];
    backend::MoeParams mp;
    mp.x = x;
    mp.x_q8 = xa.q8, mp.x_scales = xa.scales;  // the norm's act_quant of x, where it made one
    mp.ids = route.ids;
    mp.weights = route.weights;
    mp.experts = experts;
    // The shared expert goes in with the routed ones: the result is add(routed, dense_mlp(x, shared)), and a
    // backend may run it as one more expert group of the same launches (the CUDA decode path does).
    backend::MlpWeights shared;
    if (moe.shared_experts) {
        shared = to_backend(*moe.shared_experts);
        mp.shared = &shared;
    }
    return be_.moe_experts(mp);
}

}  // namespace dsa::model
