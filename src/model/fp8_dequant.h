// FP8 block dequantization of checkpoint weights (MODEL_SPEC §7): W[i,j] = e4m3(W8[i,j]) * scale_inv[i/128, j/128],
// with partial edge blocks (e.g. 576 rows = 5 row blocks). Used at load time (kv_b_proj for absorbed MLA, the
// BF16 fallback) and by tests; the backends have their own GEMM paths. Also the load-time check whether every
// scale_inv is an exact power of two (MODEL_SPEC §11.2), which UE8M0-only kernels need.
#pragma once

#include <cstdint>
#include <string>

#include "backend/linear_weight.h"
#include "model/weights.h"
#include "tensor/tensor.h"

namespace dsa::model {

// [out, in] f32 from an F8_E4M3 [out, in] weight and its F32 [ceil(out/128), ceil(in/128)] scale_inv.
// Shapes and dtypes are invariants of loaded weights (checked with DSA_CHECK).
Tensor dequantize_fp8_block(const Tensor& weight, const Tensor& scale_inv);

// [out, in] f32 from any LinearWeight: FP8 is dequantized, BF16/F32 converted.
Tensor linear_weight_to_f32(const backend::LinearWeight& linear);

// [out, in] in `out_dtype` (kF32 or kBF16, round-to-nearest-even), e.g. kv_b_proj for absorbed MLA (MODEL_SPEC
// §2.4 rule 3) or the BF16 fallback GEMM path.
Tensor dequantize_linear(const backend::LinearWeight& linear, DType out_dtype);

// True when every element of an F32 scale tensor is a positive power of two (mantissa bits zero, not a
// subnormal, not inf/NaN).
bool scales_are_powers_of_two(const Tensor& scale_inv);

struct Fp8ScaleReport {
    int64_t num_fp8_weights = 0;
    int64_t num_non_power_of_two = 0;
    std::string first_non_power_of_two;  // weight name, empty when none

    bool all_powers_of_two() const { return num_non_power_of_two == 0; }
};

// Checks every FP8 LinearWeight of the model (reads all scale tensors: a few hundred MB on the full models).
Fp8ScaleReport check_fp8_scales_power_of_two(const ModelWeights& weights);

}  // namespace dsa::model
