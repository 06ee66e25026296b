// CudaBackend::sample: checks every row's parameters on the host (a bad value is an InvalidArgument, never a
// kernel fault), packs the rows and their edits into one upload, runs launch_sampling and downloads
// 16 bytes per row. The probability scratch ([sampled rows, vocab] f64) comes from the caching allocator.
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/sampling_kernels.h"

namespace dsa::backend::cuda {
namespace {

Status check_row(const SampleRow& r, int64_t num_logit_rows, int64_t vocab) {
    if (r.logits_row < 0 || r.logits_row >= num_logit_rows) {
        return invalid_argument("sample: logits row {} out of [0, {})", r.logits_row, num_logit_rows);
    }
    if (!r.greedy && !(r.temperature > 0.0 && std::isfinite(r.temperature))) {
        return invalid_argument("sample: temperature {} must be positive and finite", r.temperature);
    }
    if (!(r.top_p > 0.0) || !(r.min_p >= 0.0 && r.min_p <= 1.0) || !(r.uniform >= 0.0 && r.uniform < 1.0)) {
        return invalid_argument("sample: top_p {} / min_p {} / uniform {} out of range", r.top_p, r.min_p, r.uniform);
    }
    if (!std::isfinite(r.frequency_penalty) || !std::isfinite(r.presence_penalty) ||
        !(r.repetition_penalty > 0.0 && std::isfinite(r.repetition_penalty))) {
        return invalid_argument("sample: penalties must be finite and repetition_penalty positive");
    }
    std::unordered_set<int32_t> seen;
    for (const SampleEdit& e : r.edits) {
        if (e.token < 0 || e.token >= vocab)
            return invalid_argument("sample: edited token {} out of [0, {})", e.token, vocab);
        if (e.count < 0 || !std::isfinite(e.bias)) return invalid_argument("sample: bad edit of token {}", e.token);
        if (!seen.insert(e.token).second) return invalid_argument("sample: token {} edited twice in a row", e.token);
    }
    return Status::ok();
}

SampleRowDesc describe(const SampleRow& r, int32_t edit_begin, int32_t prob_slot) {
    SampleRowDesc d{};
    d.temperature = r.temperature;
    d.top_p = r.top_p;
    d.min_p = r.min_p;
    d.frequency_penalty = r.frequency_penalty;
    d.presence_penalty = r.presence_penalty;
    d.repetition_penalty = r.repetition_penalty;
    d.uniform = r.uniform;
    d.logits_row = r.logits_row;
    d.top_k = r.top_k;
    d.greedy = r.greedy ? 1 : 0;
    d.edit_begin = edit_begin;
    d.edit_end = edit_begin + static_cast<int32_t>(r.edits.size());
    d.prob_slot = prob_slot;
    return d;
}

}  // namespace

StatusOr<std::vector<SampledToken>> CudaBackend::sample(const Tensor& logits, std::span<const SampleRow> rows) {
    if (!logits.defined() || logits.device() != Device::kCUDA || logits.dtype() != DType::kF32 || logits.ndim() != 2 ||
        !logits.is_contiguous()) {
        return invalid_argument("sample: logits must be a contiguous [R, V] f32 CUDA tensor");
    }
    const int64_t num_logit_rows = logits.dim(0), vocab = logits.dim(1);
    if (vocab < 1 || vocab > INT32_MAX) return invalid_argument("sample: vocab {} out of range", vocab);
    std::vector<SampleRowDesc> descs;
    std::vector<SampleEditDesc> edits;
    int32_t num_slots = 0;
    for (const SampleRow& r : rows) {
        if (Status st = check_row(r, num_logit_rows, vocab); !st.is_ok()) return st;
        descs.push_back(describe(r, static_cast<int32_t>(edits.size()), r.greedy ? -1 : num_slots));
        if (!r.greedy) ++num_slots;
        for (const SampleEdit& e : r.edits)
            edits.push_back(SampleEditDesc{e.token, e.count, e.masked ? 1 : 0, 0, e.bias});
    }
    if (rows.empty()) return std::vector<SampledToken>{};
    if (edits.size() > static_cast<size_t>(INT32_MAX)) return invalid_argument("sample: too many edits");

    // One upload: [row descs | edits].
    const size_t rows_bytes = descs.size() * sizeof(SampleRowDesc), edit_bytes = edits.size() * sizeof(SampleEditDesc);
    Tensor host = Tensor::empty({static_cast<int64_t>(rows_bytes + edit_bytes)}, DType::kU8);
    std::memcpy(host.raw_data(), descs.data(), rows_bytes);
    if (edit_bytes > 0) std::memcpy(host.data<uint8_t>() + rows_bytes, edits.data(), edit_bytes);
    Tensor dev = to_device(host);
    Tensor probs;
    if (num_slots > 0) probs = Tensor::empty({num_slots, vocab}, DType::kF64, Device::kCUDA, "sample_probs");
    Tensor out = Tensor::empty({static_cast<int64_t>(rows.size() * sizeof(SampleOutDesc))}, DType::kU8, Device::kCUDA,
                               "sample_out");

    SamplingKernelParams p;
    p.logits = logits.data<float>();
    p.num_logit_rows = num_logit_rows;
    p.vocab = vocab;
    p.rows = reinterpret_cast<const SampleRowDesc*>(dev.data<uint8_t>());
    p.num_rows = static_cast<int64_t>(rows.size());
    p.edits = reinterpret_cast<const SampleEditDesc*>(dev.data<uint8_t>() + rows_bytes);
    p.num_edits = static_cast<int64_t>(edits.size());
    p.probs = num_slots > 0 ? probs.data<double>() : nullptr;
    p.num_prob_slots = num_slots;
    p.out = reinterpret_cast<SampleOutDesc*>(out.data<uint8_t>());
    launch_sampling(p, stream_);

    Tensor got = to_host(out);  // synchronizes the stream
    std::vector<SampledToken> result(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
        SampleOutDesc o;
        std::memcpy(&o, got.data<uint8_t>() + i * sizeof(SampleOutDesc), sizeof(o));
        result[i] = SampledToken{o.token, o.logprob, o.fallback != 0};
    }
    return result;
}

}  // namespace dsa::backend::cuda
