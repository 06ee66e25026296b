// CUDA vs CPU for the MoE router ops. moe_route at DeepSeek (E 256, 8 groups, top-4 groups, top-8, bias, x2.5) and
// GLM-5 (D 6144, no groups) shapes: inputs on a coarse grid make the router logits exact on both backends, so
// ids must match exactly (tokens whose CPU selection has a near-tie margin < 1e-6 are counted, not compared; at
// most 1%) and weights/scores to rel 1e-6 (sigmoid ulps); the fused router; the grouping and combine kernels with
// the shared expert as one more slot. moe_experts (the routed and shared experts) is in moe_experts_test.cpp, with
// its tolerances (relative L2): BF16 numerics 1e-2 with FP8 weights, 5e-3 with BF16 weights; act_quant 2e-2 (a
// bf16 rounding flip upstream moves an e4m3 step, as in the dense_mlp test); a wrong combine (weights rotated by
// one slot) or a wrong expert misses them by far.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <tuple>
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

// x on the grid {-2..2} / 8 and router weights on {-8..8} / 128: every logit is exact in FP32 in any order.
Tensor grid_x(int64_t tokens, int64_t dim, std::mt19937& rng) {
    Tensor t = Tensor::empty({tokens, dim}, DType::kF32);
    std::uniform_int_distribution<int> d(-2, 2);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(d(rng)) / 8.0f;
    return t;
}

Tensor grid_router(int64_t experts, int64_t dim, std::mt19937& rng) {
    Tensor t = Tensor::empty({experts, dim}, DType::kF32);
    std::uniform_int_distribution<int> d(-8, 8);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(d(rng)) / 128.0f;
    return to_bf16(t);
}

// Smallest gap at the CPU's two selection boundaries (k-th vs (k+1)-th group and expert), from its scores.
double selection_margin(const float* s, const float* bias, const RouterParams& p, int64_t experts) {
    std::vector<float> b(experts);
    for (int64_t e = 0; e < experts; ++e) b[e] = s[e] + (bias ? bias[e] : 0.0f);
    double margin = 1e30;
    if (p.num_groups > 1) {
        const int64_t per = experts / p.num_groups;
        std::vector<float> gs;
        for (int64_t g = 0; g < p.num_groups; ++g) {
            std::vector<float> v(b.begin() + g * per, b.begin() + (g + 1) * per);
            std::sort(v.begin(), v.end(), std::greater<float>());
            gs.push_back(bias && per >= 2 ? v[0] + v[1] : v[0]);
        }
        std::vector<float> sorted = gs;
        std::sort(sorted.begin(), sorted.end(), std::greater<float>());
        if (p.topk_groups < p.num_groups) margin = sorted[p.topk_groups - 1] - sorted[p.topk_groups];
        const float cut = sorted[p.topk_groups - 1];
        // Experts of groups below the cut cannot be selected (an exact group tie is resolved the same way).
        for (int64_t g = 0; g < p.num_groups; ++g) {
            if (gs[g] < cut) std::fill(b.begin() + g * per, b.begin() + (g + 1) * per, -1e30f);
        }
    }
    std::sort(b.begin(), b.end(), std::greater<float>());
    if (p.top_k < experts && b[p.top_k] > -1e29f) margin = std::min<double>(margin, b[p.top_k - 1] - b[p.top_k]);
    return margin;
}

