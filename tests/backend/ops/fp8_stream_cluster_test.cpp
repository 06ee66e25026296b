// Cluster split-K plans of the FP8 stream GEMM (DSA_FP8_STREAM_CLUSTER; fp8_stream_cluster.cuh): host checks of the
// plans (every K block in exactly one CTA of its row block's cluster, no empty CTA, at most 2 CTAs per SM, no
// workspace, unchanged where they do not apply; the default auto rule), then the launches through linear(),
// linear_multi() and dense_mlp() against the CPU at M = 1..64 on V3.2 and ragged shapes (staged and wgmma kernels,
// nt 1..8, clusters of up to 8 and up to 16 CTAs), repeated (the same bits) and replayed from a CUDA graph on new
// input. Also the coalesced global split-K finish (default; DSA_FP8_STREAM_FINISH=v1 the first): the first finish's
// bits on every kernel.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "backend/cuda/fp8_stream_gemm.h"
#include "fp8_stream_test_util.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

using Fp8ClusterTest = CudaVsCpuTest;

// Sets the cluster switch for a scope, then restores it.
struct ClusterScope {
    int saved = cuda::fp8_stream_cluster_max();
    explicit ClusterScope(int max_cluster) { cuda::set_fp8_stream_cluster_max(max_cluster); }
    ~ClusterScope() { cuda::set_fp8_stream_cluster_max(saved); }
};

struct NK {
    int64_t n, k;
};

// The plan's clusters cover K exactly (no empty CTA) within 2 CTAs per SM, without workspace.
void expect_cluster_plan(const cuda::Fp8StreamPlan& plan, int64_t rowblocks, int64_t nkb, int max,
                         const std::string& what) {
    ASSERT_GE(plan.cluster, 2) << what;
    EXPECT_LE(plan.cluster, max) << what;
    EXPECT_EQ(plan.splits, plan.cluster) << what;
    EXPECT_GE(plan.cluster * plan.chunk, nkb) << what;
    EXPECT_LT((plan.cluster - 1) * plan.chunk, nkb) << what;
    EXPECT_LE(rowblocks * plan.cluster, 2 * 132) << what;
    EXPECT_EQ(plan.ws_floats, 0) << what;
    EXPECT_EQ(plan.counters, 0) << what;
    EXPECT_EQ(plan.streamk_units, 0) << what;
}

TEST(Fp8StreamPlanTest, ClusterPlanCoversK) {
    const ClusterScope scope(0);
    EXPECT_EQ(cuda::fp8_stream_plan(1, 1536, 7168, 64, 132).cluster, 0);  // off
    for (const int max : {8, 16}) {
        cuda::set_fp8_stream_cluster_max(max);
        for (const NK s : {NK{7168, 2048}, NK{1536, 7168}, NK{576, 7168}, NK{2112, 7168}, NK{4096, 7168},
                           NK{7168, 16384}, NK{8192, 1536}, NK{1000, 384}, NK{128, 7168}, NK{24576, 1536}}) {
            for (const int64_t tokens : {1, 16, 33, 64}) {
                const std::string what = "max " + std::to_string(max) + " N " + std::to_string(s.n) + " K " +
                                         std::to_string(s.k) + " tokens " + std::to_string(tokens);
                const cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(1, s.n, s.k, tokens, 132);
                const int64_t rowblocks = (s.n + 127) / 128, nkb = s.k / 128;
                if (std::min<int64_t>({264 / rowblocks, max, nkb}) < 2) {
                    EXPECT_EQ(plan.cluster, 0) << what;  // q_b: 192 row blocks fill the GPU unsplit
                    continue;
                }
                expect_cluster_plan(plan, rowblocks, nkb, max, what);
            }
        }
        EXPECT_EQ(cuda::fp8_stream_plan(9, 4096, 7168, 8, 132).cluster, 0);  // grouped launches: never
        cuda::Fp8StreamMulti multi;  // q_a + kv_a + wk: 18 row blocks, one cluster size for all
        multi.count = 3;
        multi.prob[0].n = 1536, multi.prob[1].n = 576, multi.prob[2].n = 128;
        cuda::fp8_stream_multi_plan(multi, 7168, 64, 132);
        for (int i = 0; i < 3; ++i) {
            expect_cluster_plan(multi.prob[i].plan, 18, 56, max, "multi problem " + std::to_string(i));
            EXPECT_EQ(multi.prob[i].plan.cluster, multi.prob[0].plan.cluster);
        }
        EXPECT_EQ(multi.prob[0].plan.cluster, max == 8 ? 8 : 14);  // chunks of 7 / 4 K blocks: 144 / 252 CTAs
    }
    cuda::set_fp8_stream_cluster_max(8);  // 1536 x 7168: 12 row blocks x 8 CTAs of 7 K blocks
    const cuda::Fp8StreamPlan qa = cuda::fp8_stream_plan(1, 1536, 7168, 64, 132);
    EXPECT_EQ(qa.cluster, 8);
    EXPECT_EQ(qa.chunk, 7);
}

