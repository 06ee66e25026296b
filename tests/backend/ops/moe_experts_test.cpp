// CUDA vs CPU for moe_experts (the routed experts, the shared expert, the streaming plans): D 7168, F 2048 with
// 32 FP8 / 16 BF16 experts, T = 1, 4, 64, 128 (decode path), 300 (prefill path), skewed routing so both small and
// large groups occur; tolerances and the wrong-combine check as described in moe_ops_test.cpp (the router tests).
// FP8 experts with act_quant at T <= 128 take the tensor-core streaming path (asserted), also with repeated
// (token, expert) pairs, a group larger than the planned tile, the plans' switches and CUDA-graph replays; the shared
// expert on the side stream (DSA_MOE_SHARED_STREAM) against the separate path, eagerly and in graph replays; the
// norm's act_quant read instead of a launch.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/fp8_stream_gemm.h"
#include "backend/cuda/moe_kernels.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

using MoeTest = CudaVsCpuTest;

constexpr int64_t kDim = 7168, kInter = 2048;

const Numerics kActQuantUe8m0{.round_activations_to_bf16 = true, .fp8_activation_quant = true, .ue8m0_scales = true};

// ---- routed experts ----

std::vector<MlpWeights> make_experts(int64_t count, bool fp8, std::mt19937& rng) {
    std::vector<MlpWeights> v;
    for (int64_t e = 0; e < count; ++e) {
        if (fp8) {
            v.push_back({random_fp8_weight(kInter, kDim, rng), random_fp8_weight(kInter, kDim, rng),
                         random_fp8_weight(kDim, kInter, rng)});
        } else {
            v.push_back({random_bf16_weight(kInter, kDim, rng), random_bf16_weight(kInter, kDim, rng),
                         random_bf16_weight(kDim, kInter, rng)});
        }
    }
    return v;
}

struct Routing {
    Tensor ids, weights;
};

// k distinct experts per token drawn with probability ~ 1 / (1 + e) (expert 0 is popular, the last ones rare).
Routing skewed_routing(int64_t tokens, int64_t k, int64_t experts, std::mt19937& rng) {
    std::vector<double> pw(experts);
    for (int64_t e = 0; e < experts; ++e) pw[e] = 1.0 / (1.0 + static_cast<double>(e));
    std::discrete_distribution<int32_t> pick(pw.begin(), pw.end());
    std::uniform_real_distribution<float> wd(0.05f, 0.5f);
    Routing r{Tensor::empty({tokens, k}, DType::kI32), Tensor::empty({tokens, k}, DType::kF32)};
    for (int64_t t = 0; t < tokens; ++t) {
        std::set<int32_t> used;
        for (int64_t j = 0; j < k; ++j) {
            int32_t e = pick(rng);
            while (used.count(e)) e = pick(rng);
            used.insert(e);
            r.ids.data<int32_t>()[t * k + j] = e;
            r.weights.data<float>()[t * k + j] = wd(rng);
        }
    }
    return r;
}

Tensor run_experts(Backend& be, const Tensor& x, const Routing& r, const std::vector<MlpWeights>& experts) {
    return be.moe_experts(MoeParams{x, r.ids, r.weights, experts});
}

void compare_experts(Backend& cpu, Backend& gpu, const std::vector<MlpWeights>& experts, int64_t tokens, double tol,
                     const std::string& what, std::mt19937& rng) {
    Tensor x = random_act({tokens, kDim}, rng);
    Routing r = skewed_routing(tokens, 8, static_cast<int64_t>(experts.size()), rng);
    Tensor got = to_f32(gpu.to_host(run_experts(gpu, gpu.to_device(to_bf16(x)), r, experts)));
    expect_close(what + " T=" + std::to_string(tokens), got, run_experts(cpu, x, r, experts), tol);
}

TEST_F(MoeTest, ExpertsFp8) {
    std::vector<MlpWeights> experts = make_experts(32, /*fp8=*/true, rng_);
    for (const Numerics& n : {Numerics::bf16(), kActQuantUe8m0}) {
        make(n);
        const double tol = n.fp8_activation_quant ? 2e-2 : 1e-2;
        const std::string what = std::string("moe_experts fp8 E=32 ") + (n.fp8_activation_quant ? "act_quant" : "bf16");
        for (int64_t t : {1, 4, 64, 128, 300}) {
            compare_experts(*cpu_, *gpu_, experts, t, tol, what, rng_);
            using P = cuda::CudaBackend::MoePath;
            const P want = n.fp8_activation_quant ? (t <= 128 ? P::kStream : P::kHostGrouped)
                                                  : (t <= 16 ? P::kDeviceGemv : P::kHostGrouped);
            EXPECT_EQ(cuda().last_moe_path(), want) << what << " T=" << t;
        }
    }
}

