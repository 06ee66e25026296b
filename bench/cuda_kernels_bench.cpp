// CUDA kernel benchmarks at DeepSeek-V3.2 shapes (DESIGN §5): RMSNorm (+ residual), RoPE, and the linears
// (BF16 and FP8 128x128 block weights with DeepSeek act_quant) at decode M = 1..256 and prefill M = 4096, 16384
// for N x K = 7168 x 2048, 2048 x 7168, 2112 x 7168, 24576 x 1536. Each case runs through the backend op (its
// allocation and launch overhead included), back to back on one stream, timed with CUDA events: median over 5
// runs of 20 calls after warm-up, 8 rotated input/weight copies so that L2 cannot hold them. Prints time,
// achieved TB/s and TFLOP/s, and % of the floor max(bytes / 4.8 TB/s, FLOPs / peak) with peaks 790 (bf16) and
// 1460 (FP8) TFLOP/s as measured on the H200. The FP8 streaming decode GEMM (fp8_stream_gemm.cu) is also timed
// alone: 40 launches rotating >= 8 weight copies (>= 160 MB) captured in a CUDA graph (no host launch cost), at
// M = 1..64 on every decode shape (staged, ring and wgmma variants): us, TB/s of FP8 weight bytes, % of 4.8 TB/s.
// Decode linears (also alone with --decode-linears): q_a + kv_a + indexer wk over one x as three linear() calls vs
// one linear_multi, staged vs wgmma at M = 32 / 64 and the default plans at M = 1 / 8 / 33 / 64 on the decode
// shapes (one line each), the MLA absorbs at B = 1 / 8, and a chain of 10 dependent FP8 linears (act_quant + GEMM
// each), all in CUDA graphs; run again with DSA_PDL=0 to see what PDL buys. --absorbs (alone, seconds): the absorbs
// (W_UV with and without the short-row kernel), the shared expert's dense_mlp and the M = 1 / 8 single-weight streams.
// --m64 (alone, also in --decode-linears): the M = 33..64 kernel choice (default = wgmma, staged, stream-K plans) at
// M = 48 / 64 on the decode shapes, and the linear_multi launches at M = 1 / 8 / 48 / 64. --cluster (alone): default
// plans vs cluster split-K (DSA_FP8_STREAM_CLUSTER) at M = 1..64, and the kernel alone with and without split-K.
// --shape N K M: one FP8 linear() graph-timed with the plan the environment selects (for ncu). --lean (alone): the
// wgmma kernel vs the lean wgmma kernel (DSA_FP8_WGMMA_LEAN) at M = 1..64, single weights and linear_multi.
// Usage: cuda_kernels_bench [--quick | --decode-linears | --absorbs | --m64 | --cluster | --lean | --shape N K M]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime_api.h>

#include "cuda_timing.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/bf16_stream_gemv.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_stream_gemm.h"
#include "backend/cuda/fp8_wgmma_lean.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/pdl.cuh"
#include "tensor/numeric.h"

