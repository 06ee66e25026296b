// CPU embedding, RMSNorm (plain and fused with the residual add), LayerNorm, elementwise add, and the
// last-dimension narrow / concat copies. Norm statistics are accumulated in double, applied in f32.
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace dsa::backend::cpu {
namespace {

// Rows x cols view of a tensor with at least one dim (cols = last dim).
int64_t num_rows(const Tensor& t) { return t.numel() / t.dim(-1); }

void check_act(const Tensor& t, const char* what) {
    DSA_CHECK(t.defined() && t.ndim() >= 1) << what;
    DSA_CHECK(t.device() == Device::kCPU && t.is_contiguous()) << what << " must be a contiguous CPU tensor";
    DSA_CHECK(t.dtype() == DType::kF32) << what << " dtype " << dtype_name(t.dtype()) << ", expected F32";
}

// 1 / sqrt(mean(x^2) + eps)
float rms_inv(const float* x, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    return static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
}

}  // namespace

Tensor CpuBackend::embedding(const Tensor& table, const Tensor& ids) {
    DSA_CHECK(table.ndim() == 2 && table.is_contiguous() && table.device() == Device::kCPU) << "embedding table";
    DSA_CHECK(table.dtype() == DType::kBF16 || table.dtype() == DType::kF32) << dtype_name(table.dtype());
    check_tensor(ids, DType::kI32, {-1}, "embedding ids");
    const int64_t vocab = table.dim(0), dim = table.dim(1), n = ids.dim(0);
    Tensor out = Tensor::empty({n, dim}, DType::kF32, Device::kCPU, "embedding");
    for (int64_t t = 0; t < n; ++t) {
        const int64_t id = ids.data<int32_t>()[t];
        DSA_CHECK(id >= 0 && id < vocab) << "token id " << id << " outside vocab " << vocab;
        float* y = out.data<float>() + t * dim;
        for (int64_t i = 0; i < dim; ++i) y[i] = param_at(table, id * dim + i);
        round_act(y, dim);
    }
    return out;
}

Tensor CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps) {
    check_act(x, "rms_norm x");
    const int64_t dim = x.dim(-1), rows = num_rows(x);
    check_param(weight, dim, "rms_norm weight");
    Tensor out = Tensor::empty(x.shape(), DType::kF32, Device::kCPU, "rms_norm");
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x.data<float>() + r * dim;
        float* y = out.data<float>() + r * dim;
        const float inv = rms_inv(xr, dim, eps);
        for (int64_t i = 0; i < dim; ++i) y[i] = act(param_at(weight, i) * (xr[i] * inv));
    }
    return out;
}

Tensor CpuBackend::add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps) {
    check_act(residual, "add_rms_norm residual");
    check_act(delta, "add_rms_norm delta");
    DSA_CHECK(residual.shape() == delta.shape()) << shape_to_string(residual.shape()) << " vs "
                                                 << shape_to_string(delta.shape());
    const int64_t n = residual.numel();
    float* h = residual.data<float>();
    const float* d = delta.data<float>();
    for (int64_t i = 0; i < n; ++i) h[i] = act(h[i] + d[i]);
    return rms_norm(residual, weight, eps);
}

Tensor CpuBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
    check_act(x, "layer_norm x");
    const int64_t dim = x.dim(-1), rows = num_rows(x);
    check_param(weight, dim, "layer_norm weight");
    check_param(bias, dim, "layer_norm bias");
    Tensor out = Tensor::empty(x.shape(), DType::kF32, Device::kCPU, "layer_norm");
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x.data<float>() + r * dim;
        float* y = out.data<float>() + r * dim;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < dim; ++i) mean += xr[i];
        mean /= static_cast<double>(dim);
        for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        const float inv = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(dim) + eps));
        const float m = static_cast<float>(mean);
        for (int64_t i = 0; i < dim; ++i) y[i] = act((xr[i] - m) * inv * param_at(weight, i) + param_at(bias, i));
    }
    return out;
}

Tensor CpuBackend::add(const Tensor& a, const Tensor& b) {
    check_act(a, "add a");
    check_act(b, "add b");
    DSA_CHECK(a.shape() == b.shape()) << shape_to_string(a.shape()) << " vs " << shape_to_string(b.shape());
    Tensor out = Tensor::empty(a.shape(), DType::kF32, Device::kCPU, "add");
    const int64_t n = a.numel();
    for (int64_t i = 0; i < n; ++i) out.data<float>()[i] = act(a.data<float>()[i] + b.data<float>()[i]);
    return out;
}

Tensor CpuBackend::narrow_last(const Tensor& x, int64_t begin, int64_t end) {
    DSA_CHECK(x.defined() && x.ndim() >= 1 && x.is_contiguous() && x.device() == Device::kCPU) << "narrow_last x";
    const int64_t dim = x.dim(-1), rows = num_rows(x), width = end - begin;
    DSA_CHECK(0 <= begin && begin <= end && end <= dim) << "narrow [" << begin << ", " << end << ") of " << dim;
    Shape shape = x.shape();
    shape.back() = width;
    Tensor out = Tensor::empty(shape, x.dtype(), Device::kCPU, x.name() + ".narrow");
    const size_t es = dtype_size(x.dtype());
    const auto* src = static_cast<const uint8_t*>(x.raw_data());
    auto* dst = static_cast<uint8_t*>(out.raw_data());
    for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * width * es, src + (r * dim + begin) * es, width * es);
    return out;
}

Tensor CpuBackend::concat_last(std::span<const Tensor> parts) {
    DSA_CHECK(!parts.empty()) << "concat_last of nothing";
    const Tensor& first = parts[0];
    const int64_t rows = num_rows(first);
    int64_t total = 0;
    for (const Tensor& p : parts) {
        DSA_CHECK(p.is_contiguous() && p.device() == Device::kCPU && p.dtype() == first.dtype()) << "concat part";
        DSA_CHECK(p.ndim() == first.ndim() && num_rows(p) == rows) << shape_to_string(p.shape()) << " vs "
                                                                    << shape_to_string(first.shape());
        total += p.dim(-1);
    }
    Shape shape = first.shape();
    shape.back() = total;
    Tensor out = Tensor::empty(shape, first.dtype(), Device::kCPU, "concat");
    const size_t es = dtype_size(first.dtype());
    auto* dst = static_cast<uint8_t*>(out.raw_data());
    int64_t col = 0;
    for (const Tensor& p : parts) {
        const int64_t w = p.dim(-1);
        const auto* src = static_cast<const uint8_t*>(p.raw_data());
        for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + (r * total + col) * es, src + r * w * es, w * es);
        col += w;
    }
    return out;
}

}  // namespace dsa::backend::cpu
