// CUDA vs CPU for linear (BF16, F32 and FP8 128x128 block weights), lm_head and dense_mlp at DeepSeek-V3.2
// shapes: q_a 1536x7168, kv_a 576x7168, fused x-GEMM 2112x7168, q_b 24576x1536, o-like 7168x2048, 2048x7168,
// shared expert 2048x7168. Tolerances (relative L2): bf16 output 3e-3 (FP32 accumulation in another order, then
// one bf16 rounding); f32 output 1e-4; FP8 weights 1e-2 (the CUDA fallback GEMM rounds fp8 * scale to bf16;
// the block-scaled cuBLASLt path and the decode GEMV are exact up to summation order); dense_mlp with act_quant 2e-2
// (the down projection re-quantizes h to e4m3: an upstream difference of ~3e-3 flips some roundings by one fp8 step,
// 2^-3 relative; measured 1.1e-2 at M = 1 on the H200). The FP8 path used is printed. The FP8 streaming GEMM
// (M <= 64, act_quant on) is checked at every decode shape (incl. o_proj 7168x16384 and partial 128-row blocks)
// for M 1..64 at 3e-3 (exact products, FP32 sums per 128-block in another order, one bf16 rounding), bit-identical
// across runs (deterministic split-K), and one perturbed weight block scale must miss that tolerance by far.
// linear_multi (q_a + kv_a + indexer wk over one x, one grouped launch): with the separate plans it equals separate
// linear() calls bit for bit (CUDA, all three kernel variants, and the CPU default); with the joint plan (default,
// one K chunk filling whole waves) it matches the CPU at 3e-3 (staged, wgmma, auto variants); a chain of
// PDL-launched ops replayed in a CUDA graph equals the same ops run eagerly, bit for bit. Stream-K plans (opt-in):
// host coverage checks and the launches against the CPU (Fp8StreamKDense). The kAuto kernel rule (host).
#include <algorithm>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "backend/cuda/fp8_stream_gemm.h"
#include "fp8_stream_test_util.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

using LinearTest = CudaVsCpuTest;

const char* path_name(cuda::CudaBackend::Fp8Path p) {
    switch (p) {
        case cuda::CudaBackend::Fp8Path::kCublasBlockScaled: return "cublasLt-block-scaled-fp8";
        case cuda::CudaBackend::Fp8Path::kDequantizedBf16: return "dequantized-bf16-fallback";
        case cuda::CudaBackend::Fp8Path::kGemv: return "fp8-gemv";
        case cuda::CudaBackend::Fp8Path::kStream: return "fp8-stream";
        default: return "none";
    }
}

struct Shape2 {
    int64_t n, k;
};
constexpr Shape2 kModelShapes[] = {{2112, 7168}, {24576, 1536}, {7168, 2048}, {2048, 7168}, {576, 7168}};

TEST_F(LinearTest, Bf16Weights) {
    for (const Shape2& s : kModelShapes) {
        LinearWeight w = random_bf16_weight(s.n, s.k, rng_);
        for (int64_t m : {1, 33}) {
            Tensor x = random_act({m, s.k}, rng_);
            const std::string what = "linear bf16 M=" + std::to_string(m) + " N=" + std::to_string(s.n) +
                                     " K=" + std::to_string(s.k);
            expect_close(what, down(gpu_->linear(up(x), w, LinearOutput::kActivation)),
                         cpu_->linear(x, w, LinearOutput::kActivation), 3e-3);
        }
    }
    // F32 output (the indexer's weights_proj: 64 x 7168, kept in FP32).
    LinearWeight wp = random_bf16_weight(64, 7168, rng_);
    Tensor x = random_act({9, 7168}, rng_);
    Tensor got = gpu_->linear(up(x), wp, LinearOutput::kF32);
    EXPECT_EQ(got.dtype(), DType::kF32);
    expect_close("linear bf16->f32 weights_proj", down(got), cpu_->linear(x, wp, LinearOutput::kF32), 1e-4);
}

TEST_F(LinearTest, F32Weights) {
    LinearWeight w{random_act({576, 7168}, rng_, 0.02f), {}};
    w.weight.data<float>()[0] = 0.0123456789f;  // not on the bf16 grid: the f32 path must keep it
    Tensor x = random_act({5, 7168}, rng_);
    expect_close("linear f32 weight 576x7168", down(gpu_->linear(up(x), w, LinearOutput::kActivation)),
                 cpu_->linear(x, w, LinearOutput::kActivation), 3e-3);
    expect_close("linear f32 weight ->f32", down(gpu_->linear(up(x), w, LinearOutput::kF32)),
                 cpu_->linear(x, w, LinearOutput::kF32), 1e-4);
}