namespace dsa::backend {
namespace {

constexpr double kHbmBytesPerS = 4.8e12;
constexpr double kBf16FlopsPerS = 790e12;
constexpr double kFp8FlopsPerS = 1460e12;
constexpr int kCopies = 8;

double time_per_call(cuda::CudaBackend& be, const std::function<void(int)>& fn) {
    return bench::median_seconds_per_call(be, fn);
}

void report(const std::string& name, double seconds, double bytes, double flops, double peak_flops) {
    const double floor = std::max(bytes / kHbmBytesPerS, peak_flops > 0 ? flops / peak_flops : 0.0);
    std::printf("%-58s %10.2f us %8.3f TB/s %8.1f TFLOP/s %6.1f%% of floor\n", name.c_str(), seconds * 1e6,
                bytes / seconds / 1e12, flops / seconds / 1e12, 100.0 * floor / seconds);
    std::fflush(stdout);
}

Tensor random_bf16(const Shape& shape, std::mt19937& rng, float stddev) {
    Tensor t = Tensor::empty(shape, DType::kBF16);
    std::normal_distribution<float> d(0.0f, stddev);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<uint16_t>()[i] = f32_to_bf16(d(rng));
    return t;
}

std::vector<Tensor> device_copies(Backend& be, const Tensor& host) {
    std::vector<Tensor> v;
    for (int i = 0; i < kCopies; ++i) v.push_back(be.to_device(host));
    return v;
}

void bench_norms(cuda::CudaBackend& be, std::mt19937& rng, bool quick) {
    const int64_t dim = 7168;
    Tensor w = Tensor::empty({dim}, DType::kF32);
    for (int64_t i = 0; i < dim; ++i) w.data<float>()[i] = 1.0f;
    for (int64_t t : quick ? std::vector<int64_t>{1, 4096} : std::vector<int64_t>{1, 8, 64, 256, 4096, 16384}) {
        auto xs = device_copies(be, random_bf16({t, dim}, rng, 1.0f));
        auto ds = device_copies(be, random_bf16({t, dim}, rng, 1.0f));
        const double act = static_cast<double>(t) * dim * 2;
        report("rms_norm T=" + std::to_string(t) + " D=7168",
               time_per_call(be, [&](int i) { be.rms_norm(xs[i % kCopies], w, 1e-6f); }), 2 * act, 0, 0);
        report("add_rms_norm T=" + std::to_string(t) + " D=7168",
               time_per_call(be, [&](int i) { be.add_rms_norm(xs[i % kCopies], ds[i % kCopies], w, 1e-6f); }),
               4 * act, 0, 0);
    }
}

void bench_rope(cuda::CudaBackend& be, std::mt19937& rng, bool quick) {
    std::vector<float> inv_freq(32);
    for (int i = 0; i < 32; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / 64.0f);
    RopeTable table = be.make_rope_table(inv_freq, 8192);
    for (int64_t t : quick ? std::vector<int64_t>{1, 4096} : std::vector<int64_t>{1, 64, 256, 4096, 16384}) {
        auto qs = device_copies(be, random_bf16({t, 128, 192}, rng, 1.0f));
        std::vector<int32_t> pos(t);
        for (int64_t i = 0; i < t; ++i) pos[i] = static_cast<int32_t>(i % 8192);
        Tensor p = Tensor::empty({t}, DType::kI32);
        std::memcpy(p.raw_data(), pos.data(), t * 4);
        Tensor dp = be.to_device(p);
        // Minimum bytes: the rotated 64 dims of 128 heads, read and written (the table rows are L2-resident).
        const double bytes = static_cast<double>(t) * 128 * 64 * 2 * 2;
        report("rope q_pe interleaved T=" + std::to_string(t) + " H=128 (64 of 192)",
               time_per_call(be, [&](int i) {
                   be.apply_rope({qs[i % kCopies], dp, &table, RopeLayout::kInterleaved, 128});
               }),
               bytes, 0, 0);
    }
}

LinearWeight host_fp8_weight(int64_t n, int64_t k, std::mt19937& rng) {
    LinearWeight w{Tensor::empty({n, k}, DType::kF8E4M3),
                   Tensor::empty({(n + 127) / 128, (k + 127) / 128}, DType::kF32)};
    std::uniform_int_distribution<int> byte(0, 255);
    for (int64_t i = 0; i < w.weight.numel(); ++i) {
        int b = byte(rng);
        if ((b & 0x7f) == 0x7f) b &= 0xfe;
        w.weight.data<uint8_t>()[i] = static_cast<uint8_t>(b);
    }
    for (int64_t i = 0; i < w.scale_inv.numel(); ++i) w.scale_inv.data<float>()[i] = 1e-3f;
    return w;
}

void bench_linear(cuda::CudaBackend& bf16_be, cuda::CudaBackend& fp8_be, std::mt19937& rng, bool quick) {
    struct NK {
        int64_t n, k;
    };
    const std::vector<int64_t> ms = quick ? std::vector<int64_t>{1, 64, 4096}
                                          : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64, 128, 256, 4096, 16384};
    for (const NK s : {NK{7168, 2048}, NK{2048, 7168}, NK{2112, 7168}, NK{24576, 1536}}) {
        const std::string shape = " N=" + std::to_string(s.n) + " K=" + std::to_string(s.k);
        // BF16 weights.
        std::vector<LinearWeight> wb;
        for (Tensor& t : device_copies(bf16_be, random_bf16({s.n, s.k}, rng, 0.02f))) wb.push_back({t, {}});
        // FP8 weights (device copies; scales uploaded by the backend).
        LinearWeight host8 = host_fp8_weight(s.n, s.k, rng);
        std::vector<LinearWeight> w8;
        for (Tensor& t : device_copies(fp8_be, host8.weight)) w8.push_back({t, host8.scale_inv});
        for (int64_t m : ms) {
            auto xs = device_copies(bf16_be, random_bf16({m, s.k}, rng, 1.0f));
            const double flops = 2.0 * m * s.n * s.k;
            const double io = static_cast<double>(m) * (s.k + s.n) * 2;
            report("linear bf16 M=" + std::to_string(m) + shape,
                   time_per_call(bf16_be,
                                 [&](int i) {
                                     bf16_be.linear(xs[i % kCopies], wb[i % kCopies], LinearOutput::kActivation);
                                 }),
                   static_cast<double>(s.n) * s.k * 2 + io, flops, kBf16FlopsPerS);
            const double t8 = time_per_call(
                fp8_be, [&](int i) { fp8_be.linear(xs[i % kCopies], w8[i % kCopies], LinearOutput::kActivation); });
            const cuda::CudaBackend::Fp8Path fp = fp8_be.last_fp8_path();
            const char* path = fp == cuda::CudaBackend::Fp8Path::kCublasBlockScaled ? "cublasLt-fp8"
                               : fp == cuda::CudaBackend::Fp8Path::kGemv            ? "gemv-fp8"
                               : fp == cuda::CudaBackend::Fp8Path::kStream          ? "stream-fp8"
                                                                                    : "fallback-bf16";
            report("linear fp8 [" + std::string(path) + "] M=" + std::to_string(m) + shape, t8,
                   static_cast<double>(s.n) * s.k + io, flops, kFp8FlopsPerS);
        }
    }
}

// Seconds per launch of `launch(i)` (i = 0..39) captured into one CUDA graph, median of 5 graph replays.
double graph_seconds_per_launch(cuda::CudaBackend& be, const std::function<void(int)>& launch) {
    constexpr int kLaunches = 40;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    DSA_CUDA_CHECK(cudaStreamBeginCapture(be.stream(), cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < kLaunches; ++i) launch(i);
    DSA_CUDA_CHECK(cudaStreamEndCapture(be.stream(), &graph));
    DSA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    const double t = time_per_call(be, [&](int) { DSA_CUDA_CHECK(cudaGraphLaunch(exec, be.stream())); });
    DSA_CUDA_CHECK(cudaGraphExecDestroy(exec));
    DSA_CUDA_CHECK(cudaGraphDestroy(graph));
    return t / kLaunches;
}

// The streaming GEMM kernel alone (x already act_quant-ed) at the decode shapes, 8 rotated weight copies.
void bench_fp8_stream(cuda::CudaBackend& be, std::mt19937& rng, bool quick) {
    struct NK {
        int64_t n, k;
    };
    const std::vector<int64_t> ms = quick ? std::vector<int64_t>{1, 64} : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64};
    const std::vector<NK> shapes = {{7168, 2048}, {2048, 7168}, {24576, 1536}, {1536, 7168},
                                    {576, 7168},  {7168, 16384}, {4096, 7168}, {2112, 7168}};
    int sms = 0;
    DSA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    for (const NK s : shapes) {
        const int64_t kb = s.k / 128;
        LinearWeight host8 = host_fp8_weight(s.n, s.k, rng);
        // >= 8 copies and >= 160 MB of them (a 4 MB weight needs 39 copies to leave the 50 MB L2).
        const int copies = static_cast<int>(std::clamp<int64_t>(160'000'000 / (s.n * s.k) + 1, kCopies, 40));
        std::vector<Tensor> w8;
        for (int i = 0; i < copies; ++i) w8.push_back(be.to_device(host8.weight));
        Tensor scales = be.to_device(host8.scale_inv);  // [ceil(N/128), K/128]
        for (int64_t m : ms) {
            Tensor xb = be.to_device(random_bf16({m, s.k}, rng, 1.0f));
            Tensor xq = Tensor::empty({m, s.k}, DType::kF8E4M3, Device::kCUDA, "x.fp8");
            Tensor xs = Tensor::empty({kb, m}, DType::kF32, Device::kCUDA, "x.scales");
            cuda::launch_act_quant({xb.data<uint16_t>(), xq.data<uint8_t>(), xs.data<float>(), nullptr, m, s.k, m, true},
                                   be.stream());
            Tensor y = Tensor::empty({m, s.n}, DType::kBF16, Device::kCUDA, "y");
            // The kernel variants: the staged default, the first (register ring) version, the wgmma one.
            using V = cuda::Fp8StreamKernel;
            for (const V variant : {V::kStaged, V::kRing, V::kWgmma}) {
                cuda::set_fp8_stream_variant(variant);
                const cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(1, s.n, s.k, m, sms);  // for `variant`
                Tensor ws = Tensor::empty({std::max<int64_t>(plan.ws_floats, 1)}, DType::kF32, Device::kCUDA, "ws");
                Tensor counters =
                    Tensor::empty({std::max<int64_t>(plan.counters, 1)}, DType::kI32, Device::kCUDA, "ctr");
                DSA_CUDA_CHECK(cudaMemsetAsync(counters.raw_data(), 0, counters.nbytes(), be.stream()));
                cuda::Fp8StreamParams p;
                p.w_scale = scales.data<float>();
                p.m = m;
                p.x = xq.data<uint8_t>();
                p.x_scale = xs.data<float>();
                p.x_scale_ld = m;
                p.out = y.data<uint16_t>();
                p.n = s.n, p.k = s.k, p.scale_ld = kb;
                p.ws = ws.data<float>();
                p.counters = counters.data<int32_t>();
                const double t = graph_seconds_per_launch(be, [&](int i) {
                    p.w = w8[i % copies].data<uint8_t>();
                    cuda::launch_fp8_stream_gemm(p, plan, be.stream());
                });
                char name[160];
                std::snprintf(name, sizeof(name), "fp8 stream kernel [%s] M=%lld N=%lld K=%lld (splits %lld, nt %d)",
                              variant == V::kRing ? "ring" : variant == V::kWgmma ? "wgmma" : "staged",
                              static_cast<long long>(m), static_cast<long long>(s.n), static_cast<long long>(s.k),
                              static_cast<long long>(plan.splits), plan.nt);
                report(name, t, static_cast<double>(s.n) * s.k, 0, 0);  // % of the 4.8 TB/s weight-read floor
            }
            cuda::set_fp8_stream_variant(initial);
        }
    }
}

// Seconds per repetition of `body(i)` (i = 0..reps-1) recorded through the backend's graph capture.
double backend_graph_seconds(cuda::CudaBackend& be, int reps, const std::function<void(int)>& body) {
    for (int i = 0; i < reps; ++i) body(i);  // eager warm-up: weight uploads, workspaces, kernel attributes
    auto graph = be.capture_graph([&] {
        for (int i = 0; i < reps; ++i) body(i);
    });
    DSA_CHECK(graph.is_ok()) << graph.status().message();
    return time_per_call(be, [&](int) { be.replay_graph(**graph); }) / reps;
}

// Staged vs wgmma stream kernels through linear() (act_quant + GEMM, CUDA graph, >= 8 rotated weight copies of
// >= 160 MB) at M = 32 and 64 on the V3.2 decode shapes, and q_a + kv_a + wk through linear_multi, side by side:
// the numbers that decide whether DSA_FP8_STREAM_KERNEL=auto (wgmma for dense M >= 32) becomes the default.
void bench_wgmma_vs_staged(cuda::CudaBackend& be, std::mt19937& rng, const std::vector<LinearWeight> (&sets)[3]) {
    using V = cuda::Fp8StreamKernel;
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    const auto both = [&](const std::string& name, double bytes, int reps, const std::function<void(int)>& body) {
        double t[2];
        for (int v = 0; v < 2; ++v) {
            cuda::set_fp8_stream_variant(v == 0 ? V::kStaged : V::kWgmma);
            t[v] = backend_graph_seconds(be, reps, body);
        }
        std::printf("%-44s staged %8.2f us %6.3f TB/s | wgmma %8.2f us %6.3f TB/s | wgmma/staged %.2f\n",
                    name.c_str(), t[0] * 1e6, bytes / t[0] / 1e12, t[1] * 1e6, bytes / t[1] / 1e12, t[1] / t[0]);
        std::fflush(stdout);
    };
    struct NK {
        int64_t n, k;
    };
    // q_a, kv_a, q_b, o_proj, indexer wq_b, 7168x2048, 2048x7168 (shared expert down / gate-like).
    const NK shapes[] = {{1536, 7168}, {576, 7168}, {24576, 1536}, {7168, 16384},
                         {8192, 1536}, {7168, 2048}, {2048, 7168}};
    for (const NK s : shapes) {
        const int copies = static_cast<int>(std::clamp<int64_t>(160'000'000 / (s.n * s.k) + 1, kCopies, 40));
        LinearWeight h = host_fp8_weight(s.n, s.k, rng);
        std::vector<LinearWeight> ws;
        for (int i = 0; i < copies; ++i) ws.push_back({be.to_device(h.weight), h.scale_inv});
        for (int64_t m : {32, 64}) {
            Tensor x = be.to_device(random_bf16({m, s.k}, rng, 1.0f));
            both("linear M=" + std::to_string(m) + " N=" + std::to_string(s.n) + " K=" + std::to_string(s.k),
                 static_cast<double>(s.n) * s.k, copies,
                 [&](int i) { be.linear(x, ws[i], LinearOutput::kActivation); });
        }
    }
    for (int64_t m : {32, 64}) {
        Tensor x = be.to_device(random_bf16({m, 7168}, rng, 1.0f));
        both("q_a+kv_a+wk linear_multi M=" + std::to_string(m), (1536.0 + 576 + 128) * 7168, kCopies, [&](int i) {
            const LinearWeight* w[3] = {&sets[0][i], &sets[1][i], &sets[2][i]};
            be.linear_multi(x, w, LinearOutput::kActivation);
        });
    }
    cuda::set_fp8_stream_variant(initial);
}

struct NK {
    int64_t n, k;
};

const char* plan_kernel_name(const cuda::Fp8StreamPlan& plan) {
    switch (plan.kernel) {
        case cuda::Fp8StreamKernel::kWgmma: return "wgmma";
        case cuda::Fp8StreamKernel::kRing: return "ring";
        default: return "staged";
    }
}

// The default plans through linear() at the given M on FP8 weights of the given shapes, one line each (kernel,
// splits, us, TB/s of FP8 weight bytes, % of 4.8 TB/s).
void bench_decode_shapes(cuda::CudaBackend& be, std::mt19937& rng, const std::vector<NK>& shapes,
                         const std::vector<int64_t>& ms) {
    int sms = 0;
    DSA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    for (const NK s : shapes) {
        const int copies = static_cast<int>(std::clamp<int64_t>(160'000'000 / (s.n * s.k) + 1, kCopies, 40));
        LinearWeight h = host_fp8_weight(s.n, s.k, rng);
        std::vector<LinearWeight> ws;
        for (int i = 0; i < copies; ++i) ws.push_back({be.to_device(h.weight), h.scale_inv});
        for (int64_t m : ms) {
            Tensor x = be.to_device(random_bf16({m, s.k}, rng, 1.0f));
            const cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(1, s.n, s.k, m, sms);
            const double t =
                backend_graph_seconds(be, copies, [&](int i) { be.linear(x, ws[i], LinearOutput::kActivation); });
            const double tbs = static_cast<double>(s.n) * s.k / t / 1e12;
            std::printf("linear M=%-3lld N=%-6lld K=%-6lld [%s%s, splits %lld] %8.2f us %6.3f TB/s %5.1f%% of 4.8\n",
                        static_cast<long long>(m), static_cast<long long>(s.n), static_cast<long long>(s.k),
                        plan_kernel_name(plan), plan.streamk_units > 0 ? " stream-K" : "",
                        static_cast<long long>(plan.splits), t * 1e6, tbs,
                        tbs / 4.8 * 100);
            std::fflush(stdout);
        }
    }
}

const std::vector<NK> kDecodeShapes = {{24576, 1536}, {7168, 16384}, {8192, 1536}, {1536, 7168},
                                       {576, 7168},   {7168, 2048},  {2048, 7168}};

// >= 8 rotated device copies (>= 160 MB) of one random N x K FP8 weight.
std::vector<LinearWeight> fp8_weight_copies(cuda::CudaBackend& be, std::mt19937& rng, int64_t n, int64_t k) {
    const int copies = static_cast<int>(std::clamp<int64_t>(160'000'000 / (n * k) + 1, kCopies, 40));
    LinearWeight h = host_fp8_weight(n, k, rng);
    std::vector<LinearWeight> ws;
    for (int i = 0; i < copies; ++i) ws.push_back({be.to_device(h.weight), h.scale_inv});
    return ws;
}

// The same-input projections launched together by linear_multi (the model's two joint launches).
struct Multi {
    const char* name;
    int64_t k;
    std::vector<int64_t> rows;
};

// Copies of each weight of `mu` (fp8_weight_copies); bytes: the weights' FP8 bytes, one copy each.
std::vector<std::vector<LinearWeight>> multi_weight_sets(cuda::CudaBackend& be, std::mt19937& rng, const Multi& mu,
                                                         double& bytes) {
    std::vector<std::vector<LinearWeight>> sets;
    bytes = 0;
    for (const int64_t r : mu.rows) {
        sets.push_back(fp8_weight_copies(be, rng, r, mu.k));
        bytes += static_cast<double>(r) * mu.k;
    }
    return sets;
}

// Seconds per linear() (act_quant + GEMM) at M token rows over the rotated weight copies, in a CUDA graph, with
// the plan the current switches choose.
double linear_seconds(cuda::CudaBackend& be, std::mt19937& rng, const std::vector<LinearWeight>& ws, int64_t m) {
    Tensor x = be.to_device(random_bf16({m, ws[0].in_features()}, rng, 1.0f));
    const int copies = static_cast<int>(ws.size());
    return backend_graph_seconds(be, copies, [&](int i) { be.linear(x, ws[i], LinearOutput::kActivation); });
}

// --m64: the M = 33..64 kernel choice. linear() (act_quant + GEMM, graph) at M = 48 and 64 on the decode shapes and
// the shared expert's 4096 x 7168 with the default plans (kAuto: wgmma from 32 token rows, the cluster rule), the
// staged kernel (kAuto's choice under 4096 weight rows until session 10), and stream-K plans (DSA_FP8_STREAMK=dense);
// then q_a + kv_a + wk and q_b + wq_b through linear_multi at M = 1, 8, 48, 64: default, staged, cluster 8 on the
// joint plan. us, TB/s of weight bytes, time / default.
void bench_m64(cuda::CudaBackend& be, std::mt19937& rng) {
    int sms = 0;
    DSA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    using V = cuda::Fp8StreamKernel;
    const V variant = cuda::fp8_stream_variant();
    const int streamk = cuda::fp8_stream_streamk_scope(), cluster = cuda::fp8_stream_cluster_max();
    struct Mode {
        const char* name;
        V kernel;
        int streamk, cluster;
    };
    const auto apply = [](const Mode& v) {
        cuda::set_fp8_stream_variant(v.kernel);
        cuda::set_fp8_stream_streamk_scope(v.streamk);
        cuda::set_fp8_stream_cluster_max(v.cluster);
    };
    constexpr int kA = cuda::kFp8StreamClusterAuto;
    const Mode modes[] = {{"default", V::kAuto, 0, kA}, {"staged", V::kStaged, 0, kA},
                          {"stream-K", V::kAuto, cuda::kFp8StreamKDense, kA}};
    std::vector<NK> shapes = kDecodeShapes;
    shapes.push_back({4096, 7168});
    for (const NK s : shapes) {
        const std::vector<LinearWeight> ws = fp8_weight_copies(be, rng, s.n, s.k);
        const double bytes = static_cast<double>(s.n) * s.k;
        for (int64_t m : {48, 64}) {
            std::printf("m64 linear M=%-3lld N=%-6lld K=%-6lld", static_cast<long long>(m), static_cast<long long>(s.n),
                        static_cast<long long>(s.k));
            double t0 = 0;
            for (const Mode& v : modes) {
                apply(v);
                const cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(1, s.n, s.k, m, sms);
                const double t = linear_seconds(be, rng, ws, m);
                t0 = t0 == 0 ? t : t0;
                std::printf(" | %s [%s%s] %7.2f us %5.2f TB/s %4.1f%% (%.2f)", v.name, plan_kernel_name(plan),
                            plan.cluster > 1 ? " cl" : plan.streamk_units > 0 ? " sk" : "", t * 1e6, bytes / t / 1e12,
                            bytes / t / 1e12 / 4.8 * 100, t / t0);
            }
            std::printf("\n");
            std::fflush(stdout);
        }
    }
    const Mode multi_modes[] = {{"default", V::kAuto, 0, kA}, {"staged", V::kStaged, 0, kA},
                                {"cluster 8", V::kAuto, 0, 8}};
    for (const Multi& mu : {Multi{"q_a+kv_a+wk", 7168, {1536, 576, 128}}, Multi{"q_b+wq_b", 1536, {24576, 8192}}}) {
        double bytes = 0;
        const std::vector<std::vector<LinearWeight>> sets = multi_weight_sets(be, rng, mu, bytes);
        for (int64_t m : {1, 8, 48, 64}) {
            const Tensor x = be.to_device(random_bf16({m, mu.k}, rng, 1.0f));
            std::printf("m64 %s linear_multi M=%-2lld", mu.name, static_cast<long long>(m));
            double t0 = 0;
            for (const Mode& v : multi_modes) {
                apply(v);
                const double t = backend_graph_seconds(be, kCopies, [&](int i) {
                    std::vector<const LinearWeight*> w;
                    for (const std::vector<LinearWeight>& set : sets) w.push_back(&set[i]);
                    be.linear_multi(x, w, LinearOutput::kActivation);
                });
                t0 = t0 == 0 ? t : t0;
                std::printf(" | %s %7.2f us %5.2f TB/s (%.2f)", v.name, t * 1e6, bytes / t / 1e12, t / t0);
            }
            std::printf("\n");
            std::fflush(stdout);
        }
    }
    apply({"initial", variant, streamk, cluster});
}

// --lean: the wgmma kernel vs the lean wgmma kernel (DSA_FP8_WGMMA_LEAN; the same plans, the same bits), same
// binary: linear() (act_quant + GEMM, graph) at M = 33 and 64 on o_proj, q_b, wq_b, 7168 x 2048, 4096 x 7168 and
// 2048 x 7168, then the joint q_b + wq_b and q_a + kv_a + wk launches of linear_multi at M = 1, 8, 33, 64: us, TB/s of
// weight bytes, time / wgmma.
void bench_lean(cuda::CudaBackend& be, std::mt19937& rng) {
    const int initial = cuda::fp8_wgmma_lean_mode();
    const auto ab = [&](const std::string& name, double bytes, const std::function<double()>& seconds) {
        std::printf("lean %-34s", name.c_str());
        double t0 = 0;
        for (const bool lean : {false, true}) {
            cuda::set_fp8_wgmma_lean(lean);
            const double t = seconds();
            t0 = lean ? t0 : t;
            std::printf(" | %s %7.2f us %5.2f TB/s (%.3f)", lean ? "lean" : "wgmma", t * 1e6, bytes / t / 1e12, t / t0);
            std::fflush(stdout);
        }
        std::printf("\n");
        std::fflush(stdout);
    };
    for (const NK s : std::vector<NK>{{7168, 16384}, {24576, 1536}, {8192, 1536}, {7168, 2048}, {4096, 7168},
                                      {2048, 7168}}) {
        const std::vector<LinearWeight> ws = fp8_weight_copies(be, rng, s.n, s.k);
        for (int64_t m : {33, 64}) {
            ab("linear M=" + std::to_string(m) + " " + std::to_string(s.n) + "x" + std::to_string(s.k),
               static_cast<double>(s.n) * s.k, [&] { return linear_seconds(be, rng, ws, m); });
        }
    }
    for (const Multi& mu : {Multi{"q_b+wq_b", 1536, {24576, 8192}}, Multi{"q_a+kv_a+wk", 7168, {1536, 576, 128}}}) {
        double bytes = 0;
        const std::vector<std::vector<LinearWeight>> sets = multi_weight_sets(be, rng, mu, bytes);
        for (int64_t m : {1, 8, 33, 64}) {
            const Tensor x = be.to_device(random_bf16({m, mu.k}, rng, 1.0f));
            ab(std::string(mu.name) + " linear_multi M=" + std::to_string(m), bytes, [&] {
                return backend_graph_seconds(be, kCopies, [&](int i) {
                    std::vector<const LinearWeight*> w;
                    for (const std::vector<LinearWeight>& set : sets) w.push_back(&set[i]);
                    be.linear_multi(x, w, LinearOutput::kActivation);
                });
            });
        }
    }
    cuda::set_fp8_wgmma_lean_mode(initial);
}

// --cluster: the first split-K finish without clusters (DSA_FP8_STREAM_FINISH=v1 DSA_FP8_STREAM_CLUSTER=0) vs the
// defaults (the v2 finish, cluster plans by the auto rule) vs cluster split-K everywhere (DSA_FP8_STREAM_CLUSTER = 8
// and 16) through linear() (act_quant + GEMM, graph) at M = 1, 8, 33, 64 on the decode shapes and the shared
// expert's 4096 x 7168, and q_a + kv_a + wk through linear_multi: us, TB/s of weight bytes, % of 4.8, time / v1.
// Then kernel_only_splits().
void bench_cluster(cuda::CudaBackend& be, std::mt19937& rng) {
    const int initial = cuda::fp8_stream_cluster_max();
    const bool finish = cuda::fp8_stream_finish_v2();
    const int modes[4] = {0, cuda::kFp8StreamClusterAuto, 8, 16};
    const auto row = [&](const std::string& name, double bytes, const std::function<double()>& time) {
        std::printf("%-44s", name.c_str());
        double t0 = 0;
        for (int v = 0; v < 4; ++v) {
            cuda::set_fp8_stream_cluster_max(modes[v]);
            cuda::set_fp8_stream_finish_v2(v > 0);
            const double t = time();
            t0 = v == 0 ? t : t0;
            const char* name = v == 0 ? "v1" : v == 1 ? "default" : v == 2 ? "cl8" : "cl16";
            std::printf(" | %s %7.2f us %5.2f TB/s %4.1f%% (%.2f)", name, t * 1e6, bytes / t / 1e12,
                        bytes / t / 1e12 / 4.8 * 100, t / t0);
        }
        std::printf("\n");
        std::fflush(stdout);
    };
    const std::vector<NK> shapes = {{1536, 7168}, {576, 7168}, {7168, 2048}, {2048, 7168},
                                    {8192, 1536}, {4096, 7168}, {7168, 16384}};
    for (const NK s : shapes) {
        const std::vector<LinearWeight> ws = fp8_weight_copies(be, rng, s.n, s.k);
        for (int64_t m : {1, 8, 33, 64}) {
            row("cluster linear M=" + std::to_string(m) + " N=" + std::to_string(s.n) + " K=" + std::to_string(s.k),
                static_cast<double>(s.n) * s.k, [&] { return linear_seconds(be, rng, ws, m); });
        }
    }
    std::vector<LinearWeight> sets[3];
    const int64_t rows[3] = {1536, 576, 128};
    for (int j = 0; j < 3; ++j) sets[j] = fp8_weight_copies(be, rng, rows[j], 7168);
    for (int64_t m : {1, 8, 33, 64}) {
        const Tensor x = be.to_device(random_bf16({m, 7168}, rng, 1.0f));
        row("cluster q_a+kv_a+wk linear_multi M=" + std::to_string(m), (1536.0 + 576 + 128) * 7168, [&] {
            return backend_graph_seconds(be, kCopies, [&](int i) {
                const LinearWeight* w[3] = {&sets[0][i], &sets[1][i], &sets[2][i]};
                be.linear_multi(x, w, LinearOutput::kActivation);
            });
        });
    }
    cuda::set_fp8_stream_cluster_max(initial);
    cuda::set_fp8_stream_finish_v2(finish);
}

// The stream kernel alone (x act_quant-ed) with the plain plan and the first finish (v1), the same kernel without
// split-K (one CTA per 128-row block over all of K: few CTAs, but no partials, fence or atomic), the cluster plan
// (8) and the plain plan with the coalesced finish (v2): where the time at M = 64 goes. us per launch in a graph
// over >= 8 rotated weight copies.
void kernel_only_splits(cuda::CudaBackend& be, std::mt19937& rng) {
    int sms = 0;
    DSA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const int initial = cuda::fp8_stream_cluster_max();
    const bool finish = cuda::fp8_stream_finish_v2();
    for (const NK s : {NK{7168, 2048}, NK{1536, 7168}, NK{576, 7168}, NK{7168, 16384}}) {
        const std::vector<LinearWeight> ws = fp8_weight_copies(be, rng, s.n, s.k);
        const int64_t kb = s.k / 128, copies = static_cast<int64_t>(ws.size());
        Tensor scales = be.to_device(ws[0].scale_inv);
        for (int64_t m : {1, 64}) {
            Tensor xb = be.to_device(random_bf16({m, s.k}, rng, 1.0f));
            Tensor xq = Tensor::empty({m, s.k}, DType::kF8E4M3, Device::kCUDA, "x.fp8");
            Tensor xs = Tensor::empty({kb, m}, DType::kF32, Device::kCUDA, "x.scales");
            cuda::launch_act_quant(
                {xb.data<uint16_t>(), xq.data<uint8_t>(), xs.data<float>(), nullptr, m, s.k, m, true}, be.stream());
            Tensor y = Tensor::empty({m, s.n}, DType::kBF16, Device::kCUDA, "y");
            std::printf("kernel-only M=%-2lld N=%-5lld K=%-5lld", static_cast<long long>(m),
                        static_cast<long long>(s.n), static_cast<long long>(s.k));
            for (int v = 0; v < 4; ++v) {
                cuda::set_fp8_stream_cluster_max(v == 2 ? 8 : 0);
                cuda::set_fp8_stream_finish_v2(v == 3);
                cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(1, s.n, s.k, m, sms);
                if (v == 1) plan.chunk = kb, plan.splits = 1, plan.ws_floats = 0, plan.counters = 0;
                Tensor wsp = Tensor::empty({std::max<int64_t>(plan.ws_floats, 1)}, DType::kF32, Device::kCUDA, "ws");
                Tensor ctr = Tensor::empty({std::max<int64_t>(plan.counters, 1)}, DType::kI32, Device::kCUDA, "ctr");
                DSA_CUDA_CHECK(cudaMemsetAsync(ctr.raw_data(), 0, ctr.nbytes(), be.stream()));
                cuda::Fp8StreamParams p;
                p.w_scale = scales.data<float>(), p.m = m, p.x = xq.data<uint8_t>(), p.x_scale = xs.data<float>();
                p.x_scale_ld = m, p.out = y.data<uint16_t>(), p.n = s.n, p.k = s.k, p.scale_ld = kb;
                p.ws = wsp.data<float>(), p.counters = ctr.data<int32_t>();
                const double t = graph_seconds_per_launch(be, [&](int i) {
                    p.w = ws[i % copies].weight.data<uint8_t>();
                    cuda::launch_fp8_stream_gemm(p, plan, be.stream());
                });
                std::printf(" | %s [%s, splits %lld] %7.2f us %5.2f TB/s",
                            v == 0 ? "v1" : v == 1 ? "no split-K" : v == 2 ? "cl8" : "v2",
                            plan_kernel_name(plan), static_cast<long long>(plan.splits), t * 1e6,
                            static_cast<double>(s.n) * s.k / t / 1e12);
            }
            std::printf("\n");
            std::fflush(stdout);
        }
    }
    cuda::set_fp8_stream_cluster_max(initial);
    cuda::set_fp8_stream_finish_v2(finish);
}

// --shape N K M: one linear() with the plan the environment selects (for a profiler), graph-timed.
void bench_shape(cuda::CudaBackend& be, std::mt19937& rng, int64_t n, int64_t k, int64_t m) {
    int sms = 0;
    DSA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(1, n, k, m, sms);
    const double t = linear_seconds(be, rng, fp8_weight_copies(be, rng, n, k), m);
    const double tbs = static_cast<double>(n) * k / t / 1e12;
    std::printf("linear M=%lld N=%lld K=%lld [%s, splits %lld, chunk %lld%s] %8.2f us %6.3f TB/s %5.1f%% of 4.8\n",
                static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k), plan_kernel_name(plan),
                static_cast<long long>(plan.splits), static_cast<long long>(plan.chunk),
                plan.streamk_units > 0 ? ", stream-K" : "", t * 1e6, tbs, tbs / 4.8 * 100);
}

