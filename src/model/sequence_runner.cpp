// Single-sequence driver over DsaModel.
#include "model/sequence_runner.h"

#include "base/check.h"

namespace dsa::model {

SequenceRunner::SequenceRunner(DsaModel& model, KvStores& kv, int64_t page_size, int64_t first_page)
    : model_(model), kv_(kv), page_size_(page_size) {
    DSA_CHECK(!kv.mla.empty());
    const int64_t num_pages = kv.mla[0].num_slots() / page_size;
    for (int64_t p = first_page; p < num_pages; ++p) pages_.push_back(static_cast<int32_t>(p));
}

ForwardOutput SequenceRunner::step(std::span<const int32_t> tokens, bool all_logits, const ForwardOptions& options) {
    DSA_CHECK_LE(length() + static_cast<int64_t>(tokens.size()), capacity()) << "sequence exceeds its KV pages";
    SequenceStep s;
    s.new_tokens = tokens;
    s.num_cached = length();
    s.page_table = pages_;
    s.all_logits = all_logits;
    ForwardBatch batch = build_forward_batch(std::span<const SequenceStep>(&s, 1), page_size_);
    ForwardOutput out = model_.forward(batch, kv_, options);
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
    return out;
}

ForwardOutput SequenceRunner::prefill(std::span<const int32_t> tokens, int64_t chunk, bool all_logits,
                                      const ForwardOptions& options) {
    const int64_t n = static_cast<int64_t>(tokens.size());
    if (chunk <= 0) chunk = n;
    ForwardOutput out;
    for (int64_t begin = 0; begin < n; begin += chunk) {
        const int64_t end = std::min(n, begin + chunk);
        out = step(tokens.subspan(begin, end - begin), all_logits, options);
    }
    return out;
}

int32_t argmax_row(const Tensor& logits, int64_t row) {
    DSA_CHECK(logits.dtype() == DType::kF32 && logits.device() == Device::kCPU);
    const int64_t vocab = logits.dim(1);
    const float* r = logits.data<float>() + row * vocab;
    int64_t best = 0;
    for (int64_t v = 1; v < vocab; ++v) {
        if (r[v] > r[best]) best = v;
    }
    return static_cast<int32_t>(best);
}

}  // namespace dsa::model