// FP8 weights under three numerics: bf16 (no activation quantization), and DeepSeek act_quant with and
// without power-of-two (UE8M0) scales.
TEST_F(LinearTest, Fp8BlockWeights) {
    const Numerics act_quant_ue8m0{.round_activations_to_bf16 = true, .fp8_activation_quant = true,
                                   .ue8m0_scales = true};
    const Numerics act_quant_f32{.round_activations_to_bf16 = true, .fp8_activation_quant = true,
                                 .ue8m0_scales = false};
    struct Mode {
        const char* name;
        Numerics numerics;
    };
    for (const Mode& mode : {Mode{"bf16-numerics", Numerics::bf16()}, Mode{"act_quant-ue8m0", act_quant_ue8m0},
                             Mode{"act_quant-f32-scales", act_quant_f32}}) {
        make(mode.numerics);
        for (const Shape2& s : kModelShapes) {
            LinearWeight w = random_fp8_weight(s.n, s.k, rng_);
            for (int64_t m : {1, 2, 5, 16, 64}) {  // the GEMV at one row, a GEMM beyond
                Tensor x = random_act({m, s.k}, rng_, 2.0f);
                Tensor got = down(gpu_->linear(up(x), w, LinearOutput::kActivation));
                const std::string what = std::string("linear fp8 ") + mode.name + " M=" + std::to_string(m) +
                                         " N=" + std::to_string(s.n) + " K=" + std::to_string(s.k) + " via " +
                                         path_name(cuda().last_fp8_path());
                expect_close(what, got, cpu_->linear(x, w, LinearOutput::kActivation), 1e-2);
                const bool stream = mode.numerics.fp8_activation_quant && m <= cuda::CudaBackend::kFp8StreamMaxRows;
                EXPECT_EQ(cuda().last_fp8_path() == cuda::CudaBackend::Fp8Path::kStream, stream) << what;
                EXPECT_EQ(cuda().last_fp8_path() == cuda::CudaBackend::Fp8Path::kGemv,
                          !stream && m <= cuda::CudaBackend::kFp8GemvMaxRows)
                    << what;
            }
        }
    }
    // A prefill-sized M on one shape (cuBLASLt's block-scaled path is expected here).
    make(act_quant_ue8m0);
    LinearWeight w = random_fp8_weight(7168, 2048, rng_);
    Tensor x = random_act({256, 2048}, rng_, 2.0f);
    Tensor got = down(gpu_->linear(up(x), w, LinearOutput::kActivation));
    expect_close(std::string("linear fp8 act_quant-ue8m0 M=256 N=7168 K=2048 via ") +
                     path_name(cuda().last_fp8_path()),
                 got, cpu_->linear(x, w, LinearOutput::kActivation), 1e-2);
}

TEST_F(LinearTest, Fp8StreamGemmDecodeShapes) {
    // q_a-like, o-like, q_b, 1536x7168, kv_a, o_proj, 4096x7168, fused x-GEMM (17 scale rows, the last of 64),
    // and a width that is not a multiple of 16 (a partial 16-row tile) with a short K.
    constexpr Shape2 kShapes[] = {{7168, 2048}, {2048, 7168}, {24576, 1536}, {1536, 7168}, {576, 7168},
                                  {7168, 16384}, {4096, 7168}, {2112, 7168}, {1000, 384}};
    for (const Numerics& n : {kActQuantUe8m0, kActQuantF32}) {
        make(n);
        for (const Shape2& s : kShapes) {
            if (!n.ue8m0_scales && s.n * s.k > 2112 * 7168) continue;  // the second numerics on the smaller shapes
            LinearWeight w = random_fp8_weight(s.n, s.k, rng_);
            Tensor x = random_act({64, s.k}, rng_, 2.0f);
            Tensor ref = cpu_->linear(x, w, LinearOutput::kActivation);
            for (int64_t m : {1, 2, 3, 8, 17, 33, 64}) {
                Tensor got = down(gpu_->linear(up(first_rows(x, m)), w, LinearOutput::kActivation));
                const std::string what = std::string("linear fp8-stream ") + (n.ue8m0_scales ? "ue8m0" : "f32-scales") +
                                         " M=" + std::to_string(m) + " N=" + std::to_string(s.n) +
                                         " K=" + std::to_string(s.k);
                EXPECT_EQ(cuda().last_fp8_path(), cuda::CudaBackend::Fp8Path::kStream) << what;
                expect_close(what, got, to_f32(first_rows(ref, m)), kStreamTol);
            }
        }
    }
}

// Split-K partials are reduced in a fixed order and the tile counters are reset by the kernel: repeated calls give
// the same bits. K not a multiple of 128 takes another path.
TEST_F(LinearTest, Fp8StreamGemmDeterministicAndFallback) {
    make(kActQuantUe8m0);
    LinearWeight w = random_fp8_weight(576, 7168, rng_);  // 28-way split-K at small M
    for (int64_t m : {1, 64}) {
        Tensor xd = up(random_act({m, 7168}, rng_, 2.0f));
        Tensor a = gpu_->to_host(gpu_->linear(xd, w, LinearOutput::kActivation));
        for (int rep = 0; rep < 3; ++rep) {
            Tensor b = gpu_->to_host(gpu_->linear(xd, w, LinearOutput::kActivation));
            EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << "M=" << m << " rep " << rep;
        }
    }
    LinearWeight odd = random_fp8_weight(256, 144, rng_);
    Tensor x = random_act({4, 144}, rng_, 2.0f);
    Tensor got = down(gpu_->linear(up(x), odd, LinearOutput::kActivation));
    EXPECT_NE(cuda().last_fp8_path(), cuda::CudaBackend::Fp8Path::kStream);
    expect_close(std::string("linear fp8 K=144 via ") + path_name(cuda().last_fp8_path()), got,
                 cpu_->linear(x, odd, LinearOutput::kActivation), 1e-2);
}

// The first kernel variant (register ring, DSA_FP8_STREAM_KERNEL=ring) stays selectable and correct: a partial
// 128-row block, split-K and every n-tile count, then the default variant is restored.
TEST_F(LinearTest, Fp8StreamGemmRingVariant) {
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    cuda::set_fp8_stream_variant(cuda::Fp8StreamKernel::kRing);
    make(kActQuantUe8m0);
    for (const Shape2& s : {Shape2{576, 7168}, Shape2{1000, 384}}) {
        LinearWeight w = random_fp8_weight(s.n, s.k, rng_);
        Tensor x = random_act({64, s.k}, rng_, 2.0f);
        Tensor ref = cpu_->linear(x, w, LinearOutput::kActivation);
        for (int64_t m : {1, 9, 17, 64}) {
            Tensor got = down(gpu_->linear(up(first_rows(x, m)), w, LinearOutput::kActivation));
            const std::string what = "linear fp8-stream [ring] M=" + std::to_string(m) + " N=" + std::to_string(s.n) +
                                     " K=" + std::to_string(s.k);
            EXPECT_EQ(cuda().last_fp8_path(), cuda::CudaBackend::Fp8Path::kStream) << what;
            expect_close(what, got, to_f32(first_rows(ref, m)), kStreamTol);
        }
    }
    cuda::set_fp8_stream_variant(initial);
}