// The MLA absorbs at decode (128 heads, d_n = d_v = 128, kv_lora 512: W_UK 16.8 MB in the columns layout, W_UV 16.8 MB
// in the rows layout of kv_b) at B = 1 and 8, 8 rotated bf16 kv_b copies (268 MB) in a CUDA graph: us, TB/s of the
// 16.8 MB read, % of 4.8 TB/s; W_UV with the short-row kernel and with the general one (DSA_BF16_GEMV_SHORT=0).
void bench_absorbs(cuda::CudaBackend& be, std::mt19937& rng) {
    const MlaHeadDims d{128, 128, 128};
    const Tensor host = random_bf16({128 * 256, 512}, rng, 0.05f);
    std::vector<LinearWeight> kv_b;
    for (const Tensor& t : device_copies(be, host)) kv_b.push_back({t, {}});
    const double bytes = 128.0 * 128 * 512 * 2;
    const auto line = [&](const std::string& name, int64_t b, double t) {
        std::printf("%-40s B=%lld (graph) %8.2f us %6.3f TB/s %5.1f%% of 4.8\n", name.c_str(),
                    static_cast<long long>(b), t * 1e6, bytes / t / 1e12, bytes / t / 1e12 / 4.8 * 100);
        std::fflush(stdout);
    };
    const bool short_rows = cuda::bf16_gemv_short_rows();
    for (int64_t b : {1, 8}) {
        const Tensor qn = be.to_device(random_bf16({b, 128, 128}, rng, 1.0f));
        const Tensor ol = be.to_device(random_bf16({b, 128, 512}, rng, 1.0f));
        line("absorb_q (W_UK, columns)", b,
             backend_graph_seconds(be, kCopies, [&](int i) { be.mla_absorb_q(qn, kv_b[i], d); }));
        for (const bool s : {true, false}) {
            cuda::set_bf16_gemv_short_rows(s);
            line(std::string("absorb_o (W_UV, rows) [short ") + (s ? "on]" : "off]"), b,
                 backend_graph_seconds(be, kCopies, [&](int i) { be.mla_absorb_o(ol, kv_b[i], d); }));
        }
        cuda::set_bf16_gemv_short_rows(short_rows);
    }
}

