// CpuBackend construction, host/device copies (identities on the CPU) and the dense weight cache.
#include "backend/cpu/cpu_backend.h"

#include <cstring>

#include "backend/cpu/quant.h"
#include "backend/decode_inputs.h"

namespace dsa::backend {

std::unique_ptr<Backend> make_cpu_backend(const Numerics& numerics) {
    return std::make_unique<cpu::CpuBackend>(numerics);
}

namespace cpu {

Tensor CpuBackend::to_device(const Tensor& host) {
    DSA_CHECK(host.device() == Device::kCPU) << "to_device expects a host tensor";
    return host;
}

Tensor CpuBackend::to_host(const Tensor& t) {
    DSA_CHECK(t.device() == Device::kCPU) << "CPU backend got a device tensor";
    return t;
}

DecodeSlots CpuBackend::decode_slots(const Tensor& page_table, const Tensor& positions, int64_t page_size,
                                     int64_t width) {
    check_decode_slots_args(page_table, positions, page_size, width, Device::kCPU);
    DecodeSlots r;
    r.key_slots = Tensor::empty({page_table.dim(0), width}, DType::kI32, Device::kCPU, "key_slots");
    r.out_slots = Tensor::empty({page_table.dim(0)}, DType::kI32, Device::kCPU, "out_slots");
    decode_slots_host(page_table, positions, page_size, r.key_slots, r.out_slots);
    return r;
}

void CpuBackend::copy_into(const Tensor& host, Tensor& dst) {
    check_copy_into_args(host, dst);
    DSA_CHECK(dst.device() == Device::kCPU) << "CPU backend got a device tensor";
    const int64_t rows = host.ndim() == 1 ? 1 : host.dim(0);
    const auto esize = static_cast<int64_t>(dtype_size(host.dtype()));
    const int64_t row_bytes = host.ndim() == 1 ? host.numel() * esize : host.dim(1) * esize;
    const int64_t pitch = host.ndim() == 1 ? 0 : dst.dim(1) * esize;
    const auto* src = static_cast<const uint8_t*>(host.raw_data());
    auto* out = static_cast<uint8_t*>(dst.raw_data());
    for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * pitch, src + r * row_bytes, row_bytes);
}

Tensor CpuBackend::dense_weight(const LinearWeight& w) {
    DSA_CHECK(w.defined() && w.weight.ndim() == 2) << "linear weight must be a defined 2-d tensor";
    if (w.weight.dtype() == DType::kF32) {
        DSA_CHECK(w.weight.is_contiguous() && w.weight.device() == Device::kCPU) << w.weight.name();
        return w.weight;
    }
    const void* key = w.weight.raw_data();
    {
        std::lock_guard<std::mutex> lock(cache_mu_);
        auto it = weight_cache_.find(key);
        if (it != weight_cache_.end() && it->second.source.shape() == w.weight.shape() &&
            it->second.source.dtype() == w.weight.dtype()) {
            return it->second.dense;
        }
    }
    Tensor dense = weight_to_f32(w);
    std::lock_guard<std::mutex> lock(cache_mu_);
    weight_cache_[key] = CachedWeight{w.weight, dense};
    return dense;
}

void CpuBackend::clear_weight_cache() {
    std::lock_guard<std::mutex> lock(cache_mu_);
    weight_cache_.clear();
}

void CpuBackend::round_act(float* x, int64_t n) const {
    if (!numerics_.round_activations_to_bf16) return;
    for (int64_t i = 0; i < n; ++i) x[i] = round_bf16(x[i]);
}

}  // namespace cpu
}  // namespace dsa::backend
