// CpuBackend construction, host/device copies (identities on the CPU) and the dense weight cache.
#include "backend/cpu/cpu_backend.h"

#include "backend/cpu/quant.h"

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
