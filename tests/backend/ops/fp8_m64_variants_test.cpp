// The FP8 stream GEMM's variants at 33..64 token rows (the wgmma kernel's plans): the lean wgmma kernel
// (DSA_FP8_WGMMA_LEAN; fp8_wgmma_lean.cu) against the wgmma kernel bit for bit (the same k order and sums) through
// linear() on the V3.2 shapes (q_b, wq_b, o_proj with cluster split-K, 7168 x 2048, ragged N) at M = 1..64, the joint
// q_b + wq_b and q_a + kv_a + wk launches of linear_multi(), dense_mlp's gate_up launch, a global split-K workspace
// replayed from a CUDA graph, and the CPU backend at the stream tolerance. Plus the switch's host logic and the
// default (auto) rule: the plans without a global split-K workspace.
#include <iostream>
#include <string>
#include <vector>

#include "backend/cuda/fp8_stream_gemm.h"
#include "backend/cuda/fp8_wgmma_lean.h"
#include "fp8_stream_test_util.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

// Sets the lean switch for a scope, then restores it.
struct LeanScope {
    int saved = cuda::fp8_wgmma_lean_mode();
    explicit LeanScope(bool on) { cuda::set_fp8_wgmma_lean(on); }
    ~LeanScope() { cuda::set_fp8_wgmma_lean_mode(saved); }
};

struct NK {
    int64_t n, k;
};

using Fp8M64VariantsTest = CudaVsCpuTest;

// The lean kernel takes dense wgmma plans (cluster or not), never stream-K, grouped or other kernels' plans.
TEST(Fp8M64PlanTest, LeanApplies) {
    const LeanScope scope(true);
    cuda::Fp8StreamPlan plan;
    plan.kernel = cuda::Fp8StreamKernel::kWgmma;
    EXPECT_TRUE(cuda::fp8_wgmma_lean_applies(plan, true));
    plan.cluster = 4;
    EXPECT_TRUE(cuda::fp8_wgmma_lean_applies(plan, true));
    EXPECT_FALSE(cuda::fp8_wgmma_lean_applies(plan, false));  // grouped (MoE)
    plan.streamk_units = 100;
    EXPECT_FALSE(cuda::fp8_wgmma_lean_applies(plan, true));
    plan.streamk_units = 0;
    plan.kernel = cuda::Fp8StreamKernel::kStaged;
    EXPECT_FALSE(cuda::fp8_wgmma_lean_applies(plan, true));
    plan.kernel = cuda::Fp8StreamKernel::kWgmma;
    cuda::set_fp8_wgmma_lean(false);
    EXPECT_FALSE(cuda::fp8_wgmma_lean_applies(plan, true));
    EXPECT_FALSE(cuda::fp8_wgmma_lean());
    cuda::set_fp8_wgmma_lean_mode(7);  // unknown: off
    EXPECT_EQ(cuda::fp8_wgmma_lean_mode(), cuda::kFp8WgmmaLeanOff);
}

// The default (auto): dense wgmma plans without a global split-K workspace take the lean kernel (unsplit: q_b and
// the joint q_b + wq_b; cluster: o_proj, 7168 x 2048, the joint q_a + kv_a + wk), global split-K plans (8192 x 1536,
// 4096 x 7168, 2048 x 7168, the shared expert's dense gate_up) keep the wgmma kernel, other kernels never.
TEST(Fp8M64PlanTest, LeanAutoRule) {
    const LeanScope scope(false);
    cuda::set_fp8_wgmma_lean_mode(cuda::kFp8WgmmaLeanAuto);
    const int streamk = cuda::fp8_stream_streamk_scope(), cluster = cuda::fp8_stream_cluster_max();
    const bool joint = cuda::fp8_stream_multi_joint();
    cuda::set_fp8_stream_streamk_scope(0);
    cuda::set_fp8_stream_cluster_max(cuda::kFp8StreamClusterAuto);
    cuda::set_fp8_stream_multi_joint(true);
    for (const int64_t m : {33, 48, 64}) {
        for (const NK s : {NK{7168, 16384}, NK{7168, 2048}, NK{24576, 1536}}) {
            EXPECT_TRUE(cuda::fp8_wgmma_lean_applies(cuda::fp8_stream_plan(1, s.n, s.k, m, 132), true))
                << "N " << s.n << " M " << m;
        }
        for (const NK s : {NK{8192, 1536}, NK{4096, 7168}, NK{2048, 7168}}) {
            const cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(1, s.n, s.k, m, 132);
            EXPECT_TRUE(plan.splits > 1 && plan.cluster == 0) << "N " << s.n << " M " << m;
            EXPECT_FALSE(cuda::fp8_wgmma_lean_applies(plan, true)) << "N " << s.n << " M " << m;
        }
    }
    for (const int64_t m : {1, 8, 33, 64}) {
        cuda::Fp8StreamMulti qb, qkv;
        qb.count = 2, qb.prob[0].n = 24576, qb.prob[1].n = 8192;
        qkv.count = 3, qkv.prob[0].n = 1536, qkv.prob[1].n = 576, qkv.prob[2].n = 128;
        cuda::fp8_stream_multi_plan(qb, 1536, m, 132);
        cuda::fp8_stream_multi_plan(qkv, 7168, m, 132);
        EXPECT_TRUE(cuda::fp8_wgmma_lean_applies(qb.prob[0].plan, true)) << "q_b + wq_b M " << m;
        EXPECT_TRUE(cuda::fp8_wgmma_lean_applies(qkv.prob[0].plan, true)) << "q_a + kv_a + wk M " << m;
    }
    EXPECT_FALSE(cuda::fp8_wgmma_lean_applies(cuda::fp8_stream_plan(1, 7168, 2048, 16, 132), true));  // staged
    cuda::set_fp8_stream_multi_joint(joint);
    cuda::set_fp8_stream_cluster_max(cluster);
    cuda::set_fp8_stream_streamk_scope(streamk);
}