// The streaming path at T = 1, 4, 16, 64 with uniformly random routing that may repeat an expert within a token
// (the CPU runs both pairs), with UE8M0 and f32 activation scales.
TEST_F(MoeTest, ExpertsStreamRandomRouting) {
    std::vector<MlpWeights> experts = make_experts(24, /*fp8=*/true, rng_);
    const Numerics act_quant_f32{
        .round_activations_to_bf16 = true, .fp8_activation_quant = true, .ue8m0_scales = false};
    std::uniform_int_distribution<int32_t> pick(0, 23);
    std::uniform_real_distribution<float> wd(0.05f, 0.5f);
    for (const Numerics& n : {kActQuantUe8m0, act_quant_f32}) {
        make(n);
        for (int64_t t : {1, 4, 16, 64}) {
            const int64_t k = 8;
            Routing r{Tensor::empty({t, k}, DType::kI32), Tensor::empty({t, k}, DType::kF32)};
            for (int64_t i = 0; i < t * k; ++i) {
                r.ids.data<int32_t>()[i] = pick(rng_);
                r.weights.data<float>()[i] = wd(rng_);
            }
            r.ids.data<int32_t>()[1] = r.ids.data<int32_t>()[0];  // token 0 repeats an expert
            Tensor x = random_act({t, kDim}, rng_);
            const std::string what = std::string("moe_experts fp8-stream random routing ") +
                                     (n.ue8m0_scales ? "ue8m0" : "f32-scales") + " T=" + std::to_string(t);
            expect_close(what, down(run_experts(*gpu_, up(x), r, experts)), run_experts(*cpu_, x, r, experts), 2e-2);
            EXPECT_EQ(cuda().last_moe_path(), cuda::CudaBackend::MoePath::kStream) << what;
        }
    }
}

// The shared expert as one more group of the streamed launches: vs the CPU (routed + add(dense_mlp)) at the
// act_quant tolerance, and vs the separate GPU path (dense_mlp + add) closely while that dense_mlp also streams
// (T <= kFp8StreamMaxRows: only the split-K association of the shared expert's sums differs). Past it the
// separate dense_mlp runs on cuBLASLt (~1e-2 off the streamed sums), so each path is checked against the CPU at
// the dense_mlp act_quant tolerance instead. T = 128 has too many pairs for one grouping CTA: the separate path.
TEST_F(MoeTest, ExpertsSharedAsGroup) {
    std::vector<MlpWeights> experts = make_experts(32, /*fp8=*/true, rng_);
    const MlpWeights shared = make_experts(1, /*fp8=*/true, rng_)[0];
    make(kActQuantUe8m0);
    for (int64_t t : {1, 2, 4, 16, 64, 113, 128}) {
        Tensor x = random_act({t, kDim}, rng_);
        Routing r = skewed_routing(t, 8, 32, rng_);
        const std::string what = "moe_experts + shared T=" + std::to_string(t);
        const int64_t before = cuda::moe_shared_fused_count();
        Tensor dx = up(x);
        Tensor got = down(gpu_->moe_experts(MoeParams{dx, r.ids, r.weights, experts, &shared}));
        // One token: a group only under the joint grouped plan (opt-in, DSA_MOE_PLAN=joint).
        const bool joins = t >= 2 || (cuda::fp8_stream_grouped_joint() &&
                                      cuda::fp8_stream_variant() != cuda::Fp8StreamKernel::kRing);
        const int64_t fused = joins && t * 9 <= cuda::kMoeGroupMaxPairs ? 1 : 0;
        EXPECT_EQ(cuda::moe_shared_fused_count(), before + fused) << what;
        const Tensor want = cpu_->moe_experts(MoeParams{x, r.ids, r.weights, experts, &shared});
        expect_close(what + " vs cpu", got, want, 2e-2);
        Tensor separate;
        {
            EnvScope env("DSA_MOE_SHARED", "separate");
            separate = down(gpu_->moe_experts(MoeParams{dx, r.ids, r.weights, experts, &shared}));
        }
        EXPECT_EQ(cuda::moe_shared_fused_count(), before + fused) << what;
        if (t <= cuda::CudaBackend::kFp8StreamMaxRows) {
            // The two may run different kernels (grouped plans of <= 16 rows on wgmma, larger ones on staged: at
            // T = 2 the fused launch plans 18 rows, the separate routed one 16) whose sums round differently
            // through bf16 gate_up and h's act_quant: the H200 measured rel_l2 up to 5.0e-3 (T = 2, 16, 64).
            expect_close(what + " fused vs separate", got, separate, 1e-2);
        } else {
            expect_close(what + " separate vs cpu", separate, want, 2e-2);
        }
        // The shared expert is in the result: without it the output is far off.
        Tensor routed_only = down(gpu_->moe_experts(MoeParams{dx, r.ids, r.weights, experts}));
        EXPECT_GT(compare(routed_only, got).rel_l2, 0.1) << what;
    }
}

