// Batched GPU sampling (Backend::sample) at vocab 129,280 (and GLM's 154,880 with --glm) for B = 1, 64, 256 per
// family: greedy, temperature only, top-k 50 + top-p 0.95, top-p 0.95 on flat logits (a large kept set), and
// top-k 50 + top-p 0.9 + min-p + penalties with 16 edited tokens per row. Two times per case, CUDA events, median of
// 5 runs of 20 calls: "op" is the whole call as the engine makes it (packing, upload, kernels, 16-byte-per-row
// download and its synchronisation), "kernel" the launch_sampling kernels alone on pre-uploaded parameters, with
// the logits read rate it implies, and "legacy_us" the round-1 kernels (DSA_SAMPLING_LEGACY) on the same rows.
// For scale, "cpu_dl_us" times what the CPU sampler must do first: download the whole [B, V] f32 logits with
// Backend::to_host (a fresh pageable host tensor per call, so page faults included; not part of the GPU path).
// Usage: sampling_bench [--glm]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/sampling_kernels.h"
#include "cuda_timing.h"

namespace dsa::backend {
namespace {

constexpr int kModes = 5;
const char* const kNames[kModes] = {"greedy", "temp0.7", "temp0.7+top_k50+top_p0.95", "temp1+top_p0.95 flat",
                                    "top_k50+top_p0.9+min_p+penalties"};

std::vector<SampleRow> rows_for(int mode, int64_t batch, std::mt19937& rng) {
    std::vector<SampleRow> rows(static_cast<size_t>(batch));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int64_t i = 0; i < batch; ++i) {
        SampleRow& r = rows[static_cast<size_t>(i)];
        r.logits_row = i;
        r.greedy = mode == 0;
        r.temperature = mode == 3 ? 1.0 : 0.7;
        r.uniform = u(rng);
        if (mode == 2) r.top_k = 50, r.top_p = 0.95;
        if (mode == 3) r.top_p = 0.95;
        if (mode == 4) {
            r.top_k = 50, r.top_p = 0.9, r.min_p = 0.02;
            r.frequency_penalty = 0.3, r.presence_penalty = 0.2, r.repetition_penalty = 1.1;
            for (int32_t k = 0; k < 16; ++k) r.edits.push_back(SampleEdit{k * 997, 1 + k % 3, false, 0.0});
        }
    }
    return rows;
}

// The kernels alone: the rows packed as the op packs them (edits are already sorted by token here).
double kernel_seconds(cuda::CudaBackend& cuda, const Tensor& logits, const std::vector<SampleRow>& rows,
                      bool legacy) {
    std::vector<cuda::SampleRowDesc> descs;
    std::vector<cuda::SampleEditDesc> edits;
    for (size_t i = 0; i < rows.size(); ++i) {
        const SampleRow& r = rows[i];
        cuda::SampleRowDesc d{r.temperature,
                              r.top_p,
                              r.min_p,
                              r.frequency_penalty,
                              r.presence_penalty,
                              r.repetition_penalty,
                              r.uniform,
                              r.logits_row,
                              r.top_k,
                              r.greedy ? 1 : 0,
                              static_cast<int32_t>(edits.size()),
                              static_cast<int32_t>(edits.size() + r.edits.size()),
                              static_cast<int32_t>(i),
                              0};
        descs.push_back(d);
        for (const SampleEdit& e : r.edits)
            edits.push_back(cuda::SampleEditDesc{e.token, e.count, e.masked, 0, e.bias});
    }
    const size_t rows_bytes = descs.size() * sizeof(cuda::SampleRowDesc);
    const size_t edit_bytes = edits.size() * sizeof(cuda::SampleEditDesc);
    Tensor host = Tensor::empty({static_cast<int64_t>(rows_bytes + edit_bytes + 16)}, DType::kU8);
    std::memcpy(host.data<uint8_t>(), descs.data(), rows_bytes);
    if (edit_bytes > 0) std::memcpy(host.data<uint8_t>() + rows_bytes, edits.data(), edit_bytes);
    Tensor dev = cuda.to_device(host);
    Tensor out = Tensor::empty({static_cast<int64_t>(rows.size() * sizeof(cuda::SampleOutDesc))}, DType::kU8,
                               Device::kCUDA, "bench_out");
    cuda::SamplingKernelParams p;
    p.logits = logits.data<float>();
    p.num_logit_rows = logits.dim(0);
    p.vocab = logits.dim(1);
    const auto* d = reinterpret_cast<const cuda::SampleRowDesc*>(dev.data<uint8_t>());
    (rows.front().greedy ? p.greedy_rows : p.sampled_rows) = d;
    (rows.front().greedy ? p.num_greedy : p.num_sampled) = static_cast<int64_t>(rows.size());
    p.edits = reinterpret_cast<const cuda::SampleEditDesc*>(dev.data<uint8_t>() + rows_bytes);
    p.num_edits = static_cast<int64_t>(edits.size());
    p.out = reinterpret_cast<cuda::SampleOutDesc*>(out.data<uint8_t>());
    p.legacy = legacy ? 1 : 0;
    p.workspace_bytes = cuda::sampling_workspace_bytes(p.num_greedy, p.vocab);
    Tensor workspace = Tensor::empty({std::max<int64_t>(p.workspace_bytes, 1)}, DType::kU8, Device::kCUDA, "bench_ws");
    p.workspace = workspace.data<uint8_t>();
    return bench::median_seconds_per_call(cuda, [&](int) { cuda::launch_sampling(p, cuda.stream()); });
}

void run(int64_t vocab) {
    auto be = make_cuda_backend(Numerics::bf16(), 0);
    auto& cuda = static_cast<cuda::CudaBackend&>(*be);
    std::mt19937 rng(7);
    std::printf("vocab %lld\n%-36s %6s %10s %10s %12s %10s %12s\n", static_cast<long long>(vocab), "case", "B",
                "op_us", "kernel_us", "kernel_GB/s", "legacy_us", "cpu_dl_us");
    for (int64_t batch : {1, 64, 256}) {
        Tensor logits[2];
        for (int flat = 0; flat < 2; ++flat) {
            Tensor host = Tensor::empty({batch, vocab}, DType::kF32);
            std::normal_distribution<float> d(0.0f, flat ? 1.0f : 2.5f);
            for (int64_t i = 0; i < host.numel(); ++i) host.data<float>()[i] = d(rng);
            logits[flat] = be->to_device(host);
        }
        const double down = bench::median_seconds_per_call(
            cuda, [&](int) { (void)be->to_host(logits[0]); }, 5, 3);
        for (int mode = 0; mode < kModes; ++mode) {
            const Tensor& x = logits[mode == 3 ? 1 : 0];
            std::vector<SampleRow> rows = rows_for(mode, batch, rng);
            const double op = bench::median_seconds_per_call(cuda, [&](int) {
                StatusOr<std::vector<SampledToken>> got = be->sample(x, rows);
                if (!got.is_ok()) std::fprintf(stderr, "sample failed: %s\n", got.status().message().c_str());
            });
            const double kernel = kernel_seconds(cuda, x, rows, false), legacy = kernel_seconds(cuda, x, rows, true);
            const double gbs = static_cast<double>(batch * vocab) * sizeof(float) / kernel * 1e-9;
            std::printf("%-36s %6lld %10.1f %10.1f %12.0f %10.1f %12.1f\n", kNames[mode], static_cast<long long>(batch),
                        op * 1e6, kernel * 1e6, gbs, legacy * 1e6, down * 1e6);
        }
    }
}

}  // namespace
}  // namespace dsa::backend

int main(int argc, char** argv) {
    if (dsa::backend::cuda_device_count() == 0) {
        std::printf("sampling_bench: no CUDA device, nothing to measure\n");
        return 0;
    }
    dsa::backend::run(129280);
    if (argc > 1 && std::strcmp(argv[1], "--glm") == 0) dsa::backend::run(154880);
    return 0;
}
