// CPU MLA attention: the absorbed 576/512 sparse form over latent-store slots, the expanded MHA form (one
// request, causal + optional top-k mask), and the W_UK / W_UV helpers that move between them, all from the
// dequantized kv_b_proj viewed [H, d_n + d_v, 512]. Scores and softmax in FP32; with bf16 activations the
// probabilities are rounded to bf16 before P·V, as the reference does (softmax(fp32).type_as(x)).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"
#include "backend/cpu/kv_access.h"

namespace dsa::backend::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

float dot(const float* a, const float* b, int64_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
    return acc;
}

// In place: s[i] -> exp(s[i] - max) / sum. Entries at -inf get 0; a row of only -inf becomes all zeros.
void softmax(float* s, int64_t n) {
    float mx = kNegInf;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, s[i]);
    if (mx == kNegInf) {
        for (int64_t i = 0; i < n; ++i) s[i] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
        s[i] = s[i] == kNegInf ? 0.0f : std::exp(s[i] - mx);
        sum += s[i];
    }
    for (int64_t i = 0; i < n; ++i) s[i] /= sum;
}

// out[c] = act(sum_j prob[j] * rows[j * stride + c]) for c < dim, summed over j in ascending order per c (rows
// read contiguously; j with prob 0 add exactly nothing and are skipped).
template <typename Act>
void weighted_rows(const float* prob, int64_t n, const float* rows, int64_t stride, int64_t dim, float* out,
                   std::vector<float>& acc, Act act) {
    acc.assign(dim, 0.0f);
    for (int64_t j = 0; j < n; ++j) {
        const float w = prob[j];
        if (w == 0.0f) continue;
        const float* r = rows + j * stride;
        for (int64_t c = 0; c < dim; ++c) acc[c] += w * r[c];
    }
    for (int64_t c = 0; c < dim; ++c) out[c] = act(acc[c]);
}

void check_kv_b(const LinearWeight& kv_b, const MlaHeadDims& d) {
    DSA_CHECK(kv_b.defined() && d.num_heads > 0 && d.nope_dim > 0 && d.v_dim > 0) << "MLA head dims";
    DSA_CHECK_EQ(kv_b.out_features(), d.num_heads * (d.nope_dim + d.v_dim)) << "kv_b_proj rows";
    DSA_CHECK_EQ(kv_b.in_features(), kMlaLatentDim) << "kv_b_proj columns";
}

}  // namespace

Tensor CpuBackend::mla_absorb_q(const Tensor& q_nope, const LinearWeight& kv_b, const MlaHeadDims& d) {
    check_kv_b(kv_b, d);
    check_tensor(q_nope, DType::kF32, {-1, d.num_heads, d.nope_dim}, "mla_absorb_q q_nope");
    const int64_t tokens = q_nope.dim(0), heads = d.num_heads, block = d.nope_dim + d.v_dim;
    const float* w = dense_weight(kv_b).data<float>();
    Tensor out = Tensor::empty({tokens, heads, kMlaLatentDim}, DType::kF32, Device::kCPU, "q_absorbed");
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t h = 0; h < heads; ++h) {
            const float* q = q_nope.data<float>() + (t * heads + h) * d.nope_dim;
            float* y = out.data<float>() + (t * heads + h) * kMlaLatentDim;
            for (int64_t c = 0; c < kMlaLatentDim; ++c) {
                float acc = 0.0f;
                for (int64_t i = 0; i < d.nope_dim; ++i) acc += q[i] * w[(h * block + i) * kMlaLatentDim + c];
                y[c] = act(acc);
            }
        }
    }
    return out;
}

Tensor CpuBackend::mla_absorb_o(const Tensor& o_latent, const LinearWeight& kv_b, const MlaHeadDims& d) {
    check_kv_b(kv_b, d);
    check_tensor(o_latent, DType::kF32, {-1, d.num_heads, kMlaLatentDim}, "mla_absorb_o o_latent");
    const int64_t tokens = o_latent.dim(0), heads = d.num_heads, block = d.nope_dim + d.v_dim;
    const float* w = dense_weight(kv_b).data<float>();
    Tensor out = Tensor::empty({tokens, heads, d.v_dim}, DType::kF32, Device::kCPU, "o_heads");
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t h = 0; h < heads; ++h) {
            const float* o = o_latent.data<float>() + (t * heads + h) * kMlaLatentDim;
            float* y = out.data<float>() + (t * heads + h) * d.v_dim;
            for (int64_t v = 0; v < d.v_dim; ++v) {
                y[v] = act(dot(o, w + (h * block + d.nope_dim + v) * kMlaLatentDim, kMlaLatentDim));
            }
        }
    }
    return out;
}