using Fork = cuda::CudaBackend::SharedFork;

// The shared expert on the side stream (DSA_MOE_SHARED_STREAM=16) at T = 1, 2, 4, 8, 16: the same kernels as the
// separate path (DSA_MOE_SHARED=separate, switch off: dense_mlp after the routed experts, then add), so the same
// bits, and near the CPU. Three calls enqueued back to back (no host sync between them: each side branch reuses
// the side buffers after the previous call's add) give each call's bits. DSA_MOE_SHARED_STREAM=1 at T = 2: the
// shared expert stays a group of the routed launches.
TEST_F(MoeTest, ExpertsSharedStreamMatchesSerial) {
    make(kActQuantUe8m0);
    std::vector<MlpWeights> experts = make_experts(32, /*fp8=*/true, rng_);
    const MlpWeights shared = make_experts(1, /*fp8=*/true, rng_)[0];
    for (int64_t t : {1, 2, 4, 8, 16}) {
        const std::string what = "moe shared stream T=" + std::to_string(t);
        std::cout << "[ metric ] " << what << std::endl;  // names the case if a launch fails
        std::vector<Tensor> xs, dxs, serial;
        std::vector<Routing> rs, drs;  // host and device routing (device: no upload, no host sync in the calls)
        for (int i = 0; i < 3; ++i) {
            xs.push_back(random_act({t, kDim}, rng_));
            dxs.push_back(up(xs.back()));
            rs.push_back(skewed_routing(t, 8, 32, rng_));
            drs.push_back({gpu_->to_device(rs.back().ids), gpu_->to_device(rs.back().weights)});
        }
        auto call = [&](int i) {
            return gpu_->moe_experts(MoeParams{dxs[i], drs[i].ids, drs[i].weights, experts, &shared});
        };
        {
            EnvScope off("DSA_MOE_SHARED_STREAM", "0");
            EnvScope sep("DSA_MOE_SHARED", "separate");
            for (int i = 0; i < 3; ++i) serial.push_back(gpu_->to_host(call(i)));
            EXPECT_EQ(cuda().last_shared_fork(), Fork::kNone) << what;
        }
        EnvScope on("DSA_MOE_SHARED_STREAM", "16");
        std::vector<Tensor> side;
        for (int i = 0; i < 3; ++i) side.push_back(call(i));
        EXPECT_EQ(cuda().last_shared_fork(), Fork::kAtExperts) << what;
        for (int i = 0; i < 3; ++i) {
            Tensor got = gpu_->to_host(side[i]);
            EXPECT_EQ(std::memcmp(got.raw_data(), serial[i].raw_data(), got.nbytes()), 0) << what << " call " << i;
        }
        const Tensor want = cpu_->moe_experts(MoeParams{xs[0], rs[0].ids, rs[0].weights, experts, &shared});
        expect_close(what + " vs cpu", to_f32(gpu_->to_host(side[0])), want, 2e-2);
    }
    EnvScope one("DSA_MOE_SHARED_STREAM", "1");
    Tensor x = random_act({2, kDim}, rng_);
    Routing r = skewed_routing(2, 8, 32, rng_);
    const int64_t before = cuda::moe_shared_fused_count();
    Tensor got = down(gpu_->moe_experts(MoeParams{up(x), r.ids, r.weights, experts, &shared}));
    EXPECT_EQ(cuda().last_shared_fork(), Fork::kNone);
    EXPECT_EQ(cuda::moe_shared_fused_count(), before + 1);
    expect_close("moe shared stream=1 T=2 (group) vs cpu", got,
                 cpu_->moe_experts(MoeParams{x, r.ids, r.weights, experts, &shared}), 2e-2);
}