// The wgmma variant (DSA_FP8_STREAM_KERNEL=wgmma: m64nNk32 e4m3 from 128-byte-swizzled shared memory) against the
// CPU at every n-tile count (N = 8, 16, 32, 64), partial 128-row blocks, split-K and a short K; then restored.
TEST_F(LinearTest, Fp8StreamGemmWgmmaVariant) {
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    cuda::set_fp8_stream_variant(cuda::Fp8StreamKernel::kWgmma);
    make(kActQuantUe8m0);
    for (const Shape2& s : {Shape2{576, 7168}, Shape2{1000, 384}, Shape2{7168, 2048}, Shape2{24576, 1536}}) {
        LinearWeight w = random_fp8_weight(s.n, s.k, rng_);
        Tensor x = random_act({64, s.k}, rng_, 2.0f);
        Tensor ref = cpu_->linear(x, w, LinearOutput::kActivation);
        for (int64_t m : {1, 9, 17, 33, 64}) {
            Tensor got = down(gpu_->linear(up(first_rows(x, m)), w, LinearOutput::kActivation));
            const std::string what = "linear fp8-stream [wgmma] M=" + std::to_string(m) + " N=" + std::to_string(s.n) +
                                     " K=" + std::to_string(s.k);
            EXPECT_EQ(cuda().last_fp8_path(), cuda::CudaBackend::Fp8Path::kStream) << what;
            expect_close(what, got, to_f32(first_rows(ref, m)), kStreamTol);
        }
    }
    cuda::set_fp8_stream_variant(initial);
}

// The tolerance detects one wrong 128x128 weight scale (doubled, in the partial last row block of 576 rows).
TEST_F(LinearTest, Fp8StreamGemmToleranceDetectsWrongScale) {
    make(kActQuantUe8m0);
    LinearWeight w = random_fp8_weight(576, 7168, rng_);
    LinearWeight bad{w.weight.clone(), w.scale_inv.clone()};  // own storage: no cache shares it with w
    bad.scale_inv.data<float>()[4 * 56 + 30] *= 2.0f;
    Tensor x = random_act({8, 7168}, rng_, 2.0f);
    Tensor got = down(gpu_->linear(up(x), w, LinearOutput::kActivation));
    expect_close("linear fp8-stream M=8 N=576 K=7168", got, cpu_->linear(x, w, LinearOutput::kActivation), kStreamTol);
    const double wrong = compare(got, cpu_->linear(x, bad, LinearOutput::kActivation)).rel_l2;
    std::cout << "[ metric ] linear fp8-stream distance to a reference with one doubled block scale: " << wrong << "\n";
    EXPECT_GT(wrong, 5 * kStreamTol);
}

// q_a 1536x7168, kv_a 576x7168 and the indexer's wk 128x7168 over one x: one act_quant and one grouped streaming
// launch whose outputs, with the separate plans (each weight keeps its own split-K plan), equal three linear() calls
// exactly: the CTA -> problem map is right. Twice in a row (the kernel resets its tile counters), with UE8M0 and
// f32 scales, then the ring variant (a launch per weight) and the wgmma variant (one launch).
TEST_F(LinearTest, LinearMultiEqualsSeparateCalls) {
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    const bool joint = cuda::fp8_stream_multi_joint();
    const int streamk = cuda::fp8_stream_streamk_scope();
    cuda::set_fp8_stream_multi_joint(false);
    cuda::set_fp8_stream_streamk_scope(0);  // linear()'s own plans (multi launches never take stream-K)
    using V = cuda::Fp8StreamKernel;
    for (const V variant : {V::kStaged, V::kRing, V::kWgmma}) {
        cuda::set_fp8_stream_variant(variant);
        for (const Numerics& n : {kActQuantUe8m0, kActQuantF32}) {
            if (variant != V::kStaged && !n.ue8m0_scales) continue;
            make(n);
            const LinearWeight ws[3] = {random_fp8_weight(1536, 7168, rng_), random_fp8_weight(576, 7168, rng_),
                                        random_fp8_weight(128, 7168, rng_)};
            const std::vector<const LinearWeight*> ptrs = {&ws[0], &ws[1], &ws[2]};
            for (int64_t m : {1, 3, 16, 64}) {
                Tensor x = random_act({m, 7168}, rng_, 2.0f);
                Tensor xd = up(x);
                const std::string what = std::string("linear_multi ") +
                                         (variant == V::kRing ? "[ring] " : variant == V::kWgmma ? "[wgmma] " : "") +
                                         (n.ue8m0_scales ? "ue8m0" : "f32-scales") + " M=" + std::to_string(m);
                for (int rep = 0; rep < 2; ++rep) {
                    std::vector<Tensor> got = gpu_->linear_multi(xd, ptrs);
                    EXPECT_TRUE(cuda().last_linear_multi_fused()) << what;
                    ASSERT_EQ(got.size(), 3u) << what;
                    for (size_t i = 0; i < 3; ++i) {
                        Tensor single = gpu_->to_host(gpu_->linear(xd, ws[i], LinearOutput::kActivation));
                        EXPECT_TRUE(same_bits(gpu_->to_host(got[i]), single)) << what << " weight " << i << " rep " << rep;
                    }
                }
                if (m == 16) {  // and the values are right (separate calls are checked against the CPU above)
                    std::vector<Tensor> got = gpu_->linear_multi(xd, ptrs);
                    for (size_t i = 0; i < 3; ++i) {
                        expect_close(what + " weight " + std::to_string(i), down(got[i]),
                                     cpu_->linear(x, ws[i], LinearOutput::kActivation), kStreamTol);
                    }
                }
            }
        }
    }
    cuda::set_fp8_stream_variant(initial);
    cuda::set_fp8_stream_multi_joint(joint);
    cuda::set_fp8_stream_streamk_scope(streamk);
}

