// Backend: the op set of the DSA models (DeepSeek-V3.2 / GLM-5) behind one interface. The model is written once
// against it; the CPU backend (cpu/) is the reference numerics, the CUDA backend implements the same ops.
// Ops take tensors and plain parameter structs only (no requests, no page objects). Outputs are new tensors on
// the backend's device; ops named *_write / apply_* mutate their target in place. Shapes and dtypes are
// checked at the op boundary (a mismatch is a programming error and aborts).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "backend/kv_layout.h"
#include "backend/linear_weight.h"
#include "backend/op_params.h"
#include "backend/sampling_params.h"
#include "base/check.h"
#include "base/status.h"
#include "tensor/tensor.h"

namespace dsa::backend {

// Where the reference rounds. All off = the whole model in FP32 (parity with a float32 transformers run).
// "Activation" below means a tensor the real model stores in BF16: embedding rows, norm outputs, the residual
// stream, linear outputs, RoPE / Hadamard outputs, attention outputs, the SwiGLU product, the MoE sum.
struct Numerics {
    // Round every activation to bf16 precision (values stay in f32 tensors on the CPU).
    bool round_activations_to_bf16 = false;
    // Before every FP8-weight linear: quantize x per token per 128 input channels to e4m3 and back
    // (DeepSeek act_quant). BF16/F32-weight linears are never quantized.
    bool fp8_activation_quant = false;
    // Runtime activation scales (act_quant, indexer q/k) are powers of two, 2^ceil(log2(amax/448)) (UE8M0).
    bool ue8m0_scales = false;
    // DeepSeek inference indexer: Hadamard on q^I and k^I, e4m3 with one scale per 128-vector, FP8 key store.
    // Off: plain FP32 dot products, no Hadamard, F32 key store (the transformers numerics).
    bool indexer_fp8 = false;
    // The MLA latent store is the 656-byte FP8 layout (c_kv per-128 e4m3 with power-of-two scales, k_pe bf16);
    // everything read back from it is the dequantized value.
    bool kv_cache_fp8 = false;

    static Numerics fp32() { return {}; }
    // transformers in bfloat16: bf16 activations, no FP8 anywhere at run time.
    static Numerics bf16() { return {.round_activations_to_bf16 = true}; }
    // DeepSeek's own inference code (V3.2) as deployed: FP8 activations with UE8M0 scales, FP8 indexer,
    // FP8 KV cache.
    static Numerics deepseek_fp8() { return {true, true, true, true, true}; }

    // The store formats these numerics imply (the kvcache module allocates with them).
    MlaKvFormat mla_kv_format() const {
        return kv_cache_fp8 ? MlaKvFormat::kFp8
                            : (round_activations_to_bf16 ? MlaKvFormat::kBF16 : MlaKvFormat::kF32);
    }
    IndexerKeyFormat indexer_key_format() const {
        return indexer_fp8 ? IndexerKeyFormat::kFp8 : IndexerKeyFormat::kF32;
    }
};

class Backend {
public:
    virtual ~Backend() = default;

    virtual Device device() const = 0;
    virtual const Numerics& numerics() const = 0;
    // Dtype of activation tensors on this backend (CPU: f32; the values are bf16-rounded per Numerics).
    virtual DType activation_dtype() const = 0;

    // ---- memory ----
    // A copy of a host tensor on this backend's device (CPU backend: returns the tensor itself).
    virtual Tensor to_device(const Tensor& host) = 0;
    // A host copy of a tensor of this backend (CPU backend: returns the tensor itself).
    virtual Tensor to_host(const Tensor& t) = 0;