// The act_quant of x made by its norm (rms_norm_q8), handed in as MoeParams::x_q8 / x_scales and to dense_mlp_q8:
// no act_quant launch of the routed experts' own, nor of the shared expert's (side stream or serial), same bits.
TEST_F(MoeTest, ExpertsReadTheNormsActQuant) {
    make(kActQuantUe8m0);
    std::vector<MlpWeights> experts = make_experts(32, /*fp8=*/true, rng_);
    const MlpWeights shared = make_experts(1, /*fp8=*/true, rng_)[0];
    const Tensor norm_w = up(random_act({kDim}, rng_, 0.1f, 1.0f));
    for (const char* stream : {"1", "0"}) {
        EnvScope side("DSA_MOE_SHARED_STREAM", stream);
        for (int64_t t : {1, 4, 16}) {
            const std::string what = std::string("moe norm q8 T=") + std::to_string(t) + " side stream " + stream;
            const QuantizedAct xa = gpu_->rms_norm_q8(up(random_act({t, kDim}, rng_)), norm_w, 1e-6f);
            ASSERT_TRUE(xa.has_q8()) << what;
            const Routing r = skewed_routing(t, 8, 32, rng_);
            const Tensor ids = gpu_->to_device(r.ids), w = gpu_->to_device(r.weights);
            const Tensor plain = gpu_->to_host(gpu_->moe_experts(MoeParams{xa.x, ids, w, experts, &shared}));
            const Tensor q8 =
                gpu_->to_host(gpu_->moe_experts(MoeParams{xa.x, ids, w, experts, &shared, xa.q8, xa.scales}));
            EXPECT_EQ(cuda().last_moe_path(), cuda::CudaBackend::MoePath::kStream) << what;
            EXPECT_EQ(std::memcmp(plain.raw_data(), q8.raw_data(), q8.nbytes()), 0) << what;
            const Tensor mlp = gpu_->to_host(gpu_->dense_mlp(xa.x, shared));
            const Tensor mlp_q8 = gpu_->to_host(gpu_->dense_mlp_q8(xa, shared));
            EXPECT_TRUE(cuda().last_mlp_fused()) << what;
            EXPECT_EQ(std::memcmp(mlp.raw_data(), mlp_q8.raw_data(), mlp.nbytes()), 0) << what << " dense_mlp";
        }
    }
}

// route + moe_experts (shared expert on the side stream) captured in a graph at T = 1 and 4: the side branch forks
// at the route (before the router), and at T = 4 also after it (DSA_MOE_SHARED_STREAM_FORK=experts). Replays after
// new x were copied in (the routing changes with x) equal, bit for bit, the eager run with the switch on and the
// separate path (switch off), and the CPU experts on the GPU's routing within tolerance.
TEST_F(MoeTest, ExpertsSharedStreamGraphReplay) {
    make(kActQuantUe8m0);
    std::vector<MlpWeights> experts = make_experts(32, /*fp8=*/true, rng_);
    const MlpWeights shared = make_experts(1, /*fp8=*/true, rng_)[0];
    RouterParams rp;
    rp.weight = random_bf16_weight(32, kDim, rng_, 0.05f).weight;
    rp.num_groups = 4, rp.topk_groups = 2, rp.top_k = 8;
    rp.routed_scaling_factor = 2.5f;
    EnvScope on("DSA_MOE_SHARED_STREAM", "16");
    const std::pair<int64_t, bool> runs[] = {{1, true}, {4, true}, {4, false}};  // (T, fork at the route)
    for (const auto& [t, at_route] : runs) {
        EnvScope fork("DSA_MOE_SHARED_STREAM_FORK", at_route ? nullptr : "experts");
        Tensor dx = up(random_act({t, kDim}, rng_)), out;
        rp.x = dx;
        auto layer = [&] {
            RouterResult r = gpu_->moe_route(rp);
            return gpu_->moe_experts(MoeParams{dx, r.ids, r.weights, experts, &shared});
        };
        layer();  // side buffers, tables and workspaces exist before the capture
        EXPECT_EQ(cuda().last_shared_fork(), Fork::kAtExperts);
        auto graph = gpu_->capture_graph([&] { out = layer(); });
        ASSERT_TRUE(graph.is_ok()) << graph.status().message();
        EXPECT_EQ(cuda().last_shared_fork(), at_route ? Fork::kAtRoute : Fork::kAtExperts);
        std::set<std::vector<int32_t>> routings;
        for (int rep = 0; rep < 3; ++rep) {
            const std::string what = "moe shared stream graph replay T=" + std::to_string(t) +
                                     (at_route ? " [fork at route]" : " [fork at experts]") + " rep " +
                                     std::to_string(rep);
            std::cout << "[ metric ] " << what << std::endl;
            Tensor x = random_act({t, kDim}, rng_);
            gpu_->copy_into(to_bf16(x), dx);
            gpu_->replay_graph(**graph);
            Tensor replay = gpu_->to_host(out);
            RouterResult r = gpu_->moe_route(rp);
            Tensor ids = gpu_->to_host(r.ids), wts = gpu_->to_host(r.weights);
            routings.insert(std::vector<int32_t>(ids.data<int32_t>(), ids.data<int32_t>() + ids.numel()));
            Tensor eager = gpu_->to_host(gpu_->moe_experts(MoeParams{dx, r.ids, r.weights, experts, &shared}));
            EXPECT_EQ(cuda().last_shared_fork(), Fork::kAtExperts) << what;
            Tensor serial;
            {
                EnvScope off("DSA_MOE_SHARED_STREAM", "0");
                EnvScope sep("DSA_MOE_SHARED", "separate");
                serial = gpu_->to_host(gpu_->moe_experts(MoeParams{dx, r.ids, r.weights, experts, &shared}));
            }
            EXPECT_EQ(std::memcmp(replay.raw_data(), eager.raw_data(), replay.nbytes()), 0)
                << what << " replay vs eager";
            EXPECT_EQ(std::memcmp(eager.raw_data(), serial.raw_data(), eager.nbytes()), 0) << what << " vs separate";
            expect_close(what + " vs cpu", to_f32(replay), cpu_->moe_experts(MoeParams{x, ids, wts, experts, &shared}),
                         2e-2);
        }
        EXPECT_GT(routings.size(), 1u) << "the routing did not change between replays at T=" << t;
    }
}

