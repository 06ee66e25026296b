// RecordingBackend: a Backend that forwards every op to another one and, while recording is on, keeps the
// expert ids each moe_route returns (one [T, top_k] tensor per MoE layer, in call order). The decoder-layer
// benchmark uses it to count the distinct experts a decode step actually routes to, without any hook in the
// model code. Forwarding adds one virtual call per op; nothing is copied.
#pragma once

#include <utility>
#include <vector>

#include "backend/backend.h"

namespace dsa::backend::bench {

class RecordingBackend final : public Backend {
  public:
    explicit RecordingBackend(Backend& inner) : in_(inner) {}

    void set_recording(bool on) { recording_ = on; }
    // The routed expert ids recorded since the last call (host copies), then forgets them.
    std::vector<Tensor> take_routes() {
        std::vector<Tensor> out;
        for (const Tensor& t : routes_) out.push_back(in_.to_host(t));
        routes_.clear();
        return out;
    }

    Device device() const override { return in_.device(); }
    const Numerics& numerics() const override { return in_.numerics(); }
    DType activation_dtype() const override { return in_.activation_dtype(); }
    Tensor to_device(const Tensor& host) override { return in_.to_device(host); }
    Tensor to_host(const Tensor& t) override { return in_.to_host(t); }

    Tensor embedding(const Tensor& table, const Tensor& ids) override { return in_.embedding(table, ids); }
    Tensor rms_norm(const Tensor& x, const Tensor& w, float eps) override { return in_.rms_norm(x, w, eps); }
    Tensor add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps) override {
        return in_.add_rms_norm(residual, delta, w, eps);
    }
    QuantizedAct rms_norm_q8(const Tensor& x, const Tensor& w, float eps) override {
        return in_.rms_norm_q8(x, w, eps);
    }
    QuantizedAct add_rms_norm_q8(Tensor& residual, const Tensor& delta, const Tensor& w, float eps) override {
        return in_.add_rms_norm_q8(residual, delta, w, eps);
    }
    QuantizedAct rms_norm_q8_and_writes(const Tensor& x, const Tensor& w, float eps, const MlaLatentWriteParams& latent,
                                        const IndexerKeyWriteParams* key) override {
        return in_.rms_norm_q8_and_writes(x, w, eps, latent, key);
    }
    Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps) override {
        return in_.layer_norm(x, w, b, eps);
    }
    Tensor add(const Tensor& a, const Tensor& b) override { return in_.add(a, b); }
    Tensor narrow_last(const Tensor& x, int64_t begin, int64_t end) override { return in_.narrow_last(x, begin, end); }
    Tensor concat_last(std::span<const Tensor> parts) override { return in_.concat_last(parts); }

    Tensor linear(const Tensor& x, const LinearWeight& w, LinearOutput out) override { return in_.linear(x, w, out); }
    std::vector<Tensor> linear_multi(const Tensor& x, std::span<const LinearWeight* const> ws,
                                     LinearOutput out) override {
        return in_.linear_multi(x, ws, out);
    }
    std::vector<Tensor> linear_multi_q8(const QuantizedAct& x, std::span<const LinearWeight* const> ws,
                                        LinearOutput out) override {
        return in_.linear_multi_q8(x, ws, out);
    }
    Tensor lm_head(const Tensor& x, const LinearWeight& head) override { return in_.lm_head(x, head); }

    RopeTable make_rope_table(std::span<const float> inv_freq, int64_t max_positions) override {
        return in_.make_rope_table(inv_freq, max_positions);
    }
    void apply_rope(const RopeParams& p) override { in_.apply_rope(p); }

    void mla_kv_write(const MlaKvWriteParams& p) override { in_.mla_kv_write(p); }
    void mla_latent_write(const MlaLatentWriteParams& p) override { in_.mla_latent_write(p); }
    Tensor mla_kv_read(const MlaKvStore& s, const Tensor& slots) override { return in_.mla_kv_read(s, slots); }
    Tensor mla_absorb_q(const Tensor& q, const LinearWeight& kv_b, const MlaHeadDims& d) override {
        return in_.mla_absorb_q(q, kv_b, d);
    }
    Tensor mla_absorb_o(const Tensor& o, const LinearWeight& kv_b, const MlaHeadDims& d) override {
        return in_.mla_absorb_o(o, kv_b, d);
    }
    MlaExpandedKv mla_expand_kv(const Tensor& latent, const LinearWeight& kv_b, const MlaHeadDims& d) override {
        return in_.mla_expand_kv(latent, kv_b, d);
    }
    Tensor mla_query(const MlaQueryParams& p) override { return in_.mla_query(p); }
    Tensor mla_absorbed_query(const Tensor& q, const LinearWeight& kv_b, const MlaHeadDims& d, const Tensor& positions,
                              const RopeTable* table, RopeLayout layout) override {
        return in_.mla_absorbed_query(q, kv_b, d, positions, table, layout);
    }
    QuantizedAct mla_absorb_o_q8(const Tensor& o, const LinearWeight& kv_b, const MlaHeadDims& d) override {
        return in_.mla_absorb_o_q8(o, kv_b, d);
    }
    Tensor mla_sparse_attention(const MlaSparseParams& p) override { return in_.mla_sparse_attention(p); }
    QuantizedAct mla_sparse_attention_o_q8(const MlaSparseParams& p, const LinearWeight& kv_b,
                                           const MlaHeadDims& d) override {
        return in_.mla_sparse_attention_o_q8(p, kv_b, d);
    }
    Tensor mla_dense_attention(const MlaDenseParams& p) override { return in_.mla_dense_attention(p); }

    void indexer_k_write(const IndexerKWriteParams& p) override { in_.indexer_k_write(p); }
    void indexer_key_write(const IndexerKeyWriteParams& p) override { in_.indexer_key_write(p); }
    IndexerTopkResult indexer_topk(const IndexerTopkParams& p) override { return in_.indexer_topk(p); }
    IndexerTopkResult causal_indices(const CausalIndicesParams& p) override { return in_.causal_indices(p); }

    RouterResult moe_route(const RouterParams& p) override {
        RouterResult r = in_.moe_route(p);
        if (recording_) routes_.push_back(r.ids);
        return r;
    }
    Tensor moe_experts(const MoeParams& p) override { return in_.moe_experts(p); }
    Tensor dense_mlp(const Tensor& x, const MlpWeights& w) override { return in_.dense_mlp(x, w); }
    Tensor dense_mlp_q8(const QuantizedAct& x, const MlpWeights& w) override { return in_.dense_mlp_q8(x, w); }

    StatusOr<std::vector<SampledToken>> sample(const Tensor& logits, std::span<const SampleRow> rows) override {
        return in_.sample(logits, rows);
    }
    DecodeSlots decode_slots(const Tensor& page_table, const Tensor& positions, int64_t page_size,
                             int64_t width) override {
        return in_.decode_slots(page_table, positions, page_size, width);
    }
    void copy_into(const Tensor& host, Tensor& dst) override { in_.copy_into(host, dst); }
    StatusOr<std::unique_ptr<BackendGraph>> capture_graph(const std::function<void()>& body) override {
        return in_.capture_graph(body);
    }
    void replay_graph(BackendGraph& graph) override { in_.replay_graph(graph); }
    int64_t graph_pool_bytes() const override { return in_.graph_pool_bytes(); }
    bool begin_side_branch(int64_t tokens) override { return in_.begin_side_branch(tokens); }
    void end_side_branch() override { in_.end_side_branch(); }
    void join_side_branch() override { in_.join_side_branch(); }

  private:
    Backend& in_;
    bool recording_ = false;
    std::vector<Tensor> routes_;
};

}  // namespace dsa::backend::bench
