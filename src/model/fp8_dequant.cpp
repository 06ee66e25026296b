// FP8 block dequantization and the power-of-two scale check (see fp8_dequant.h).
#include "model/fp8_dequant.h"

#include <cstring>

#include "tensor/numeric.h"

namespace dsa::model {
namespace {

constexpr int64_t kBlock = backend::kWeightBlock;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

Tensor dequantize_fp8_block(const Tensor& weight, const Tensor& scale_inv) {
    DSA_CHECK(weight.dtype() == DType::kF8E4M3 && weight.ndim() == 2) << weight.name();
    DSA_CHECK(scale_inv.dtype() == DType::kF32 && scale_inv.ndim() == 2) << scale_inv.name();
    DSA_CHECK(weight.is_contiguous() && scale_inv.is_contiguous()) << weight.name();
    const int64_t rows = weight.dim(0);
    const int64_t cols = weight.dim(1);
    DSA_CHECK_EQ(scale_inv.dim(0), ceil_div(rows, kBlock)) << weight.name();
    DSA_CHECK_EQ(scale_inv.dim(1), ceil_div(cols, kBlock)) << weight.name();
    const int64_t scale_cols = scale_inv.dim(1);
    Tensor out = Tensor::empty({rows, cols}, DType::kF32, Device::kCPU, weight.name() + ".dequant");
    const auto* w8 = weight.data<const uint8_t>();
    const auto* scale_bytes = static_cast<const uint8_t*>(scale_inv.raw_data());
    float* dst = out.data<float>();
    for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < cols; ++j) {
            float scale;
            std::memcpy(&scale, scale_bytes + 4 * ((i / kBlock) * scale_cols + j / kBlock), 4);
            dst[i * cols + j] = fp8e4m3_to_f32(w8[i * cols + j]) * scale;
        }
    }
    return out;
}

Tensor linear_weight_to_f32(const backend::LinearWeight& linear) {
    DSA_CHECK(linear.defined());
    const Tensor& w = linear.weight;
    if (linear.is_fp8()) return dequantize_fp8_block(w, linear.scale_inv);
    DSA_CHECK(w.is_contiguous() && (w.dtype() == DType::kBF16 || w.dtype() == DType::kF32)) << w.name();
    Tensor out = Tensor::empty(w.shape(), DType::kF32, Device::kCPU, w.name() + ".f32");
    const auto* src = static_cast<const uint8_t*>(w.raw_data());
    for (int64_t i = 0; i < w.numel(); ++i) {
        if (w.dtype() == DType::kF32) {
            std::memcpy(out.data<float>() + i, src + 4 * i, 4);
        } else {
            uint16_t bits;
            std::memcpy(&bits, src + 2 * i, 2);
            out.data<float>()[i] = bf16_to_f32(bits);
        }
    }
    return out;
}

Tensor dequantize_linear(const backend::LinearWeight& linear, DType out_dtype) {
    DSA_CHECK(out_dtype == DType::kF32 || out_dtype == DType::kBF16) << dtype_name(out_dtype);
    Tensor f32 = linear_weight_to_f32(linear);
    if (out_dtype == DType::kF32) return f32;
    Tensor out = Tensor::empty(f32.shape(), DType::kBF16, Device::kCPU, linear.weight.name() + ".bf16");
    for (int64_t i = 0; i < f32.numel(); ++i) out.data<uint16_t>()[i] = f32_to_bf16(f32.data<float>()[i]);
    return out;
}

bool scales_are_powers_of_two(const Tensor& scale_inv) {
    DSA_CHECK(scale_inv.dtype() == DType::kF32 && scale_inv.is_contiguous()) << scale_inv.name();
    const auto* bytes = static_cast<const uint8_t*>(scale_inv.raw_data());
    for (int64_t i = 0; i < scale_inv.numel(); ++i) {
        uint32_t bits;
        std::memcpy(&bits, bytes + 4 * i, 4);
        const uint32_t exponent = (bits >> 23) & 0xffu;
        const bool positive_normal = (bits >> 31) == 0 && exponent != 0 && exponent != 0xffu;
        if (!positive_normal || (bits & 0x7fffffu) != 0) return false;
    }
    return true;
}

Fp8ScaleReport check_fp8_scales_power_of_two(const ModelWeights& weights) {
    Fp8ScaleReport report;
    for_each_linear(weights, [&](const std::string& name, const backend::LinearWeight& w) {
        if (!w.is_fp8()) return;
        ++report.num_fp8_weights;
        if (scales_are_powers_of_two(w.scale_inv)) return;
        if (report.num_non_power_of_two++ == 0) report.first_non_power_of_two = name;
    });
    return report;
}

}  // namespace dsa::model
