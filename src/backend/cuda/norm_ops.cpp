// CudaBackend embedding, norms (rms_norm_q8 / add_rms_norm_q8 also write the act_quant of their output for the
// FP8 linears), elementwise add, last-dimension narrow / concat (strided device copies) and RoPE: tensor-level
// checks, then one kernel launch each (kernels.h). The RoPE table is built on the host with the reference's
// arithmetic (f32 angle, double cos/sin) and uploaded.
#include <cmath>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace dsa::backend::cuda {
namespace {

int64_t num_rows(const Tensor& t) { return t.dim(-1) == 0 ? 0 : t.numel() / t.dim(-1); }

}  // namespace

Tensor CudaBackend::embedding(const Tensor& table, const Tensor& ids) {
    DSA_CHECK(table.defined() && table.ndim() == 2) << "embedding table must be 2-d";
    DSA_CHECK(table.dtype() == DType::kBF16 || table.dtype() == DType::kF32) << dtype_name(table.dtype());
    DSA_CHECK(ids.defined() && ids.ndim() == 1) << "embedding ids must be [T]";
    const int64_t vocab = table.dim(0), dim = table.dim(1), n = ids.dim(0);
    Tensor dtable = cached_device_copy(table);
    Tensor dids = device_indices(ids, vocab, "embedding ids");
    Tensor out = Tensor::empty({n, dim}, DType::kBF16, Device::kCUDA, "embedding");
    launch_embedding({dtable.raw_data(), dids.data<int32_t>(), out.data<uint16_t>(), n, dim, vocab,
                      table.dtype() == DType::kF32},
                     stream_);
    return out;
}

QuantizedAct CudaBackend::norm_maybe_quant(Tensor& residual, const Tensor* delta, const Tensor& weight, float eps,
                                           bool quant) {
    RmsNormParams p;
    Tensor w;
    QuantizedAct out = norm_prepare(residual, delta, weight, eps, quant, p, w);
    launch_rms_norm(p, stream_);
    return out;
}

QuantizedAct CudaBackend::norm_prepare(Tensor& residual, const Tensor* delta, const Tensor& weight, float eps,
                                       bool quant, RmsNormParams& p, Tensor& w) {
    check_activation(residual, delta ? "add_rms_norm residual" : "rms_norm x");
    if (delta != nullptr) {
        check_activation(*delta, "add_rms_norm delta");
        DSA_CHECK(residual.shape() == delta->shape()) << shape_to_string(residual.shape()) << " vs "
                                                      << shape_to_string(delta->shape());
    }
    const int64_t dim = residual.dim(-1), rows = num_rows(residual);
    w = param_f32(weight, dim, "rms_norm weight");  // the caller holds it until the launch
    QuantizedAct out;
    out.x = Tensor::empty(residual.shape(), DType::kBF16, Device::kCUDA, delta ? "add_rms_norm" : "rms_norm");
    p = RmsNormParams{residual.data<uint16_t>(), delta ? delta->data<uint16_t>() : nullptr, w.data<float>(),
                      out.x.data<uint16_t>(), rows, dim, eps};
    // The act_quant the FP8 streaming linears would make of this output (at most kFp8StreamMaxRows rows).
    if (quant && fused_decode_enabled() && numerics_.fp8_activation_quant && residual.ndim() == 2 && rows >= 1 &&
        rows <= kFp8StreamMaxRows && dim % 128 == 0) {
        Tensor q8 = Tensor::empty({rows, dim}, DType::kF8E4M3, Device::kCUDA, "norm.fp8");
        p.q8 = q8.data<uint8_t>();
        p.ue8m0 = numerics_.ue8m0_scales;
        if (rms_norm_quant_supported(p)) {
            out.q8 = q8;
            out.scales = Tensor::empty({dim / 128, rows}, DType::kF32, Device::kCUDA, "norm.scales");
            p.q8_scales = out.scales.data<float>();
        } else {
            p.q8 = nullptr;
        }
    }
    return out;
}

Tensor CudaBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps) {
    // The residual pointer of a norm without delta is read only.
    Tensor& r = const_cast<Tensor&>(x);
    return norm_maybe_quant(r, nullptr, weight, eps, false).x;
}

Tensor CudaBackend::add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps) {
    return norm_maybe_quant(residual, &delta, weight, eps, false).x;
}

QuantizedAct CudaBackend::rms_norm_q8(const Tensor& x, const Tensor& weight, float eps) {
    Tensor& r = const_cast<Tensor&>(x);  // read only without delta
    return norm_maybe_quant(r, nullptr, weight, eps, true);
}

QuantizedAct CudaBackend::add_rms_norm_q8(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps) {
    return norm_maybe_quant(residual, &delta, weight, eps, true);
}

Tensor CudaBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
    check_activation(x, "layer_norm x");
    const int64_t dim = x.dim(-1);
    Tensor w = param_f32(weight, dim, "layer_norm weight");
    Tensor b = param_f32(bias, dim, "layer_norm bias");
    Tensor out = Tensor::empty(x.shape(), DType::kBF16, Device::kCUDA, "layer_norm");
    launch_layer_norm({x.data<uint16_t>(), w.data<float>(), b.data<float>(), out.data<uint16_t>(), num_rows(x), dim,
                       eps},
                      stream_);
    return out;
}