// DSA_MOE_SHARED_STREAM_PRIORITY=low (read when the backend is made: the side stream below the main one, graphs
// instantiated with per-kernel priorities): route + moe_experts at T = 1 and 8 captured and replayed after new x
// equal, bit for bit, the separate path of a default backend on the same routing.
TEST_F(MoeTest, ExpertsSharedStreamLowPriority) {
    make(kActQuantUe8m0);
    std::vector<MlpWeights> experts = make_experts(32, /*fp8=*/true, rng_);
    const MlpWeights shared = make_experts(1, /*fp8=*/true, rng_)[0];
    std::unique_ptr<Backend> low;
    {
        EnvScope prio("DSA_MOE_SHARED_STREAM_PRIORITY", "low");
        low = make_cuda_backend(kActQuantUe8m0, 0);
    }
    RouterParams rp;
    rp.weight = random_bf16_weight(32, kDim, rng_, 0.05f).weight;
    rp.num_groups = 4, rp.topk_groups = 2, rp.top_k = 8;
    for (int64_t t : {1, 8}) {
        EnvScope on("DSA_MOE_SHARED_STREAM", "16");
        Tensor dx = low->to_device(to_bf16(random_act({t, kDim}, rng_))), out;
        rp.x = dx;
        auto layer = [&] {
            RouterResult r = low->moe_route(rp);
            return low->moe_experts(MoeParams{dx, r.ids, r.weights, experts, &shared});
        };
        layer();
        auto graph = low->capture_graph([&] { out = layer(); });
        ASSERT_TRUE(graph.is_ok()) << graph.status().message();
        EXPECT_EQ(static_cast<cuda::CudaBackend&>(*low).last_shared_fork(), Fork::kAtRoute);
        for (int rep = 0; rep < 2; ++rep) {
            const std::string what =
                "moe shared stream [low priority] T=" + std::to_string(t) + " rep " + std::to_string(rep);
            std::cout << "[ metric ] " << what << std::endl;
            Tensor x = to_bf16(random_act({t, kDim}, rng_));
            low->copy_into(x, dx);
            low->replay_graph(**graph);
            Tensor replay = low->to_host(out);
            RouterResult r = low->moe_route(rp);
            Routing host{low->to_host(r.ids), low->to_host(r.weights)};
            Tensor serial;
            {
                EnvScope off("DSA_MOE_SHARED_STREAM", "0");
                EnvScope sep("DSA_MOE_SHARED", "separate");
                serial = gpu_->to_host(
                    gpu_->moe_experts(MoeParams{gpu_->to_device(x), host.ids, host.weights, experts, &shared}));
            }
            EXPECT_EQ(std::memcmp(replay.raw_data(), serial.raw_data(), replay.nbytes()), 0) << what;
        }
    }
}