// Runs both routers on the same (host) inputs and compares ids exactly and weights / scores to rel 1e-6.
void compare_route(Backend& cpu, Backend& gpu, const RouterParams& p, const std::string& what) {
    const int64_t tokens = p.x.dim(0), experts = p.weight.dim(0), k = p.top_k;
    RouterResult want = cpu.moe_route(p);
    RouterParams gp = p;
    gp.x = gpu.to_device(to_bf16(p.x));
    RouterResult got_dev = gpu.moe_route(gp);
    Tensor ids = gpu.to_host(got_dev.ids), weights = gpu.to_host(got_dev.weights);
    Tensor scores = gpu.to_host(got_dev.scores);
    ASSERT_EQ(ids.shape(), want.ids.shape());
    double max_score_rel = 0, max_weight_rel = 0;
    for (int64_t i = 0; i < tokens * experts; ++i) {
        const double c = want.scores.data<float>()[i], g = scores.data<float>()[i];
        max_score_rel = std::max(max_score_rel, std::fabs(g - c) / std::max(std::fabs(c), 1e-30));
    }
    int64_t near_ties = 0, mismatched = 0;
    const float* bias = p.bias.defined() ? p.bias.data<float>() : nullptr;
    for (int64_t t = 0; t < tokens; ++t) {
        // Exact ties (margin 0) come from identical inputs and must be broken identically: compared.
        const double margin = selection_margin(want.scores.data<float>() + t * experts, bias, p, experts);
        if (margin > 0 && margin < 1e-6) {
            ++near_ties;
            continue;
        }
        std::set<int32_t> distinct;
        for (int64_t j = 0; j < k; ++j) {
            const int32_t gi = ids.data<int32_t>()[t * k + j], ci = want.ids.data<int32_t>()[t * k + j];
            distinct.insert(gi);
            if (gi != ci) {
                ++mismatched;
                continue;
            }
            const double c = want.weights.data<float>()[t * k + j], g = weights.data<float>()[t * k + j];
            max_weight_rel = std::max(max_weight_rel, std::fabs(g - c) / std::max(std::fabs(c), 1e-30));
        }
        EXPECT_EQ(static_cast<int64_t>(distinct.size()), k) << what << " token " << t << " repeats an expert";
    }
    std::cout << "[ metric ] " << what << " T=" << tokens << " id mismatches=" << mismatched
              << " near-ties skipped=" << near_ties << " max weight rel=" << max_weight_rel
              << " max score rel=" << max_score_rel << "\n";
    EXPECT_EQ(mismatched, 0) << what;
    EXPECT_LE(near_ties, tokens / 100 + 1) << what;
    EXPECT_LE(max_weight_rel, 1e-6) << what;
    EXPECT_LE(max_score_rel, 1e-6) << what;
}

TEST_F(MoeTest, RouteDeepSeekShapes) {
    for (const Numerics& n : {Numerics::bf16(), kActQuantUe8m0}) {
        make(n);
        RouterParams p;
        p.weight = grid_router(256, kDim, rng_);
        p.bias = uniform_f32({256}, rng_, -0.05f, 0.05f);
        p.num_groups = 8;
        p.topk_groups = 4;
        p.top_k = 8;
        p.routed_scaling_factor = 2.5f;
        for (int64_t t : {1, 4, 64, 300}) {
            p.x = grid_x(t, kDim, rng_);
            compare_route(*cpu_, *gpu_, p, n.fp8_activation_quant ? "route dsv32 act_quant" : "route dsv32");
        }
    }
}

TEST_F(MoeTest, RouteGlmShapes) {
    RouterParams p;
    p.weight = grid_router(256, 6144, rng_);
    p.bias = uniform_f32({256}, rng_, -0.05f, 0.05f);
    p.top_k = 8;
    p.routed_scaling_factor = 2.5f;
    for (int64_t t : {1, 64, 300}) {
        p.x = grid_x(t, 6144, rng_);
        compare_route(*cpu_, *gpu_, p, "route glm5 (no groups)");
    }
}

// No bias (group score = max), no normalization, an F32 router weight and more groups than a warp has lanes.
TEST_F(MoeTest, RouteVariants) {
    RouterParams p;
    p.weight = to_f32(grid_router(256, 1024, rng_));
    p.num_groups = 8;
    p.topk_groups = 3;
    p.top_k = 6;
    p.normalize = false;
    p.x = grid_x(37, 1024, rng_);
    compare_route(*cpu_, *gpu_, p, "route no-bias f32-weight unnormalized");
    p.weight = grid_router(256, 1024, rng_);
    p.bias = uniform_f32({256}, rng_, -0.05f, 0.05f);
    p.num_groups = 64;
    p.topk_groups = 40;
    p.top_k = 8;
    p.normalize = true;
    compare_route(*cpu_, *gpu_, p, "route 64 groups");
}

// All scores equal: every choice is a tie, resolved by the lower group and then the lower expert id.
TEST_F(MoeTest, RouteTiesPickLowerIds) {
    RouterParams p;
    p.weight = grid_router(256, 512, rng_);
    p.x = Tensor::zeros({3, 512}, DType::kF32);
    p.bias = Tensor::zeros({256}, DType::kF32);
    p.num_groups = 8;
    p.topk_groups = 4;
    p.top_k = 8;
    p.routed_scaling_factor = 2.5f;
    compare_route(*cpu_, *gpu_, p, "route all ties");
    RouterParams gp = p;
    gp.x = gpu_->to_device(to_bf16(p.x));
    RouterResult r = gpu_->moe_route(gp);
    Tensor ids = gpu_->to_host(r.ids), w = gpu_->to_host(r.weights);
    for (int64_t t = 0; t < 3; ++t) {
        for (int64_t j = 0; j < 8; ++j) {
            EXPECT_EQ(ids.data<int32_t>()[t * 8 + j], j);
            EXPECT_FLOAT_EQ(w.data<float>()[t * 8 + j], 2.5f / 8.0f);
        }
    }
}

