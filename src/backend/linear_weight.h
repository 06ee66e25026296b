// LinearWeight: one nn.Linear weight as it sits in a checkpoint, shared by the loader (model/) and the ops
// (backend/). Either BF16/F32 [out, in], or FP8 e4m3 [out, in] with its float32 weight_scale_inv
// [ceil(out/128), ceil(in/128)] (DeepSeek 128x128 block scaling; edge blocks may be partial).
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace dsa::backend {

constexpr int64_t kWeightBlock = 128;

struct LinearWeight {
    Tensor weight;     // [out, in] bf16 | f32 | f8_e4m3
    Tensor scale_inv;  // [ceil(out/128), ceil(in/128)] f32; undefined unless weight is f8_e4m3

    bool defined() const { return weight.defined(); }
    bool is_fp8() const { return weight.defined() && weight.dtype() == DType::kF8E4M3; }
    int64_t out_features() const { return weight.dim(0); }
    int64_t in_features() const { return weight.dim(1); }
};

}  // namespace dsa::backend