// The shared expert's dense_mlp (V3.2: gate + up 4096 x 7168, down 7168 x 2048, 44 MB of FP8) at M = 1 and 8,
// 8 rotated weight sets in a CUDA graph: us, TB/s of the FP8 weight bytes, % of 4.8 TB/s.
void bench_shared_mlp(cuda::CudaBackend& be, std::mt19937& rng) {
    const LinearWeight hg = host_fp8_weight(2048, 7168, rng), hu = host_fp8_weight(2048, 7168, rng);
    const LinearWeight hd = host_fp8_weight(7168, 2048, rng);
    std::vector<MlpWeights> sets;
    for (int i = 0; i < kCopies; ++i) {
        sets.push_back({{be.to_device(hg.weight), hg.scale_inv},
                        {be.to_device(hu.weight), hu.scale_inv},
                        {be.to_device(hd.weight), hd.scale_inv}});
    }
    const double bytes = 3.0 * 2048 * 7168;
    for (int64_t m : {1, 8}) {
        const Tensor x = be.to_device(random_bf16({m, 7168}, rng, 1.0f));
        const double t = backend_graph_seconds(be, kCopies, [&](int i) { be.dense_mlp(x, sets[i]); });
        std::printf("shared expert dense_mlp M=%lld%s (graph) %8.2f us %6.3f TB/s %5.1f%% of 4.8\n",
                    static_cast<long long>(m), cuda::fp8_stream_streamk() ? " [stream-K]" : "", t * 1e6,
                    bytes / t / 1e12, bytes / t / 1e12 / 4.8 * 100);
        std::fflush(stdout);
    }
}