// The register selection (256 experts, moe_route.cuh route_token_fast) against the shared-memory one on the same
// logits, bit for bit: coarse logits and biases (ties within and across groups), a row of equal logits, a row
// with NaN / +inf / -inf, a row of sigmoid 0 / 1, for every group layout the register path takes (1 to 32 lanes
// per group), with and without bias / normalization, top_k 1 to 32.
TEST_F(MoeTest, RouteRegisterSelectionMatchesSharedMemory) {
    constexpr int64_t kE = 256, kT = 37;
    struct Case {
        int64_t groups, topk_groups, top_k;
        bool bias, normalize;
    };
    const Case cases[] = {{8, 4, 8, true, true},  {1, 1, 8, true, true},   {8, 3, 6, false, false},
                          {4, 2, 32, true, true}, {32, 5, 8, true, true},  {2, 1, 8, true, false},
                          {1, 1, 1, false, true}, {16, 16, 20, true, true}};
    std::uniform_int_distribution<int> coarse(-8, 8);
    constexpr float kNan = std::numeric_limits<float>::quiet_NaN(), kInf = std::numeric_limits<float>::infinity();
    for (const Case& c : cases) {
        ASSERT_TRUE(cuda::moe_route_register_path(kE, c.groups, c.top_k)) << c.groups << " groups";
        Tensor logits = Tensor::empty({kT, kE}, DType::kF32);
        float* z = logits.data<float>();
        for (int64_t i = 0; i < kT * kE; ++i) z[i] = static_cast<float>(coarse(rng_)) / 4.0f;
        std::fill_n(z, kE, 0.5f);
        for (int64_t e = 0; e < kE; e += 7) z[kE + e] = kNan;
        for (int64_t e = 3; e < kE; e += 11) z[kE + e] = kInf;
        for (int64_t e = 5; e < kE; e += 13) z[kE + e] = -kInf;
        for (int64_t e = 0; e < kE; ++e) z[2 * kE + e] = e % 3 == 0 ? 200.0f : -200.0f;
        Tensor bias = Tensor::empty({kE}, DType::kF32);
        for (int64_t e = 0; e < kE; ++e) bias.data<float>()[e] = static_cast<float>(coarse(rng_)) / 64.0f;
        Tensor dbias = gpu_->to_device(bias);
        Tensor out[2][3];  // [shared memory, registers] x {scores, ids, weights}
        for (int v = 0; v < 2; ++v) {
            Tensor sc = gpu_->to_device(logits);
            Tensor ids = Tensor::empty({kT, c.top_k}, DType::kI32, Device::kCUDA, "route.ids");
            Tensor w = Tensor::empty({kT, c.top_k}, DType::kF32, Device::kCUDA, "route.weights");
            cuda::MoeRouteParams p;
            p.scores = sc.data<float>();
            p.bias = c.bias ? dbias.data<float>() : nullptr;
            p.ids = ids.data<int32_t>();
            p.weights = w.data<float>();
            p.tokens = kT, p.experts = kE, p.groups = c.groups, p.topk_groups = c.topk_groups, p.top_k = c.top_k;
            p.scale = 2.5f;
            p.normalize = c.normalize;
            p.force_generic = v == 0;
            cuda::launch_moe_route(p, cuda().stream());
            out[v][0] = gpu_->to_host(sc);
            out[v][1] = gpu_->to_host(ids);
            out[v][2] = gpu_->to_host(w);
        }
        const std::string what = "groups " + std::to_string(c.groups) + " kept " + std::to_string(c.topk_groups) +
                                 " top_k " + std::to_string(c.top_k) + (c.bias ? " bias" : "") +
                                 (c.normalize ? " normalized" : "");
        const char* names[3] = {"scores", "ids", "weights"};
        for (int i = 0; i < 3; ++i) {
            const auto* a = static_cast<const uint32_t*>(out[0][i].raw_data());
            const auto* b = static_cast<const uint32_t*>(out[1][i].raw_data());
            int64_t first = -1, count = 0;
            for (int64_t j = 0; j < out[0][i].numel(); ++j) {
                if (a[j] != b[j]) {
                    if (first < 0) first = j;
                    ++count;
                }
            }
            EXPECT_EQ(count, 0) << what << ": " << names[i] << " differ at " << count << " places, first [" << first
                                << "] shared-memory bits " << (first >= 0 ? a[first] : 0) << " register bits "
                                << (first >= 0 ? b[first] : 0);
        }
        // The top-k of the ordinary rows also holds distinct ids in range (a sanity check on both).
        for (int64_t t = 3; t < kT; ++t) {
            std::set<int32_t> seen;
            for (int64_t j = 0; j < c.top_k; ++j) {
                const int32_t id = out[1][1].data<int32_t>()[t * c.top_k + j];
                EXPECT_TRUE(id >= 0 && id < kE && seen.insert(id).second) << what << " T " << t << " id " << id;
            }
        }
    }
}

