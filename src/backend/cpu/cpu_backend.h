// CpuBackend: the reference implementation of backend.h. Activations are f32 tensors; Numerics selects where
// values are rounded to bf16 / quantized to FP8. Plain loops with FP32 accumulation, OpenMP over rows.
// The op families are implemented in one file each (norm_ops, linear_ops, rope_ops, kv_ops, mla_ops,
// indexer_ops, moe_ops); this header is their shared class declaration.
#pragma once

#include <mutex>
#include <unordered_map>

#include "backend/backend.h"
#include "tensor/numeric.h"

namespace dsa::backend::cpu {

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(const Numerics& numerics) : numerics_(numerics) {}

    Device device() const override { return Device::kCPU; }
    const Numerics& numerics() const override { return numerics_; }
    DType activation_dtype() const override { return DType::kF32; }
    Tensor to_device(const Tensor& host) override;
    Tensor to_host(const Tensor& t) override;

    Tensor embedding(const Tensor& table, const Tensor& ids) override;
    Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) override;
    Tensor add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps) override;
    Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) override;
    Tensor add(const Tensor& a, const Tensor& b) override;
    Tensor narrow_last(const Tensor& x, int64_t begin, int64_t end) override;
    Tensor concat_last(std::span<const Tensor> parts) override;

    Tensor linear(const Tensor& x, const LinearWeight& w, LinearOutput out) override;
    Tensor lm_head(const Tensor& x, const LinearWeight& head) override;

    RopeTable make_rope_table(std::span<const float> inv_freq, int64_t max_positions) override;
    void apply_rope(const RopeParams& p) override;

    void mla_kv_write(const MlaKvWriteParams& p) override;
    Tensor mla_kv_read(const MlaKvStore& store, const Tensor& slots) override;
    Tensor mla_absorb_q(const Tensor& q_nope, const LinearWeight& kv_b, const MlaHeadDims& dims) override;
    Tensor mla_absorb_o(const Tensor& o_latent, const LinearWeight& kv_b, const MlaHeadDims& dims) override;
    MlaExpandedKv mla_expand_kv(const Tensor& latent, const LinearWeight& kv_b, const MlaHeadDims& dims) override;
    Tensor mla_sparse_attention(const MlaSparseParams& p) override;
    Tensor mla_dense_attention(const MlaDenseParams& p) override;

    void indexer_k_write(const IndexerKWriteParams& p) override;
    IndexerTopkResult indexer_topk(const IndexerTopkParams& p) override;
    IndexerTopkResult causal_indices(const CausalIndicesParams& p) override;

    RouterResult moe_route(const RouterParams& p) override;
    Tensor moe_experts(const MoeParams& p) override;
    Tensor dense_mlp(const Tensor& x, const MlpWeights& w) override;

    DecodeSlots decode_slots(const Tensor& page_table, const Tensor& positions, int64_t page_size,
                             int64_t width) override;
    void copy_into(const Tensor& host, Tensor& dst) override;

    // The f32 [out, in] copy of a weight used by every op (cached per weight storage; f32 weights are used
    // directly). The cache keeps the source tensor alive, so a cached address is never reused.
    Tensor dense_weight(const LinearWeight& w);
    void clear_weight_cache();

private:
    // Rounds one activation value per Numerics.
    float act(float v) const { return numerics_.round_activations_to_bf16 ? round_bf16(v) : v; }
    void round_act(float* x, int64_t n) const;
    // Gathers slots' latents (dequantized f32) into out [n, 576].
    void read_latents(const MlaKvStore& store, const int32_t* slots, int64_t n, float* out) const;
    // f32 matmul y[t, o] = sum_i x[t, i] w[o, i] (x rounded/quantized by the caller).
    static void matmul(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y);
    // Applies the SwiGLU combine h = silu(g) * u in place into g.
    void swiglu(float* g, const float* u, int64_t n) const;

    struct CachedWeight {
        Tensor source;  // keeps the checkpoint tensor alive while its address is a key
        Tensor dense;   // [out, in] f32
    };
    Numerics numerics_;
    std::mutex cache_mu_;
    std::unordered_map<const void*, CachedWeight> weight_cache_;
};

}  // namespace dsa::backend::cpu