// The joint multi plan (the default): one K chunk for all problems that fills whole waves of 2 CTAs per SM. At the
// V3.2 shapes on 132 SMs: 252 CTAs of 4 blocks (the separate plans: 396 CTAs, 1.5 waves). Host-only.
TEST(Fp8StreamPlanTest, MultiJointFillsWholeWaves) {
    const bool joint = cuda::fp8_stream_multi_joint();
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    const int cluster = cuda::fp8_stream_cluster_max();
    cuda::set_fp8_stream_variant(cuda::Fp8StreamKernel::kStaged);
    cuda::set_fp8_stream_cluster_max(0);  // the global-finish joint plan (auto clusters the joint plan)
    const auto plan_ctas = [](bool joint_plan, int64_t m, int64_t* chunk) {
        cuda::set_fp8_stream_multi_joint(joint_plan);
        cuda::Fp8StreamMulti multi;
        multi.count = 3;
        const int64_t rows[3] = {1536, 576, 128};
        for (int i = 0; i < 3; ++i) multi.prob[i].n = rows[i];
        cuda::fp8_stream_multi_plan(multi, 7168, m, 132);
        int64_t ctas = 0;
        for (int i = 0; i < 3; ++i) {
            const cuda::Fp8StreamPlan& q = multi.prob[i].plan;
            EXPECT_EQ(q.splits, (56 + q.chunk - 1) / q.chunk) << "problem " << i;
            EXPECT_EQ(q.counters, q.splits > 1 ? q.tiles : 0) << "problem " << i;
            EXPECT_EQ(q.ws_floats, q.splits > 1 ? q.splits * q.tiles * 32 * q.nt * 4 : 0) << "problem " << i;
            if (joint_plan) {
                EXPECT_EQ(q.chunk, multi.prob[0].plan.chunk) << "problem " << i;
            }
            ctas += (q.tiles + 7) / 8 * q.splits;
        }
        *chunk = multi.prob[0].plan.chunk;
        return ctas;
    };
    int64_t chunk = 0;
    for (int64_t m : {1, 8, 16, 64}) {
        EXPECT_EQ(plan_ctas(true, m, &chunk), 252) << "M=" << m;
        EXPECT_EQ(chunk, 4) << "M=" << m;
    }
    EXPECT_EQ(plan_ctas(false, 1, &chunk), 396);
    cuda::set_fp8_stream_variant(initial);
    cuda::set_fp8_stream_multi_joint(joint);
    cuda::set_fp8_stream_cluster_max(cluster);
}

// The kAuto kernel rule (host): wgmma for dense single-weight plans of 32..64 token rows whatever the weight's rows,
// staged below 32 and for grouped plans; the joint multi plan (q_a + kv_a + wk) on wgmma at <= 8 and >= 32 token
// rows, staged at 16; a separate multi plan keeps the lone plans' kernels (bit-identical to linear() calls).
TEST(Fp8StreamPlanTest, AutoKernelRule) {
    const bool joint = cuda::fp8_stream_multi_joint();
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    const int streamk = cuda::fp8_stream_streamk_scope(), cluster = cuda::fp8_stream_cluster_max();
    cuda::set_fp8_stream_variant(cuda::Fp8StreamKernel::kAuto);
    cuda::set_fp8_stream_streamk_scope(0);
    cuda::set_fp8_stream_cluster_max(cuda::kFp8StreamClusterAuto);
    using V = cuda::Fp8StreamKernel;
    for (const Shape2 s : {Shape2{576, 7168}, Shape2{1536, 7168}, Shape2{2048, 7168}, Shape2{7168, 16384},
                           Shape2{24576, 1536}}) {
        for (const int64_t m : {1, 8, 16, 31, 32, 33, 48, 64}) {
            EXPECT_EQ(cuda::fp8_stream_plan(1, s.n, s.k, m, 132).kernel, m >= 32 ? V::kWgmma : V::kStaged)
                << "N " << s.n << " M " << m;
        }
    }
    // Grouped (MoE): wgmma at <= 16 token rows per group (DSA_FP8_GROUPED_WGMMA, default on), staged above.
    const bool grouped_wgmma = cuda::fp8_stream_grouped_wgmma();
    for (const bool on : {true, false}) {
        cuda::set_fp8_stream_grouped_wgmma(on);
        for (const int64_t m : {1, 2, 8, 9, 16, 17, 32, 64}) {
            EXPECT_EQ(cuda::fp8_stream_plan(9, 4096, 7168, m, 132).kernel, on && m <= 16 ? V::kWgmma : V::kStaged)
                << "grouped M " << m << " switch " << on;
            EXPECT_EQ(cuda::fp8_stream_plan(8, 7168, 2048, m, 132).kernel, on && m <= 16 ? V::kWgmma : V::kStaged)
                << "grouped down M " << m << " switch " << on;
        }
    }
    cuda::set_fp8_stream_grouped_wgmma(grouped_wgmma);
    for (const bool joint_plan : {true, false}) {
        cuda::set_fp8_stream_multi_joint(joint_plan);
        for (const int64_t m : {1, 8, 16, 32, 48, 64}) {
            cuda::Fp8StreamMulti multi;
            multi.count = 3;
            const int64_t rows[3] = {1536, 576, 128};
            for (int i = 0; i < 3; ++i) multi.prob[i].n = rows[i];
            cuda::fp8_stream_multi_plan(multi, 7168, m, 132);
            const V want = m >= 32 || (joint_plan && m <= 8) ? V::kWgmma : V::kStaged;
            for (int i = 0; i < 3; ++i) {
                EXPECT_EQ(multi.prob[i].plan.kernel, want) << "joint " << joint_plan << " M " << m << " problem " << i;
            }
        }
    }
    cuda::set_fp8_stream_variant(initial);
    cuda::set_fp8_stream_multi_joint(joint);
    cuda::set_fp8_stream_streamk_scope(streamk);
    cuda::set_fp8_stream_cluster_max(cluster);
}