// The joint grouped plan (DSA_MOE_PLAN=joint) vs the fixed grid (default) at T = 1, 2, 4, 8 (bounded plans: the
// joint one splits K over the groups' CTAs, 7 chunks for 9 groups at T = 1, where only it takes the shared expert as
// a group): each vs the CPU, and the two within the split-K summation-order tolerance. Restores the default.
TEST_F(MoeTest, ExpertsJointPlanVsGrid) {
    const bool initial = cuda::fp8_stream_grouped_joint();
    make(kActQuantUe8m0);
    std::vector<MlpWeights> experts = make_experts(32, /*fp8=*/true, rng_);
    const MlpWeights shared = make_experts(1, /*fp8=*/true, rng_)[0];
    for (int64_t t : {1, 2, 4, 8}) {
        Tensor x = random_act({t, kDim}, rng_);
        Routing r = skewed_routing(t, 8, 32, rng_);
        const Tensor want = cpu_->moe_experts(MoeParams{x, r.ids, r.weights, experts, &shared});
        Tensor dx = up(x), got[2];
        for (int joint = 0; joint < 2; ++joint) {
            cuda::set_fp8_stream_grouped_joint(joint == 1);
            const std::string what = std::string("moe_experts + shared [") + (joint ? "joint" : "grid") +
                                     " plan] T=" + std::to_string(t);
            std::cout << "[ metric ] " << what << std::endl;  // names the case if a launch fails
            got[joint] = down(gpu_->moe_experts(MoeParams{dx, r.ids, r.weights, experts, &shared}));
            expect_close(what + " vs cpu", got[joint], want, 2e-2);
            EXPECT_EQ(cuda().last_moe_path(), cuda::CudaBackend::MoePath::kStream) << what;
        }
        expect_close("joint vs grid T=" + std::to_string(t), got[1], got[0], 5e-3);
    }
    cuda::set_fp8_stream_grouped_joint(initial);
}

// Captures one GPU moe_experts call (device x, ids and weights; the shared expert given) at T tokens, then `reps`
// times copies new routing (`tweak` may rewrite it) and a new x into its inputs and replays: the replay must equal
// an eager run on the same inputs bit for bit and the CPU within tolerance.
void check_graph_replays(Backend& gpu, Backend& cpu, const std::vector<MlpWeights>& experts, const MlpWeights& shared,
                         int64_t t, int reps, const std::string& label, std::mt19937& rng,
                         const std::function<void(int, Routing&)>& tweak = {}) {
    Routing r0 = skewed_routing(t, 8, 32, rng);
    Tensor dx = gpu.to_device(to_bf16(random_act({t, kDim}, rng)));
    Tensor ids = gpu.to_device(r0.ids), wts = gpu.to_device(r0.weights), out;
    auto call = [&] { return gpu.moe_experts(MoeParams{dx, ids, wts, experts, &shared}); };
    call();  // tables and workspaces exist before the capture
    auto graph = gpu.capture_graph([&] { out = call(); });
    ASSERT_TRUE(graph.is_ok()) << graph.status().message();
    for (int rep = 0; rep < reps; ++rep) {
        const std::string what = label + " routing " + std::to_string(rep);
        std::cout << "[ metric ] " << what << std::endl;
        Routing r = skewed_routing(t, 8, 32, rng);
        if (tweak) tweak(rep, r);
        Tensor x = random_act({t, kDim}, rng);
        gpu.copy_into(to_bf16(x), dx);
        gpu.copy_into(r.ids, ids);
        gpu.copy_into(r.weights, wts);
        gpu.replay_graph(**graph);
        Tensor replay = gpu.to_host(out);
        Tensor eager = gpu.to_host(call());
        EXPECT_EQ(std::memcmp(replay.raw_data(), eager.raw_data(), replay.nbytes()), 0) << what;
        expect_close(what + " vs cpu", to_f32(replay), cpu.moe_experts(MoeParams{x, r.ids, r.weights, experts, &shared}),
                     2e-2);
    }
}

// A captured MoE call (device ids, weights and x, the shared expert as a group) replayed after new routing, new
// weights and new x were copied into its inputs: equal to the eager run on those inputs bit for bit (the plan and
// the grouping do not depend on the routing) and to the CPU within tolerance; T = 1 and 8 (bounded plans; the joint
// plan splits K there) and T = 16 (the unbounded plan), three routings each (the number of groups changes between
// replays), under the fixed grid (default) and the joint plan. Restores the default.
TEST_F(MoeTest, ExpertsGraphReplayNewRouting) {
    const bool initial = cuda::fp8_stream_grouped_joint();
    make(kActQuantUe8m0);
    std::vector<MlpWeights> experts = make_experts(32, /*fp8=*/true, rng_);
    const MlpWeights shared = make_experts(1, /*fp8=*/true, rng_)[0];
    const std::pair<int64_t, bool> runs[] = {{1, true}, {8, true}, {1, false}, {16, false}};  // (T, joint plan)
    for (const auto& [t, joint] : runs) {
        cuda::set_fp8_stream_grouped_joint(joint);
        const std::string label = "moe graph replay T=" + std::to_string(t) + (joint ? " [joint]" : " [grid]");
        check_graph_replays(*gpu_, *cpu_, experts, shared, t, 3, label, rng_, [t](int rep, Routing& r) {
            if (rep != 2) return;  // experts 8 j .. 8 j + 7 (mod 32) for token j: the most groups
            for (int64_t i = 0; i < t * 8; ++i) r.ids.data<int32_t>()[i] = static_cast<int32_t>(i % 32);
        });
    }
    cuda::set_fp8_stream_grouped_joint(initial);
}