// The default (auto) rule: clusters of 4 for dense weights of >= 7168 rows and K >= 2048 at 33..64 token rows
// (7168x2048, o_proj), no other single weight; a joint multi plan clusters of up to 8 at every token count (q_a +
// kv_a + wk: 8 CTAs of 7 K blocks; q_b + wq_b: 256 row blocks fill the GPU unsplit), a separate one takes each
// weight's lone plan.
TEST(Fp8StreamPlanTest, ClusterAutoRule) {
    const ClusterScope scope(cuda::kFp8StreamClusterAuto);
    const int streamk = cuda::fp8_stream_streamk_scope();
    cuda::set_fp8_stream_streamk_scope(0);
    for (const int64_t tokens : {33, 48, 64}) {
        const std::string what = "tokens " + std::to_string(tokens);
        const cuda::Fp8StreamPlan down = cuda::fp8_stream_plan(1, 7168, 2048, tokens, 132);
        expect_cluster_plan(down, 56, 16, 8, what + " 7168x2048");
        EXPECT_EQ(down.cluster, 4) << what;
        EXPECT_EQ(down.chunk, 4) << what;
        const cuda::Fp8StreamPlan o = cuda::fp8_stream_plan(1, 7168, 16384, tokens, 132);
        expect_cluster_plan(o, 56, 128, 8, what + " o_proj");
        EXPECT_EQ(o.cluster, 4) << what;
        for (const NK s : {NK{1536, 7168}, NK{576, 7168}, NK{2048, 7168}, NK{4096, 7168}, NK{8192, 1536},
                           NK{24576, 1536}}) {
            EXPECT_EQ(cuda::fp8_stream_plan(1, s.n, s.k, tokens, 132).cluster, 0) << what << " N " << s.n;
        }
    }
    for (const int64_t tokens : {1, 8, 16, 32}) {
        EXPECT_EQ(cuda::fp8_stream_plan(1, 7168, 2048, tokens, 132).cluster, 0) << tokens;
        EXPECT_EQ(cuda::fp8_stream_plan(1, 7168, 16384, tokens, 132).cluster, 0) << tokens;
    }
    const bool joint = cuda::fp8_stream_multi_joint();
    cuda::Fp8StreamMulti multi;
    multi.count = 2;
    multi.prob[0].n = 7168, multi.prob[1].n = 1536;
    cuda::set_fp8_stream_multi_joint(true);
    cuda::fp8_stream_multi_plan(multi, 2048, 64, 132);  // joint: 68 row blocks x 3 CTAs of 6 K blocks
    EXPECT_EQ(multi.prob[0].plan.cluster, 3);
    EXPECT_EQ(multi.prob[1].plan.cluster, 3);
    for (const int64_t tokens : {1, 8, 16, 33, 64}) {
        cuda::Fp8StreamMulti qkv;
        qkv.count = 3;
        qkv.prob[0].n = 1536, qkv.prob[1].n = 576, qkv.prob[2].n = 128;
        cuda::fp8_stream_multi_plan(qkv, 7168, tokens, 132);
        for (int i = 0; i < 3; ++i) {
            expect_cluster_plan(qkv.prob[i].plan, 18, 56, 8, "q_a+kv_a+wk tokens " + std::to_string(tokens));
            EXPECT_EQ(qkv.prob[i].plan.cluster, 8) << tokens;
            EXPECT_EQ(qkv.prob[i].plan.chunk, 7) << tokens;
        }
        cuda::Fp8StreamMulti qb;
        qb.count = 2;
        qb.prob[0].n = 24576, qb.prob[1].n = 8192;
        cuda::fp8_stream_multi_plan(qb, 1536, tokens, 132);
        EXPECT_EQ(qb.prob[0].plan.cluster, 0) << tokens;
        EXPECT_EQ(qb.prob[1].plan.cluster, 0) << tokens;
    }
    cuda::set_fp8_stream_multi_joint(false);
    cuda::fp8_stream_multi_plan(multi, 2048, 64, 132);  // separate: the lone plans
    for (int i = 0; i < 2; ++i) {
        const cuda::Fp8StreamPlan lone = cuda::fp8_stream_plan(1, multi.prob[i].n, 2048, 64, 132);
        EXPECT_EQ(multi.prob[i].plan.cluster, lone.cluster) << i;
        EXPECT_EQ(multi.prob[i].plan.chunk, lone.chunk) << i;
        EXPECT_EQ(multi.prob[i].plan.splits, lone.splits) << i;
    }
    EXPECT_EQ(multi.prob[0].plan.cluster, 4);
    cuda::set_fp8_stream_multi_joint(joint);
    cuda::set_fp8_stream_streamk_scope(streamk);
}

