// One DeepSeek-V3.2 MoE layer on the CUDA backend (Numerics::deepseek_fp8): 256 FP8 routed experts (D 7168,
// F 2048) + the shared expert, router E 256 / 8 groups / top-4 groups / top-8. At batch 1..64: route,
// routed experts, shared expert (dense_mlp) and the whole layer, timed with CUDA events (median of 5 runs of 20
// calls, 8 rotated inputs so the active experts change). Prints achieved TB/s of the active experts' weight
// bytes (scales included; each active expert counted once per call) and the ratio to reading them once at
// 4.8 TB/s (the target is <= 1.3x at batch 1); the routed line names the expert path taken. Also the GLM-5
// router (D 6144, no groups). Usage: moe_bench
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cuda_timing.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "tensor/numeric.h"

namespace dsa::backend {
namespace {

constexpr double kHbmBytesPerS = 4.8e12;
constexpr int kCopies = 8;
constexpr int64_t kDim = 7168, kInter = 2048, kExperts = 256, kTopK = 8;

double time_per_call(cuda::CudaBackend& be, const std::function<void(int)>& fn) {
    return bench::median_seconds_per_call(be, fn);
}

// Random finite e4m3 bytes (NaN codes 0x7f / 0xff skipped), cheap enough for 44 MB.
Tensor random_fp8(int64_t rows, int64_t cols, uint64_t seed) {
    Tensor t = Tensor::empty({rows, cols}, DType::kF8E4M3);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    auto* p = t.data<uint8_t>();
    for (int64_t i = 0; i < t.numel(); ++i) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        uint8_t b = static_cast<uint8_t>(s >> 24);
        if ((b & 0x7f) == 0x7f) b &= 0xfe;
        p[i] = b;
    }
    return t;
}

Tensor pow2_scales(int64_t rows, int64_t cols) {
    Tensor t = Tensor::empty({(rows + 127) / 128, (cols + 127) / 128}, DType::kF32);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = 1.0f / 4096.0f;
    return t;
}

Tensor random_bf16(const Shape& shape, std::mt19937& rng, float stddev) {
    Tensor t = Tensor::empty(shape, DType::kBF16);
    std::normal_distribution<float> d(0.0f, stddev);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<uint16_t>()[i] = f32_to_bf16(d(rng));
    return t;
}

// Host FP8 templates, uploaded once per expert (distinct device copies: nothing is shared through L2).
struct ExpertSet {
    std::vector<MlpWeights> routed;
    MlpWeights shared;
    double bytes_per_expert = 0;
};

ExpertSet make_experts(Backend& be) {
    Tensor gate = random_fp8(kInter, kDim, 1), up = random_fp8(kInter, kDim, 2), down = random_fp8(kDim, kInter, 3);
    Tensor s_gu = pow2_scales(kInter, kDim), s_d = pow2_scales(kDim, kInter);
    ExpertSet set;
    auto one = [&] {
        return MlpWeights{{be.to_device(gate), s_gu}, {be.to_device(up), s_gu}, {be.to_device(down), s_d}};
    };
    for (int64_t e = 0; e < kExperts; ++e) set.routed.push_back(one());
    set.shared = one();
    set.bytes_per_expert =
        static_cast<double>(gate.nbytes() + up.nbytes() + down.nbytes() + 2 * s_gu.nbytes() + s_d.nbytes());
    return set;
}

void print_row(const std::string& name, double seconds, double bytes) {
    if (bytes > 0) {
        const double floor = bytes / kHbmBytesPerS;
        std::printf("%-44s %9.2f us %8.1f MB %7.3f TB/s %6.1f%% of 4.8  %5.2fx read-once\n", name.c_str(),
                    seconds * 1e6, bytes / 1e6, bytes / seconds / 1e12, 100.0 * bytes / seconds / kHbmBytesPerS,
                    seconds / floor);
    } else {
        std::printf("%-44s %9.2f us\n", name.c_str(), seconds * 1e6);
    }
    std::fflush(stdout);
}

RouterParams router(const Tensor& weight, const Tensor& bias, int64_t groups, int64_t topk_groups) {
    RouterParams p;
    p.weight = weight;
    p.bias = bias;
    p.num_groups = groups;
    p.topk_groups = topk_groups;
    p.top_k = kTopK;
    p.routed_scaling_factor = 2.5f;
    return p;
}

void bench_layer(cuda::CudaBackend& be, const ExpertSet& ex, std::mt19937& rng, int64_t batch) {
    Tensor rw = random_bf16({kExperts, kDim}, rng, 0.02f);
    Tensor bias = Tensor::empty({kExperts}, DType::kF32);
    for (int64_t e = 0; e < kExperts; ++e) bias.data<float>()[e] = 0.01f * static_cast<float>(e % 7);
    RouterParams rp = router(rw, bias, 8, 4);
    std::vector<Tensor> xs;
    std::vector<RouterResult> routes;
    double active_bytes = 0;
    for (int i = 0; i < kCopies; ++i) {
        xs.push_back(be.to_device(random_bf16({batch, kDim}, rng, 1.0f)));
        rp.x = xs.back();
        routes.push_back(be.moe_route(rp));
        Tensor ids = be.to_host(routes.back().ids);
        std::set<int32_t> active(ids.data<int32_t>(), ids.data<int32_t>() + ids.numel());
        active_bytes += static_cast<double>(active.size()) * ex.bytes_per_expert / kCopies;
    }
    const std::string tag = "B=" + std::to_string(batch) + " ";
    const double route = time_per_call(be, [&](int i) {
        rp.x = xs[i % kCopies];
        be.moe_route(rp);
    });
    const double routed = time_per_call(be, [&](int i) {
        const RouterResult& r = routes[i % kCopies];
        be.moe_experts(MoeParams{xs[i % kCopies], r.ids, r.weights, ex.routed});
    });
    const double shared = time_per_call(be, [&](int i) { be.dense_mlp(xs[i % kCopies], ex.shared); });
    const double layer = time_per_call(be, [&](int i) {
        rp.x = xs[i % kCopies];
        RouterResult r = be.moe_route(rp);
        Tensor y = be.moe_experts(MoeParams{rp.x, r.ids, r.weights, ex.routed});
        be.add(y, be.dense_mlp(rp.x, ex.shared));
    });
    const RouterResult& r0 = routes[0];
    be.moe_experts(MoeParams{xs[0], r0.ids, r0.weights, ex.routed});
    using P = cuda::CudaBackend::MoePath;
    const P path = be.last_moe_path();
    const char* path_name = path == P::kStream       ? "stream-fp8"
                            : path == P::kDeviceGemv ? "gemv"
                                                     : "host-grouped";
    print_row(tag + "route (dsv32 E256 g8/4 top8)", route, 0);
    print_row(tag + "routed experts [" + path_name + "] (" +
                  std::to_string(static_cast<int>(active_bytes / ex.bytes_per_expert + 0.5)) + " active)",
              routed, active_bytes);
    print_row(tag + "shared expert (dense_mlp)", shared, ex.bytes_per_expert);
    print_row(tag + "layer: route+routed+shared+add", layer, active_bytes + ex.bytes_per_expert);
}

void bench_glm_route(cuda::CudaBackend& be, std::mt19937& rng) {
    Tensor rw = random_bf16({kExperts, 6144}, rng, 0.02f);
    Tensor bias = Tensor::zeros({kExperts}, DType::kF32);
    RouterParams rp = router(rw, bias, 1, 1);
    for (int64_t batch : {1, 8, 64}) {
        std::vector<Tensor> xs;
        for (int i = 0; i < kCopies; ++i) xs.push_back(be.to_device(random_bf16({batch, 6144}, rng, 1.0f)));
        const double t = time_per_call(be, [&](int i) {
            rp.x = xs[i % kCopies];
            be.moe_route(rp);
        });
        print_row("B=" + std::to_string(batch) + " route (glm5 D6144 E256 top8)", t, 0);
    }
}

}  // namespace
}  // namespace dsa::backend

int main() {
    using namespace dsa::backend;
    if (cuda_device_count() == 0) {
        std::fprintf(stderr, "moe_bench: no CUDA device\n");
        return 1;
    }
    auto backend = make_cuda_backend(Numerics::deepseek_fp8(), 0);
    auto& be = static_cast<cuda::CudaBackend&>(*backend);
    std::mt19937 rng(7);
    std::printf("MoE layer, DeepSeek-V3.2 shapes, FP8 experts, act_quant UE8M0 (uploading 257 experts)\n");
    const ExpertSet ex = make_experts(be);
    for (int64_t batch : {1, 2, 4, 8, 16, 32, 64, 128}) bench_layer(be, ex, rng, batch);
    bench_glm_route(be, rng);
    return 0;
}
