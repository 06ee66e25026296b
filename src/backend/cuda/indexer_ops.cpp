// The lightning indexer on the GPU: key-cache writes (FP8 pages with scales, or f32 rows), logits + exact top-k
// over the paged key cache, and the causal index lists used when a layer attends to every earlier position.
// Index tensors may be host tensors (validated here, then uploaded) or device tensors (used as they are; the
// kernels trap on out-of-range values). The kernels are in indexer_kernels.cu.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/indexer_kernels.h"
#include "backend/cuda/kernels.h"
#include "backend/tensor_checks.h"

namespace dsa::backend::cuda {
namespace {

static_assert(kIndexerHeadDim == 128 && kIndexerPageSize == 64 && kIndexerFp8PageBytes == 8448 &&
                  kIndexerFp8ScaleOffset == 8192 && kIndexerF32PageBytes == 32768,
              "indexer_kernels.cu hard-codes the indexer page layout of kv_layout.h");

void check_store(const IndexerKeyStore& s, IndexerKeyFormat want, const char* what) {
    DSA_CHECK(s.format == want) << what << ": the store is " << indexer_key_format_name(s.format)
                                << " but the numerics need " << indexer_key_format_name(want);
    check_device_tensor(s.data, DType::kU8, {-1, indexer_page_bytes(s.format)}, what);
    DSA_CHECK(s.num_slots() <= std::numeric_limits<int32_t>::max()) << what << ": " << s.num_slots() << " slots";
}

// An i32 tensor of the given shape on either device.
void check_i32(const Tensor& t, std::initializer_list<int64_t> shape, const char* what) {
    DSA_CHECK(t.defined()) << what << " is undefined";
    check_tensor_on(t, t.device(), DType::kI32, shape, what);
}

Tensor on_device(Backend& be, const Tensor& t) { return t.device() == Device::kCUDA ? t : be.to_device(t); }

// The request-addressing tensors on the device.
struct Addressing {
    Tensor key_slots, query_request, query_limit;
    int64_t requests = 0, max_len = 0;
};

// Host data is validated: requests in range, limits in [0, min(max_len, width)), and (with host key_slots)
// the slot of every visible position in [0, num_slots).
void check_host_addressing(const Tensor& key_slots, const Tensor& query_request, const Tensor& query_limit,
                           int64_t num_slots, int64_t width) {
    const int64_t requests = key_slots.dim(0), max_len = key_slots.dim(1);
    std::vector<int64_t> visible(requests, 0);
    for (int64_t t = 0; t < query_request.dim(0); ++t) {
        const int64_t r = query_request.data<int32_t>()[t], l = query_limit.data<int32_t>()[t];
        DSA_CHECK(r >= 0 && r < requests) << "query " << t << " request " << r << " of " << requests;
        DSA_CHECK(l >= 0 && l < max_len) << "query " << t << " limit " << l << " max_len " << max_len;
        DSA_CHECK(l < width) << "query " << t << " sees " << l + 1 << " keys > width " << width;
        visible[r] = std::max(visible[r], l + 1);
    }
    if (key_slots.device() != Device::kCPU) return;
    for (int64_t r = 0; r < requests; ++r) {
        const int32_t* row = key_slots.data<int32_t>() + r * max_len;
        for (int64_t pos = 0; pos < visible[r]; ++pos) {
            DSA_CHECK(row[pos] >= 0 && row[pos] < num_slots)
                << "request " << r << " position " << pos << " has key slot " << row[pos] << " of " << num_slots;
        }
    }
}

Addressing device_addressing(Backend& be, const Tensor& key_slots, const Tensor& query_request,
                             const Tensor& query_limit, int64_t tokens, int64_t num_slots, int64_t width) {
    check_i32(key_slots, {-1, -1}, "key_slots");
    check_i32(query_request, {tokens}, "query_request");
    check_i32(query_limit, {tokens}, "query_limit");
    DSA_CHECK(key_slots.dim(1) <= std::numeric_limits<int32_t>::max()) << "key_slots width " << key_slots.dim(1);
    if (query_request.device() == Device::kCPU && query_limit.device() == Device::kCPU) {
        check_host_addressing(key_slots, query_request, query_limit, num_slots, width);
    }
    return {on_device(be, key_slots), on_device(be, query_request), on_device(be, query_limit), key_slots.dim(0),
            key_slots.dim(1)};
}

}  // namespace

void CudaBackend::indexer_k_write(const IndexerKWriteParams& p) {
    DSA_CHECK(p.store != nullptr) << "indexer_k_write without a store";
    check_store(*p.store, numerics_.indexer_key_format(), "indexer_k_write store");
    check_device_tensor(p.k, DType::kBF16, {-1, kIndexerHeadDim}, "indexer_k_write k");
    const int64_t tokens = p.k.dim(0), num_slots = p.store->num_slots();
    check_i32(p.slots, {tokens}, "indexer_k_write slots");
    if (p.slots.device() == Device::kCPU) {
        for (int64_t t = 0; t < tokens; ++t) {
            const int32_t s = p.slots.data<int32_t>()[t];
            DSA_CHECK(s < num_slots) << "indexer_k_write slot " << s << " of " << num_slots;
        }
    }
    Tensor slots = on_device(*this, p.slots);
    launch_indexer_k_write({p.k.data<uint16_t>(), slots.data<int32_t>(), p.store->data.data<uint8_t>(), tokens,
                            num_slots, 1.0f / std::sqrt(128.0f), numerics_.indexer_fp8, numerics_.ue8m0_scales},
                           stream_);
}

IndexerTopkResult CudaBackend::indexer_topk(const IndexerTopkParams& p) {
    DSA_CHECK(p.keys != nullptr) << "indexer_topk without a key store";
    DSA_CHECK(p.index_topk > 0 && p.index_topk <= kIndexerMaxTopk)
        << "indexer_topk width " << p.index_topk << " (1.." << kIndexerMaxTopk << " on the CUDA backend)";
    check_store(*p.keys, numerics_.indexer_key_format(), "indexer_topk keys");
    check_device_tensor(p.q, DType::kBF16, {-1, -1, kIndexerHeadDim}, "indexer q");
    const int64_t tokens = p.q.dim(0), heads = p.q.dim(1);
    last_q_rope_fused_ = p.q_rope != nullptr && numerics_.indexer_fp8 && fused_decode_enabled() &&
                         p.q_rope->rot_dim() == 64;
    Tensor q_pos, rope_cos, rope_sin;  // the fused q RoPE's device operands
    if (last_q_rope_fused_) {
        DSA_CHECK(p.q_positions.defined() && p.q_positions.ndim() == 1 && p.q_positions.dim(0) == tokens)
            << "indexer q positions must be [" << tokens << "]";
        q_pos = device_indices(p.q_positions, p.q_rope->max_positions(), "indexer q positions");
        rope_cos = cached_device_copy(p.q_rope->cos), rope_sin = cached_device_copy(p.q_rope->sin);
    } else if (p.q_rope != nullptr) {
        apply_rope({p.q, p.q_positions, p.q_rope, p.q_rope_layout, 0});
    }
    DSA_CHECK(p.weights.defined()) << "indexer weights are undefined";
    check_tensor_on(p.weights, p.weights.device(), DType::kF32, {tokens, heads}, "indexer weights");
    const Addressing a = device_addressing(*this, p.key_slots, p.query_request, p.query_limit, tokens,
                                           p.keys->num_slots(), std::numeric_limits<int64_t>::max());
    Tensor weights = on_device(*this, p.weights);
    const float head_scale = 1.0f / std::sqrt(static_cast<float>(heads));
    const float dim_scale = 1.0f / std::sqrt(static_cast<float>(kIndexerHeadDim));

    Tensor scores = Tensor::empty({tokens, a.max_len}, DType::kF32, Device::kCUDA, "index_scores");
    IndexerLogitsParams lp{p.q.data<uint16_t>(), nullptr, weights.data<float>(), p.keys->data.data<uint8_t>(),
                           a.key_slots.data<int32_t>(), a.query_request.data<int32_t>(),
                           a.query_limit.data<int32_t>(), scores.data<float>(), tokens, heads, a.requests,
                           a.max_len, p.keys->num_slots(), head_scale, dim_scale, numerics_.indexer_fp8,
                           p.return_scores};
    Tensor q8, wt;  // FP8: the prepared q (kept alive until the logits kernel is enqueued)
    if (numerics_.indexer_fp8) {
        const int64_t padded = indexer_fp8_padded_heads(heads);
        DSA_CHECK(padded > 0) << "indexer FP8 logits: " << heads << " heads (1..64 on the CUDA backend)";
        q8 = Tensor::empty({tokens, padded, kIndexerHeadDim}, DType::kU8, Device::kCUDA, "indexer_q8");
        wt = Tensor::empty({tokens, padded}, DType::kF32, Device::kCUDA, "indexer_wt");
        IndexerQPrepParams qp{p.q.data<uint16_t>(), weights.data<float>(), q8.data<uint8_t>(), wt.data<float>(),
                              tokens, heads, padded, head_scale, dim_scale, dim_scale, numerics_.ue8m0_scales};
        IndexerQRopeParams rope;  // no positions: q is already rotated
        if (last_q_rope_fused_) {
            rope = {q_pos.data<int32_t>(), rope_cos.data<float>(), rope_sin.data<float>(),
                    p.q_rope->max_positions(), p.q_rope_layout == RopeLayout::kInterleaved};
        }
        launch_indexer_q_prep(qp, rope, stream_);
        lp.q8 = q8.data<uint8_t>();
        lp.weights = wt.data<float>();
        lp.heads = padded;
    }
    launch_indexer_logits(lp, stream_);

    IndexerTopkResult r;
    r.positions = Tensor::empty({tokens, p.index_topk}, DType::kI32, Device::kCUDA, "topk_positions");
    r.slots = Tensor::empty({tokens, p.index_topk}, DType::kI32, Device::kCUDA, "topk_slots");
    launch_indexer_topk({scores.data<float>(), a.key_slots.data<int32_t>(), a.query_request.data<int32_t>(),
                         a.query_limit.data<int32_t>(), r.positions.data<int32_t>(), r.slots.data<int32_t>(), tokens,
                         a.requests, a.max_len, p.index_topk},
                        stream_);
    if (p.return_scores) r.scores = scores;
    return r;
}

IndexerTopkResult CudaBackend::causal_indices(const CausalIndicesParams& p) {
    DSA_CHECK(p.width > 0) << "causal_indices width " << p.width;
    const int64_t tokens = p.query_request.defined() ? p.query_request.dim(0) : 0;
    const Addressing a = device_addressing(*this, p.key_slots, p.query_request, p.query_limit, tokens,
                                           std::numeric_limits<int32_t>::max(), p.width);
    IndexerTopkResult r;
    r.positions = Tensor::empty({tokens, p.width}, DType::kI32, Device::kCUDA, "causal_positions");
    r.slots = Tensor::empty({tokens, p.width}, DType::kI32, Device::kCUDA, "causal_slots");
    launch_causal_indices({a.key_slots.data<int32_t>(), a.query_request.data<int32_t>(), a.query_limit.data<int32_t>(),
                           r.positions.data<int32_t>(), r.slots.data<int32_t>(), tokens, a.requests, a.max_len,
                           p.width},
                          stream_);
    return r;
}

}  // namespace dsa::backend::cuda
