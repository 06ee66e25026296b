// CPU lightning indexer: scores of every visible key of each query and the exact top-k (score descending,
// equal scores -> lower position first), returned as positions within the request and as key-store slots.
// With indexer_fp8, q is Hadamard-rotated, rounded per Numerics and act_quant-ed per head (one scale per
// 128-vector), and the score follows DeepSeek's fp8_index:
//   I[t,s] = sk[s] * sum_j ReLU(q8[t,j] · k8[s]) * (w[t,j] * H_I^-0.5 * sq[t,j] * 128^-0.5).
// Without it: I[t,s] = sum_j w[t,j] * H_I^-0.5 * 128^-0.5 * ReLU(q[t,j] · k[s]) in FP32.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"
#include "backend/cpu/kv_access.h"
#include "backend/cpu/quant.h"

namespace dsa::backend::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct QueryRows {
    int64_t request = 0;
    int64_t limit = 0;  // inclusive
};

// Validates the request-addressing fields shared by indexer_topk and causal_indices; returns max_len.
int64_t check_addressing(const Tensor& key_slots, const Tensor& query_request, const Tensor& query_limit,
                         int64_t tokens) {
    check_tensor(key_slots, DType::kI32, {-1, -1}, "key_slots");
    check_tensor(query_request, DType::kI32, {tokens}, "query_request");
    check_tensor(query_limit, DType::kI32, {tokens}, "query_limit");
    return key_slots.dim(1);
}

QueryRows query_rows(const Tensor& key_slots, const Tensor& query_request, const Tensor& query_limit, int64_t t) {
    QueryRows r{query_request.data<int32_t>()[t], query_limit.data<int32_t>()[t]};
    DSA_CHECK(r.request >= 0 && r.request < key_slots.dim(0)) << "query " << t << " request " << r.request;
    DSA_CHECK(r.limit >= 0 && r.limit < key_slots.dim(1)) << "query " << t << " limit " << r.limit << " max_len "
                                                          << key_slots.dim(1);
    return r;
}

int32_t slot_of(const Tensor& key_slots, int64_t request, int64_t pos) {
    const int32_t slot = key_slots.data<int32_t>()[request * key_slots.dim(1) + pos];
    DSA_CHECK(slot >= 0) << "request " << request << " position " << pos << " has no key slot";
    return slot;
}

// Writes the best min(k, n) of scores[0..n) into positions/slots (rows of width k), -1 padded.
void select_topk(const float* scores, int64_t n, int64_t k, const Tensor& key_slots, int64_t request,
                 int32_t* positions, int32_t* slots) {
    std::vector<int32_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    const int64_t keep = std::min(k, n);
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int32_t a, int32_t b) {
        return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
    });
    for (int64_t i = 0; i < k; ++i) {
        positions[i] = i < keep ? order[i] : -1;
        slots[i] = i < keep ? slot_of(key_slots, request, order[i]) : -1;
    }
}

}  // namespace

