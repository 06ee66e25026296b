// Element types of tensors and checkpoints: fp32, bf16, fp16, fp8 e4m3 (fn: no inf, NaN = 0x7f/0xff),
// ue8m0 scale bytes, integers. Names match the safetensors dtype strings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace dsa {

enum class DType : uint8_t { kF32, kBF16, kF16, kF8E4M3, kE8M0, kI32, kI64, kI8, kU8, kBool, kF64 };

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);  // "F32", "BF16", "F8_E4M3", ...
std::optional<DType> dtype_from_safetensors(std::string_view name);

}  // namespace dsa
