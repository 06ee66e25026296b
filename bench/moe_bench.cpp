// One DeepSeek-V3.2 MoE layer on the CUDA backend (Numerics::deepseek_fp8): 256 FP8 routed experts (D 7168,
// F 2048) + the shared expert, router E 256 / 8 groups / top-4 groups / top-8. At batch 1..128: route (the
// default, DSA_MOE_ROUTER=fused up to its token limit, and DSA_MOE_ROUTER=cublas), routed experts, shared expert
// (dense_mlp) and the whole layer, timed eagerly and replayed from a CUDA graph (median of 5 runs of 20 calls, 8
// rotated inputs so the active experts change); at batch 1, 4, 16 also each stage of the routed path alone in a graph
// (router+route, group, act_quant, gate_up, SwiGLU+quant, down, combine, shared, add), and the layer with the shared
// expert as one more group of the routed launches (MoeParams::shared), at batch <= 16 also under the other grouped
// plan (default: the fixed grid; DSA_MOE_PLAN=joint: the joint plan) marked [grid plan] / [joint plan]. Prints TB/s
// of the active experts' weight bytes (scales included, each active expert once per call) and the ratio to reading
// them once at 4.8 TB/s. At batch 1 also the stream-K plans (DSA_FP8_STREAMK=1: layer lines and the gate_up / down
// stages). Usage: moe_bench [--quick | --shared-stream]  (--quick: batches 1 and 2 only; --shared-stream: the layer at
// batch 1, 2, 4, 8 with the shared expert on the side stream (DSA_MOE_SHARED_STREAM=8) and without)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_stream_gemm.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/moe_kernels.h"
#include "backend/cuda/pdl.cuh"
#include "cuda_timing.h"
#include "tensor/numeric.h"