// --absorbs (seconds): the absorbs, the shared expert's MLP and the single-weight M = 1 / 8 streams (q_b, o_proj,
// the shared expert's gate / up and down shapes), with the default plans, then with stream-K (DSA_FP8_STREAMK=1).
void bench_absorbs_and_streams(cuda::CudaBackend& be, std::mt19937& rng) {
    bench_absorbs(be, rng);
    const int streamk = cuda::fp8_stream_streamk_scope();
    for (const bool sk : {false, true}) {
        cuda::set_fp8_stream_streamk(sk);
        bench_shared_mlp(be, rng);
        bench_decode_shapes(be, rng, {{24576, 1536}, {7168, 16384}, {4096, 7168}, {7168, 2048}}, {1, 8});
    }
    cuda::set_fp8_stream_streamk_scope(streamk);
}

// q_a 1536x7168 + kv_a 576x7168 + indexer wk 128x7168 (16.1 MB of FP8) over one x, 8 rotated weight sets; then
// a chain of 10 dependent linears alternating 2048x7168 and 7168x2048 (10 distinct weights, 73 MB).
void bench_decode_linears(cuda::CudaBackend& be, std::mt19937& rng) {
    std::printf("decode linears, PDL %s (DSA_PDL=0 turns it off)\n", cuda::host::pdl_enabled() ? "on" : "off");
    const int64_t rows[3] = {1536, 576, 128};
    std::vector<LinearWeight> sets[3];
    for (int j = 0; j < 3; ++j) {
        LinearWeight h = host_fp8_weight(rows[j], 7168, rng);
        for (Tensor& t : device_copies(be, h.weight)) sets[j].push_back({t, h.scale_inv});
    }
    const double bytes = (1536.0 + 576 + 128) * 7168;
    for (int64_t m : {1, 8, 64}) {
        Tensor x = be.to_device(random_bf16({m, 7168}, rng, 1.0f));
        const double sep = backend_graph_seconds(be, kCopies, [&](int i) {
            for (int j = 0; j < 3; ++j) be.linear(x, sets[j][i], LinearOutput::kActivation);
        });
        report("q_a+kv_a+wk 3x linear() M=" + std::to_string(m) + " (graph)", sep, bytes, 0, 0);
        const double multi = backend_graph_seconds(be, kCopies, [&](int i) {
            const LinearWeight* ws[3] = {&sets[0][i], &sets[1][i], &sets[2][i]};
            be.linear_multi(x, ws, LinearOutput::kActivation);
        });
        report(std::string("q_a+kv_a+wk linear_multi M=") + std::to_string(m) +
                   (be.last_linear_multi_fused() ? " [one launch]" : " [separate]") + " (graph)",
               multi, bytes, 0, 0);
    }
    bench_wgmma_vs_staged(be, rng, sets);
    bench_decode_shapes(be, rng, kDecodeShapes, {1, 8, 33, 64});
    bench_m64(be, rng);
    bench_absorbs(be, rng);
    std::vector<LinearWeight> chain;
    for (int i = 0; i < 10; ++i) {
        LinearWeight h = i % 2 == 0 ? host_fp8_weight(2048, 7168, rng) : host_fp8_weight(7168, 2048, rng);
        chain.push_back({be.to_device(h.weight), h.scale_inv});
    }
    for (int64_t m : {1, 8, 64}) {
        Tensor x = be.to_device(random_bf16({m, 7168}, rng, 1.0f));
        const double t = backend_graph_seconds(be, 1, [&](int) {
            Tensor h = x;
            for (const LinearWeight& w : chain) h = be.linear(h, w, LinearOutput::kActivation);
        });
        report("chain of 10 fp8 linears M=" + std::to_string(m) + " (graph, PDL " +
                   (cuda::host::pdl_enabled() ? "on" : "off") + ")",
               t, 10.0 * 2048 * 7168, 0, 0);
    }
}