// ---- fused router (split-K GEMV + selection in one launch, T <= kMoeRouterMaxTokens) ----

// Sets DSA_MOE_ROUTER for the scope (the backend reads it at every moe_route call); the previous value (or its
// absence) comes back at the end, so scopes nest.
struct RouterEnv {
    explicit RouterEnv(const char* v) {
        const char* old = std::getenv("DSA_MOE_ROUTER");
        had_ = old != nullptr;
        if (had_) old_ = old;
        ::setenv("DSA_MOE_ROUTER", v, 1);
    }
    ~RouterEnv() {
        if (had_) {
            ::setenv("DSA_MOE_ROUTER", old_.c_str(), 1);
        } else {
            ::unsetenv("DSA_MOE_ROUTER");
        }
    }
    bool had_ = false;
    std::string old_;
};

// Router rows 10, 11 and 200 identical with equal bias (exact score ties across groups 0 and 6), token 0 all
// zero (every score 0.5: the bias decides, ties between equal biases), the rest on the grid.
RouterParams tie_router(int64_t tokens, int64_t dim, std::mt19937& rng) {
    RouterParams p;
    p.weight = grid_router(256, dim, rng);
    auto* w = p.weight.data<uint16_t>();
    std::copy_n(w + 10 * dim, dim, w + 11 * dim);
    std::copy_n(w + 10 * dim, dim, w + 200 * dim);
    p.bias = Tensor::empty({256}, DType::kF32);
    std::uniform_int_distribution<int> bd(-4, 4);
    for (int64_t e = 0; e < 256; ++e) p.bias.data<float>()[e] = static_cast<float>(bd(rng)) / 128.0f;
    p.bias.data<float>()[11] = p.bias.data<float>()[200] = p.bias.data<float>()[10];
    p.num_groups = 8;
    p.topk_groups = 4;
    p.top_k = 8;
    p.routed_scaling_factor = 2.5f;
    p.x = grid_x(tokens, dim, rng);
    std::fill_n(p.x.data<float>(), dim, 0.0f);
    return p;
}

// The fused and the cuBLASLt + route-kernel paths on the same device input: bit-identical ids, weights, scores
// (the grid inputs make the logits exact on both).
void expect_paths_equal(Backend& gpu, const RouterParams& p, const std::string& what) {
    RouterParams gp = p;
    gp.x = gpu.to_device(to_bf16(p.x));
    const int64_t before = cuda::moe_router_launch_count();
    RouterResult fused = gpu.moe_route(gp);
    RouterResult again = gpu.moe_route(gp);  // a second launch: the counters were left zero
    EXPECT_EQ(cuda::moe_router_launch_count(), before + 2) << what << ": the fused router was not taken";
    RouterResult ref;
    {
        RouterEnv env("cublas");
        ref = gpu.moe_route(gp);
    }
    EXPECT_EQ(cuda::moe_router_launch_count(), before + 2) << what << ": DSA_MOE_ROUTER=cublas took the fused path";
    for (const RouterResult* r : {&fused, &again}) {
        for (auto [a, b, name] :
             {std::tuple{&r->ids, &ref.ids, "ids"}, std::tuple{&r->weights, &ref.weights, "weights"},
              std::tuple{&r->scores, &ref.scores, "scores"}}) {
            Tensor ha = gpu.to_host(*a), hb = gpu.to_host(*b);
            ASSERT_EQ(ha.shape(), hb.shape()) << what << " " << name;
            EXPECT_EQ(std::memcmp(ha.raw_data(), hb.raw_data(), ha.nbytes()), 0) << what << " " << name << " differ";
        }
    }
}