// The joint grouped plan (MoE experts, opt-in: DSA_MOE_PLAN=joint): 9 V3.2 experts' gate_up (4096 x 7168) at one
// token on 132 SMs split K into 7 chunks of 8 blocks (2016 CTAs, whole waves of 264 slots; the fixed grid: 288
// CTAs, 1.09 waves), workspace and counters for every group; 8 experts (256 CTAs, one wave) and down (504 CTAs) keep
// one chunk; no chunk below 4 blocks; the fixed grid (the default) does not split there. Host-only.
TEST(Fp8StreamPlanTest, GroupedJointPlan) {
    const bool joint = cuda::fp8_stream_grouped_joint();
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    cuda::set_fp8_stream_variant(cuda::Fp8StreamKernel::kStaged);
    cuda::set_fp8_stream_grouped_joint(true);
    const cuda::Fp8StreamPlan gu9 = cuda::fp8_stream_plan(9, 4096, 7168, 8, 132);
    EXPECT_EQ(gu9.chunk, 8);
    EXPECT_EQ(gu9.splits, 7);
    EXPECT_EQ(gu9.ws_floats, 9 * 7 * gu9.tiles * 32 * gu9.nt * 4);
    EXPECT_EQ(gu9.counters, 9 * gu9.tiles);
    EXPECT_EQ(cuda::fp8_stream_plan(8, 4096, 7168, 8, 132).splits, 1);
    EXPECT_EQ(cuda::fp8_stream_plan(9, 7168, 2048, 8, 132).splits, 1);
    EXPECT_EQ(cuda::fp8_stream_plan(9, 4096, 7168, 8, 132, /*bounded=*/false).splits, 1);
    for (int64_t groups : {2, 9, 18, 36, 72}) {
        for (int64_t tokens : {1, 8, 16, 64}) {
            const cuda::Fp8StreamPlan q = cuda::fp8_stream_plan(groups, 4096, 7168, tokens, 132);
            EXPECT_GE(q.chunk, 4) << "groups " << groups << " tokens " << tokens;
            EXPECT_GE(q.chunk * q.splits, 56) << "groups " << groups;
            EXPECT_LT(q.chunk * (q.splits - 1), 56) << "groups " << groups;
        }
    }
    cuda::set_fp8_stream_grouped_joint(false);
    const cuda::Fp8StreamPlan grid = cuda::fp8_stream_plan(9, 4096, 7168, 8, 132);
    EXPECT_EQ(grid.splits, 1);
    EXPECT_EQ(grid.chunk, 56);
    EXPECT_EQ(cuda::fp8_stream_plan(1, 24576, 1536, 1, 132).splits, 1);  // dense plans: unchanged by the switch
    cuda::set_fp8_stream_grouped_joint(joint);
    cuda::set_fp8_stream_variant(initial);
}

// The joint plan's launch (the default) against the CPU at every n-tile count, for the staged, wgmma and auto
// variants, the same bits when repeated, and within the tolerance of separate calls' results.
TEST_F(LinearTest, LinearMultiJointPlanVsCpu) {
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    const bool joint = cuda::fp8_stream_multi_joint();
    cuda::set_fp8_stream_multi_joint(true);
    using V = cuda::Fp8StreamKernel;
    make(kActQuantUe8m0);
    const LinearWeight ws[3] = {random_fp8_weight(1536, 7168, rng_), random_fp8_weight(576, 7168, rng_),
                                random_fp8_weight(128, 7168, rng_)};
    const std::vector<const LinearWeight*> ptrs = {&ws[0], &ws[1], &ws[2]};
    Tensor x = random_act({64, 7168}, rng_, 2.0f);
    Tensor refs[3];
    for (int i = 0; i < 3; ++i) refs[i] = to_f32(cpu_->linear(x, ws[i], LinearOutput::kActivation));
    for (const V variant : {V::kStaged, V::kWgmma, V::kAuto}) {
        cuda::set_fp8_stream_variant(variant);
        for (int64_t m : {1, 5, 16, 33, 64}) {
            Tensor xd = up(first_rows(x, m));
            const std::string what = std::string("linear_multi joint [") +
                                     (variant == V::kWgmma ? "wgmma" : variant == V::kAuto ? "auto" : "staged") +
                                     "] M=" + std::to_string(m);
            std::cout << "[ metric ] " << what << std::endl;  // names the case if a launch fails
            std::vector<Tensor> got = gpu_->linear_multi(xd, ptrs);
            EXPECT_TRUE(cuda().last_linear_multi_fused()) << what;
            ASSERT_EQ(got.size(), 3u) << what;
            std::vector<Tensor> again = gpu_->linear_multi(xd, ptrs);
            for (size_t i = 0; i < 3; ++i) {
                const std::string wi = what + " weight " + std::to_string(i);
                Tensor g = gpu_->to_host(got[i]);
                EXPECT_TRUE(same_bits(g, gpu_->to_host(again[i]))) << wi << " repeated";
                expect_close(wi, to_f32(g), first_rows(refs[i], m), kStreamTol);
                Tensor single = gpu_->to_host(gpu_->linear(xd, ws[i], LinearOutput::kActivation));
                expect_close(wi + " vs separate call", to_f32(g), to_f32(single), kStreamTol);
            }
        }
    }
    cuda::set_fp8_stream_variant(initial);
    cuda::set_fp8_stream_multi_joint(joint);
}

