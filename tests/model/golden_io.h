// Readers shared by the CPU and GPU model-parity tests: where a golden fixture lives and how its reference
// tensors (reference.safetensors, written by tools/gen_golden.py) are taken out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/check.h"
#include "model/safetensors.h"

namespace dsa::model::golden {

inline std::string fixture_dir(const std::string& name) {
    return std::string(DSA_SOURCE_DIR) + "/tests/golden/" + name;
}

inline std::vector<int32_t> to_ids(const Tensor& t) {
    const int32_t* p = t.data<int32_t>();
    return std::vector<int32_t>(p, p + t.numel());
}

// An owned copy of a tensor the fixture must hold (aborts naming it otherwise).
inline Tensor must(const SafetensorsFile& f, const std::string& name) {
    StatusOr<Tensor> t = f.tensor(name);
    DSA_CHECK(t.is_ok()) << t.status().to_string();
    return t->clone();
}

}  // namespace dsa::model::golden
