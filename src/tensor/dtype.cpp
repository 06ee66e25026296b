// DType sizes and names.
#include "tensor/dtype.h"

namespace dsa {

size_t dtype_size(DType dt) {
    switch (dt) {
        case DType::kF32: return 4;
        case DType::kBF16: return 2;
        case DType::kF16: return 2;
        case DType::kF8E4M3: return 1;
        case DType::kE8M0: return 1;
        case DType::kI32: return 4;
        case DType::kI64: return 8;
        case DType::kI8: return 1;
        case DType::kU8: return 1;
        case DType::kBool: return 1;
        case DType::kF64: return 8;
    }
    return 0;
}

const char* dtype_name(DType dt) {
    switch (dt) {
        case DType::kF32: return "F32";
        case DType::kBF16: return "BF16";
        case DType::kF16: return "F16";
        case DType::kF8E4M3: return "F8_E4M3";
        case DType::kE8M0: return "F8_E8M0";
        case DType::kI32: return "I32";
        case DType::kI64: return "I64";
        case DType::kI8: return "I8";
        case DType::kU8: return "U8";
        case DType::kBool: return "BOOL";
        case DType::kF64: return "F64";
    }
    return "?";
}

std::optional<DType> dtype_from_safetensors(std::string_view n) {
    if (n == "F32") return DType::kF32;
    if (n == "BF16") return DType::kBF16;
    if (n == "F16") return DType::kF16;
    if (n == "F8_E4M3") return DType::kF8E4M3;
    if (n == "F8_E8M0") return DType::kE8M0;
    if (n == "I32") return DType::kI32;
    if (n == "I64") return DType::kI64;
    if (n == "I8") return DType::kI8;
    if (n == "U8") return DType::kU8;
    if (n == "BOOL") return DType::kBool;
    if (n == "F64") return DType::kF64;
    return std::nullopt;
}

}  // namespace dsa