// Weights the grouped launch cannot take (a BF16 one among them, or bf16 numerics) run as separate calls: the same
// bits, and the backend reports it. The CPU default is linear() per weight, bit for bit.
TEST_F(LinearTest, LinearMultiFallbackAndCpuDefault) {
    const bool joint = cuda::fp8_stream_multi_joint();
    const int streamk = cuda::fp8_stream_streamk_scope();
    cuda::set_fp8_stream_multi_joint(false);  // the fused case: separate plans, the bits of separate calls
    cuda::set_fp8_stream_streamk_scope(0);    // linear()'s own plans (multi launches never take stream-K)
    for (const Numerics& n : {kActQuantUe8m0, Numerics::bf16()}) {
        make(n);
        const LinearWeight ws[3] = {random_fp8_weight(576, 7168, rng_), random_bf16_weight(64, 7168, rng_),
                                    random_fp8_weight(128, 7168, rng_)};
        const std::vector<const LinearWeight*> mixed = {&ws[0], &ws[1], &ws[2]};
        const std::vector<const LinearWeight*> fp8 = {&ws[0], &ws[2]};
        Tensor x = random_act({5, 7168}, rng_, 2.0f);
        Tensor xd = up(x);
        for (const auto* list : {&mixed, &fp8}) {
            std::vector<Tensor> got = gpu_->linear_multi(xd, *list);
            EXPECT_EQ(cuda().last_linear_multi_fused(), list == &fp8 && n.fp8_activation_quant);
            std::vector<Tensor> cpu_got = cpu_->linear_multi(x, *list);
            ASSERT_EQ(got.size(), list->size());
            ASSERT_EQ(cpu_got.size(), list->size());
            for (size_t i = 0; i < list->size(); ++i) {
                const LinearWeight& w = *(*list)[i];
                EXPECT_TRUE(same_bits(gpu_->to_host(got[i]), gpu_->to_host(gpu_->linear(xd, w, LinearOutput::kActivation))))
                    << "weight " << i;
                EXPECT_TRUE(same_bits(cpu_got[i], cpu_->linear(x, w, LinearOutput::kActivation))) << "cpu weight " << i;
            }
        }
    }
    cuda::set_fp8_stream_multi_joint(joint);
    cuda::set_fp8_stream_streamk_scope(streamk);
}

// The decode-path kernels are launched with PDL (every kernel may start before the previous one ends). A chain of
// dependent ops (rms_norm -> linear_multi -> rms_norm -> linear -> add_rms_norm -> linear, split-K everywhere)
// replayed from a CUDA graph on new input equals the eager run on that input bit for bit, and the CPU within
// tolerance: a kernel reading its input before the producer finished would break both.
TEST_F(LinearTest, PdlChainGraphEqualsEager) {
    make(kActQuantUe8m0);
    const LinearWeight qa = random_fp8_weight(1536, 7168, rng_), kva = random_fp8_weight(576, 7168, rng_),
                       qb = random_fp8_weight(7168, 1536, rng_), o = random_fp8_weight(7168, 7168, rng_);
    const std::vector<const LinearWeight*> proj = {&qa, &kva};
    Tensor g1 = uniform_f32({7168}, rng_, 0.5f, 1.5f), g2 = uniform_f32({1536}, rng_, 0.5f, 1.5f);
    auto chain = [&](Backend& be, const Tensor& x, const Tensor& w1, const Tensor& w2) {
        Tensor h = be.rms_norm(x, w1, 1e-6f);
        std::vector<Tensor> p = be.linear_multi(h, proj);
        Tensor q = be.linear(be.rms_norm(p[0], w2, 1e-6f), qb, LinearOutput::kActivation);
        Tensor resid = be.add(x, x);
        Tensor n2 = be.add_rms_norm(resid, q, w1, 1e-6f);
        return be.linear(n2, o, LinearOutput::kActivation);
    };
    Tensor g1d = gpu_->to_device(g1), g2d = gpu_->to_device(g2);
    for (int64_t m : {1, 8}) {
        Tensor x0 = random_act({m, 7168}, rng_), x1 = random_act({m, 7168}, rng_);
        Tensor eager = gpu_->to_host(chain(*gpu_, up(x1), g1d, g2d));
        Tensor xd = up(x0), out;
        auto graph = gpu_->capture_graph([&] { out = chain(*gpu_, xd, g1d, g2d); });
        ASSERT_TRUE(graph.is_ok()) << graph.status().message();
        gpu_->copy_into(to_bf16(x1), xd);
        gpu_->replay_graph(**graph);
        Tensor replay = gpu_->to_host(out);
        EXPECT_TRUE(same_bits(replay, eager)) << "M=" << m;
        expect_close("pdl chain graph replay M=" + std::to_string(m), to_f32(replay), chain(*cpu_, x1, g1, g2), 5e-2);
    }
}

