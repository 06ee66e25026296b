// Session-11 decode fusions, CUDA: mla_sparse_attention_o_q8 with DSA_FUSED_COMBINE=1 (absorb_o merges the sparse
// attention's split-K partials itself, no combine launch) against the separate ops (the switch at 0: sparse
// attention + its combine, then mla_absorb_o_q8), bit for bit in .x, q8 and scales (memcmp), at DeepSeek-V3.2's
// shape (128 heads, FP8 store, FP8 kv_b) for B = 1, 2, 3, 8, 16, 32 on slot lists with masked entries, a token
// without valid slots and a 3-slot token; every sparse kernel; forced token tiles; the declines (no split, > 32
// tokens, bf16 numerics); a CUDA graph replay; and the CPU reference (rel L2 2e-2; a wrong list is further off).
// moe_route writing the pairs' grouping (DSA_FUSED_GROUP=1): the kernel's grouping == launch_moe_group_pairs' of its
// ids (both layouts, register and shared-memory selection), and moe_route + moe_experts == the switch at 0 bit for bit.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cuda/mla_absorb_fp8.h"
#include "backend/cuda/mla_kernels.h"
#include "backend/cuda/moe_kernels.h"
#include "mla_sparse_test_util.h"

namespace dsa::backend::testing {
namespace {

using namespace mla_test;

constexpr MlaHeadDims kDeepSeek{128, 128, 128};
constexpr float kScale = 0.1352338f;

bool same_bits(const Tensor& a, const Tensor& b) {
    return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

struct HostQ8 {
    Tensor x, q8, scales;
};

class FusedCombineTest : public CudaVsCpuTest {
  protected:
    void SetUp() override {
        CudaVsCpuTest::SetUp();
        if (IsSkipped()) return;
        make(Numerics::deepseek_fp8());
        int dev = 0;
        ASSERT_EQ(cudaGetDevice(&dev), cudaSuccess);
        ASSERT_EQ(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, dev), cudaSuccess);
        st_ = filled_stores(*cpu_, *gpu_, MlaKvFormat::kFp8, rng_);
        kv_b_ = random_fp8_weight(kDeepSeek.num_heads * (kDeepSeek.nope_dim + kDeepSeek.v_dim), kMlaLatentDim, rng_,
                                  2e-3f, 8e-3f);
    }
    // The op on the device (q on the device, slots as given) with DSA_FUSED_COMBINE = `on`; host copies.
    HostQ8 run(const char* on, const Tensor& qd, const Tensor& slots, const MlaHeadDims& d = kDeepSeek) {
        EnvScope sw("DSA_FUSED_COMBINE", on);
        const QuantizedAct r = gpu_->mla_sparse_attention_o_q8({qd, &st_.gpu, slots, kScale}, kv_b_, d);
        HostQ8 h{gpu_->to_host(r.x), Tensor(), Tensor()};
        if (r.has_q8()) h.q8 = gpu_->to_host(r.q8), h.scales = gpu_->to_host(r.scales);
        return h;
    }
    void expect_same(const HostQ8& a, const HostQ8& b, const std::string& what) {
        EXPECT_TRUE(same_bits(a.x, b.x)) << what << ": x";
        ASSERT_EQ(a.q8.defined(), b.q8.defined()) << what;
        if (!a.q8.defined()) return;
        EXPECT_TRUE(same_bits(a.q8, b.q8)) << what << ": q8";
        EXPECT_TRUE(same_bits(a.scales, b.scales)) << what << ": scales";
    }
    bool splits(int64_t tokens, int64_t width) const {
        return cuda::mla_sparse_splits(tokens, kDeepSeek.num_heads, width, sms_) > 1;
    }

    int sms_ = 0;
    Stores st_;
    LinearWeight kv_b_;
};

// B = 1, 2, 3, 8, 16, 32 at top-k 2048 (32 .. 2 splits) and shorter lists, on the default kernel: the fused op's
// bits equal the separate ops'; close to the CPU, and a list without its first tile is not.
TEST_F(FusedCombineTest, EqualsSeparateOps) {
    struct Case {
        int64_t tokens, width;
    };
    const Case cases[] = {{1, 2048}, {2, 2048}, {3, 2048}, {8, 2048}, {16, 2048}, {32, 2048},
                          {1, 1000}, {3, 77},   {8, 333},  {1, 64},   {4, 130}};
    for (const Case& c : cases) {
        const std::string what = "T=" + std::to_string(c.tokens) + " K=" + std::to_string(c.width);
        announce("fused combine " + what);
        const Tensor q = random_act({c.tokens, kDeepSeek.num_heads, kMlaKvDim}, rng_);
        const Tensor slots = slot_lists(c.tokens, c.width, rng_);
        const Tensor qd = up(q), sd = gpu_->to_device(slots);
        const HostQ8 off = run("0", qd, sd);
        EXPECT_FALSE(cuda().last_combine_fused()) << what;
        const HostQ8 on = run("1", qd, sd);
        EXPECT_EQ(cuda().last_combine_fused(), splits(c.tokens, c.width)) << what;
        EXPECT_TRUE(cuda().last_absorb_o_quantized()) << what;
        expect_same(on, off, what);
        const QuantizedAct ref = cpu_->mla_sparse_attention_o_q8({q, &st_.cpu, slots, kScale}, kv_b_, kDeepSeek);
        expect_close("fused combine vs CPU " + what, to_f32(on.x), ref.x, 2e-2);
        if (c.width > 64 && c.tokens <= 8) {
            const QuantizedAct wrong =
                cpu_->mla_sparse_attention_o_q8({q, &st_.cpu, drop_first_tile(slots), kScale}, kv_b_, kDeepSeek);
            EXPECT_GT(compare(to_f32(on.x), wrong.x).rel_l2, 2e-2) << what << ": the tolerance must tell it apart";
        }
        if (c.tokens > 1) {  // token 1 has no valid slot: its O and so its absorb_o rows are zero
            const Tensor x = to_f32(on.x);
            const int64_t w = kDeepSeek.num_heads * kDeepSeek.v_dim;
            double worst = 0;
            for (int64_t i = 0; i < w; ++i) worst = std::max(worst, std::fabs(double(x.data<float>()[w + i])));
            EXPECT_EQ(worst, 0.0) << what << ": the all-masked token";
        }
    }
}

// Every sparse kernel (s1, legacy, s3, w3) leaves its partials to absorb_o when asked (the combine is skipped in
// one place), with host slot lists too.
TEST_F(FusedCombineTest, EverySparseKernel) {
    for (const char* kernel : {"s1", "legacy", "s3", "w3"}) {
        SparseKernelScope scope(kernel);
        for (int64_t tokens : {1, 8}) {
            const std::string what = std::string(kernel) + " T=" + std::to_string(tokens);
            announce("fused combine " + what);
            const Tensor q = random_act({tokens, kDeepSeek.num_heads, kMlaKvDim}, rng_);
            const Tensor slots = slot_lists(tokens, 2048, rng_);
            const Tensor qd = up(q);
            const HostQ8 off = run("0", qd, slots), on = run("1", qd, slots);
            EXPECT_TRUE(cuda().last_combine_fused()) << what;
            expect_same(on, off, what);
        }
    }
}

// Token tiles forced to one m16 tile per CTA: T = 20 runs two CTAs per head (16 rows, then 4: the per-chain merge
// at m0 = 16), T = 3 / 4 / 5 the per-chain and the all-chains merge of one tile; the same bits.
TEST_F(FusedCombineTest, ForcedTokenTiles) {
    for (int64_t tokens : {3, 4, 5, 20}) {
        const std::string what = "max_mtiles 1 T=" + std::to_string(tokens);
        const Tensor qd = up(random_act({tokens, kDeepSeek.num_heads, kMlaKvDim}, rng_));
        const Tensor sd = gpu_->to_device(slot_lists(tokens, 2048, rng_));
        const HostQ8 off = run("0", qd, sd);
        cuda::set_absorb_fp8_tuning(1, 0);
        const HostQ8 on = run("1", qd, sd);
        const bool fused = cuda().last_combine_fused();
        cuda::set_absorb_fp8_tuning(0, 0);
        EXPECT_EQ(fused, splits(tokens, 2048)) << what;
        expect_same(on, off, what);
    }
}

// Where it does not apply the op runs the separate ops (same bits, not fused): one 64-key tile (no split), 33 and 64
// tokens (absorb_o's act_quant only up to 32), DSA_FUSED_ABSORB=0, bf16 numerics (no act_quant).
TEST_F(FusedCombineTest, Declines) {
    struct Case {
        int64_t tokens, width;
    };
    for (const Case& c : {Case{1, 64}, Case{33, 2048}, Case{64, 2048}}) {
        const std::string what = "T=" + std::to_string(c.tokens) + " K=" + std::to_string(c.width);
        const Tensor qd = up(random_act({c.tokens, kDeepSeek.num_heads, kMlaKvDim}, rng_));
        const Tensor sd = gpu_->to_device(slot_lists(c.tokens, c.width, rng_));
        const HostQ8 off = run("0", qd, sd), on = run("1", qd, sd);
        EXPECT_FALSE(cuda().last_combine_fused()) << what;
        expect_same(on, off, what);
    }
    const Tensor qd = up(random_act({2, kDeepSeek.num_heads, kMlaKvDim}, rng_));
    const Tensor sd = gpu_->to_device(slot_lists(2, 2048, rng_));
    {
        EnvScope absorb_off("DSA_FUSED_ABSORB", "0");  // no act_quant in absorb_o either: .x only
        const HostQ8 off = run("0", qd, sd);
        const HostQ8 on = run("1", qd, sd);
        EXPECT_FALSE(cuda().last_combine_fused()) << "DSA_FUSED_ABSORB=0";
        expect_same(on, off, "DSA_FUSED_ABSORB=0");
    }
    make(Numerics::bf16());
    st_ = filled_stores(*cpu_, *gpu_, MlaKvFormat::kFp8, rng_);
    const Tensor qb = up(random_act({2, kDeepSeek.num_heads, kMlaKvDim}, rng_));
    const Tensor sb = gpu_->to_device(slot_lists(2, 2048, rng_));
    const HostQ8 off = run("0", qb, sb), on = run("1", qb, sb);
    EXPECT_FALSE(cuda().last_combine_fused()) << "bf16 numerics";
    EXPECT_FALSE(on.q8.defined()) << "bf16 numerics";
    expect_same(on, off, "bf16 numerics");
}

// Captured in a CUDA graph (B = 1, 8), replayed after new queries were copied in: the eager fused op's and the
// separate ops' bits on those queries.
TEST_F(FusedCombineTest, GraphReplay) {
    EnvScope sw("DSA_FUSED_COMBINE", "1");
    for (int64_t tokens : {1, 8}) {
        const std::string what = "graph T=" + std::to_string(tokens);
        const Tensor q1 = random_act({tokens, kDeepSeek.num_heads, kMlaKvDim}, rng_);
        Tensor qd = up(random_act(q1.shape(), rng_));
        const Tensor sd = gpu_->to_device(slot_lists(tokens, 2048, rng_));
        run("1", qd, sd);  // uploads the weight outside the capture
        QuantizedAct out;
        auto graph = gpu_->capture_graph([&] {
            out = gpu_->mla_sparse_attention_o_q8({qd, &st_.gpu, sd, kScale}, kv_b_, kDeepSeek);
        });
        ASSERT_TRUE(graph.is_ok()) << graph.status().message();
        EXPECT_TRUE(cuda().last_combine_fused()) << what;
        Tensor qd2 = qd.view({tokens * kDeepSeek.num_heads, kMlaKvDim});
        gpu_->copy_into(to_bf16(q1).view(qd2.shape()), qd2);
        gpu_->replay_graph(**graph);
        const HostQ8 replay{gpu_->to_host(out.x), gpu_->to_host(out.q8), gpu_->to_host(out.scales)};
        const Tensor qn = up(q1);
        expect_same(replay, run("1", qn, sd), what + " vs eager fused");
        expect_same(replay, run("0", qn, sd), what + " vs separate ops");
    }
}

// ---- moe_route with the grouping (DSA_FUSED_GROUP) ----

using FusedGroupTest = CudaVsCpuTest;

// The meaningful words of a packed grouping (launch_moe_group_pairs leaves the entries past num_groups unwritten):
// num_groups, expert / start / count of each group, rows.
std::vector<int32_t> grouping_words(const Tensor& packed_host, int64_t max_groups, int64_t pairs) {
    const int32_t* w = packed_host.data<int32_t>();
    const int32_t n = w[0];
    std::vector<int32_t> out{n};
    if (n < 0 || n > max_groups) return out;
    for (int part = 0; part < 3; ++part)
        out.insert(out.end(), w + 1 + part * max_groups, w + 1 + part * max_groups + n);
    out.insert(out.end(), w + 1 + 3 * max_groups, w + 1 + 3 * max_groups + pairs);
    return out;
}

// The route kernel's groupings (without and, where it fits, with the shared slot) equal the group kernel's on the
// ids it selected; its scores / ids / weights equal a route without the grouping. DeepSeek's selection (256 experts,
// 8 groups, top-8: register path, also forced to shared memory), 64 experts top-6 (shared memory), top_k 32 at one
// token (32 pairs), T = 1..4.
TEST_F(FusedGroupTest, RouteKernelGroupsLikeGroupKernel) {
    struct Case {
        int64_t experts, groups, topk_groups, top_k;
        bool force_generic;
    };
    const Case cases[] = {{256, 8, 4, 8, false}, {256, 8, 4, 8, true}, {64, 1, 1, 6, false}, {256, 1, 1, 32, false}};
    std::uniform_int_distribution<int> coarse(-8, 8);
    for (const Case& c : cases) {
        for (int64_t tokens = 1; tokens <= 4; ++tokens) {
            if (!cuda::moe_route_groups_supported(tokens, c.top_k)) continue;
            const std::string what = "E=" + std::to_string(c.experts) + " top_k " + std::to_string(c.top_k) +
                                     (c.force_generic ? " generic" : "") + " T=" + std::to_string(tokens);
            Tensor logits = Tensor::empty({tokens, c.experts}, DType::kF32);
            for (int64_t i = 0; i < logits.numel(); ++i) logits.data<float>()[i] = coarse(rng_) / 4.0f;  // ties
            Tensor bias = Tensor::empty({c.experts}, DType::kF32);
            for (int64_t e = 0; e < c.experts; ++e) bias.data<float>()[e] = coarse(rng_) / 64.0f;
            const Tensor dbias = gpu_->to_device(bias);
            const int64_t pairs = tokens * c.top_k, spairs = tokens * (c.top_k + 1);
            const int64_t mg = std::min(pairs, c.experts), smg = std::min(spairs, c.experts + 1);
            const bool with_shared = spairs <= cuda::kMoeRouteGroupMaxPairs;
            Tensor out[2][3];
            Tensor plain = Tensor::empty({cuda::moe_groups_words(mg, pairs)}, DType::kI32, Device::kCUDA, "g");
            Tensor shared = Tensor::empty({cuda::moe_groups_words(smg, spairs)}, DType::kI32, Device::kCUDA, "gs");
            for (int v = 0; v < 2; ++v) {
                Tensor sc = gpu_->to_device(logits);
                Tensor ids = Tensor::empty({tokens, c.top_k}, DType::kI32, Device::kCUDA, "ids");
                Tensor w = Tensor::empty({tokens, c.top_k}, DType::kF32, Device::kCUDA, "w");
                cuda::MoeRouteParams p;
                p.scores = sc.data<float>(), p.bias = dbias.data<float>(), p.ids = ids.data<int32_t>();
                p.weights = w.data<float>();
                p.tokens = tokens, p.experts = c.experts, p.groups = c.groups, p.topk_groups = c.topk_groups;
                p.top_k = c.top_k, p.scale = 2.5f, p.force_generic = c.force_generic;
                if (v == 1) {
                    p.group_packed = plain.data<int32_t>();
                    if (with_shared) p.group_packed_shared = shared.data<int32_t>();
                }
                cuda::launch_moe_route(p, cuda().stream());
                out[v][0] = gpu_->to_host(sc), out[v][1] = gpu_->to_host(ids), out[v][2] = gpu_->to_host(w);
            }
            for (int i = 0; i < 3; ++i) EXPECT_TRUE(same_bits(out[0][i], out[1][i])) << what << ": route output " << i;
            const Tensor dids = gpu_->to_device(out[1][1]);
            for (bool sh : {false, true}) {
                if (sh && !with_shared) continue;
                const int64_t n = sh ? spairs : pairs, max_groups = sh ? smg : mg;
                Tensor ref = Tensor::empty({cuda::moe_groups_words(max_groups, n)}, DType::kI32, Device::kCUDA, "r");
                cuda::MoeGroupBuildParams gp{dids.data<int32_t>(), ref.data<int32_t>(), n, c.experts + (sh ? 1 : 0),
                                             max_groups};
                if (sh) gp.top_k = c.top_k, gp.shared_expert = static_cast<int32_t>(c.experts);
                cuda::launch_moe_group_pairs(gp, cuda().stream());
                const std::vector<int32_t> want = grouping_words(gpu_->to_host(ref), max_groups, n);
                const std::vector<int32_t> got = grouping_words(gpu_->to_host(sh ? shared : plain), max_groups, n);
                EXPECT_EQ(got, want) << what << (sh ? " with the shared slot" : "");
                EXPECT_GT(want[0], 0) << what;
            }
        }
    }
}

// FP8 experts (24 routed of dim 1024 / inter 256, top-8, a shared expert of the same shapes), act_quant numerics:
// moe_route + moe_experts with the route's grouping equal the switch at 0 bit for bit (T = 1: the plain layout, the
// shared expert separate; T = 2, 3: the shared slot joins; T = 4 with it: 36 pairs, the group launch is kept).
TEST_F(FusedGroupTest, RouteAndExpertsEqualSeparate) {
    constexpr int64_t kE = 24, kD = 1024, kF = 256, kK = 8;
    make(Numerics::deepseek_fp8());
    std::vector<MlpWeights> experts;
    for (int64_t e = 0; e < kE; ++e) {
        experts.push_back(
            {random_fp8_weight(kF, kD, rng_), random_fp8_weight(kF, kD, rng_), random_fp8_weight(kD, kF, rng_)});
    }
    const MlpWeights shared{random_fp8_weight(kF, kD, rng_), random_fp8_weight(kF, kD, rng_),
                            random_fp8_weight(kD, kF, rng_)};
    const Tensor router = to_bf16(random_act({kE, kD}, rng_));  // host bf16, uploaded once (device_weight)
    for (int64_t tokens = 1; tokens <= 4; ++tokens) {
        for (bool with_shared : {false, true}) {
            const std::string what = "T=" + std::to_string(tokens) + (with_shared ? " shared" : "");
            const Tensor x = up(random_act({tokens, kD}, rng_));
            Tensor y[2], ids[2];
            for (int v = 0; v < 2; ++v) {
                EnvScope sw("DSA_FUSED_GROUP", v == 0 ? "0" : "1");
                RouterParams rp;
                rp.x = x, rp.weight = router, rp.top_k = kK, rp.routed_scaling_factor = 2.5f;
                const RouterResult r = gpu_->moe_route(rp);
                MoeParams mp{x, r.ids, r.weights, experts};
                if (with_shared) mp.shared = &shared;
                y[v] = gpu_->to_host(gpu_->moe_experts(mp));
                ids[v] = gpu_->to_host(r.ids);
                const bool layout = !with_shared || tokens == 1 || tokens * (kK + 1) <= cuda::kMoeRouteGroupMaxPairs;
                EXPECT_EQ(cuda().last_groups_from_route(), v == 1 && layout) << what;
            }
            EXPECT_TRUE(same_bits(ids[0], ids[1])) << what;
            EXPECT_TRUE(same_bits(y[0], y[1])) << what;
        }
    }
}

// DSA_FUSED_COMBINE is parsed strictly: 0 / 1 (unset: 1); 1 needs DSA_FUSED_ABSORB; anything else stops with a
// message naming it.
TEST(FusedCombineSwitch, ParsesStrictly) {
    {
        EnvScope unset("DSA_FUSED_COMBINE", nullptr);
        EXPECT_EQ(cuda::fused_combine_enabled(), cuda::fused_absorb_enabled());
    }
    {
        EnvScope zero("DSA_FUSED_COMBINE", "0");
        EXPECT_FALSE(cuda::fused_combine_enabled());
    }
    {
        EnvScope one("DSA_FUSED_COMBINE", "1");
        EXPECT_EQ(cuda::fused_combine_enabled(), cuda::fused_absorb_enabled());
        EnvScope absorb_off("DSA_FUSED_ABSORB", "0");
        EXPECT_FALSE(cuda::fused_combine_enabled());
    }
    EnvScope bad("DSA_FUSED_COMBINE", "2");
    EXPECT_DEATH(cuda::fused_combine_enabled(), "DSA_FUSED_COMBINE");
    EnvScope word("DSA_FUSED_COMBINE", "yes");
    EXPECT_DEATH(cuda::fused_combine_enabled(), "DSA_FUSED_COMBINE");
}

// DSA_FUSED_GROUP: 0 / 1 (unset: 1); anything else stops with a message naming it.
TEST(FusedGroupSwitch, ParsesStrictly) {
    {
        EnvScope unset("DSA_FUSED_GROUP", nullptr);
        EXPECT_EQ(cuda::fused_group_enabled(), cuda::fused_decode_enabled());
    }
    {
        EnvScope zero("DSA_FUSED_GROUP", "0");
        EXPECT_FALSE(cuda::fused_group_enabled());
    }
    {
        EnvScope one("DSA_FUSED_GROUP", "1");
        EXPECT_EQ(cuda::fused_group_enabled(), cuda::fused_decode_enabled());
    }
    EnvScope bad("DSA_FUSED_GROUP", "2");
    EXPECT_DEATH(cuda::fused_group_enabled(), "DSA_FUSED_GROUP");
}

}  // namespace
}  // namespace dsa::backend::testing