// The fused router is opt-in (DSA_MOE_ROUTER=fused); the default is the cuBLASLt path.
TEST_F(MoeTest, RouteFusedDecode) {
    {
        const int64_t before = cuda::moe_router_launch_count();
        compare_route(*cpu_, *gpu_, tie_router(4, kDim, rng_), "route default path T=4");
        EXPECT_EQ(cuda::moe_router_launch_count(), before) << "the default took the fused router";
    }
    RouterEnv fused_env("fused");
    for (int64_t t : {1, 2, 4, 16, 32}) {
        RouterParams p = tie_router(t, kDim, rng_);
        const int64_t before = cuda::moe_router_launch_count();
        compare_route(*cpu_, *gpu_, p, "route fused dsv32 ties");
        EXPECT_EQ(cuda::moe_router_launch_count(), before + 1) << "T=" << t;
        expect_paths_equal(*gpu_, p, "route fused dsv32 T=" + std::to_string(t));
    }
    // GLM-5: D 6144, no groups.
    for (int64_t t : {1, 16}) {
        RouterParams p = tie_router(t, 6144, rng_);
        p.num_groups = p.topk_groups = 1;
        compare_route(*cpu_, *gpu_, p, "route fused glm5 ties");
        expect_paths_equal(*gpu_, p, "route fused glm5 T=" + std::to_string(t));
    }
    // Unnormalized, 64 groups, 40 kept (group limit across more groups than lanes).
    RouterParams p = tie_router(8, 1024, rng_);
    p.num_groups = 64;
    p.topk_groups = 40;
    p.normalize = false;
    compare_route(*cpu_, *gpu_, p, "route fused 64 groups");
    expect_paths_equal(*gpu_, p, "route fused 64 groups");
    // Past the fused limit: the cuBLASLt path.
    const int64_t before = cuda::moe_router_launch_count();
    compare_route(*cpu_, *gpu_, tie_router(cuda::kMoeRouterMaxTokens + 1, kDim, rng_), "route T past fused limit");
    EXPECT_EQ(cuda::moe_router_launch_count(), before);
}

// ---- grouping and combine with the shared expert as one more slot per token (kernel level) ----

// Distinct random ids [tokens, k] over `experts`.
Tensor random_ids(int64_t tokens, int64_t k, int64_t experts, std::mt19937& rng) {
    Tensor ids = Tensor::empty({tokens, k}, DType::kI32);
    std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(experts - 1));
    for (int64_t t = 0; t < tokens; ++t) {
        std::set<int32_t> used;
        for (int64_t j = 0; j < k; ++j) {
            int32_t e = d(rng);
            while (used.count(e)) e = d(rng);
            used.insert(e);
            ids.data<int32_t>()[t * k + j] = e;
        }
    }
    return ids;
}

// The packed grouping must list, per expert ascending, exactly its pairs in ascending order.
void expect_grouping(const Tensor& packed, const std::vector<int32_t>& pair_expert, int64_t max_groups,
                     const std::string& what) {
    const int32_t* w = packed.data<int32_t>();
    const int64_t pairs = static_cast<int64_t>(pair_expert.size());
    std::map<int32_t, std::vector<int32_t>> want;
    for (int64_t i = 0; i < pairs; ++i) want[pair_expert[i]].push_back(static_cast<int32_t>(i));
    ASSERT_EQ(w[0], static_cast<int32_t>(want.size())) << what;
    int64_t g = 0, start = 0;
    for (const auto& [e, rows] : want) {
        EXPECT_EQ(w[1 + g], e) << what << " group " << g;
        EXPECT_EQ(w[1 + max_groups + g], start) << what << " group " << g;
        EXPECT_EQ(w[1 + 2 * max_groups + g], static_cast<int32_t>(rows.size())) << what << " group " << g;
        for (size_t r = 0; r < rows.size(); ++r) {
            EXPECT_EQ(w[1 + 3 * max_groups + start + static_cast<int64_t>(r)], rows[r]) << what << " group " << g;
        }
        start += static_cast<int64_t>(rows.size());
        ++g;
    }
}

