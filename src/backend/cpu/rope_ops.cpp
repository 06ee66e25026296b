// CPU RoPE: cos/sin tables from caller-given inverse frequencies (angle p * inv_freq computed in f32, as
// torch.outer does), and the in-place rotation of a dim range of every head in the interleaved (pairs 2i, 2i+1)
// or NeoX half-split (pairs i, i + R/2) layout. Rotation: (a, b) -> (a cos - b sin, a sin + b cos).
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace dsa::backend::cpu {

RopeTable CpuBackend::make_rope_table(std::span<const float> inv_freq, int64_t max_positions) {
    DSA_CHECK(!inv_freq.empty() && max_positions > 0) << "rope table " << inv_freq.size() << " x " << max_positions;
    const int64_t half = static_cast<int64_t>(inv_freq.size());
    RopeTable t{Tensor::empty({max_positions, half}, DType::kF32, Device::kCPU, "rope_cos"),
                Tensor::empty({max_positions, half}, DType::kF32, Device::kCPU, "rope_sin")};
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < max_positions; ++p) {
        for (int64_t i = 0; i < half; ++i) {
            const float angle = static_cast<float>(p) * inv_freq[i];
            t.cos.data<float>()[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
            t.sin.data<float>()[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
        }
    }
    return t;
}

void CpuBackend::apply_rope(const RopeParams& p) {
    DSA_CHECK(p.table != nullptr) << "apply_rope without a table";
    check_tensor(p.x, DType::kF32, {-1, -1, -1}, "rope x");
    const int64_t tokens = p.x.dim(0), heads = p.x.dim(1), dim = p.x.dim(2);
    const int64_t rot = p.table->rot_dim(), half = rot / 2;
    check_tensor(p.positions, DType::kI32, {tokens}, "rope positions");
    DSA_CHECK(p.dim_offset >= 0 && p.dim_offset + rot <= dim) << "rope dims [" << p.dim_offset << ", "
                                                              << p.dim_offset + rot << ") of head dim " << dim;
    // Index of the two elements of pair i within the rotated range.
    const bool interleaved = p.layout == RopeLayout::kInterleaved;
    for (int64_t t = 0; t < tokens; ++t) {
        const int64_t pos = p.positions.data<int32_t>()[t];
        DSA_CHECK(pos >= 0 && pos < p.table->max_positions()) << "position " << pos;
        const float* c = p.table->cos.data<float>() + pos * half;
        const float* s = p.table->sin.data<float>() + pos * half;
        for (int64_t h = 0; h < heads; ++h) {
            float* x = p.x.data<float>() + (t * heads + h) * dim + p.dim_offset;
            for (int64_t i = 0; i < half; ++i) {
                float& a = x[interleaved ? 2 * i : i];
                float& b = x[interleaved ? 2 * i + 1 : i + half];
                const float a0 = a, b0 = b;
                a = act(a0 * c[i] - b0 * s[i]);
                b = act(a0 * s[i] + b0 * c[i]);
            }
        }
    }
}

}  // namespace dsa::backend::cpu
