// Helpers of the backend unit tests: random tensors and weights, and a scale-free error metric.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

#include "backend/linear_weight.h"
#include "tensor/numeric.h"
#include "tensor/tensor.h"

namespace dsa::backend::testing {

inline Tensor random_f32(const Shape& shape, std::mt19937& rng, float scale = 1.0f) {
    Tensor t = Tensor::empty(shape, DType::kF32);
    std::normal_distribution<float> dist(0.0f, scale);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
    return t;
}

inline Tensor i32_tensor(const std::vector<int32_t>& v, Shape shape = {}) {
    if (shape.empty()) shape = {static_cast<int64_t>(v.size())};
    Tensor t = Tensor::empty(shape, DType::kI32);
    for (size_t i = 0; i < v.size(); ++i) t.data<int32_t>()[i] = v[i];
    return t;
}

inline Tensor to_bf16(const Tensor& f) {
    Tensor t = Tensor::empty(f.shape(), DType::kBF16);
    for (int64_t i = 0; i < f.numel(); ++i) t.data<uint16_t>()[i] = f32_to_bf16(f.data<float>()[i]);
    return t;
}

// A random FP8 block-scaled weight [out, in] (no NaN codes) with random positive scales.
inline LinearWeight random_fp8_weight(int64_t out, int64_t in, std::mt19937& rng) {
    LinearWeight w;
    w.weight = Tensor::empty({out, in}, DType::kF8E4M3);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int64_t i = 0; i < w.weight.numel(); ++i) {
        int b = byte(rng);
        if ((b & 0x7f) == 0x7f) b &= 0xfe;  // avoid NaN
        w.weight.data<uint8_t>()[i] = static_cast<uint8_t>(b);
    }
    w.scale_inv = Tensor::empty({(out + 127) / 128, (in + 127) / 128}, DType::kF32);
    std::uniform_real_distribution<float> sc(0.5e-3f, 2e-3f);
    for (int64_t i = 0; i < w.scale_inv.numel(); ++i) w.scale_inv.data<float>()[i] = sc(rng);
    return w;
}

inline double rel_l2(const float* a, const float* b, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
        den += static_cast<double>(b[i]) * b[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

inline double rel_l2(const Tensor& a, const Tensor& b) {
    return rel_l2(a.data<float>(), b.data<float>(), b.numel());
}

}  // namespace dsa::backend::testing