// Experts 256 (DeepSeek), 8 (every expert in every warp: ranks carried across warps) and 1000 (more experts than
// pairs); 113 tokens x 9 slots = 1017 pairs, close to the 1024 limit.
TEST_F(MoeTest, GroupPairsWithSharedSlot) {
    constexpr int64_t kTopK = 8;
    for (const auto& [kExperts, tokens] : std::vector<std::pair<int64_t, int64_t>>{
             {256, 1}, {256, 4}, {256, 16}, {256, 64}, {256, 113}, {8, 64}, {8, 113}, {1000, 3}, {1000, 100}}) {
        for (bool shared : {false, true}) {
            Tensor ids = random_ids(tokens, kTopK, kExperts, rng_);
            const int64_t slots = kTopK + (shared ? 1 : 0), pairs = tokens * slots;
            const int64_t num_experts = kExperts + (shared ? 1 : 0), max_groups = std::min(pairs, num_experts);
            std::vector<int32_t> pair_expert(pairs);
            for (int64_t i = 0; i < pairs; ++i) {
                const int64_t t = i / slots, j = i % slots;
                pair_expert[i] = j == kTopK ? static_cast<int32_t>(kExperts) : ids.data<int32_t>()[t * kTopK + j];
            }
            Tensor dids = gpu_->to_device(ids);
            Tensor packed =
                Tensor::empty({cuda::moe_groups_words(max_groups, pairs)}, DType::kI32, Device::kCUDA, "packed");
            cuda::MoeGroupBuildParams gp{dids.data<int32_t>(), packed.data<int32_t>(), pairs, num_experts, max_groups};
            if (shared) {
                gp.top_k = kTopK;
                gp.shared_expert = static_cast<int32_t>(kExperts);
            }
            cuda::launch_moe_group_pairs(gp, cuda().stream());
            expect_grouping(gpu_->to_host(packed), pair_expert, max_groups,
                            "E=" + std::to_string(kExperts) + " T=" + std::to_string(tokens) + (shared ? " shared" : ""));
        }
    }
}

// The combine with the shared row equals the routed combine followed by the backend's add, bit for bit.
TEST_F(MoeTest, CombineWithSharedRow) {
    constexpr int64_t kTopK = 8;
    for (int64_t tokens : {1, 5, 16}) {
        Tensor y9 = to_bf16(random_act({tokens * (kTopK + 1), kDim}, rng_));
        Tensor w = uniform_f32({tokens, kTopK}, rng_, 0.05f, 0.5f);
        Tensor y8 = Tensor::empty({tokens * kTopK, kDim}, DType::kBF16);
        Tensor ys = Tensor::empty({tokens, kDim}, DType::kBF16);
        for (int64_t t = 0; t < tokens; ++t) {
            for (int64_t j = 0; j <= kTopK; ++j) {
                const uint16_t* src = y9.data<uint16_t>() + (t * (kTopK + 1) + j) * kDim;
                uint16_t* dst =
                    j < kTopK ? y8.data<uint16_t>() + (t * kTopK + j) * kDim : ys.data<uint16_t>() + t * kDim;
                std::copy_n(src, kDim, dst);
            }
        }
        Tensor d9 = gpu_->to_device(y9), d8 = gpu_->to_device(y8), ds = gpu_->to_device(ys), dw = gpu_->to_device(w);
        Tensor routed = Tensor::empty({tokens, kDim}, DType::kBF16, Device::kCUDA, "routed");
        Tensor got = Tensor::empty({tokens, kDim}, DType::kBF16, Device::kCUDA, "combined");
        cuda::launch_moe_combine({d8.data<uint16_t>(), dw.data<float>(), routed.data<uint16_t>(), tokens, kTopK, kDim},
                                 cuda().stream());
        cuda::launch_moe_combine(
            {d9.data<uint16_t>(), dw.data<float>(), got.data<uint16_t>(), tokens, kTopK, kDim, /*shared=*/true},
            cuda().stream());
        Tensor want = gpu_->to_host(gpu_->add(routed, ds)), have = gpu_->to_host(got);
        int64_t diff = 0;
        for (int64_t i = 0; i < want.numel(); ++i) diff += want.data<uint16_t>()[i] != have.data<uint16_t>()[i];
        EXPECT_EQ(diff, 0) << "T=" << tokens;
        // The shared row matters: it is not all zero.
        Tensor plain = gpu_->to_host(routed);
        EXPECT_NE(std::memcmp(plain.raw_data(), have.raw_data(), have.nbytes()), 0) << "T=" << tokens;
    }
}

}  // namespace
}  // namespace dsa::backend::testing
