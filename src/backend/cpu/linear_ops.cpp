// CPU linear layers: x · W^T with FP32 accumulation over the (cached) f32 copy of the weight. FP8 weights are
// block-dequantized once; with Numerics::fp8_activation_quant the input rows are act_quant-ed per 128 channels
// before an FP8-weight linear (the product then equals the FP8 GEMM contract of MODEL_SPEC §7 up to FP32
// summation order). lm_head is the same product with no quantization and no rounding.
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"
#include "backend/cpu/quant.h"

namespace dsa::backend::cpu {

void CpuBackend::matmul(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t t = 0; t < rows; ++t) {
        for (int64_t o = 0; o < out; ++o) {
            const float* xr = x + t * in;
            const float* wr = w + o * in;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t i = 0; i < in; ++i) acc += xr[i] * wr[i];
            y[t * out + o] = acc;
        }
    }
}

Tensor CpuBackend::linear(const Tensor& x, const LinearWeight& w, LinearOutput out_kind) {
    DSA_CHECK(w.defined()) << "linear with an undefined weight";
    const int64_t in = w.in_features(), out = w.out_features();
    check_tensor(x, DType::kF32, {-1, in}, "linear x");
    const int64_t rows = x.dim(0);
    Tensor dense = dense_weight(w);
    const float* xin = x.data<float>();
    Tensor quantized;
    if (w.is_fp8() && numerics_.fp8_activation_quant) {
        quantized = x.clone();
        for (int64_t t = 0; t < rows; ++t) act_quant_dequant_row(quantized.data<float>() + t * in, in,
                                                                 numerics_.ue8m0_scales);
        xin = quantized.data<float>();
    }
    Tensor y = Tensor::empty({rows, out}, DType::kF32, Device::kCPU, w.weight.name() + ".out");
    matmul(xin, rows, in, dense.data<float>(), out, y.data<float>());
    if (out_kind == LinearOutput::kActivation) round_act(y.data<float>(), y.numel());
    return y;
}

Tensor CpuBackend::lm_head(const Tensor& x, const LinearWeight& head) {
    DSA_CHECK(head.defined()) << "lm_head weight undefined";
    check_tensor(x, DType::kF32, {-1, head.in_features()}, "lm_head x");
    Tensor dense = dense_weight(head);
    Tensor y = Tensor::empty({x.dim(0), head.out_features()}, DType::kF32, Device::kCPU, "logits");
    matmul(x.data<float>(), x.dim(0), head.in_features(), dense.data<float>(), head.out_features(),
           y.data<float>());
    return y;
}

}  // namespace dsa::backend::cpu
