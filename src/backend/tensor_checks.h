// Op-boundary checks shared by every backend: a tensor must be defined, on the expected device, contiguous,
// of the expected dtype and shape. A failure is a programming error and aborts with the tensor's role.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "tensor/tensor.h"

namespace dsa::backend {

// `shape` entries < 0 are not checked.
void check_tensor_on(const Tensor& t, Device device, DType dt, std::initializer_list<int64_t> shape,
                     const char* what);

}  // namespace dsa::backend
