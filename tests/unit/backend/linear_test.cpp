// CPU linear and lm_head against direct definitions: f32 / bf16 / FP8-block weights (partial edge blocks),
// activation quantization only before FP8 weights (the FP8 GEMM contract of MODEL_SPEC §7), and the output
// rounding of kActivation vs kF32.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cpu/quant.h"
#include "test_util.h"

namespace dsa::backend {
namespace {

using testing::random_f32;

// y[t,o] = sum_i x[t,i] * W(o,i) in double, W given as a function.
template <typename W>
Tensor naive_linear(const Tensor& x, int64_t out, W weight_at) {
    const int64_t rows = x.dim(0), in = x.dim(1);
    Tensor y = Tensor::empty({rows, out}, DType::kF32);
    for (int64_t t = 0; t < rows; ++t) {
        for (int64_t o = 0; o < out; ++o) {
            double acc = 0.0;
            for (int64_t i = 0; i < in; ++i) acc += static_cast<double>(x.data<float>()[t * in + i]) * weight_at(o, i);
            y.data<float>()[t * out + o] = static_cast<float>(acc);
        }
    }
    return y;
}

float fp8_weight_at(const LinearWeight& w, int64_t o, int64_t i) {
    const int64_t in = w.in_features(), cb = (in + 127) / 128;
    return fp8e4m3_to_f32(w.weight.data<uint8_t>()[o * in + i]) * w.scale_inv.data<float>()[(o / 128) * cb + i / 128];
}

TEST(Linear, F32AndBf16Weights) {
    std::mt19937 rng(20);
    Tensor x = random_f32({3, 40}, rng);
    Tensor w = random_f32({17, 40}, rng);
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor y = be->linear(x, LinearWeight{w, {}}, LinearOutput::kActivation);
    Tensor ref = naive_linear(x, 17, [&](int64_t o, int64_t i) { return w.data<float>()[o * 40 + i]; });
    EXPECT_LT(testing::rel_l2(y, ref), 1e-6);
    Tensor wb = testing::to_bf16(w);
    Tensor yb = be->linear(x, LinearWeight{wb, {}}, LinearOutput::kActivation);
    Tensor refb = naive_linear(x, 17, [&](int64_t o, int64_t i) { return round_bf16(w.data<float>()[o * 40 + i]); });
    EXPECT_LT(testing::rel_l2(yb, refb), 1e-6);
    EXPECT_GT(testing::rel_l2(yb, ref), 1e-4);  // the bf16 weight really was used
}

TEST(Linear, Fp8BlockWeightWithPartialBlocks) {
    std::mt19937 rng(21);
    LinearWeight w = testing::random_fp8_weight(200, 300, rng);
    Tensor x = random_f32({4, 300}, rng);
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor y = be->linear(x, w, LinearOutput::kActivation);
    Tensor ref = naive_linear(x, 200, [&](int64_t o, int64_t i) { return fp8_weight_at(w, o, i); });
    EXPECT_LT(testing::rel_l2(y, ref), 1e-6);
}

// The FP8 GEMM contract: C = sum_kb (sum_k a8 w8) * sa[kb] * sw[n/128, kb], with act_quant per 1x128.
Tensor fp8_gemm_reference(const Tensor& x, const LinearWeight& w, bool ue8m0) {
    const int64_t rows = x.dim(0), in = x.dim(1), out = w.out_features(), cb = (in + 127) / 128;
    Tensor y = Tensor::empty({rows, out}, DType::kF32);
    for (int64_t t = 0; t < rows; ++t) {
        std::vector<uint8_t> a8(in);
        std::vector<float> sa(cb);
        for (int64_t b = 0; b < cb; ++b) {
            const int64_t len = std::min<int64_t>(128, in - b * 128);
            sa[b] = cpu::act_quant_block(x.data<float>() + t * in + b * 128, len, ue8m0, &a8[b * 128]);
        }
        for (int64_t o = 0; o < out; ++o) {
            double c = 0.0;
            for (int64_t b = 0; b < cb; ++b) {
                double blk = 0.0;
                for (int64_t i = b * 128; i < std::min<int64_t>(in, b * 128 + 128); ++i) {
                    blk += static_cast<double>(fp8e4m3_to_f32(a8[i])) * fp8e4m3_to_f32(w.weight.data<uint8_t>()[o * in + i]);
                }
                c += blk * sa[b] * w.scale_inv.data<float>()[(o / 128) * cb + b];
            }
            y.data<float>()[t * out + o] = static_cast<float>(c);
        }
    }
    return y;
}

TEST(Linear, Fp8ActivationQuantFollowsGemmContract) {
    std::mt19937 rng(22);
    LinearWeight w = testing::random_fp8_weight(130, 256, rng);
    Tensor x = random_f32({5, 256}, rng);
    for (bool ue8m0 : {false, true}) {
        Numerics n;
        n.fp8_activation_quant = true;
        n.ue8m0_scales = ue8m0;
        auto be = make_cpu_backend(n);
        Tensor y = be->linear(x, w, LinearOutput::kF32);
        EXPECT_LT(testing::rel_l2(y, fp8_gemm_reference(x, w, ue8m0)), 1e-6) << ue8m0;
        // And it differs from the unquantized product (the quantization really happened).
        auto plain = make_cpu_backend(Numerics::fp32());
        EXPECT_GT(testing::rel_l2(y, plain->linear(x, w, LinearOutput::kF32)), 1e-3);
    }
}

TEST(Linear, ActivationQuantSkipsNonFp8Weights) {
    std::mt19937 rng(23);
    Tensor x = random_f32({2, 128}, rng);
    Tensor w = random_f32({8, 128}, rng);
    auto quant = make_cpu_backend(Numerics{.fp8_activation_quant = true});
    auto plain = make_cpu_backend(Numerics::fp32());
    EXPECT_EQ(testing::rel_l2(quant->linear(x, LinearWeight{w, {}}, LinearOutput::kActivation),
                              plain->linear(x, LinearWeight{w, {}}, LinearOutput::kActivation)),
              0.0);
}

TEST(Linear, OutputRoundingAndLmHead) {
    std::mt19937 rng(24);
    Tensor x = random_f32({2, 64}, rng);
    Tensor w = random_f32({32, 64}, rng);
    auto be = make_cpu_backend(Numerics::bf16());
    Tensor act = be->linear(x, LinearWeight{w, {}}, LinearOutput::kActivation);
    Tensor f32 = be->linear(x, LinearWeight{w, {}}, LinearOutput::kF32);
    Tensor logits = be->lm_head(x, LinearWeight{w, {}});
    int differ = 0;
    for (int64_t i = 0; i < act.numel(); ++i) {
        EXPECT_EQ(act.data<float>()[i], round_bf16(f32.data<float>()[i]));
        EXPECT_EQ(logits.data<float>()[i], f32.data<float>()[i]);
        differ += act.data<float>()[i] != f32.data<float>()[i];
    }
    EXPECT_GT(differ, 0);
}

TEST(Linear, WeightCacheDistinguishesWeights) {
    std::mt19937 rng(25);
    Tensor x = random_f32({1, 128}, rng);
    auto be = make_cpu_backend(Numerics::fp32());
    for (int round = 0; round < 4; ++round) {
        LinearWeight w = testing::random_fp8_weight(16, 128, rng);
        Tensor ref = naive_linear(x, 16, [&](int64_t o, int64_t i) { return fp8_weight_at(w, o, i); });
        EXPECT_LT(testing::rel_l2(be->linear(x, w, LinearOutput::kF32), ref), 1e-6) << round;
    }
}

}  // namespace
}  // namespace dsa::backend
