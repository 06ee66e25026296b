// CudaBackend::sample: checks every row's parameters on the host (a bad value is an InvalidArgument, never a
// kernel fault), packs the greedy rows, the sampled rows and their edits (sorted by token within a row) into a
// pinned staging buffer reused across calls, uploads it with one async copy, runs launch_sampling (with the split
// greedy path's workspace; DSA_SAMPLING_LEGACY=1: the round-1 kernels), downloads 16 bytes per row with one async
// copy and synchronizes the stream once.
#include <algorithm>
#include <cmath>
#include <cstdint>
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

SampleRowDesc describe(const SampleRow& r, int32_t edit_begin, int32_t out_index) {
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
    d.out_index = out_index;
    return d;
}

// Page-locked host staging of this thread's sample calls (upload, then download), grown on demand and kept. Every
// call ends with a stream synchronization, so no copy of the previous call still reads or writes it.
class PinnedStaging {
  public:
    PinnedStaging() = default;
    PinnedStaging(const PinnedStaging&) = delete;
    PinnedStaging& operator=(const PinnedStaging&) = delete;
    ~PinnedStaging() {
        if (ptr_ != nullptr) (void)cudaFreeHost(ptr_);  // may run after the runtime shut down: errors ignored
    }
    uint8_t* get(size_t bytes) {
        if (bytes <= cap_) return ptr_;
        if (ptr_ != nullptr) DSA_CUDA_CHECK(cudaFreeHost(ptr_));
        ptr_ = nullptr, cap_ = 0;
        const size_t cap = std::max<size_t>(bytes + bytes / 2, size_t{64} << 10);
        void* p = nullptr;
        DSA_CUDA_CHECK(cudaHostAlloc(&p, cap, cudaHostAllocPortable));
        ptr_ = static_cast<uint8_t*>(p), cap_ = cap;
        return ptr_;
    }

  private:
    uint8_t* ptr_ = nullptr;
    size_t cap_ = 0;
};

size_t align16(size_t n) { return (n + 15) / 16 * 16; }

}  // namespace

StatusOr<std::vector<SampledToken>> CudaBackend::sample(const Tensor& logits, std::span<const SampleRow> rows) {
    if (!logits.defined() || logits.device() != Device::kCUDA || logits.dtype() != DType::kF32 || logits.ndim() != 2 ||
        !logits.is_contiguous()) {
        return invalid_argument("sample: logits must be a contiguous [R, V] f32 CUDA tensor");
    }
    const int64_t num_logit_rows = logits.dim(0), vocab = logits.dim(1);
    // Up to 2^23 ids: a CTA's bitmap of edited ids (vocab / 64 bytes) then fits in shared memory.
    if (vocab < 1 || vocab > (int64_t{1} << 23)) return invalid_argument("sample: vocab {} out of range", vocab);
    std::vector<SampleRowDesc> greedy, sampled;
    std::vector<SampleEditDesc> edits;
    for (size_t i = 0; i < rows.size(); ++i) {
        const SampleRow& r = rows[i];
        if (Status st = check_row(r, num_logit_rows, vocab); !st.is_ok()) return st;
        if (edits.size() + r.edits.size() > static_cast<size_t>(INT32_MAX))
            return invalid_argument("sample: too many edits");
        (r.greedy ? greedy : sampled)
            .push_back(describe(r, static_cast<int32_t>(edits.size()), static_cast<int32_t>(i)));
        const size_t first = edits.size();
        for (const SampleEdit& e : r.edits)
            edits.push_back(SampleEditDesc{e.token, e.count, e.masked ? 1 : 0, 0, e.bias});
        std::sort(edits.begin() + static_cast<std::ptrdiff_t>(first), edits.end(),
                  [](const SampleEditDesc& a, const SampleEditDesc& b) { return a.token < b.token; });
    }
    if (rows.empty()) return std::vector<SampledToken>{};

    // One upload: [greedy descs | sampled descs | edits]; the download lands after it in the same staging buffer.
    const size_t greedy_bytes = greedy.size() * sizeof(SampleRowDesc),
                 sampled_bytes = sampled.size() * sizeof(SampleRowDesc);
    const size_t edit_bytes = edits.size() * sizeof(SampleEditDesc);
    const size_t up_bytes = greedy_bytes + sampled_bytes + edit_bytes, out_bytes = rows.size() * sizeof(SampleOutDesc);
    thread_local PinnedStaging staging;
    uint8_t* h = staging.get(align16(up_bytes) + out_bytes);
    if (greedy_bytes > 0) std::memcpy(h, greedy.data(), greedy_bytes);
    if (sampled_bytes > 0) std::memcpy(h + greedy_bytes, sampled.data(), sampled_bytes);
    if (edit_bytes > 0) std::memcpy(h + greedy_bytes + sampled_bytes, edits.data(), edit_bytes);
    Tensor dev = Tensor::empty({static_cast<int64_t>(up_bytes)}, DType::kU8, Device::kCUDA, "sample_params");
    DSA_CUDA_CHECK(cudaMemcpyAsync(dev.raw_data(), h, up_bytes, cudaMemcpyHostToDevice, stream_));
    Tensor out = Tensor::empty({static_cast<int64_t>(out_bytes)}, DType::kU8, Device::kCUDA, "sample_out");

    SamplingKernelParams p;
    const uint8_t* d = dev.data<uint8_t>();
    p.logits = logits.data<float>();
    p.num_logit_rows = num_logit_rows;
    p.vocab = vocab;
    p.greedy_rows = reinterpret_cast<const SampleRowDesc*>(d);
    p.num_greedy = static_cast<int64_t>(greedy.size());
    p.sampled_rows = reinterpret_cast<const SampleRowDesc*>(d + greedy_bytes);
    p.num_sampled = static_cast<int64_t>(sampled.size());
    p.edits = reinterpret_cast<const SampleEditDesc*>(d + greedy_bytes + sampled_bytes);
    p.num_edits = static_cast<int64_t>(edits.size());
    p.out = reinterpret_cast<SampleOutDesc*>(out.data<uint8_t>());
    p.legacy = sampling_legacy_from_env() ? 1 : 0;
    Tensor workspace;
    if (!greedy.empty() && !p.legacy) {
        p.workspace_bytes = sampling_workspace_bytes(p.num_greedy, vocab);
        workspace = Tensor::empty({p.workspace_bytes}, DType::kU8, Device::kCUDA, "sample_workspace");
        p.workspace = workspace.data<uint8_t>();
    }
    launch_sampling(p, stream_);

    uint8_t* got = h + align16(up_bytes);
    DSA_CUDA_CHECK(cudaMemcpyAsync(got, out.raw_data(), out_bytes, cudaMemcpyDeviceToHost, stream_));
    synchronize();
    std::vector<SampledToken> result(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
        SampleOutDesc o;
        std::memcpy(&o, got + i * sizeof(SampleOutDesc), sizeof(o));
        result[i] = SampledToken{o.token, o.logprob, o.fallback != 0};
    }
    return result;
}

}  // namespace dsa::backend::cuda
