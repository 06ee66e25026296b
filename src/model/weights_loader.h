// TensorLoader: fetches single tensors from a Checkpoint with the checks of MODEL_SPEC §2.4 and §7 — shape
// against the config, allowed dtypes, FP8 weight + weight_scale_inv pairing — and records which names were
// consumed. Errors name the tensor, its shard file, what was expected (with the config fields behind a shape)
// and what was found. Internal to model/.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <unordered_set>

#include "backend/linear_weight.h"
#include "base/status.h"
#include "model/checkpoint.h"
#include "tensor/tensor.h"

namespace dsa::model {

class TensorLoader {
  public:
    explicit TensorLoader(const Checkpoint& ckpt) : ckpt_(ckpt) {}

    bool has(const std::string& name) const { return ckpt_.contains(name); }

    // A [size] vector of any float dtype, converted to an owned F32 tensor.
    StatusOr<Tensor> vector_f32(const std::string& name, int64_t size, std::string_view dims);
    // A tensor of `shape` with one of `dtypes`, as a zero-copy view (copied only when misaligned).
    StatusOr<Tensor> plain(const std::string& name, const Shape& shape, std::initializer_list<DType> dtypes,
                           std::string_view dims);
    // `<prefix>.weight` [out, in] BF16/F32, or F8_E4M3 with `<prefix>.weight_scale_inv` F32
    // [ceil(out/128), ceil(in/128)].
    StatusOr<backend::LinearWeight> linear(const std::string& prefix, int64_t out_features, int64_t in_features,
                                           std::string_view dims);

    const std::unordered_set<std::string>& consumed() const { return consumed_; }

  private:
    // The header entry of `name`, marking it consumed; kNotFound when absent.
    StatusOr<const SafetensorsEntry*> entry(const std::string& name);
    Status check_shape(const SafetensorsEntry& e, const Shape& expected, std::string_view dims) const;
    Status check_dtype(const SafetensorsEntry& e, std::initializer_list<DType> dtypes) const;
    StatusOr<Tensor> view(const std::string& name) const;
    std::string where(const std::string& name) const;

    const Checkpoint& ckpt_;
    std::unordered_set<std::string> consumed_;
};

}  // namespace dsa::model