// Stream-K plans at one token (DSA_FP8_STREAMK=1, opt-in): the shared expert joins as a group; routed only and
// routed + shared against the CPU, the same bits when repeated, close to the default plans; a captured call replayed
// after new routing and x equals the eager run bit for bit. Staged and wgmma kernels; the switches are restored.
TEST_F(MoeTest, ExpertsStreamKOneToken) {
    // At one token the side stream (the default) takes the shared expert before a stream-K group could.
    EnvScope side_off("DSA_MOE_SHARED_STREAM", "0");
    const int initial = cuda::fp8_stream_streamk_scope();
    const cuda::Fp8StreamKernel variant = cuda::fp8_stream_variant();
    make(kActQuantUe8m0);
    std::vector<MlpWeights> experts = make_experts(32, /*fp8=*/true, rng_);
    const MlpWeights shared = make_experts(1, /*fp8=*/true, rng_)[0];
    for (const cuda::Fp8StreamKernel v : {cuda::Fp8StreamKernel::kStaged, cuda::Fp8StreamKernel::kWgmma}) {
        cuda::set_fp8_stream_variant(v);
        for (const MlpWeights* sh : {static_cast<const MlpWeights*>(nullptr), &shared}) {
            const std::string what = std::string("moe stream-K T=1 [") +
                                     (v == cuda::Fp8StreamKernel::kWgmma ? "wgmma" : "staged") + "]" +
                                     (sh != nullptr ? " + shared" : "");
            std::cout << "[ metric ] " << what << std::endl;  // names the case if a launch fails
            Tensor x = random_act({1, kDim}, rng_);
            Routing r = skewed_routing(1, 8, 32, rng_);
            Tensor dx = up(x);
            cuda::set_fp8_stream_streamk(false);
            Tensor plain = down(gpu_->moe_experts(MoeParams{dx, r.ids, r.weights, experts, sh}));
            cuda::set_fp8_stream_streamk(true);
            const int64_t before = cuda::moe_shared_fused_count();
            Tensor got = gpu_->to_host(gpu_->moe_experts(MoeParams{dx, r.ids, r.weights, experts, sh}));
            EXPECT_EQ(cuda::moe_shared_fused_count(), before + (sh != nullptr ? 1 : 0)) << what;
            EXPECT_EQ(cuda().last_moe_path(), cuda::CudaBackend::MoePath::kStream) << what;
            expect_close(what + " vs cpu", to_f32(got), cpu_->moe_experts(MoeParams{x, r.ids, r.weights, experts, sh}),
                         2e-2);
            expect_close(what + " vs default plan", to_f32(got), plain, 5e-3);
            Tensor again = gpu_->to_host(gpu_->moe_experts(MoeParams{dx, r.ids, r.weights, experts, sh}));
            EXPECT_EQ(std::memcmp(got.raw_data(), again.raw_data(), got.nbytes()), 0) << what << " repeated";
        }
        check_graph_replays(*gpu_, *cpu_, experts, shared, 1, 2, "moe stream-K graph replay T=1", rng_);
    }
    cuda::set_fp8_stream_variant(variant);
    cuda::set_fp8_stream_streamk_scope(initial);
}

// More rows in one group than the tile was planned for (the kernel makes a second pass over the weights).
TEST_F(MoeTest, ExpertsStreamOversizedGroup) {
    make(kActQuantUe8m0);
    std::vector<MlpWeights> experts = make_experts(8, /*fp8=*/true, rng_);
    const int64_t tokens = 20, k = 4;
    Routing r = skewed_routing(tokens, k, 8, rng_);
    for (int64_t t = 0; t < tokens; ++t) r.ids.data<int32_t>()[t * k] = r.ids.data<int32_t>()[t * k + 1] = 5;
    Tensor x = random_act({tokens, kDim}, rng_);
    expect_close("moe_experts fp8-stream one expert x 40 rows", down(run_experts(*gpu_, up(x), r, experts)),
                 run_experts(*cpu_, x, r, experts), 2e-2);
    EXPECT_EQ(cuda().last_moe_path(), cuda::CudaBackend::MoePath::kStream);
}