    // ---- embedding, norms, elementwise ----
    // table [V, D] bf16|f32, ids [T] i32 -> [T, D] activations.
    virtual Tensor embedding(const Tensor& table, const Tensor& ids) = 0;
    // x [T, D], weight [D] f32 -> [T, D]: w * x / sqrt(mean(x^2) + eps) in FP32.
    virtual Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) = 0;
    // residual [T, D] updated in place: residual = residual + delta (FP32 add, then rounded to an activation);
    // returns rms_norm(residual).
    virtual Tensor add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps) = 0;
    // rms_norm / add_rms_norm of an input of FP8 linears (QuantizedAct): .x is what those ops return; a backend
    // may also return act_quant(.x) for linear_multi_q8. Default: .x only.
    virtual QuantizedAct rms_norm_q8(const Tensor& x, const Tensor& weight, float eps) {
        return {rms_norm(x, weight, eps), Tensor(), Tensor()};
    }
    virtual QuantizedAct add_rms_norm_q8(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps) {
        return {add_rms_norm(residual, delta, weight, eps), Tensor(), Tensor()};
    }
    // rms_norm_q8(x) with the MLA latent write and (key not null) the indexer key write, which neither read nor
    // write x or its norm: the results of the three ops (the default runs the writes, then the norm); backends may
    // run them in one launch.
    virtual QuantizedAct rms_norm_q8_and_writes(const Tensor& x, const Tensor& weight, float eps,
                                                const MlaLatentWriteParams& latent, const IndexerKeyWriteParams* key) {
        mla_latent_write(latent);
        if (key != nullptr) indexer_key_write(*key);
        return rms_norm_q8(x, weight, eps);
    }
    // x [T, D], weight/bias [D] f32 -> [T, D]: standard LayerNorm (biased variance) in FP32.
    virtual Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) = 0;
    // a, b [same shape] -> a + b (FP32 add, rounded to an activation).
    virtual Tensor add(const Tensor& a, const Tensor& b) = 0;
    // x [..., D] -> x[..., begin:end] as a new contiguous tensor.
    virtual Tensor narrow_last(const Tensor& x, int64_t begin, int64_t end) = 0;
    // parts [..., D_i] with equal leading dims -> [..., sum D_i].
    virtual Tensor concat_last(std::span<const Tensor> parts) = 0;

    // ---- linear ----
    // x [T, in] -> [T, out] = x · W^T, FP32 accumulation. FP8 weights are block-dequantized (MODEL_SPEC §7);
    // with fp8_activation_quant, x is act_quant-ed per 128 channels first. kActivation rounds the output per
    // Numerics; kF32 keeps FP32 (indexer weights_proj, router-like uses).
    virtual Tensor linear(const Tensor& x, const LinearWeight& w, LinearOutput out = LinearOutput::kActivation) = 0;
    // Several projections of the same x (MLA q_a / kv_a and the indexer's wk): one linear() per weight, in order.
    // Backends may fuse them (CUDA: one act_quant and one streaming GEMM launch); results equal separate calls.
    virtual std::vector<Tensor> linear_multi(const Tensor& x, std::span<const LinearWeight* const> ws,
                                             LinearOutput out = LinearOutput::kActivation) {
        std::vector<Tensor> ys;
        ys.reserve(ws.size());
        for (const LinearWeight* w : ws) ys.push_back(linear(x, *w, out));
        return ys;
    }
    // linear_multi of x.x (one weight allowed); a backend may use x.q8 / x.scales instead of quantizing x.x
    // itself (the results are the same: they are act_quant(x.x)).
    virtual std::vector<Tensor> linear_multi_q8(const QuantizedAct& x, std::span<const LinearWeight* const> ws,
                                                LinearOutput out = LinearOutput::kActivation) {
        return linear_multi(x.x, ws, out);
    }
    // Final logits: x [T, D], head [V, D] -> [T, V] f32, never quantized or rounded.
    virtual Tensor lm_head(const Tensor& x, const LinearWeight& head) = 0;

    // ---- RoPE ----
    // cos/sin tables from the caller's inverse frequencies (YaRN-corrected by the config module).
    virtual RopeTable make_rope_table(std::span<const float> inv_freq, int64_t max_positions) = 0;
    // Rotates p.x in place (see RopeParams).
    virtual void apply_rope(const RopeParams& p) = 0;

    // ---- MLA ----
    // Writes c_kv and k_pe of each token into its slot of the latent store (quantizing for the FP8 layout).
    virtual void mla_kv_write(const MlaKvWriteParams& p) = 0;
    // RMSNorm + RoPE of kv_a and the latent write (MlaLatentWriteParams). Default: the three ops; backends may fuse.
    virtual void mla_latent_write(const MlaLatentWriteParams& p) {
        const int64_t tokens = p.kv_a.dim(0), latent = kMlaLatentDim, rot = p.kv_a.dim(1) - latent;
        Tensor c_kv = rms_norm(narrow_last(p.kv_a, 0, latent), p.norm_weight, p.eps);
        Tensor k_pe = narrow_last(p.kv_a, latent, latent + rot).view({tokens, 1, rot});
        apply_rope({k_pe, p.positions, p.table, p.layout, 0});
        mla_kv_write({c_kv, k_pe.view({tokens, rot}), p.slots, p.store});
    }
    // Reads back the latent of the given slots: store, slots [N] i32 -> [N, 576] f32 (dequantized).
    virtual Tensor mla_kv_read(const MlaKvStore& store, const Tensor& slots) = 0;
    // q_nope [T, H, d_n] -> q̃ [T, H, 512], q̃[h] = W_UK[h]^T q_nope[h] (W from the dequantized kv_b_proj).
    virtual Tensor mla_absorb_q(const Tensor& q_nope, const LinearWeight& kv_b, const MlaHeadDims& dims) = 0;
    // õ [T, H, 512] -> o [T, H, d_v], o[h] = W_UV[h] õ[h].
    virtual Tensor mla_absorb_o(const Tensor& o_latent, const LinearWeight& kv_b, const MlaHeadDims& dims) = 0;
    // latent [S, 576] -> per-head keys [S, H, d_n + 64] = [W_UK c_kv ; k_pe] and values [S, H, d_v] = W_UV c_kv.
    virtual MlaExpandedKv mla_expand_kv(const Tensor& latent, const LinearWeight& kv_b, const MlaHeadDims& dims) = 0;
    // [q_absorbed ; roped q_pe] -> [T, H, 512 + R] (MlaQueryParams). Default: narrow, RoPE, concat; backends may fuse.
    virtual Tensor mla_query(const MlaQueryParams& p) {
        const int64_t dim = p.q.dim(2), rot = p.table->rot_dim();
        Tensor q_pe = narrow_last(p.q, dim - rot, dim);
        apply_rope({q_pe, p.positions, p.table, p.layout, 0});
        const Tensor parts[2] = {p.q_absorbed, q_pe};
        return concat_last(parts);
    }
    // The absorbed attention's query straight from q [T, H, d_n + R] (rope part not rotated yet): equal to
    // mla_query({mla_absorb_q(narrow_last(q, 0, d_n)), q, ...}), which the default runs; backends may fuse.
    virtual Tensor mla_absorbed_query(const Tensor& q, const LinearWeight& kv_b, const MlaHeadDims& dims,
                                      const Tensor& positions, const RopeTable* table, RopeLayout layout) {
        Tensor q_nope = narrow_last(q, 0, dims.nope_dim);
        return mla_query({mla_absorb_q(q_nope, kv_b, dims), q, positions, table, layout});
    }
    // mla_absorb_o as the input of an FP8 linear (o_proj): .x = mla_absorb_o(o_latent) viewed [T, H * d_v]; a
    // backend may also return act_quant(.x) for linear_multi_q8. Default: .x only.
    virtual QuantizedAct mla_absorb_o_q8(const Tensor& o_latent, const LinearWeight& kv_b, const MlaHeadDims& dims) {
        Tensor o = mla_absorb_o(o_latent, kv_b, dims);
        return {o.view({o.dim(0), o.dim(1) * o.dim(2)}), Tensor(), Tensor()};
    }
    // Absorbed sparse attention over latent-store slots -> [T, H, 512].
    virtual Tensor mla_sparse_attention(const MlaSparseParams& p) = 0;
    // mla_absorb_o_q8(mla_sparse_attention(p), kv_b, dims), which the default runs; a backend may merge the
    // attention's split-K partials inside absorb_o.
    virtual QuantizedAct mla_sparse_attention_o_q8(const MlaSparseParams& p, const LinearWeight& kv_b,
                                                   const MlaHeadDims& dims) {
        return mla_absorb_o_q8(mla_sparse_attention(p), kv_b, dims);
    }
    // Expanded (MHA) attention for one request with a causal and optional index mask -> [T, H, d_v].
    virtual Tensor mla_dense_attention(const MlaDenseParams& p) = 0;

    // ---- lightning indexer ----
    // Writes k^I (after LayerNorm and RoPE) into the paged key store; with indexer_fp8 it applies the Hadamard
    // rotation and FP8 quantization first.
    virtual void indexer_k_write(const IndexerKWriteParams& p) = 0;
    // LayerNorm + RoPE of wk_x and the key write (IndexerKeyWriteParams). Default: the three ops; backends may fuse.
    virtual void indexer_key_write(const IndexerKeyWriteParams& p) {
        const int64_t tokens = p.wk_x.dim(0), dim = p.wk_x.dim(1);
        Tensor k = layer_norm(p.wk_x, p.norm_weight, p.norm_bias, p.eps).view({tokens, 1, dim});
        apply_rope({k, p.positions, p.table, p.layout, 0});
        indexer_k_write({k.view({tokens, dim}), p.slots, p.store});
    }
    // Scores + exact top-k per query (see IndexerTopkParams / IndexerTopkResult).
    virtual IndexerTopkResult indexer_topk(const IndexerTopkParams& p) = 0;
    // Every visible position of each query (what top-k returns when visible <= width), without scoring.
    virtual IndexerTopkResult causal_indices(const CausalIndicesParams& p) = 0;

    // ---- MoE / MLP ----
    // Sigmoid router with correction bias and group limit -> expert ids and weights.
    virtual RouterResult moe_route(const RouterParams& p) = 0;
    // Routed experts: x [T, D] -> [T, D] = sum_k weights[t,k] * Expert_{ids[t,k]}(x[t]) accumulated in FP32.
    virtual Tensor moe_experts(const MoeParams& p) = 0;
    // SwiGLU MLP (dense layers and the shared expert): down(silu(gate x) * up x), x [T, D] -> [T, D].
    virtual Tensor dense_mlp(const Tensor& x, const MlpWeights& w) = 0;
    // dense_mlp of x.x; a backend may read x.q8 (the norm's act_quant) instead of quantizing x.x again.
    virtual Tensor dense_mlp_q8(const QuantizedAct& x, const MlpWeights& w) { return dense_mlp(x.x, w); }

    // ---- sampling ----
    // Samples rows of the logits [R, V] f32 on this backend's device (API_SPEC §8.2 without the grammar mask;
    // sampling_params.h): one result per entry of `rows`, in order. Bad parameters -> InvalidArgument.
    // Backends without a device sampler (the CPU one: the engine's sampler runs there) return Unimplemented.
    virtual StatusOr<std::vector<SampledToken>> sample(const Tensor& logits, std::span<const SampleRow> rows) {
        (void)logits;
        (void)rows;
        return unimplemented("sampling on the {} backend", device_name(device()));
    }

    // ---- decode steps with device-resident inputs (CUDA graphs) ----
    // Key slots of one-token-per-sequence decode rows from the page tables: key_slots[b, p] =
    // page_table[b, p / page_size] * page_size + p % page_size for p <= positions[b], -1 for the rest of the
    // width; out_slots[b] = key_slots[b, positions[b]]. page_table [B, P] i32, positions [B] i32 (< width and
    // < P * page_size; device data is range-checked in the kernel).
    virtual DecodeSlots decode_slots(const Tensor& page_table, const Tensor& positions, int64_t page_size,
                                     int64_t width) = 0;
    // Copies a host tensor into the leading corner of `dst` on this device: host [r] into dst [R >= r], host
    // [r, c] into dst [R >= r, C >= c] (rows keep dst's pitch). Same dtype. Ordered with the backend's work.
    virtual void copy_into(const Tensor& host, Tensor& dst) = 0;
    // Stream capture: `body` issues ops that are recorded, not run, into a graph that replay_graph() runs again
    // on the same addresses. Memory the ops allocate during capture comes from a pool reserved for graphs (its
    // blocks are reused by later captures, never by eager ops), so a graph's buffers stay valid while it lives;
    // outputs captured in the graph are rewritten by each replay. Unimplemented where there are no graphs.
    virtual StatusOr<std::unique_ptr<BackendGraph>> capture_graph(const std::function<void()>& body) {
        (void)body;
        return unimplemented("graph capture on the {} backend", device_name(device()));
    }
    virtual void replay_graph(BackendGraph& graph) {
        (void)graph;
        DSA_CHECK(false) << "replay_graph on a backend without graphs";
    }
    // Bytes held by the graph memory pool (0 without graphs).
    virtual int64_t graph_pool_bytes() const { return 0; }
    // A side branch: the ops issued between begin_side_branch() (when it returns true) and end_side_branch() may
    // run concurrently with those issued after end_side_branch() up to join_side_branch(); ops after the join see
    // both. The caller keeps either branch from writing what the other reads. `tokens` is the step's row count
    // (the backend branches only where that pays). Default: no branch (false), everything in issue order.
    virtual bool begin_side_branch(int64_t tokens) {
        (void)tokens;
        return false;
    }
    virtual void end_side_branch() {}
    virtual void join_side_branch() {}
};

// Scope of a side branch: end() closes the branch, join() joins it; the destructor does what is left (also when a
// graph capture unwinds through it), so the branch never outlives the scope.
class SideBranch {
public:
    SideBranch(Backend& be, int64_t tokens) : be_(be), active_(be.begin_side_branch(tokens)), open_(active_) {}
    SideBranch(const SideBranch&) = delete;
    SideBranch& operator=(const SideBranch&) = delete;
    ~SideBranch() { join(); }
    bool active() const { return active_; }
    void end() {
        if (open_) be_.end_side_branch();
        open_ = false;
    }
    void join() {
        end();
        if (active_) be_.join_side_branch();
        active_ = false;
    }

private:
    Backend& be_;
    bool active_, open_;
};

// The CPU reference backend.
std::unique_ptr<Backend> make_cpu_backend(const Numerics& numerics);

}  // namespace dsa::backend