IndexerTopkResult CpuBackend::indexer_topk(const IndexerTopkParams& p) {
    DSA_CHECK(p.keys != nullptr && p.index_topk > 0) << "indexer_topk needs keys and index_topk > 0";
    check_indexer_store(*p.keys);
    DSA_CHECK(p.keys->format == numerics_.indexer_key_format()) << indexer_key_format_name(p.keys->format);
    check_tensor(p.q, DType::kF32, {-1, -1, kIndexerHeadDim}, "indexer q");
    if (p.q_rope != nullptr) apply_rope({p.q, p.q_positions, p.q_rope, p.q_rope_layout, 0});
    const int64_t tokens = p.q.dim(0), heads = p.q.dim(1), dim = kIndexerHeadDim;
    check_tensor(p.weights, DType::kF32, {tokens, heads}, "indexer weights");
    const int64_t max_len = check_addressing(p.key_slots, p.query_request, p.query_limit, tokens);
    IndexerTopkResult r;
    r.positions = Tensor::empty({tokens, p.index_topk}, DType::kI32, Device::kCPU, "topk_positions");
    r.slots = Tensor::empty({tokens, p.index_topk}, DType::kI32, Device::kCPU, "topk_slots");
    if (p.return_scores) r.scores = Tensor::empty({tokens, max_len}, DType::kF32, Device::kCPU, "index_scores");
    const float head_scale = 1.0f / std::sqrt(static_cast<float>(heads));
    const float dim_scale = 1.0f / std::sqrt(static_cast<float>(dim));
#pragma omp parallel for schedule(dynamic)
    for (int64_t t = 0; t < tokens; ++t) {
        const QueryRows qr = query_rows(p.key_slots, p.query_request, p.query_limit, t);
        // Per-head query vectors (dequantized values for FP8: q8 decoded, scale folded into the head weight).
        std::vector<float> q(heads * dim), wt(heads);
        std::memcpy(q.data(), p.q.data<float>() + t * heads * dim, heads * dim * sizeof(float));
        for (int64_t j = 0; j < heads; ++j) {
            float* qj = &q[j * dim];
            float w = p.weights.data<float>()[t * heads + j] * head_scale;
            if (numerics_.indexer_fp8) {
                uint8_t q8[kIndexerHeadDim];
                hadamard128(qj);
                round_act(qj, dim);
                w *= act_quant_block(qj, dim, numerics_.ue8m0_scales, q8);
                for (int64_t i = 0; i < dim; ++i) qj[i] = fp8e4m3_to_f32(q8[i]);
            }
            wt[j] = w * dim_scale;
        }
        std::vector<float> scores(qr.limit + 1);
        float k[kIndexerHeadDim];
        for (int64_t s = 0; s <= qr.limit; ++s) {
            float sk = 1.0f;
            load_indexer_key(*p.keys, slot_of(p.key_slots, qr.request, s), k, &sk);
            float sum = 0.0f;
            for (int64_t j = 0; j < heads; ++j) {
                float d = 0.0f;
                for (int64_t i = 0; i < dim; ++i) d += q[j * dim + i] * k[i];
                sum += std::max(d, 0.0f) * wt[j];
            }
            scores[s] = sum * sk;
        }
        select_topk(scores.data(), qr.limit + 1, p.index_topk, p.key_slots, qr.request,
                    r.positions.data<int32_t>() + t * p.index_topk, r.slots.data<int32_t>() + t * p.index_topk);
        if (p.return_scores) {
            float* row = r.scores.data<float>() + t * max_len;
            for (int64_t s = 0; s < max_len; ++s) row[s] = s <= qr.limit ? scores[s] : kNegInf;
        }
    }
    return r;
}

IndexerTopkResult CpuBackend::causal_indices(const CausalIndicesParams& p) {
    const int64_t tokens = p.query_request.defined() ? p.query_request.dim(0) : 0;
    check_addressing(p.key_slots, p.query_request, p.query_limit, tokens);
    DSA_CHECK(p.width > 0) << "causal_indices width " << p.width;
    IndexerTopkResult r;
    r.positions = Tensor::empty({tokens, p.width}, DType::kI32, Device::kCPU, "causal_positions");
    r.slots = Tensor::empty({tokens, p.width}, DType::kI32, Device::kCPU, "causal_slots");
    for (int64_t t = 0; t < tokens; ++t) {
        const QueryRows qr = query_rows(p.key_slots, p.query_request, p.query_limit, t);
        DSA_CHECK(qr.limit < p.width) << "query " << t << " sees " << qr.limit + 1 << " keys > width " << p.width;
        for (int64_t i = 0; i < p.width; ++i) {
            r.positions.data<int32_t>()[t * p.width + i] = i <= qr.limit ? static_cast<int32_t>(i) : -1;
            r.slots.data<int32_t>()[t * p.width + i] = i <= qr.limit ? slot_of(p.key_slots, qr.request, i) : -1;
        }
    }
    return r;
}

}  // namespace dsa::backend::cpu