// The first kernel variant (register ring, DSA_FP8_STREAM_KERNEL=ring) on the same random routing at T = 4 and 64
// and an oversized group; the default variant is restored.
TEST_F(MoeTest, ExpertsStreamRingVariant) {
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    cuda::set_fp8_stream_variant(cuda::Fp8StreamKernel::kRing);
    make(kActQuantUe8m0);
    std::vector<MlpWeights> experts = make_experts(24, /*fp8=*/true, rng_);
    std::uniform_int_distribution<int32_t> pick(0, 23);
    std::uniform_real_distribution<float> wd(0.05f, 0.5f);
    for (int64_t t : {4, 64}) {
        const int64_t k = 8;
        Routing r{Tensor::empty({t, k}, DType::kI32), Tensor::empty({t, k}, DType::kF32)};
        for (int64_t i = 0; i < t * k; ++i) {
            r.ids.data<int32_t>()[i] = pick(rng_);
            r.weights.data<float>()[i] = wd(rng_);
        }
        r.ids.data<int32_t>()[1] = r.ids.data<int32_t>()[0];
        Tensor x = random_act({t, kDim}, rng_);
        const std::string what = "moe_experts fp8-stream [ring] random routing T=" + std::to_string(t);
        expect_close(what, down(run_experts(*gpu_, up(x), r, experts)), run_experts(*cpu_, x, r, experts), 2e-2);
        EXPECT_EQ(cuda().last_moe_path(), cuda::CudaBackend::MoePath::kStream) << what;
    }
    cuda::set_fp8_stream_variant(initial);
}

TEST_F(MoeTest, ExpertsBf16) {
    std::vector<MlpWeights> experts = make_experts(16, /*fp8=*/false, rng_);
    for (int64_t t : {1, 4, 64, 300}) {
        compare_experts(*cpu_, *gpu_, experts, t, 5e-3, "moe_experts bf16 E=16", rng_);
    }
}

// Pass boundaries of the grouped kernel (4 tokens per pass): one expert with >= 9 pairs, one with >= 8, a token
// that lists the same expert twice (the CPU adds both), device-resident ids and weights.
TEST_F(MoeTest, ExpertsGroupEdges) {
    make(kActQuantUe8m0);
    std::vector<MlpWeights> experts = make_experts(12, /*fp8=*/true, rng_);
    const int64_t tokens = 9, k = 4;
    Routing r = skewed_routing(tokens, k, 12, rng_);
    for (int64_t t = 0; t < tokens; ++t) {
        r.ids.data<int32_t>()[t * k] = 11;
        if (t < 8) r.ids.data<int32_t>()[t * k + 1] = 10;
    }
    r.ids.data<int32_t>()[3 * k + 2] = 11;  // token 3 lists expert 11 twice
    Tensor x = random_act({tokens, kDim}, rng_);
    Tensor want = run_experts(*cpu_, x, r, experts);
    Routing dev{gpu_->to_device(r.ids), gpu_->to_device(r.weights)};
    expect_close("moe_experts group edges (device ids)", down(run_experts(*gpu_, up(x), dev, experts)), want, 2e-2);
}

// The tolerances above catch real mistakes: a combine with the weights rotated by one slot, or one pair sent to
// another expert, lands far outside them.
TEST_F(MoeTest, ToleranceDetectsWrongRoutingAndCombine) {
    std::vector<MlpWeights> experts = make_experts(16, /*fp8=*/true, rng_);
    const int64_t tokens = 4, k = 8;
    Routing r = skewed_routing(tokens, k, 16, rng_);
    Tensor x = random_act({tokens, kDim}, rng_);
    Tensor got = down(run_experts(*gpu_, up(x), r, experts));
    expect_close("moe_experts fp8 bf16 T=4", got, run_experts(*cpu_, x, r, experts), 1e-2);
    Routing rotated{r.ids, r.weights.clone()};
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t j = 0; j < k; ++j) {
            rotated.weights.data<float>()[t * k + j] = r.weights.data<float>()[t * k + (j + 1) % k];
        }
    }
    Routing moved{r.ids.clone(), r.weights};
    std::set<int32_t> used(moved.ids.data<int32_t>(), moved.ids.data<int32_t>() + k);
    int32_t other = 0;
    while (used.count(other)) ++other;
    int64_t heaviest = 0;  // token 0's slot with the largest weight -> an expert the token did not pick
    for (int64_t j = 1; j < k; ++j) {
        if (r.weights.data<float>()[j] > r.weights.data<float>()[heaviest]) heaviest = j;
    }
    moved.ids.data<int32_t>()[heaviest] = other;
    const double wrong_combine = compare(got, run_experts(*cpu_, x, rotated, experts)).rel_l2;
    const double wrong_expert = compare(got, run_experts(*cpu_, x, moved, experts)).rel_l2;
    std::cout << "[ metric ] moe_experts distance to wrong references: rotated weights " << wrong_combine
              << ", one wrong expert " << wrong_expert << "\n";
    EXPECT_GT(wrong_combine, 0.1);
    EXPECT_GT(wrong_expert, 0.05);
}

}  // namespace
}  // namespace dsa::backend::testing