int run(int argc, char** argv) {
    if (cuda_device_count() == 0) {
        std::printf("cuda_kernels_bench: no CUDA device, nothing to measure\n");
        return 0;
    }
    const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
    const bool decode_linears_only = argc > 1 && std::string(argv[1]) == "--decode-linears";
    const bool absorbs_only = argc > 1 && std::string(argv[1]) == "--absorbs";
    const bool m64_only = argc > 1 && std::string(argv[1]) == "--m64";
    const bool shape_only = argc > 4 && std::string(argv[1]) == "--shape";
    const bool cluster_only = argc > 1 && std::string(argv[1]) == "--cluster";
    const bool lean_only = argc > 1 && std::string(argv[1]) == "--lean";
    cudaDeviceProp prop{};
    DSA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    int clock_khz = 0;
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
    std::printf("device: %s, %d SMs, max SM clock %.2f GHz; floors: %.1f TB/s, bf16 %.0f / fp8 %.0f TFLOP/s\n",
                prop.name, prop.multiProcessorCount, clock_khz / 1e6, kHbmBytesPerS / 1e12, kBf16FlopsPerS / 1e12,
                kFp8FlopsPerS / 1e12);
    std::printf("linear fp8: act_quant (UE8M0) kernel + cuBLASLt block-scaled FP8 where it has an algorithm, else\n"
                "the fallback (act_quant-dequant + bf16 GEMM on the once-dequantized weight); fp8 TB/s counts the\n"
                "FP8 weight bytes.\n");
    std::mt19937 rng(7);
    auto bf16_owner = make_cuda_backend(Numerics::bf16(), 0);
    auto fp8_owner = make_cuda_backend(
        Numerics{.round_activations_to_bf16 = true, .fp8_activation_quant = true, .ue8m0_scales = true}, 0);
    auto& bf16_be = static_cast<cuda::CudaBackend&>(*bf16_owner);
    auto& fp8_be = static_cast<cuda::CudaBackend&>(*fp8_owner);
    if (absorbs_only) {
        bench_absorbs_and_streams(fp8_be, rng);
        return 0;
    }
    if (m64_only) {
        bench_m64(fp8_be, rng);
        return 0;
    }
    if (lean_only) {
        bench_lean(fp8_be, rng);
        return 0;
    }
    if (cluster_only) {
        bench_cluster(fp8_be, rng);
        kernel_only_splits(fp8_be, rng);
        return 0;
    }
    if (shape_only) {
        const int64_t n = std::atoll(argv[2]), k = std::atoll(argv[3]), m = std::atoll(argv[4]);
        DSA_CHECK(n >= 1 && k >= 128 && k % 128 == 0 && m >= 1 && m <= 64)
            << "--shape N K M: K a multiple of 128, M 1..64";
        bench_shape(fp8_be, rng, n, k, m);
        return 0;
    }
    bench_decode_linears(fp8_be, rng);
    if (decode_linears_only) return 0;
    bench_norms(bf16_be, rng, quick);
    bench_rope(bf16_be, rng, quick);
    bench_fp8_stream(fp8_be, rng, quick);
    bench_linear(bf16_be, fp8_be, rng, quick);
    return 0;
}

}  // namespace
}  // namespace dsa::backend

int main(int argc, char** argv) { return dsa::backend::run(argc, argv); }