// linear() with cluster plans vs the CPU and vs the default plan; the same bits when repeated; graph replays.
TEST_F(Fp8ClusterTest, LinearAgainstCpu) {
    const ClusterScope scope(0);
    make(kActQuantUe8m0);
    constexpr NK kShapes[] = {{7168, 2048}, {1536, 7168}, {576, 7168}, {2112, 7168}, {1000, 384}, {584, 7168}};
    for (const NK& s : kShapes) {
        LinearWeight w = random_fp8_weight(s.n, s.k, rng_);
        Tensor x = random_act({64, s.k}, rng_, 2.0f);
        Tensor ref = to_f32(cpu_->linear(x, w, LinearOutput::kActivation));
        for (int64_t m : {1, 8, 16, 32, 33, 48, 64}) {
            Tensor xd = up(first_rows(x, m));
            cuda::set_fp8_stream_cluster_max(0);
            Tensor plain = gpu_->to_host(gpu_->linear(xd, w, LinearOutput::kActivation));
            for (const int max : {8, 16}) {
                const std::string what = "linear fp8-stream [cluster " + std::to_string(max) + "] M=" +
                                         std::to_string(m) + " N=" + std::to_string(s.n) + " K=" + std::to_string(s.k);
                std::cout << "[ metric ] " << what << std::endl;  // names the case if a launch fails
                cuda::set_fp8_stream_cluster_max(max);
                EXPECT_GE(cuda::fp8_stream_plan(1, s.n, s.k, m, 132).cluster, 2) << what;
                expect_stream_linear(*gpu_, xd, w, first_rows(ref, m), plain, what);
                if (m != 1 && m != 48) continue;
                const Tensor x2 = random_act({m, s.k}, rng_, 2.0f);
                const Tensor replay = expect_replay_is_eager(*gpu_, xd, w, x2, what);
                if (replay.defined()) {
                    expect_close(what + " graph replay vs CPU", to_f32(replay),
                                 to_f32(cpu_->linear(x2, w, LinearOutput::kActivation)), kStreamTol);
                }
            }
        }
    }
}

// The wgmma kernel forced on small weights (auto takes staged there at M > 32), o_proj's 4-CTA clusters at M = 64.
TEST_F(Fp8ClusterTest, WgmmaAndOProj) {
    const ClusterScope scope(8);
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    make(kActQuantUe8m0);
    for (const NK s : {NK{1536, 7168}, NK{7168, 16384}}) {
        LinearWeight w = random_fp8_weight(s.n, s.k, rng_);
        Tensor x = random_act({64, s.k}, rng_, 2.0f);
        Tensor ref = to_f32(cpu_->linear(x, w, LinearOutput::kActivation));
        cuda::set_fp8_stream_variant(s.n < 4096 ? cuda::Fp8StreamKernel::kWgmma : cuda::Fp8StreamKernel::kAuto);
        for (int64_t m : {1, 64}) {
            const std::string what = "linear fp8-stream [cluster 8, " + std::string(s.n < 4096 ? "wgmma" : "auto") +
                                     "] M=" + std::to_string(m) + " N=" + std::to_string(s.n);
            std::cout << "[ metric ] " << what << std::endl;
            const cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(1, s.n, s.k, m, 132);
            EXPECT_GE(plan.cluster, 2) << what;
            Tensor got = down(gpu_->linear(up(first_rows(x, m)), w, LinearOutput::kActivation));
            expect_close(what, got, first_rows(ref, m), kStreamTol);
        }
    }
    cuda::set_fp8_stream_variant(initial);
}