// linear() on the lean kernel: the wgmma kernel's bits at every M (M < 32 with the wgmma kernel forced: nt 1, 2, 4),
// repeated; vs the CPU at M = 33 and 64.
TEST_F(Fp8M64VariantsTest, LeanLinearSameBits) {
    const LeanScope scope(false);
    const cuda::Fp8StreamKernel variant = cuda::fp8_stream_variant();
    const int streamk = cuda::fp8_stream_streamk_scope();
    cuda::set_fp8_stream_streamk_scope(0);
    make(kActQuantUe8m0);
    constexpr NK kShapes[] = {{24576, 1536}, {8192, 1536}, {7168, 16384}, {7168, 2048},
                              {1000, 384},   {584, 7168},  {4096, 7168}};
    for (const NK& s : kShapes) {
        const LinearWeight w = random_fp8_weight(s.n, s.k, rng_);
        const Tensor x = random_act({64, s.k}, rng_, 2.0f);
        Tensor ref;
        for (const int64_t m : {1, 9, 17, 32, 33, 48, 64}) {
            const bool forced = m < cuda::kFp8StreamWgmmaMinRows;
            cuda::set_fp8_stream_variant(forced ? cuda::Fp8StreamKernel::kWgmma : cuda::Fp8StreamKernel::kAuto);
            const std::string what = "linear lean M=" + std::to_string(m) + " N=" + std::to_string(s.n) +
                                     " K=" + std::to_string(s.k);
            std::cout << "[ metric ] " << what << std::endl;  // names the case if a launch fails
            const cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(1, s.n, s.k, m, 132);
            EXPECT_EQ(plan.kernel, cuda::Fp8StreamKernel::kWgmma) << what;
            const Tensor xd = up(first_rows(x, m));
            cuda::set_fp8_wgmma_lean(false);
            const Tensor plain = gpu_->to_host(gpu_->linear(xd, w, LinearOutput::kActivation));
            cuda::set_fp8_wgmma_lean(true);
            EXPECT_TRUE(cuda::fp8_wgmma_lean_applies(plan, true)) << what;
            const Tensor got = gpu_->to_host(gpu_->linear(xd, w, LinearOutput::kActivation));
            EXPECT_EQ(cuda().last_fp8_path(), cuda::CudaBackend::Fp8Path::kStream) << what;
            EXPECT_TRUE(same_bits(got, plain)) << what << " vs the wgmma kernel";
            EXPECT_TRUE(same_bits(got, gpu_->to_host(gpu_->linear(xd, w, LinearOutput::kActivation))))
                << what << " repeated";
            if (m != 33 && m != 64) continue;
            if (!ref.defined()) ref = to_f32(cpu_->linear(x, w, LinearOutput::kActivation));
            expect_close(what + " vs CPU", to_f32(got), first_rows(ref, m), kStreamTol);
        }
    }
    cuda::set_fp8_stream_variant(variant);
    cuda::set_fp8_stream_streamk_scope(streamk);
}