// The stream-K kernel's walk over a plan's units: each CTA takes `chunk` consecutive units; every row block's nkb
// K blocks are covered once, its runs (partials) come in CTA order, and no row block meets more runs than the plan's
// splits (its workspace).
void expect_streamk_walk(const cuda::Fp8StreamPlan& plan, int64_t rowblocks, int64_t nkb, const std::string& what) {
    const int64_t ctas = (plan.streamk_units + plan.chunk - 1) / plan.chunk;
    std::vector<int64_t> covered(rowblocks, 0), runs(rowblocks, 0);
    for (int64_t cta = 0; cta < ctas; ++cta) {
        const int64_t u1 = std::min((cta + 1) * plan.chunk, plan.streamk_units);
        for (int64_t u = cta * plan.chunk; u < u1;) {
            const int64_t row = u / nkb, n = std::min(nkb - u % nkb, u1 - u);
            const int64_t seg0 = row * nkb / plan.chunk, nseg = ((row + 1) * nkb - 1) / plan.chunk - seg0 + 1;
            EXPECT_EQ(cta - seg0, runs[row]) << what << " row block " << row;
            EXPECT_LE(nseg, plan.splits) << what;
            covered[row] += n, runs[row] += 1, u += n;
        }
    }
    for (int64_t r = 0; r < rowblocks; ++r) EXPECT_EQ(covered[r], nkb) << what << " row block " << r;
}

// Stream-K plans (DSA_FP8_STREAMK=1): every row block's K blocks are covered exactly once by consecutive CTA runs,
// no row block meets more runs than the plan's workspace holds, the grid fits 2 CTAs per SM, and multi plans never
// take it. Host-only; the switch is restored.
TEST(Fp8StreamPlanTest, StreamKPlanCoversUnits) {
    const int initial = cuda::fp8_stream_streamk_scope();
    cuda::set_fp8_stream_streamk(true);
    struct Case {
        int64_t groups, n, k, tokens;
    };
    for (const Case c : {Case{1, 7168, 16384, 1}, Case{1, 24576, 1536, 1}, Case{1, 576, 7168, 8},
                         Case{1, 4096, 7168, 64}, Case{9, 4096, 7168, 9}, Case{8, 7168, 2048, 8},
                         Case{9, 7168, 2048, 9}}) {
        const std::string what = "groups " + std::to_string(c.groups) + " N " + std::to_string(c.n) + " K " +
                                 std::to_string(c.k) + " tokens " + std::to_string(c.tokens);
        cuda::Fp8StreamPlan plan = cuda::fp8_stream_plan(c.groups, c.n, c.k, c.tokens, 132);
        if (c.groups > 1) plan = cuda::fp8_stream_streamk_plan(plan, c.groups, c.k, 132);
        const int64_t nkb = c.k / 128, rowblocks = c.groups * ((c.n + 127) / 128);
        ASSERT_EQ(plan.streamk_units, rowblocks * nkb) << what;
        const int64_t ctas = (plan.streamk_units + plan.chunk - 1) / plan.chunk;
        EXPECT_LE(ctas, 264) << what;
        EXPECT_GE(plan.chunk, std::min<int64_t>(nkb, plan.nt > 2 ? 4 : 2)) << what;
        expect_streamk_walk(plan, rowblocks, nkb, what);
        EXPECT_EQ(plan.ws_floats, c.groups * plan.splits * plan.tiles * 32 * plan.nt * 4) << what;
    }
    cuda::Fp8StreamMulti multi;
    multi.count = 2;
    multi.prob[0].n = 1536, multi.prob[1].n = 576;
    cuda::fp8_stream_multi_plan(multi, 7168, 1, 132);
    EXPECT_EQ(multi.prob[0].plan.streamk_units, 0);
    EXPECT_EQ(multi.prob[1].plan.streamk_units, 0);
    cuda::set_fp8_stream_streamk(false);
    EXPECT_EQ(cuda::fp8_stream_plan(1, 7168, 16384, 1, 132).streamk_units, 0);
    cuda::set_fp8_stream_streamk_scope(cuda::kFp8StreamKMoe);  // DSA_FP8_STREAMK=moe: dense plans unchanged
    EXPECT_EQ(cuda::fp8_stream_plan(1, 7168, 16384, 1, 132).streamk_units, 0);
    EXPECT_TRUE(cuda::fp8_stream_streamk_moe());
    cuda::set_fp8_stream_streamk_scope(cuda::kFp8StreamKDense);
    EXPECT_GT(cuda::fp8_stream_plan(1, 7168, 16384, 1, 132).streamk_units, 0);
    EXPECT_FALSE(cuda::fp8_stream_streamk_moe());
    cuda::set_fp8_stream_streamk_scope(initial);
}

