// Reference FP8 quantization, block dequantization and the Hadamard rotation (see quant.h).
#include "backend/cpu/quant.h"

#include <algorithm>
#include <cmath>

#include "tensor/numeric.h"

namespace dsa::backend::cpu {

float act_quant_scale(float amax, bool ue8m0) {
    float s = std::max(amax, kActQuantMinAmax) / kFp8E4M3Max;
    return ue8m0 ? pow2_ceil(s) : s;
}

float kv_fp8_scale(float amax) { return pow2_ceil(std::max(amax / kFp8E4M3Max, kActQuantMinAmax)); }

void quantize_e4m3(const float* x, int64_t n, float s, uint8_t* out) {
    // std::clamp passes NaN through, and f32_to_fp8e4m3 keeps it NaN.
    for (int64_t i = 0; i < n; ++i) out[i] = f32_to_fp8e4m3(std::clamp(x[i] / s, -kFp8E4M3Max, kFp8E4M3Max));
}

static float block_amax(const float* x, int64_t n) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
    return amax;
}

float act_quant_block(const float* x, int64_t n, bool ue8m0, uint8_t* out) {
    DSA_CHECK(n > 0 && n <= kQuantBlock) << "act_quant block of " << n;
    float s = act_quant_scale(block_amax(x, n), ue8m0);
    quantize_e4m3(x, n, s, out);
    return s;
}

void act_quant_dequant_row(float* x, int64_t n, bool ue8m0) {
    uint8_t q[kQuantBlock];
    for (int64_t b = 0; b < n; b += kQuantBlock) {
        int64_t len = std::min(kQuantBlock, n - b);
        float s = act_quant_block(x + b, len, ue8m0, q);
        for (int64_t i = 0; i < len; ++i) x[b + i] = fp8e4m3_to_f32(q[i]) * s;
    }
}

Tensor dequant_fp8_weight(const LinearWeight& w) {
    DSA_CHECK(w.is_fp8()) << "dequant_fp8_weight of a " << dtype_name(w.weight.dtype()) << " weight";
    const int64_t out = w.out_features(), in = w.in_features();
    const int64_t rb = (out + kWeightBlock - 1) / kWeightBlock, cb = (in + kWeightBlock - 1) / kWeightBlock;
    DSA_CHECK(w.scale_inv.defined() && w.scale_inv.dtype() == DType::kF32) << "fp8 weight without f32 scale_inv";
    DSA_CHECK(w.scale_inv.ndim() == 2 && w.scale_inv.dim(0) == rb && w.scale_inv.dim(1) == cb)
        << "scale_inv " << shape_to_string(w.scale_inv.shape()) << " for weight " << shape_to_string(w.weight.shape());
    Tensor r = Tensor::empty({out, in}, DType::kF32, Device::kCPU, w.weight.name() + ".dequant");
    const uint8_t* q = w.weight.data<uint8_t>();
    const float* s = w.scale_inv.data<float>();
    float* y = r.data<float>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < out; ++i) {
        for (int64_t j = 0; j < in; ++j) y[i * in + j] = fp8e4m3_to_f32(q[i * in + j]) * s[(i / 128) * cb + j / 128];
    }
    return r;
}

Tensor weight_to_f32(const LinearWeight& w) {
    DSA_CHECK(w.defined() && w.weight.ndim() == 2) << "linear weight must be 2-d";
    DSA_CHECK(w.weight.is_contiguous() && w.weight.device() == Device::kCPU) << w.weight.name();
    if (w.is_fp8()) return dequant_fp8_weight(w);
    if (w.weight.dtype() == DType::kF32) return w.weight.clone();
    DSA_CHECK(w.weight.dtype() == DType::kBF16) << "unsupported weight dtype " << dtype_name(w.weight.dtype());
    Tensor r = Tensor::empty(w.weight.shape(), DType::kF32, Device::kCPU, w.weight.name() + ".f32");
    const uint16_t* b = w.weight.data<uint16_t>();
    float* y = r.data<float>();
    const int64_t n = r.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(b[i]);
    return r;
}

void hadamard128(float* x) {
    for (int h = 1; h < 128; h *= 2) {
        for (int i = 0; i < 128; i += 2 * h) {
            for (int j = i; j < i + h; ++j) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
    }
    const float scale = 1.0f / std::sqrt(128.0f);
    for (int i = 0; i < 128; ++i) x[i] *= scale;
}

}  // namespace dsa::backend::cpu