// linear_multi (q_a + kv_a + wk, joint plan: one cluster size for all) vs the CPU, repeated, and a graph replay.
TEST_F(Fp8ClusterTest, LinearMultiAgainstCpu) {
    const ClusterScope scope(0);
    const bool joint = cuda::fp8_stream_multi_joint();
    cuda::set_fp8_stream_multi_joint(true);
    make(kActQuantUe8m0);
    const LinearWeight ws[3] = {random_fp8_weight(1536, 7168, rng_), random_fp8_weight(576, 7168, rng_),
                                random_fp8_weight(128, 7168, rng_)};
    const std::vector<const LinearWeight*> ptrs = {&ws[0], &ws[1], &ws[2]};
    Tensor x = random_act({64, 7168}, rng_, 2.0f), x2 = random_act({64, 7168}, rng_, 2.0f);
    Tensor refs[3], refs2[3];
    for (int i = 0; i < 3; ++i) refs[i] = to_f32(cpu_->linear(x, ws[i], LinearOutput::kActivation));
    for (int i = 0; i < 3; ++i) refs2[i] = to_f32(cpu_->linear(x2, ws[i], LinearOutput::kActivation));
    for (const int max : {8, 16}) {
        cuda::set_fp8_stream_cluster_max(max);
        for (int64_t m : {1, 16, 33, 64}) {
            const std::string what = "linear_multi [cluster " + std::to_string(max) + "] M=" + std::to_string(m);
            std::cout << "[ metric ] " << what << std::endl;
            Tensor xd = up(first_rows(x, m));
            std::vector<Tensor> got = gpu_->linear_multi(xd, ptrs), again = gpu_->linear_multi(xd, ptrs);
            EXPECT_TRUE(cuda().last_linear_multi_fused()) << what;
            ASSERT_EQ(got.size(), 3u) << what;
            for (size_t i = 0; i < 3; ++i) {
                const std::string wi = what + " weight " + std::to_string(i);
                Tensor g = gpu_->to_host(got[i]);
                EXPECT_TRUE(same_bits(g, gpu_->to_host(again[i]))) << wi << " repeated";
                expect_close(wi, to_f32(g), first_rows(refs[i], m), kStreamTol);
            }
            if (m != 33) continue;
            std::vector<Tensor> out;
            auto graph = gpu_->capture_graph([&] { out = gpu_->linear_multi(xd, ptrs); });
            ASSERT_TRUE(graph.is_ok()) << graph.status().message();
            gpu_->copy_into(to_bf16(first_rows(x2, m)), xd);
            gpu_->replay_graph(**graph);
            for (size_t i = 0; i < 3; ++i) {
                expect_close(what + " graph replay weight " + std::to_string(i), down(out[i]),
                             first_rows(refs2[i], m), kStreamTol);
            }
        }
    }
    cuda::set_fp8_stream_multi_joint(joint);
}

// A separate multi plan (not joint) takes each weight's lone plan, cluster or not; weights whose plans differ in
// cluster size launch one by one: the bits of linear() calls, with the default rule and with =8.
TEST_F(Fp8ClusterTest, LinearMultiSeparateEqualsLinear) {
    const ClusterScope scope(cuda::kFp8StreamClusterAuto);
    const bool joint = cuda::fp8_stream_multi_joint();
    const int streamk = cuda::fp8_stream_streamk_scope();
    cuda::set_fp8_stream_multi_joint(false);
    cuda::set_fp8_stream_streamk_scope(0);  // linear()'s own plans (multi launches never take stream-K)
    make(kActQuantUe8m0);
    const LinearWeight ws[2] = {random_fp8_weight(7168, 2048, rng_), random_fp8_weight(1536, 2048, rng_)};
    const std::vector<const LinearWeight*> ptrs = {&ws[0], &ws[1]};
    for (const int mode : {cuda::kFp8StreamClusterAuto, 8}) {
        cuda::set_fp8_stream_cluster_max(mode);
        for (int64_t m : {8, 64}) {
            const std::string what = "linear_multi separate [cluster " + std::to_string(mode) + "] M=" +
                                     std::to_string(m);
            std::cout << "[ metric ] " << what << std::endl;
            Tensor xd = up(random_act({m, 2048}, rng_, 2.0f));
            std::vector<Tensor> got = gpu_->linear_multi(xd, ptrs);
            ASSERT_EQ(got.size(), 2u) << what;
            for (size_t i = 0; i < 2; ++i) {
                Tensor single = gpu_->to_host(gpu_->linear(xd, ws[i], LinearOutput::kActivation));
                EXPECT_TRUE(same_bits(gpu_->to_host(got[i]), single)) << what << " weight " << i;
            }
        }
    }
    cuda::set_fp8_stream_multi_joint(joint);
    cuda::set_fp8_stream_streamk_scope(streamk);
}

