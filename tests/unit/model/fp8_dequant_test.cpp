// FP8 block dequantization with partial edge blocks (rows and columns not multiples of 128, the 576-row kv_a
// case) and the power-of-two scale check, per tensor and over a loaded model.
#include "model/fp8_dequant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tensor/numeric.h"
#include "test_files.h"
#include "tiny_checkpoint.h"

namespace dsa::model {
namespace {

Tensor fp8_tensor(const Shape& shape, const std::function<float(int64_t, int64_t)>& value) {
    Tensor t = Tensor::empty(shape, DType::kF8E4M3, Device::kCPU, "w");
    for (int64_t i = 0; i < shape[0]; ++i) {
        for (int64_t j = 0; j < shape[1]; ++j) t.data<uint8_t>()[i * shape[1] + j] = f32_to_fp8e4m3(value(i, j));
    }
    return t;
}

Tensor f32_tensor(const Shape& shape, const std::vector<float>& values) {
    Tensor t = Tensor::empty(shape, DType::kF32, Device::kCPU, "scale");
    for (size_t i = 0; i < values.size(); ++i) t.data<float>()[i] = values[i];
    return t;
}

TEST(Fp8Dequant, PartialEdgeBlocksInBothDims) {
    auto value = [](int64_t i, int64_t j) { return static_cast<float>((i + 3 * j) % 9 - 4) * 0.5f; };
    const Tensor w = fp8_tensor({130, 257}, value);
    const std::vector<float> scales = {1.0f, 2.0f, 4.0f, 0.5f, 0.25f, 8.0f};  // [2, 3]
    const Tensor out = dequantize_fp8_block(w, f32_tensor({2, 3}, scales));
    ASSERT_EQ(out.shape(), (Shape{130, 257}));
    ASSERT_EQ(out.dtype(), DType::kF32);
    for (int64_t i : {0, 1, 127, 128, 129}) {
        for (int64_t j : {0, 127, 128, 255, 256}) {
            const float expected = round_fp8e4m3(value(i, j)) * scales[(i / 128) * 3 + j / 128];
            EXPECT_EQ(out.data<float>()[i * 257 + j], expected) << i << "," << j;
        }
    }
}

TEST(Fp8Dequant, KvAProjectionShape576Rows) {
    const Tensor w = fp8_tensor({576, 128}, [](int64_t, int64_t) { return 1.0f; });
    const Tensor out = dequantize_fp8_block(w, f32_tensor({5, 1}, {1.0f, 2.0f, 3.0f, 4.0f, 0.125f}));
    EXPECT_EQ(out.data<float>()[511 * 128], 4.0f);
    EXPECT_EQ(out.data<float>()[512 * 128], 0.125f);  // the last block has 64 rows
    EXPECT_EQ(out.data<float>()[575 * 128 + 127], 0.125f);
}

TEST(Fp8Dequant, WrongScaleShapeAborts) {
    const Tensor w = fp8_tensor({576, 128}, [](int64_t, int64_t) { return 1.0f; });
    EXPECT_DEATH(dequantize_fp8_block(w, f32_tensor({4, 1}, {1, 1, 1, 1})), "scale_inv.dim\\(0\\)");
}

TEST(Fp8Dequant, Bf16LinearToF32) {
    Tensor w = Tensor::empty({1, 3}, DType::kBF16, Device::kCPU, "w");
    const float values[] = {1.0f, -0.5f, 3.0f};
    for (int i = 0; i < 3; ++i) w.data<uint16_t>()[i] = f32_to_bf16(values[i]);
    const Tensor out = linear_weight_to_f32(backend::LinearWeight{w, Tensor()});
    for (int i = 0; i < 3; ++i) EXPECT_EQ(out.data<float>()[i], values[i]);
}

TEST(Fp8Dequant, DequantizeLinearToBf16RoundsToNearestEven) {
    const Tensor w = fp8_tensor({2, 2}, [](int64_t i, int64_t j) { return i == 0 && j == 0 ? 1.125f : 1.0f; });
    // 1.125 * 1.00390625 = 1.12939453125 is not a bf16 value; RNE gives 1.1328125.
    const Tensor out = dequantize_linear(backend::LinearWeight{w, f32_tensor({1, 1}, {1.00390625f})}, DType::kBF16);
    ASSERT_EQ(out.dtype(), DType::kBF16);
    EXPECT_EQ(bf16_to_f32(out.data<uint16_t>()[0]), round_bf16(1.125f * 1.00390625f));
    EXPECT_EQ(bf16_to_f32(out.data<uint16_t>()[0]), 1.1328125f);
    EXPECT_EQ(bf16_to_f32(out.data<uint16_t>()[3]), 1.0f);  // 1.00390625 ties to even: 1.0
}

TEST(Fp8Dequant, PowerOfTwoScales) {
    EXPECT_TRUE(scales_are_powers_of_two(f32_tensor({1, 4}, {1.0f, 0.5f, 2.0f, std::ldexp(1.0f, -20)})));
    EXPECT_FALSE(scales_are_powers_of_two(f32_tensor({1, 2}, {1.0f, 0.3f})));
    EXPECT_FALSE(scales_are_powers_of_two(f32_tensor({1, 1}, {0.0f})));
    EXPECT_FALSE(scales_are_powers_of_two(f32_tensor({1, 1}, {-2.0f})));
    EXPECT_FALSE(scales_are_powers_of_two(f32_tensor({1, 1}, {std::numeric_limits<float>::infinity()})));
    EXPECT_FALSE(scales_are_powers_of_two(f32_tensor({1, 1}, {std::numeric_limits<float>::denorm_min()})));
}

TEST(Fp8Dequant, ModelScaleReport) {
    testing::TempDir dir;
    const std::string odd = "model.layers.2.mlp.experts.1.gate_proj.weight";
    ASSERT_TRUE(testing::write_tiny_checkpoint(dir.path(), testing::TinySpec{}).is_ok());
    auto config = load_model_config(dir.path());
    auto ckpt = Checkpoint::open(dir.path());
    ASSERT_TRUE(config.is_ok() && ckpt.is_ok());
    auto weights = load_model_weights(*ckpt, *config);
    ASSERT_TRUE(weights.is_ok());
    Fp8ScaleReport report = check_fp8_scales_power_of_two(*weights);
    EXPECT_TRUE(report.all_powers_of_two());
    EXPECT_GT(report.num_fp8_weights, 40);

    testing::TempDir dir2;
    ASSERT_TRUE(testing::write_tiny_checkpoint(dir2.path(), testing::TinySpec{}, [&](auto& t) {
                    testing::find_tiny(t, odd + "_scale_inv")->values[0] = 0.3f;
                }).is_ok());
    auto ckpt2 = Checkpoint::open(dir2.path());
    auto weights2 = load_model_weights(*ckpt2, *config);
    ASSERT_TRUE(weights2.is_ok());
    report = check_fp8_scales_power_of_two(*weights2);
    EXPECT_FALSE(report.all_powers_of_two());
    EXPECT_EQ(report.num_non_power_of_two, 1);
    EXPECT_EQ(report.first_non_power_of_two, odd);
}

}  // namespace
}  // namespace dsa::model