MlaExpandedKv CpuBackend::mla_expand_kv(const Tensor& latent, const LinearWeight& kv_b, const MlaHeadDims& d) {
    check_kv_b(kv_b, d);
    check_tensor(latent, DType::kF32, {-1, kMlaKvDim}, "mla_expand_kv latent");
    const int64_t keys = latent.dim(0), heads = d.num_heads, block = d.nope_dim + d.v_dim;
    const int64_t qk = d.nope_dim + kMlaRopeDim;
    Tensor kv = linear(narrow_last(latent, 0, kMlaLatentDim), kv_b, LinearOutput::kActivation);  // [S, H*block]
    MlaExpandedKv r{Tensor::empty({keys, heads, qk}, DType::kF32, Device::kCPU, "k_expanded"),
                    Tensor::empty({keys, heads, d.v_dim}, DType::kF32, Device::kCPU, "v_expanded")};
    for (int64_t s = 0; s < keys; ++s) {
        const float* pe = latent.data<float>() + s * kMlaKvDim + kMlaLatentDim;
        for (int64_t h = 0; h < heads; ++h) {
            const float* src = kv.data<float>() + (s * heads + h) * block;
            float* k = r.k.data<float>() + (s * heads + h) * qk;
            float* v = r.v.data<float>() + (s * heads + h) * d.v_dim;
            std::copy(src, src + d.nope_dim, k);
            std::copy(pe, pe + kMlaRopeDim, k + d.nope_dim);
            std::copy(src + d.nope_dim, src + block, v);
        }
    }
    return r;
}

Tensor CpuBackend::mla_sparse_attention(const MlaSparseParams& p) {
    DSA_CHECK(p.kv != nullptr) << "mla_sparse_attention without a KV store";
    check_mla_store(*p.kv);
    check_tensor(p.q, DType::kF32, {-1, -1, kMlaKvDim}, "mla_sparse q");
    const int64_t tokens = p.q.dim(0), heads = p.q.dim(1);
    check_tensor(p.slots, DType::kI32, {tokens, -1}, "mla_sparse slots");
    const int64_t width = p.slots.dim(1);
    Tensor out = Tensor::empty({tokens, heads, kMlaLatentDim}, DType::kF32, Device::kCPU, "o_latent");
#pragma omp parallel for schedule(dynamic)
    for (int64_t t = 0; t < tokens; ++t) {
        std::vector<int32_t> valid;
        for (int64_t j = 0; j < width; ++j) {
            if (p.slots.data<int32_t>()[t * width + j] >= 0) valid.push_back(p.slots.data<int32_t>()[t * width + j]);
        }
        const int64_t n = static_cast<int64_t>(valid.size());
        std::vector<float> kv(n * kMlaKvDim), prob(n), acc;
        read_latents(*p.kv, valid.data(), n, kv.data());
        for (int64_t h = 0; h < heads; ++h) {
            const float* q = p.q.data<float>() + (t * heads + h) * kMlaKvDim;
            for (int64_t j = 0; j < n; ++j) prob[j] = p.softmax_scale * dot(q, &kv[j * kMlaKvDim], kMlaKvDim);
            softmax(prob.data(), n);
            round_act(prob.data(), n);
            weighted_rows(prob.data(), n, kv.data(), kMlaKvDim, kMlaLatentDim,
                          out.data<float>() + (t * heads + h) * kMlaLatentDim, acc, [this](float v) { return act(v); });
        }
    }
    return out;
}

Tensor CpuBackend::mla_dense_attention(const MlaDenseParams& p) {
    check_tensor(p.q, DType::kF32, {-1, -1, -1}, "mla_dense q");
    const int64_t tokens = p.q.dim(0), heads = p.q.dim(1), qk = p.q.dim(2);
    check_tensor(p.k, DType::kF32, {-1, heads, qk}, "mla_dense k");
    const int64_t keys = p.k.dim(0);
    check_tensor(p.v, DType::kF32, {keys, heads, -1}, "mla_dense v");
    const int64_t dv = p.v.dim(2);
    check_tensor(p.q_positions, DType::kI32, {tokens}, "mla_dense q_positions");
    if (p.allowed.defined()) check_tensor(p.allowed, DType::kI32, {tokens, -1}, "mla_dense allowed");
    Tensor out = Tensor::empty({tokens, heads, dv}, DType::kF32, Device::kCPU, "o_heads");
#pragma omp parallel for schedule(dynamic)
    for (int64_t t = 0; t < tokens; ++t) {
        const int64_t qpos = p.q_positions.data<int32_t>()[t];
        DSA_CHECK(qpos >= 0 && qpos < keys) << "query position " << qpos << " with " << keys << " keys";
        std::vector<char> visible(keys, p.allowed.defined() ? 0 : 1);
        if (p.allowed.defined()) {
            const int64_t width = p.allowed.dim(1);
            for (int64_t j = 0; j < width; ++j) {
                const int64_t pos = p.allowed.data<int32_t>()[t * width + j];
                DSA_CHECK(pos < keys) << "allowed position " << pos << " with " << keys << " keys";
                if (pos >= 0) visible[pos] = 1;
            }
        }
        // Keys after the query's position are masked: only [0, qpos] take part (their softmax terms are 0).
        const int64_t n = qpos + 1;
        std::vector<float> prob(n), acc;
        for (int64_t h = 0; h < heads; ++h) {
            const float* q = p.q.data<float>() + (t * heads + h) * qk;
            for (int64_t s = 0; s < n; ++s) {
                prob[s] = visible[s] ? p.softmax_scale * dot(q, p.k.data<float>() + (s * heads + h) * qk, qk) : kNegInf;
            }
            softmax(prob.data(), n);
            round_act(prob.data(), n);
            weighted_rows(prob.data(), n, p.v.data<float>() + h * dv, heads * dv, dv,
                          out.data<float>() + (t * heads + h) * dv, acc, [this](float v) { return act(v); });
        }
    }
    return out;
}

}  // namespace dsa::backend::cpu