// dense_mlp (its dense gate_up launch over two weights, then down) with cluster plans vs the CPU.
TEST_F(Fp8ClusterTest, DenseMlpAgainstCpu) {
    const ClusterScope scope(8);
    make(kActQuantUe8m0);
    for (const int64_t f : {2048, 1152}) {
        MlpWeights mw{random_fp8_weight(f, 7168, rng_), random_fp8_weight(f, 7168, rng_),
                      random_fp8_weight(7168, f, rng_)};
        for (int64_t m : {1, 33, 64}) {
            const std::string what = "dense_mlp [cluster 8] F=" + std::to_string(f) + " M=" + std::to_string(m);
            std::cout << "[ metric ] " << what << std::endl;
            Tensor x = random_act({m, 7168}, rng_);
            expect_close(what, down(gpu_->dense_mlp(up(x), mw)), cpu_->dense_mlp(x, mw), 2e-2);
        }
    }
}

// The coalesced split-K finish (the default v2) gives the first finish's bits on every kernel that
// splits K through the workspace: staged, wgmma and ring variants, stream-K plans and the joint multi launch, at
// nt 1..8 and ragged shapes; twice in a row (counters reset) and from a graph replay; and the CPU.
TEST_F(Fp8ClusterTest, FinishV2SameBits) {
    const ClusterScope scope(0);
    const cuda::Fp8StreamKernel variant = cuda::fp8_stream_variant();
    const int streamk = cuda::fp8_stream_streamk_scope();
    const bool v2 = cuda::fp8_stream_finish_v2();
    make(kActQuantUe8m0);
    using V = cuda::Fp8StreamKernel;
    struct Mode {
        const char* name;
        V kernel;
        int streamk;
    };
    const Mode modes[] = {{"auto", V::kAuto, 0},
                          {"staged", V::kStaged, 0},
                          {"ring", V::kRing, 0},
                          {"wgmma", V::kWgmma, 0},
                          {"stream-K", V::kAuto, cuda::kFp8StreamKDense}};
    for (const NK s : {NK{576, 7168}, NK{7168, 2048}, NK{1000, 384}}) {
        LinearWeight w = random_fp8_weight(s.n, s.k, rng_);
        Tensor x = random_act({64, s.k}, rng_, 2.0f);
        Tensor ref = to_f32(cpu_->linear(x, w, LinearOutput::kActivation));
        for (const Mode& mode : modes) {
            cuda::set_fp8_stream_variant(mode.kernel);
            cuda::set_fp8_stream_streamk_scope(mode.streamk);
            for (int64_t m : {1, 8, 16, 33, 64}) {
                const std::string what = std::string("finish v2 [") + mode.name + "] M=" + std::to_string(m) +
                                         " N=" + std::to_string(s.n) + " K=" + std::to_string(s.k);
                std::cout << "[ metric ] " << what << std::endl;
                Tensor xd = up(first_rows(x, m));
                cuda::set_fp8_stream_finish_v2(false);
                Tensor first = gpu_->to_host(gpu_->linear(xd, w, LinearOutput::kActivation));
                cuda::set_fp8_stream_finish_v2(true);
                for (int rep = 0; rep < 2; ++rep) {
                    Tensor got = gpu_->to_host(gpu_->linear(xd, w, LinearOutput::kActivation));
                    EXPECT_TRUE(same_bits(got, first)) << what << " rep " << rep;
                }
                expect_close(what, to_f32(first), first_rows(ref, m), kStreamTol);
                if (m == 33 && mode.kernel == V::kAuto && mode.streamk == 0) {
                    expect_replay_is_eager(*gpu_, xd, w, random_act({m, s.k}, rng_, 2.0f), what);
                }
            }
        }
    }
    cuda::set_fp8_stream_variant(V::kAuto);
    cuda::set_fp8_stream_streamk_scope(0);
    const LinearWeight ws[3] = {random_fp8_weight(1536, 7168, rng_), random_fp8_weight(576, 7168, rng_),
                                random_fp8_weight(128, 7168, rng_)};
    const std::vector<const LinearWeight*> ptrs = {&ws[0], &ws[1], &ws[2]};
    for (int64_t m : {1, 64}) {
        Tensor xd = up(random_act({m, 7168}, rng_, 2.0f));
        cuda::set_fp8_stream_finish_v2(false);
        std::vector<Tensor> first = gpu_->linear_multi(xd, ptrs);
        cuda::set_fp8_stream_finish_v2(true);
        std::vector<Tensor> got = gpu_->linear_multi(xd, ptrs);
        for (size_t i = 0; i < 3; ++i) {
            EXPECT_TRUE(same_bits(gpu_->to_host(got[i]), gpu_->to_host(first[i])))
                << "finish v2 linear_multi M=" << m << " weight " << i;
        }
    }
    cuda::set_fp8_stream_variant(variant);
    cuda::set_fp8_stream_streamk_scope(streamk);
    cuda::set_fp8_stream_finish_v2(v2);
}

}  // namespace
}  // namespace dsa::backend::testing
