// CPU MoE and MLP: the sigmoid noaux_tc router with group limit (FP32 logits), the routed experts (SwiGLU per
// expert, weighted sum accumulated in FP32 and rounded once), and the dense SwiGLU MLP used for the dense
// layers and the shared expert (silu and product in FP32, rounded per Numerics before down_proj).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace dsa::backend::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Indices of the k largest values (ties: lower index first), in descending order.
std::vector<int32_t> top_indices(const std::vector<float>& v, int64_t k) {
    std::vector<int32_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
    idx.resize(k);
    return idx;
}

// Group score: sum of the top-2 biased scores (max when the router has no bias).
float group_score(const float* s, int64_t n, bool has_bias) {
    std::vector<float> g(s, s + n);
    std::sort(g.begin(), g.end(), std::greater<float>());
    return has_bias && n >= 2 ? g[0] + g[1] : g[0];
}

// Sets the biased scores of every group outside the best topk_groups to -inf.
void mask_groups(std::vector<float>& biased, int64_t num_groups, int64_t topk_groups, bool has_bias) {
    if (num_groups <= 1) return;
    const int64_t per = static_cast<int64_t>(biased.size()) / num_groups;
    std::vector<float> gs(num_groups);
    for (int64_t g = 0; g < num_groups; ++g) gs[g] = group_score(&biased[g * per], per, has_bias);
    std::vector<char> keep(num_groups, 0);
    for (int32_t g : top_indices(gs, topk_groups)) keep[g] = 1;
    for (int64_t g = 0; g < num_groups; ++g) {
        if (!keep[g]) std::fill(biased.begin() + g * per, biased.begin() + (g + 1) * per, kNegInf);
    }
}

}  // namespace

RouterResult CpuBackend::moe_route(const RouterParams& p) {
    DSA_CHECK(p.weight.defined() && p.weight.ndim() == 2) << "router weight";
    const int64_t experts = p.weight.dim(0), dim = p.weight.dim(1);
    check_tensor(p.x, DType::kF32, {-1, dim}, "router x");
    if (p.bias.defined()) check_tensor(p.bias, DType::kF32, {experts}, "router bias");
    DSA_CHECK(p.num_groups >= 1 && experts % p.num_groups == 0) << experts << " experts in " << p.num_groups;
    DSA_CHECK(p.topk_groups >= 1 && p.topk_groups <= p.num_groups) << "topk_groups " << p.topk_groups;
    DSA_CHECK(p.top_k >= 1 && p.top_k <= experts / p.num_groups * p.topk_groups) << "top_k " << p.top_k;
    const int64_t tokens = p.x.dim(0);
    RouterResult r;
    r.scores = linear(p.x, LinearWeight{p.weight, {}}, LinearOutput::kF32);  // FP32 logits, never quantized
    r.ids = Tensor::empty({tokens, p.top_k}, DType::kI32, Device::kCPU, "expert_ids");
    r.weights = Tensor::empty({tokens, p.top_k}, DType::kF32, Device::kCPU, "expert_weights");
    for (int64_t t = 0; t < tokens; ++t) {
        float* s = r.scores.data<float>() + t * experts;
        std::vector<float> biased(experts);
        for (int64_t e = 0; e < experts; ++e) {
            s[e] = 1.0f / (1.0f + std::exp(-s[e]));
            biased[e] = s[e] + (p.bias.defined() ? p.bias.data<float>()[e] : 0.0f);
        }
        mask_groups(biased, p.num_groups, p.topk_groups, p.bias.defined());
        const std::vector<int32_t> ids = top_indices(biased, p.top_k);
        float sum = 0.0f;
        for (int32_t e : ids) sum += s[e];
        for (int64_t k = 0; k < p.top_k; ++k) {
            float w = s[ids[k]];
            if (p.normalize) w /= sum + 1e-20f;
            r.ids.data<int32_t>()[t * p.top_k + k] = ids[k];
            r.weights.data<float>()[t * p.top_k + k] = w * p.routed_scaling_factor;
        }
    }
    return r;
}

void CpuBackend::swiglu(float* g, const float* u, int64_t n) const {
    for (int64_t i = 0; i < n; ++i) g[i] = act(g[i] / (1.0f + std::exp(-g[i])) * u[i]);
}

Tensor CpuBackend::dense_mlp(const Tensor& x, const MlpWeights& w) {
    DSA_CHECK(w.gate.defined() && w.up.defined() && w.down.defined()) << "MLP weights";
    DSA_CHECK(w.gate.out_features() == w.up.out_features() && w.down.in_features() == w.gate.out_features())
        << "MLP widths " << w.gate.out_features() << "/" << w.up.out_features() << "/" << w.down.in_features();
    Tensor g = linear(x, w.gate, LinearOutput::kActivation);
    Tensor u = linear(x, w.up, LinearOutput::kActivation);
    swiglu(g.data<float>(), u.data<float>(), g.numel());
    return linear(g, w.down, LinearOutput::kActivation);
}

Tensor CpuBackend::moe_experts(const MoeParams& p) {
    check_tensor(p.x, DType::kF32, {-1, -1}, "moe x");
    const int64_t tokens = p.x.dim(0), dim = p.x.dim(1);
    check_tensor(p.ids, DType::kI32, {tokens, -1}, "moe ids");
    const int64_t k = p.ids.dim(1);
    check_tensor(p.weights, DType::kF32, {tokens, k}, "moe weights");
    const int64_t num_experts = static_cast<int64_t>(p.experts.size());
    // Token rows (and their routing weight) per expert.
    std::vector<std::vector<std::pair<int64_t, float>>> routed(num_experts);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t j = 0; j < k; ++j) {
            const int64_t e = p.ids.data<int32_t>()[t * k + j];
            DSA_CHECK(e >= 0 && e < num_experts) << "expert id " << e << " of " << num_experts;
            routed[e].push_back({t, p.weights.data<float>()[t * k + j]});
        }
    }
    std::vector<float> acc(tokens * dim, 0.0f);
    for (int64_t e = 0; e < num_experts; ++e) {
        if (routed[e].empty()) continue;
        const int64_t n = static_cast<int64_t>(routed[e].size());
        Tensor xe = Tensor::empty({n, dim}, DType::kF32, Device::kCPU, "expert_in");
        for (int64_t i = 0; i < n; ++i) {
            std::copy_n(p.x.data<float>() + routed[e][i].first * dim, dim, xe.data<float>() + i * dim);
        }
        Tensor ye = dense_mlp(xe, p.experts[e]);
        DSA_CHECK_EQ(ye.dim(1), dim) << "expert " << e << " output width";
        for (int64_t i = 0; i < n; ++i) {
            const auto [t, w] = routed[e][i];
            for (int64_t c = 0; c < dim; ++c) acc[t * dim + c] += ye.data<float>()[i * dim + c] * w;
        }
    }
    Tensor out = Tensor::empty({tokens, dim}, DType::kF32, Device::kCPU, "moe_out");
    for (int64_t i = 0; i < tokens * dim; ++i) out.data<float>()[i] = act(acc[i]);
    return p.shared != nullptr ? add(out, dense_mlp(p.x, *p.shared)) : out;
}

}  // namespace dsa::backend::cpu