Tensor CudaBackend::add(const Tensor& a, const Tensor& b) {
    check_activation(a, "add a");
    check_activation(b, "add b");
    DSA_CHECK(a.shape() == b.shape()) << shape_to_string(a.shape()) << " vs " << shape_to_string(b.shape());
    Tensor out = Tensor::empty(a.shape(), DType::kBF16, Device::kCUDA, "add");
    launch_add({a.data<uint16_t>(), b.data<uint16_t>(), out.data<uint16_t>(), a.numel()}, stream_);
    return out;
}

Tensor CudaBackend::narrow_last(const Tensor& x, int64_t begin, int64_t end) {
    DSA_CHECK(x.defined() && x.ndim() >= 1 && x.is_contiguous() && x.device() == Device::kCUDA) << "narrow_last x";
    const int64_t dim = x.dim(-1), rows = num_rows(x), width = end - begin;
    DSA_CHECK(0 <= begin && begin <= end && end <= dim) << "narrow [" << begin << ", " << end << ") of " << dim;
    Shape shape = x.shape();
    shape.back() = width;
    Tensor out = Tensor::empty(shape, x.dtype(), Device::kCUDA, x.name() + ".narrow");
    const size_t es = dtype_size(x.dtype());
    if (rows > 0 && width > 0) {
        const auto* src = static_cast<const uint8_t*>(x.raw_data()) + begin * es;
        DSA_CUDA_CHECK(cudaMemcpy2DAsync(out.raw_data(), width * es, src, dim * es, width * es, rows,
                                         cudaMemcpyDeviceToDevice, stream_));
    }
    return out;
}

Tensor CudaBackend::concat_last(std::span<const Tensor> parts) {
    DSA_CHECK(!parts.empty()) << "concat_last of nothing";
    const Tensor& first = parts[0];
    const int64_t rows = num_rows(first);
    int64_t total = 0;
    for (const Tensor& p : parts) {
        DSA_CHECK(p.is_contiguous() && p.device() == Device::kCUDA && p.dtype() == first.dtype()) << "concat part";
        DSA_CHECK(p.ndim() == first.ndim() && num_rows(p) == rows) << shape_to_string(p.shape()) << " vs "
                                                                    << shape_to_string(first.shape());
        total += p.dim(-1);
    }
    Shape shape = first.shape();
    shape.back() = total;
    Tensor out = Tensor::empty(shape, first.dtype(), Device::kCUDA, "concat");
    const size_t es = dtype_size(first.dtype());
    int64_t col = 0;
    for (const Tensor& p : parts) {
        const int64_t w = p.dim(-1);
        if (rows > 0 && w > 0) {
            DSA_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<uint8_t*>(out.raw_data()) + col * es, total * es, p.raw_data(),
                                             w * es, w * es, rows, cudaMemcpyDeviceToDevice, stream_));
        }
        col += w;
    }
    return out;
}

RopeTable CudaBackend::make_rope_table(std::span<const float> inv_freq, int64_t max_positions) {
    DSA_CHECK(!inv_freq.empty() && max_positions > 0) << "rope table " << inv_freq.size() << " x " << max_positions;
    const int64_t half = static_cast<int64_t>(inv_freq.size());
    Tensor c = Tensor::empty({max_positions, half}, DType::kF32, Device::kCPU, "rope_cos");
    Tensor s = Tensor::empty({max_positions, half}, DType::kF32, Device::kCPU, "rope_sin");
    for (int64_t p = 0; p < max_positions; ++p) {
        for (int64_t i = 0; i < half; ++i) {
            const float angle = static_cast<float>(p) * inv_freq[i];
            c.data<float>()[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
            s.data<float>()[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
        }
    }
    return RopeTable{to_device(c), to_device(s)};
}

void CudaBackend::apply_rope(const RopeParams& p) {
    DSA_CHECK(p.table != nullptr) << "apply_rope without a table";
    check_device_tensor(p.x, DType::kBF16, {-1, -1, -1}, "rope x");
    const int64_t tokens = p.x.dim(0), heads = p.x.dim(1), dim = p.x.dim(2);
    const int64_t rot = p.table->rot_dim(), half = rot / 2, max_pos = p.table->max_positions();
    DSA_CHECK(p.positions.defined() && p.positions.ndim() == 1 && p.positions.dim(0) == tokens)
        << "rope positions must be [" << tokens << "]";
    DSA_CHECK(p.dim_offset >= 0 && p.dim_offset + rot <= dim) << "rope dims [" << p.dim_offset << ", "
                                                              << p.dim_offset + rot << ") of head dim " << dim;
    DSA_CHECK(p.table->cos.dtype() == DType::kF32 && p.table->sin.dtype() == DType::kF32) << "rope table dtype";
    Tensor cos = cached_device_copy(p.table->cos), sin = cached_device_copy(p.table->sin);
    Tensor pos = device_indices(p.positions, max_pos, "rope positions");
    launch_rope({p.x.data<uint16_t>(), pos.data<int32_t>(), cos.data<float>(), sin.data<float>(), tokens, heads, dim,
                 p.dim_offset, half, max_pos, p.layout == RopeLayout::kInterleaved},
                stream_);
}

}  // namespace dsa::backend::cuda
