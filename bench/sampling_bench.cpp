// Batched GPU sampling (Backend::sample) at vocab 129,280 for B = 1, 64, 256: greedy, temperature + top-p 0.95,
// and top-k 50 + top-p 0.9 + min-p + penalties with 16 edited tokens per row. Each case is the whole op as the
// engine calls it (parameter packing and upload, the kernel, the 16-byte-per-row download), timed with CUDA
// events (median of 5 runs of 20 calls). For scale it also times downloading the whole [B, V] f32 logits, the
// copy the CPU sampler needs before it starts. Usage: sampling_bench
#include <cstdio>
#include <random>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "cuda_timing.h"

namespace dsa::backend {
namespace {

constexpr int64_t kVocab = 129280;

std::vector<SampleRow> rows_for(int mode, int64_t batch, std::mt19937& rng) {
    std::vector<SampleRow> rows(static_cast<size_t>(batch));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int64_t i = 0; i < batch; ++i) {
        SampleRow& r = rows[static_cast<size_t>(i)];
        r.logits_row = i;
        r.greedy = mode == 0;
        r.temperature = 0.7;
        r.top_p = mode == 0 ? 1.0 : (mode == 1 ? 0.95 : 0.9);
        r.uniform = u(rng);
        if (mode == 2) {
            r.top_k = 50, r.min_p = 0.02;
            r.frequency_penalty = 0.3, r.presence_penalty = 0.2, r.repetition_penalty = 1.1;
            for (int32_t k = 0; k < 16; ++k) r.edits.push_back(SampleEdit{k * 997, 1 + k % 3, false, 0.0});
        }
    }
    return rows;
}

void run() {
    auto be = make_cuda_backend(Numerics::bf16(), 0);
    auto& cuda = static_cast<cuda::CudaBackend&>(*be);
    std::mt19937 rng(7);
    const char* names[3] = {"greedy", "temp0.7+top_p0.95", "top_k50+top_p0.9+min_p+penalties"};
    std::printf("%-36s %6s %12s %14s\n", "case", "B", "us/batch", "download_us");
    for (int64_t batch : {1, 64, 256}) {
        Tensor host = Tensor::empty({batch, kVocab}, DType::kF32);
        std::normal_distribution<float> d(0.0f, 2.5f);
        for (int64_t i = 0; i < host.numel(); ++i) host.data<float>()[i] = d(rng);
        Tensor logits = be->to_device(host);
        const double down = bench::median_seconds_per_call(
            cuda, [&](int) { (void)be->to_host(logits); }, 5, 3);
        for (int mode = 0; mode < 3; ++mode) {
            std::vector<SampleRow> rows = rows_for(mode, batch, rng);
            const double s = bench::median_seconds_per_call(cuda, [&](int) {
                StatusOr<std::vector<SampledToken>> got = be->sample(logits, rows);
                if (!got.is_ok()) std::fprintf(stderr, "sample failed: %s\n", got.status().message().c_str());
            });
            std::printf("%-36s %6lld %12.1f %14.1f\n", names[mode], static_cast<long long>(batch), s * 1e6, down * 1e6);
        }
    }
}

}  // namespace
}  // namespace dsa::backend

int main() {
    if (dsa::backend::cuda_device_count() == 0) {
        std::printf("sampling_bench: no CUDA device, nothing to measure\n");
        return 0;
    }
    dsa::backend::run();
    return 0;
}