// A global split-K plan (8192 x 1536: 4 K splits through the workspace) captured in a CUDA graph and replayed on new
// input equals an eager call; the cluster plan of 7168 x 2048 the same.
TEST_F(Fp8M64VariantsTest, LeanGraphReplay) {
    const LeanScope scope(true);
    make(kActQuantUe8m0);
    for (const NK s : {NK{8192, 1536}, NK{7168, 2048}}) {
        const LinearWeight w = random_fp8_weight(s.n, s.k, rng_);
        for (const int64_t m : {33, 64}) {
            const std::string what = "linear lean graph M=" + std::to_string(m) + " N=" + std::to_string(s.n);
            std::cout << "[ metric ] " << what << std::endl;
            const cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(1, s.n, s.k, m, 132);
            EXPECT_TRUE(plan.splits > 1) << what;
            const Tensor x0 = random_act({m, s.k}, rng_, 2.0f), x2 = random_act({m, s.k}, rng_, 2.0f);
            gpu_->linear(up(x0), w, LinearOutput::kActivation);  // eager first use (weight upload, workspace)
            const Tensor replay = expect_replay_is_eager(*gpu_, up(x0), w, x2, what);
            if (replay.defined()) {
                expect_close(what + " vs CPU", to_f32(replay), to_f32(cpu_->linear(x2, w, LinearOutput::kActivation)),
                             kStreamTol);
            }
        }
    }
}

// linear_multi: the joint q_b + wq_b launch (256 row blocks, unsplit) and q_a + kv_a + wk (cluster split-K) on the
// lean kernel give the wgmma kernel's bits at M = 1, 8 (the joint plan takes wgmma there), 33, 48, 64; vs the CPU at
// M = 64.
TEST_F(Fp8M64VariantsTest, LeanLinearMultiSameBits) {
    const LeanScope scope(false);
    const bool joint = cuda::fp8_stream_multi_joint();
    cuda::set_fp8_stream_multi_joint(true);
    make(kActQuantUe8m0);
    struct Multi {
        int64_t k;
        std::vector<int64_t> rows;
    };
    for (const Multi& mu : {Multi{1536, {24576, 8192}}, Multi{7168, {1536, 576, 128}}}) {
        std::vector<LinearWeight> ws;
        for (const int64_t r : mu.rows) ws.push_back(random_fp8_weight(r, mu.k, rng_));
        std::vector<const LinearWeight*> ptrs;
        for (const LinearWeight& w : ws) ptrs.push_back(&w);
        const Tensor x = random_act({64, mu.k}, rng_, 2.0f);
        for (const int64_t m : {1, 8, 33, 48, 64}) {
            const std::string what = "linear_multi lean K=" + std::to_string(mu.k) + " M=" + std::to_string(m);
            std::cout << "[ metric ] " << what << std::endl;
            const Tensor xd = up(first_rows(x, m));
            cuda::set_fp8_wgmma_lean(false);
            const std::vector<Tensor> plain = gpu_->linear_multi(xd, ptrs);
            cuda::set_fp8_wgmma_lean(true);
            const std::vector<Tensor> got = gpu_->linear_multi(xd, ptrs);
            EXPECT_TRUE(cuda().last_linear_multi_fused()) << what;
            ASSERT_EQ(got.size(), ws.size()) << what;
            for (size_t i = 0; i < ws.size(); ++i) {
                const std::string wi = what + " weight " + std::to_string(i);
                const Tensor g = gpu_->to_host(got[i]);
                EXPECT_TRUE(same_bits(g, gpu_->to_host(plain[i]))) << wi << " vs the wgmma kernel";
                if (m != 64) continue;
                expect_close(wi + " vs CPU", to_f32(g),
                             to_f32(cpu_->linear(first_rows(x, m), ws[i], LinearOutput::kActivation)), kStreamTol);
            }
        }
    }
    cuda::set_fp8_stream_multi_joint(joint);
}

// dense_mlp (a dense gate_up launch over two weights on the wgmma kernel from 32 rows, then down): the same bits.
TEST_F(Fp8M64VariantsTest, LeanDenseMlpSameBits) {
    const LeanScope scope(false);
    make(kActQuantUe8m0);
    for (const int64_t f : {2048, 1152}) {
        const MlpWeights mw{random_fp8_weight(f, 7168, rng_), random_fp8_weight(f, 7168, rng_),
                            random_fp8_weight(7168, f, rng_)};
        for (const int64_t m : {33, 64}) {
            const std::string what = "dense_mlp lean F=" + std::to_string(f) + " M=" + std::to_string(m);
            std::cout << "[ metric ] " << what << std::endl;
            const Tensor x = random_act({m, 7168}, rng_);
            const Tensor xd = up(x);
            cuda::set_fp8_wgmma_lean(false);
            const Tensor plain = gpu_->to_host(gpu_->dense_mlp(xd, mw));
            cuda::set_fp8_wgmma_lean(true);
            const Tensor got = gpu_->to_host(gpu_->dense_mlp(xd, mw));
            EXPECT_TRUE(same_bits(got, plain)) << what << " vs the wgmma kernel";
            expect_close(what + " vs CPU", to_f32(got), cpu_->dense_mlp(x, mw), 2e-2);
        }
    }
}

}  // namespace
}  // namespace dsa::backend::testing