namespace dsa::backend {
namespace {

constexpr double kHbmBytesPerS = 4.8e12;
constexpr int kCopies = 8;
constexpr int64_t kDim = 7168, kInter = 2048, kExperts = 256, kTopK = 8;

double time_per_call(cuda::CudaBackend& be, const std::function<void(int)>& fn) {
    return bench::median_seconds_per_call(be, fn);
}

// Seconds per call of body(i), i = 0..kCopies-1, replayed from one graph of all kCopies calls (no host launch
// cost: what a captured decode step pays).
double graph_time(cuda::CudaBackend& be, const std::function<void(int)>& body) {
    for (int i = 0; i < kCopies; ++i) body(i);  // eager warm-up: uploads, workspaces, attributes
    auto graph = be.capture_graph([&] {
        for (int i = 0; i < kCopies; ++i) body(i);
    });
    DSA_CHECK(graph.is_ok()) << graph.status().message();
    return time_per_call(be, [&](int) { be.replay_graph(**graph); }) / kCopies;
}

// Sets DSA_MOE_ROUTER for the scope (read at every moe_route call).
struct RouterEnv {
    explicit RouterEnv(const char* v) { ::setenv("DSA_MOE_ROUTER", v, 1); }
    ~RouterEnv() { ::unsetenv("DSA_MOE_ROUTER"); }
};

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

// Host FP8 templates, uploaded once per expert (distinct device copies: nothing is shared through L2). `table`
// is the device expert table the stage timings launch the grouped kernels with (the backend builds its own).
struct ExpertSet {
    std::vector<MlpWeights> routed;
    MlpWeights shared;
    double bytes_per_expert = 0, gate_up_bytes = 0, down_bytes = 0;
    Tensor table, gate_up_scales, down_scales;
};

// Scales [rows/128, cols/128] -> a device copy with rows padded to LtGemm::w_scale_ld (the layout the kernels read).
Tensor padded_scales(Backend& be, const Tensor& s, int64_t cols) {
    const int64_t ld = cuda::LtGemm::w_scale_ld(cols), kb = s.dim(1);
    Tensor p = Tensor::zeros({s.dim(0), ld}, DType::kF32);
    for (int64_t r = 0; r < s.dim(0); ++r) std::memcpy(p.data<float>() + r * ld, s.data<float>() + r * kb, kb * 4);
    return be.to_device(p);
}

ExpertSet make_experts(Backend& be) {
    Tensor gate = random_fp8(kInter, kDim, 1), up = random_fp8(kInter, kDim, 2), down = random_fp8(kDim, kInter, 3);
    Tensor s_gu = pow2_scales(kInter, kDim), s_d = pow2_scales(kDim, kInter);
    ExpertSet set;
    auto one = [&] {
        return MlpWeights{{be.to_device(gate), s_gu}, {be.to_device(up), s_gu}, {be.to_device(down), s_d}};
    };
    for (int64_t e = 0; e < kExperts; ++e) set.routed.push_back(one());
    set.shared = one();
    set.gate_up_bytes = static_cast<double>(gate.nbytes() + up.nbytes() + 2 * s_gu.nbytes());
    set.down_bytes = static_cast<double>(down.nbytes() + s_d.nbytes());
    set.bytes_per_expert = set.gate_up_bytes + set.down_bytes;
    set.gate_up_scales = padded_scales(be, s_gu, kDim);
    set.down_scales = padded_scales(be, s_d, kInter);
    std::vector<cuda::MoeExpertPtrs> host;
    for (const MlpWeights& w : set.routed) {
        host.push_back({w.gate.weight.raw_data(), w.up.weight.raw_data(), w.down.weight.raw_data(),
                        set.gate_up_scales.data<float>(), set.gate_up_scales.data<float>(),
                        set.down_scales.data<float>()});
    }
    Tensor t = Tensor::empty({static_cast<int64_t>(host.size() * sizeof(cuda::MoeExpertPtrs))}, DType::kU8);
    std::memcpy(t.raw_data(), host.data(), t.nbytes());
    set.table = be.to_device(t);
    return set;
}

void print_row(const std::string& name, double seconds, double bytes) {
    if (bytes > 0) {
        const double floor = bytes / kHbmBytesPerS;
        std::printf("%-50s %9.2f us %8.1f MB %7.3f TB/s %6.1f%% of 4.8  %5.2fx read-once\n", name.c_str(),
                    seconds * 1e6, bytes / 1e6, bytes / seconds / 1e12, 100.0 * bytes / seconds / kHbmBytesPerS,
                    seconds / floor);
    } else {
        std::printf("%-50s %9.2f us\n", name.c_str(), seconds * 1e6);
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

// Inputs of one batch size: kCopies rotated x and their routes.
struct LayerInputs {
    RouterParams rp;
    std::vector<Tensor> xs;
    std::vector<RouterResult> routes;
    double active_bytes = 0, active_experts = 0;
};

LayerInputs make_inputs(cuda::CudaBackend& be, const ExpertSet& ex, std::mt19937& rng, int64_t batch) {
    Tensor rw = random_bf16({kExperts, kDim}, rng, 0.02f);
    Tensor bias = Tensor::empty({kExperts}, DType::kF32);
    for (int64_t e = 0; e < kExperts; ++e) bias.data<float>()[e] = 0.01f * static_cast<float>(e % 7);
    LayerInputs in{router(rw, bias, 8, 4), {}, {}, 0, 0};
    for (int i = 0; i < kCopies; ++i) {
        in.xs.push_back(be.to_device(random_bf16({batch, kDim}, rng, 1.0f)));
        in.rp.x = in.xs.back();
        in.routes.push_back(be.moe_route(in.rp));
        Tensor ids = be.to_host(in.routes.back().ids);
        std::set<int32_t> active(ids.data<int32_t>(), ids.data<int32_t>() + ids.numel());
        in.active_experts += static_cast<double>(active.size()) / kCopies;
    }
    in.active_bytes = in.active_experts * ex.bytes_per_expert;
    return in;
}

// Call i of the routed experts + shared expert in one moe_experts (copy i % kCopies of the inputs and routes).
void run_routed_shared(cuda::CudaBackend& be, const ExpertSet& ex, LayerInputs& in, int i) {
    const RouterResult& r = in.routes[i % kCopies];
    be.moe_experts(MoeParams{in.xs[i % kCopies], r.ids, r.weights, ex.routed, &ex.shared});
}

// Call i of the whole MoE layer: route, then moe_experts with the shared expert.
void run_layer_fused(cuda::CudaBackend& be, const ExpertSet& ex, LayerInputs& in, int i) {
    in.rp.x = in.xs[i % kCopies];
    RouterResult r = be.moe_route(in.rp);
    be.moe_experts(MoeParams{in.rp.x, r.ids, r.weights, ex.routed, &ex.shared});
}

void bench_layer(cuda::CudaBackend& be, const ExpertSet& ex, LayerInputs& in, int64_t batch) {
    RouterParams& rp = in.rp;
    const std::string tag = "B=" + std::to_string(batch) + " ";
    auto route = [&](int i) {
        rp.x = in.xs[i % kCopies];
        be.moe_route(rp);
    };
    auto routed = [&](int i) {
        const RouterResult& r = in.routes[i % kCopies];
        be.moe_experts(MoeParams{in.xs[i % kCopies], r.ids, r.weights, ex.routed});
    };
    auto shared = [&](int i) { be.dense_mlp(in.xs[i % kCopies], ex.shared); };
    auto layer = [&](int i) {
        rp.x = in.xs[i % kCopies];
        RouterResult r = be.moe_route(rp);
        Tensor y = be.moe_experts(MoeParams{rp.x, r.ids, r.weights, ex.routed});
        be.add(y, be.dense_mlp(rp.x, ex.shared));
    };
    auto routed_shared = [&](int i) { run_routed_shared(be, ex, in, i); };
    auto layer_fused = [&](int i) { run_layer_fused(be, ex, in, i); };
    const RouterResult& r0 = in.routes[0];
    be.moe_experts(MoeParams{in.xs[0], r0.ids, r0.weights, ex.routed});
    using P = cuda::CudaBackend::MoePath;
    const P path = be.last_moe_path();
    const char* path_name = path == P::kStream ? "stream-fp8" : path == P::kDeviceGemv ? "gemv" : "host-grouped";
    const int64_t fused_before = cuda::moe_router_launch_count();
    route(0);
    const bool fused = cuda::moe_router_launch_count() > fused_before;
    const std::string active = std::to_string(static_cast<int>(in.active_experts + 0.5));
    print_row(tag + "route default " + (fused ? "[fused]" : "[cublas]") + " eager", time_per_call(be, route), 0);
    print_row(tag + "route default " + (fused ? "[fused]" : "[cublas]") + " graph", graph_time(be, route), 0);
    if (batch <= cuda::kMoeRouterMaxTokens) {
        RouterEnv env("fused");
        print_row(tag + "route [fused] eager", time_per_call(be, route), 0);
        print_row(tag + "route [fused] graph", graph_time(be, route), 0);
    }
    {
        RouterEnv env("cublas");
        print_row(tag + "route [cublas] eager", time_per_call(be, route), 0);
        print_row(tag + "route [cublas] graph", graph_time(be, route), 0);
    }
    const std::string rname = tag + "routed experts [" + path_name + "] (" + active + " active)";
    print_row(rname + " eager", time_per_call(be, routed), in.active_bytes);
    print_row(rname + " graph", graph_time(be, routed), in.active_bytes);
    print_row(tag + "shared expert (dense_mlp) eager", time_per_call(be, shared), ex.bytes_per_expert);
    print_row(tag + "shared expert (dense_mlp) graph", graph_time(be, shared), ex.bytes_per_expert);
    print_row(tag + "layer: route+routed+shared+add eager", time_per_call(be, layer),
              in.active_bytes + ex.bytes_per_expert);
    print_row(tag + "layer: route+routed+shared+add graph", graph_time(be, layer),
              in.active_bytes + ex.bytes_per_expert);
    const int64_t fused_shared_before = cuda::moe_shared_fused_count();
    routed_shared(0);
    const char* how = cuda::moe_shared_fused_count() > fused_shared_before ? "[shared as group]" : "[shared separate]";
    print_row(tag + "routed+shared " + how + " eager", time_per_call(be, routed_shared),
              in.active_bytes + ex.bytes_per_expert);
    print_row(tag + "routed+shared " + how + " graph", graph_time(be, routed_shared),
              in.active_bytes + ex.bytes_per_expert);
    print_row(tag + "layer: route+moe_experts(shared) " + how + " eager", time_per_call(be, layer_fused),
              in.active_bytes + ex.bytes_per_expert);
    print_row(tag + "layer: route+moe_experts(shared) " + how + " graph", graph_time(be, layer_fused),
              in.active_bytes + ex.bytes_per_expert);
    if (batch <= 16) {
        // The other grouped plan (the joint plan takes the shared expert as a group at one token too) to compare.
        const bool joint = !cuda::fp8_stream_grouped_joint();
        const std::string plan = joint ? " [joint plan]" : " [grid plan]";
        cuda::set_fp8_stream_grouped_joint(joint);
        const int64_t before = cuda::moe_shared_fused_count();
        routed_shared(0);
        const char* other_how = cuda::moe_shared_fused_count() > before ? "[shared as group]" : "[shared separate]";
        print_row(tag + "routed+shared " + other_how + plan + " graph", graph_time(be, routed_shared),
                  in.active_bytes + ex.bytes_per_expert);
        print_row(tag + "layer: route+moe_experts(shared) " + other_how + plan + " graph",
                  graph_time(be, layer_fused), in.active_bytes + ex.bytes_per_expert);
        cuda::set_fp8_stream_grouped_joint(!joint);
    }
    if (batch == 1 && cuda::fp8_stream_variant() != cuda::Fp8StreamKernel::kRing) {
        // Stream-K plans (DSA_FP8_STREAMK=1, opt-in): the MoE launches at one token (the shared expert as a group)
        // and the dense shared expert.
        const int streamk = cuda::fp8_stream_streamk_scope();
        cuda::set_fp8_stream_streamk(true);
        const int64_t before = cuda::moe_shared_fused_count();
        routed_shared(0);
        const char* sk_how = cuda::moe_shared_fused_count() > before ? "[shared as group]" : "[shared separate]";
        print_row(tag + "routed experts [stream-K] graph", graph_time(be, routed), in.active_bytes);
        print_row(tag + "shared expert (dense_mlp) [stream-K] graph", graph_time(be, shared), ex.bytes_per_expert);
        print_row(tag + "routed+shared " + sk_how + " [stream-K] graph", graph_time(be, routed_shared),
                  in.active_bytes + ex.bytes_per_expert);
        print_row(tag + "layer: route+moe_experts(shared) " + sk_how + " [stream-K] graph",
                  graph_time(be, layer_fused), in.active_bytes + ex.bytes_per_expert);
        cuda::set_fp8_stream_streamk_scope(streamk);
    }
}

// Device buffers of one copy of the routed path, stage by stage.
struct StageBuffers {
    Tensor packed, xq, xs, gu, hq, hs, y, out, shared_out;
};

// Each stage of the streamed routed path alone (the launches moe_experts makes, with the same plans), in a graph.
void bench_stages(cuda::CudaBackend& be, const ExpertSet& ex, LayerInputs& in, int64_t batch, int num_sms) {
    const int64_t pairs = batch * kTopK, max_groups = std::min(pairs, kExperts);
    const bool bounded = pairs <= cuda::kFp8StreamMaxRows;
    const int64_t rows = bounded ? pairs : std::min(std::min(pairs, batch), cuda::kFp8StreamMaxRows);
    cuda::Fp8StreamPlan gu_plan = cuda::fp8_stream_plan(max_groups, 2 * kInter, kDim, rows, num_sms, bounded);
    cuda::Fp8StreamPlan d_plan = cuda::fp8_stream_plan(max_groups, kDim, kInter, rows, num_sms, bounded);
    // At one token also the stream-K plans (moe_experts' with DSA_FP8_STREAMK=1), timed after the stages.
    const bool sk = batch == 1 && bounded && gu_plan.kernel != cuda::Fp8StreamKernel::kRing;
    const cuda::Fp8StreamPlan gu_sk = sk ? cuda::fp8_stream_streamk_plan(gu_plan, max_groups, kDim, num_sms) : gu_plan;
    const cuda::Fp8StreamPlan d_sk = sk ? cuda::fp8_stream_streamk_plan(d_plan, max_groups, kInter, num_sms) : d_plan;
    const int64_t ws_floats = std::max({gu_plan.ws_floats, d_plan.ws_floats, gu_sk.ws_floats, d_sk.ws_floats});
    const int64_t num_counters = std::max({gu_plan.counters, d_plan.counters, gu_sk.counters, d_sk.counters});
    Tensor ws = Tensor::empty({std::max<int64_t>(ws_floats, 1)}, DType::kF32, Device::kCUDA);
    Tensor counters = Tensor::empty({std::max<int64_t>(num_counters, 1)}, DType::kI32, Device::kCUDA);
    DSA_CUDA_CHECK(cudaMemsetAsync(counters.raw_data(), 0, counters.nbytes(), be.stream()));
    std::vector<StageBuffers> b(kCopies);
    for (int i = 0; i < kCopies; ++i) {
        b[i].packed = Tensor::empty({cuda::moe_groups_words(max_groups, pairs)}, DType::kI32, Device::kCUDA);
        b[i].xq = Tensor::empty({batch, kDim}, DType::kF8E4M3, Device::kCUDA);
        b[i].xs = Tensor::empty({kDim / 128, batch}, DType::kF32, Device::kCUDA);
        b[i].gu = Tensor::empty({pairs, 2 * kInter}, DType::kBF16, Device::kCUDA);
        b[i].hq = Tensor::empty({pairs, kInter}, DType::kF8E4M3, Device::kCUDA);
        b[i].hs = Tensor::empty({kInter / 128, pairs}, DType::kF32, Device::kCUDA);
        b[i].y = Tensor::empty({pairs, kDim}, DType::kBF16, Device::kCUDA);
        b[i].out = Tensor::empty({batch, kDim}, DType::kBF16, Device::kCUDA);
        b[i].shared_out = be.dense_mlp(in.xs[i], ex.shared);
    }
    const auto* table = ex.table.data<cuda::MoeExpertPtrs>();
    auto gemm = [&](int i, bool gate_up) {
        const StageBuffers& s = b[i];
        cuda::Fp8StreamParams a;
        a.experts = table;
        a.groups = cuda::moe_groups_view(s.packed.data<int32_t>(), max_groups);
        a.gate_up = gate_up;
        a.x = gate_up ? s.xq.data<uint8_t>() : s.hq.data<uint8_t>();
        a.x_scale = gate_up ? s.xs.data<float>() : s.hs.data<float>();
        a.x_scale_ld = gate_up ? batch : pairs;
        a.x_row_div = gate_up ? kTopK : 1;
        a.out = gate_up ? s.gu.data<uint16_t>() : s.y.data<uint16_t>();
        a.n = gate_up ? 2 * kInter : kDim;
        a.k = gate_up ? kDim : kInter;
        a.scale_ld = cuda::LtGemm::w_scale_ld(a.k);
        a.ws = ws.data<float>();
        a.counters = counters.data<int32_t>();
        cuda::launch_fp8_stream_gemm(a, gate_up ? gu_plan : d_plan, be.stream());
    };
    const std::string tag = "B=" + std::to_string(batch) + " stage ";
    struct Stage {
        const char* name;
        std::function<void(int)> body;
        double bytes;
    };
    const std::vector<Stage> stages = {
        {"router+route",
         [&](int i) {
             in.rp.x = in.xs[i];
             be.moe_route(in.rp);
         },
         0},
        {"group pairs",
         [&](int i) {
             cuda::launch_moe_group_pairs(
                 {in.routes[i].ids.data<int32_t>(), b[i].packed.data<int32_t>(), pairs, kExperts, max_groups},
                 be.stream());
         },
         0},
        {"act_quant x",
         [&](int i) {
             cuda::launch_act_quant({in.xs[i].data<uint16_t>(), b[i].xq.data<uint8_t>(), b[i].xs.data<float>(), nullptr,
                                     batch, kDim, batch, true},
                                    be.stream());
         },
         0},
        {"gate_up (grouped stream GEMM)", [&](int i) { gemm(i, true); }, in.active_experts * ex.gate_up_bytes},
        {"swiglu + act_quant",
         [&](int i) {
             cuda::launch_swiglu_quant(
                 {b[i].gu.data<uint16_t>(), b[i].hq.data<uint8_t>(), b[i].hs.data<float>(), pairs, kInter, true},
                 be.stream());
         },
         0},
        {"down (grouped stream GEMM)", [&](int i) { gemm(i, false); }, in.active_experts * ex.down_bytes},
        {"combine",
         [&](int i) {
             cuda::launch_moe_combine({b[i].y.data<uint16_t>(), in.routes[i].weights.data<float>(),
                                       b[i].out.data<uint16_t>(), batch, kTopK, kDim},
                                      be.stream());
         },
         0},
        {"shared expert (dense_mlp)", [&](int i) { be.dense_mlp(in.xs[i], ex.shared); }, ex.bytes_per_expert},
        {"add shared", [&](int i) { be.add(b[i].out, b[i].shared_out); }, 0},
    };
    double total = 0;
    for (const Stage& st : stages) {
        const double t = graph_time(be, st.body);
        total += t;
        print_row(tag + st.name, t, st.bytes);
    }
    print_row(tag + "sum of stages", total, in.active_bytes + ex.bytes_per_expert);
    if (sk) {
        gu_plan = gu_sk, d_plan = d_sk;  // the gemm lambda reads these
        print_row(tag + "gate_up [stream-K]", graph_time(be, [&](int i) { gemm(i, true); }),
                  in.active_experts * ex.gate_up_bytes);
        print_row(tag + "down [stream-K]", graph_time(be, [&](int i) { gemm(i, false); }),
                  in.active_experts * ex.down_bytes);
    }
}

// Sets DSA_MOE_SHARED_STREAM for the scope (read at every moe_route / moe_experts call).
struct SharedStreamEnv {
    explicit SharedStreamEnv(const char* v) { ::setenv("DSA_MOE_SHARED_STREAM", v, 1); }
    ~SharedStreamEnv() { ::unsetenv("DSA_MOE_SHARED_STREAM"); }
};

// --shared-stream: the layer (route + moe_experts with the shared expert) and routed + shared at batch 1, 2, 4, 8 with
// the switch off (the shared expert separate at batch 1, a group of the routed launches above) and on
// (DSA_MOE_SHARED_STREAM=8: on the side stream, in a graph forked at the route, and forked after the router with
// DSA_MOE_SHARED_STREAM_FORK=experts).
void bench_shared_stream(cuda::CudaBackend& be, const ExpertSet& ex, std::mt19937& rng) {
    const char* prio = std::getenv("DSA_MOE_SHARED_STREAM_PRIORITY");
    const bool low = prio != nullptr && std::strcmp(prio, "low") == 0;
    std::printf("stream priorities: %s\n",
                low ? "side stream below the main stream (DSA_MOE_SHARED_STREAM_PRIORITY=low)" : "default (equal)");
    for (int64_t batch : {1, 2, 4, 8}) {
        LayerInputs in = make_inputs(be, ex, rng, batch);
        const std::string tag = "B=" + std::to_string(batch) + " ";
        auto routed_shared = [&](int i) { run_routed_shared(be, ex, in, i); };
        auto layer_fused = [&](int i) { run_layer_fused(be, ex, in, i); };
        const double bytes = in.active_bytes + ex.bytes_per_expert;
        for (const char* mode : {"0", "8"}) {
            SharedStreamEnv env(mode);
            const int64_t before = cuda::moe_shared_fused_count();
            routed_shared(0);
            const bool side = be.last_shared_fork() != cuda::CudaBackend::SharedFork::kNone;
            const std::string how = side                                      ? "[shared stream]"
                                    : cuda::moe_shared_fused_count() > before ? "[shared as group]"
                                                                              : "[shared separate]";
            print_row(tag + "routed+shared " + how + " eager", time_per_call(be, routed_shared), bytes);
            print_row(tag + "routed+shared " + how + " graph", graph_time(be, routed_shared), bytes);
            print_row(tag + "layer: route+moe_experts(shared) " + how + " eager", time_per_call(be, layer_fused),
                      bytes);
            const double g = graph_time(be, layer_fused);
            const bool at_route = be.last_shared_fork() == cuda::CudaBackend::SharedFork::kAtRoute;
            print_row(tag + "layer: route+moe_experts(shared) " + how + (at_route ? " [fork at route]" : "") + " graph",
                      g, bytes);
            if (side) {  // the other fork point: after the router (DSA_MOE_SHARED_STREAM_FORK=experts)
                ::setenv("DSA_MOE_SHARED_STREAM_FORK", "experts", 1);
                const double ge = graph_time(be, layer_fused);
                const bool later = be.last_shared_fork() == cuda::CudaBackend::SharedFork::kAtExperts;
                const std::string name = tag + "layer: route+moe_experts(shared) " + how;
                print_row(name + (later ? " [fork at experts]" : "") + " graph", ge, bytes);
                ::unsetenv("DSA_MOE_SHARED_STREAM_FORK");
            }
        }
    }
}

void bench_glm_route(cuda::CudaBackend& be, std::mt19937& rng) {
    Tensor rw = random_bf16({kExperts, 6144}, rng, 0.02f);
    Tensor bias = Tensor::zeros({kExperts}, DType::kF32);
    RouterParams rp = router(rw, bias, 1, 1);
    for (int64_t batch : {1, 8, 64}) {
        std::vector<Tensor> xs;
        for (int i = 0; i < kCopies; ++i) xs.push_back(be.to_device(random_bf16({batch, 6144}, rng, 1.0f)));
        auto route = [&](int i) {
            rp.x = xs[i % kCopies];
            be.moe_route(rp);
        };
        print_row("B=" + std::to_string(batch) + " route (glm5 D6144 E256 top8) graph", graph_time(be, route), 0);
    }
}

}  // namespace
}  // namespace dsa::backend

int main(int argc, char** argv) {
    using namespace dsa::backend;
    if (cuda_device_count() == 0) {
        std::fprintf(stderr, "moe_bench: no CUDA device\n");
        return 1;
    }
    auto backend = make_cuda_backend(Numerics::deepseek_fp8(), 0);
    auto& be = static_cast<cuda::CudaBackend&>(*backend);
    int num_sms = 0;
    DSA_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0));
    std::mt19937 rng(7);
    std::printf("MoE layer, DeepSeek-V3.2 shapes, FP8 experts, act_quant UE8M0, PDL %s (uploading 257 experts)\n",
                cuda::host::pdl_enabled() ? "on" : "off (DSA_PDL=0)");
    const ExpertSet ex = make_experts(be);
    if (argc > 1 && std::strcmp(argv[1], "--shared-stream") == 0) {
        bench_shared_stream(be, ex, rng);
        return 0;
    }
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;  // batches 1 and 2, stages at 1
    const std::vector<int64_t> batches = quick ? std::vector<int64_t>{1, 2}
                                               : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64, 128};
    for (int64_t batch : batches) {
        LayerInputs in = make_inputs(be, ex, rng, batch);
        bench_layer(be, ex, in, batch);
        if (batch == 1 || (!quick && (batch == 4 || batch == 16))) bench_stages(be, ex, in, batch, num_sms);
    }
    if (!quick) bench_glm_route(be, rng);
    return 0;
}
