// Single-tensor fetching and checking for the weight loader (see weights_loader.h).
#include "model/weights_loader.h"

#include <cstring>

#include "tensor/numeric.h"

namespace dsa::model {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string dtype_list(std::initializer_list<DType> dtypes) {
    std::string out;
    for (DType d : dtypes) out += (out.empty() ? "" : " or ") + std::string(dtype_name(d));
    return out;
}

bool is_float_vector_dtype(DType d) { return d == DType::kF32 || d == DType::kBF16 || d == DType::kF16; }

float element_as_f32(const Tensor& t, int64_t i) {
    const auto* bytes = static_cast<const uint8_t*>(t.raw_data());
    switch (t.dtype()) {
        case DType::kBF16:
        case DType::kF16: {
            uint16_t bits;
            std::memcpy(&bits, bytes + 2 * i, 2);
            return t.dtype() == DType::kBF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
        }
        default: {
            float f;
            std::memcpy(&f, bytes + 4 * i, 4);
            return f;
        }
    }
}

}  // namespace

std::string TensorLoader::where(const std::string& name) const {
    return fmt::format("tensor '{}' in {}", name, ckpt_.file_of(name));
}

StatusOr<const SafetensorsEntry*> TensorLoader::entry(const std::string& name) {
    const SafetensorsEntry* e = ckpt_.find(name);
    if (e == nullptr) {
        return not_found("{}: tensor '{}' is missing from the checkpoint ({})", ckpt_.path(), name, ckpt_.source());
    }
    consumed_.insert(name);
    return e;
}

Status TensorLoader::check_shape(const SafetensorsEntry& e, const Shape& expected, std::string_view dims) const {
    if (e.shape == expected) return Status::ok();
    return data_loss("{}: shape {}, expected {} ({})", where(e.name), shape_to_string(e.shape),
                     shape_to_string(expected), dims);
}

Status TensorLoader::check_dtype(const SafetensorsEntry& e, std::initializer_list<DType> dtypes) const {
    for (DType d : dtypes) {
        if (e.dtype == d) return Status::ok();
    }
    return data_loss("{}: dtype {}, expected {}", where(e.name), dtype_name(e.dtype), dtype_list(dtypes));
}

StatusOr<Tensor> TensorLoader::view(const std::string& name) const {
    DSA_ASSIGN_OR_RETURN(Tensor t, ckpt_.tensor(name));
    const auto address = reinterpret_cast<uintptr_t>(t.raw_data());
    if (address % dtype_size(t.dtype()) != 0) t = t.clone().set_name(name);  // misaligned in the file
    return t;
}

StatusOr<Tensor> TensorLoader::vector_f32(const std::string& name, int64_t size, std::string_view dims) {
    DSA_ASSIGN_OR_RETURN(const SafetensorsEntry* e, entry(name));
    DSA_RETURN_IF_ERROR(check_shape(*e, Shape{size}, dims));
    if (!is_float_vector_dtype(e->dtype)) {
        return data_loss("{}: dtype {}, expected a float dtype (F32, BF16 or F16)", where(name), dtype_name(e->dtype));
    }
    DSA_ASSIGN_OR_RETURN(Tensor source, ckpt_.tensor(name));
    Tensor out = Tensor::empty({size}, DType::kF32, Device::kCPU, name);
    for (int64_t i = 0; i < size; ++i) out.data<float>()[i] = element_as_f32(source, i);
    return out;
}

StatusOr<Tensor> TensorLoader::plain(const std::string& name, const Shape& shape, std::initializer_list<DType> dtypes,
                                     std::string_view dims) {
    DSA_ASSIGN_OR_RETURN(const SafetensorsEntry* e, entry(name));
    DSA_RETURN_IF_ERROR(check_shape(*e, shape, dims));
    DSA_RETURN_IF_ERROR(check_dtype(*e, dtypes));
    return view(name);
}

StatusOr<backend::LinearWeight> TensorLoader::linear(const std::string& prefix, int64_t out_features,
                                                     int64_t in_features, std::string_view dims) {
    const std::string weight_name = prefix + ".weight";
    const std::string scale_name = prefix + ".weight_scale_inv";
    DSA_ASSIGN_OR_RETURN(const SafetensorsEntry* w, entry(weight_name));
    DSA_RETURN_IF_ERROR(check_shape(*w, Shape{out_features, in_features}, dims));
    DSA_RETURN_IF_ERROR(check_dtype(*w, {DType::kF8E4M3, DType::kBF16, DType::kF32}));
    backend::LinearWeight linear;
    DSA_ASSIGN_OR_RETURN(linear.weight, view(weight_name));
    if (w->dtype != DType::kF8E4M3) return linear;
    if (!ckpt_.contains(scale_name)) {
        return data_loss("{}: F8_E4M3 weight needs '{}' (F32 block scales), which is not in the checkpoint ({})",
                         where(weight_name), scale_name, ckpt_.source());
    }
    DSA_ASSIGN_OR_RETURN(const SafetensorsEntry* s, entry(scale_name));
    const Shape scale_shape{ceil_div(out_features, backend::kWeightBlock),
                            ceil_div(in_features, backend::kWeightBlock)};
    DSA_RETURN_IF_ERROR(check_shape(
        *s, scale_shape, fmt::format("[ceil(out/128), ceil(in/128)] for weight [{}, {}]", out_features, in_features)));
    DSA_RETURN_IF_ERROR(check_dtype(*s, {DType::kF32}));
    DSA_ASSIGN_OR_RETURN(linear.scale_inv, view(scale_name));
    return linear;
}

}  // namespace dsa::model