// The stream-K launches (opt-in) on the staged and wgmma kernels: linear() at M = 1, 8, 33, 64 on shapes whose row
// blocks are cut inside and across CTAs (and a partial row block) against the CPU, the same bits when repeated and
// from a CUDA graph replay on new input, close to the default plan; dense_mlp (the shared expert) at M = 1 and 8.
TEST_F(LinearTest, Fp8StreamKDense) {
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    const int streamk = cuda::fp8_stream_streamk_scope();
    using V = cuda::Fp8StreamKernel;
    make(kActQuantUe8m0);
    constexpr Shape2 kShapes[] = {{7168, 2048}, {1536, 7168}, {576, 7168}, {24576, 1536}};
    for (const Shape2& s : kShapes) {
        LinearWeight w = random_fp8_weight(s.n, s.k, rng_);
        Tensor x = random_act({64, s.k}, rng_, 2.0f);
        Tensor ref = to_f32(cpu_->linear(x, w, LinearOutput::kActivation));
        for (const V variant : {V::kStaged, V::kWgmma}) {
            cuda::set_fp8_stream_variant(variant);
            for (int64_t m : {1, 8, 33, 64}) {
                const std::string what = std::string("linear stream-K [") + (variant == V::kWgmma ? "wgmma" : "staged") +
                                         "] M=" + std::to_string(m) + " N=" + std::to_string(s.n) +
                                         " K=" + std::to_string(s.k);
                std::cout << "[ metric ] " << what << std::endl;  // names the case if a launch fails
                Tensor xd = up(first_rows(x, m));
                cuda::set_fp8_stream_streamk(false);
                Tensor plain = gpu_->to_host(gpu_->linear(xd, w, LinearOutput::kActivation));
                cuda::set_fp8_stream_streamk(true);
                expect_stream_linear(*gpu_, xd, w, first_rows(ref, m), plain, what);
                if (m != 8) continue;
                expect_replay_is_eager(*gpu_, xd, w, random_act({m, s.k}, rng_, 2.0f), what);
            }
        }
    }
    cuda::set_fp8_stream_variant(V::kStaged);
    cuda::set_fp8_stream_streamk(true);
    MlpWeights mw{random_fp8_weight(2048, 7168, rng_), random_fp8_weight(2048, 7168, rng_),
                  random_fp8_weight(7168, 2048, rng_)};
    for (int64_t m : {1, 8}) {
        const std::string what = "dense_mlp stream-K M=" + std::to_string(m);
        std::cout << "[ metric ] " << what << std::endl;
        Tensor x = random_act({m, 7168}, rng_);
        expect_close(what, down(gpu_->dense_mlp(up(x), mw)), cpu_->dense_mlp(x, mw), 2e-2);
        EXPECT_TRUE(cuda().last_mlp_fused()) << what;
    }
    cuda::set_fp8_stream_streamk_scope(streamk);
    cuda::set_fp8_stream_variant(initial);
}

TEST_F(LinearTest, LmHead) {
    LinearWeight head = random_bf16_weight(16384, 7168, rng_);
    Tensor x = random_act({3, 7168}, rng_);
    Tensor got = gpu_->lm_head(up(x), head);
    EXPECT_EQ(got.dtype(), DType::kF32);
    expect_close("lm_head 16384x7168 (f32 logits)", down(got), cpu_->lm_head(x, head), 1e-4);
}

TEST_F(LinearTest, DenseMlpSharedExpert) {
    const Numerics act_quant_ue8m0{.round_activations_to_bf16 = true, .fp8_activation_quant = true,
                                   .ue8m0_scales = true};
    for (const Numerics& n : {Numerics::bf16(), act_quant_ue8m0}) {
        make(n);
        MlpWeights w{random_fp8_weight(2048, 7168, rng_), random_fp8_weight(2048, 7168, rng_),
                     random_fp8_weight(7168, 2048, rng_)};
        for (int64_t m : {1, 16, 64, 65}) {
            if (!n.fp8_activation_quant && m > 16) continue;
            Tensor x = random_act({m, 7168}, rng_);
            expect_close(std::string("dense_mlp fp8 D=7168 F=2048 ") +
                             (n.fp8_activation_quant ? "act_quant" : "bf16-numerics") + " M=" + std::to_string(m),
                         down(gpu_->dense_mlp(up(x), w)), cpu_->dense_mlp(x, w), n.fp8_activation_quant ? 2e-2 : 1e-2);
            // act_quant at M <= 64: gate + up in one streaming launch, then SwiGLU + act_quant and down.
            EXPECT_EQ(cuda().last_mlp_fused(), n.fp8_activation_quant && m <= 64) << "M=" << m;
        }
    }
    // BF16 weights (the dense layers of a BF16 checkpoint).
    make(Numerics::bf16());
    MlpWeights wb{random_bf16_weight(2048, 7168, rng_), random_bf16_weight(2048, 7168, rng_),
                  random_bf16_weight(7168, 2048, rng_)};
    Tensor x = random_act({4, 7168}, rng_);
    expect_close("dense_mlp bf16 D=7168 F=2048 M=4", down(gpu_->dense_mlp(up(x), wb)), cpu_->dense_mlp(x, wb), 3e-3);
}

// The fused dense MLP (gate + up in one dense gate_up launch, then down) on the wgmma variant and on auto (wgmma
// from 32 rows): what DSA_FP8_STREAM_KERNEL=auto as the default would run; then the variant is restored.
TEST_F(LinearTest, DenseMlpWgmmaAndAutoVariants) {
    const cuda::Fp8StreamKernel initial = cuda::fp8_stream_variant();
    using V = cuda::Fp8StreamKernel;
    make(kActQuantUe8m0);
    MlpWeights w{random_fp8_weight(2048, 7168, rng_), random_fp8_weight(2048, 7168, rng_),
                 random_fp8_weight(7168, 2048, rng_)};
    Tensor x = random_act({64, 7168}, rng_);
    for (const V variant : {V::kWgmma, V::kAuto}) {
        cuda::set_fp8_stream_variant(variant);
        for (int64_t m : {1, 17, 32, 64}) {
            const std::string what = std::string("dense_mlp fp8 [") + (variant == V::kWgmma ? "wgmma" : "auto") +
                                     "] D=7168 F=2048 M=" + std::to_string(m);
            std::cout << "[ metric ] " << what << std::endl;  // names the case if a launch fails
            Tensor xm = first_rows(x, m);
            expect_close(what, down(gpu_->dense_mlp(up(xm), w)), cpu_->dense_mlp(xm, w), 2e-2);
            EXPECT_TRUE(cuda().last_mlp_fused()) << what;
        }
    }
    cuda::set_fp8_stream_variant(initial);
}

}  // namespace
}  // namespace dsa::backend::testing
