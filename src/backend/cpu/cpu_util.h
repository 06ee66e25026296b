// Small helpers of the CPU ops: boundary checks (dtype, shape, contiguity, device) and element access that
// works for bf16 or f32 parameter tensors.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "backend/tensor_checks.h"
#include "tensor/numeric.h"
#include "tensor/tensor.h"

namespace dsa::backend::cpu {

// Checks a CPU contiguous tensor of dtype `dt`; `shape` entries < 0 are not checked.
inline void check_tensor(const Tensor& t, DType dt, std::initializer_list<int64_t> shape, const char* what) {
    check_tensor_on(t, Device::kCPU, dt, shape, what);
}

// A bf16 or f32 parameter vector (norm weights, biases) read as f32.
inline float param_at(const Tensor& t, int64_t i) {
    return t.dtype() == DType::kBF16 ? bf16_to_f32(t.data<uint16_t>()[i]) : t.data<float>()[i];
}

inline void check_param(const Tensor& t, int64_t n, const char* what) {
    DSA_CHECK(t.defined() && t.device() == Device::kCPU && t.is_contiguous()) << what;
    DSA_CHECK(t.dtype() == DType::kF32 || t.dtype() == DType::kBF16) << what << " dtype " << dtype_name(t.dtype());
    DSA_CHECK(t.ndim() == 1 && t.dim(0) == n) << what << " " << shape_to_string(t.shape()) << ", expected [" << n
                                              << "]";
}

}  // namespace dsa::backend::cpu
