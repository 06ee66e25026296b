// Device resolution and backend construction (device_backend.h). DSA_HAVE_CUDA is defined for dsa_app when
// the CUDA backend target exists.
#include "app/device_backend.h"

#ifdef DSA_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/device_memory.h"
#endif

namespace dsa::app {
namespace {

int num_cuda_devices() {
#ifdef DSA_HAVE_CUDA
    return backend::cuda_device_count();
#else
    return 0;
#endif
}

}  // namespace

bool cuda_backend_built() {
#ifdef DSA_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

StatusOr<Device> resolve_device(const std::string& flag) {
    if (flag == "cpu") return Device::kCPU;
    if (flag == "auto") return cuda_backend_built() && num_cuda_devices() > 0 ? Device::kCUDA : Device::kCPU;
    if (flag != "cuda") return invalid_argument("--device '{}' (supported: auto, cuda, cpu)", flag);
    if (!cuda_backend_built()) return invalid_argument("--device cuda: this build has no CUDA backend (no nvcc)");
    if (num_cuda_devices() == 0) return invalid_argument("--device cuda: no CUDA device is present");
    return Device::kCUDA;
}

Status check_device_numerics(Device device, const backend::Numerics& numerics, const char* flag) {
    if (device == Device::kCUDA && !numerics.round_activations_to_bf16) {
        return invalid_argument(
            "{}: FP32 numerics run on the CPU backend only (the CUDA backend keeps BF16 "
            "activations); use bf16 or deepseek-fp8, or --device cpu",
            flag);
    }
    return Status::ok();
}

StatusOr<std::unique_ptr<backend::Backend>> make_backend(Device device, const backend::Numerics& numerics) {
    if (device == Device::kCPU) return backend::make_cpu_backend(numerics);
    DSA_RETURN_IF_ERROR(check_device_numerics(device, numerics, "numerics"));
#ifdef DSA_HAVE_CUDA
    if (backend::cuda_device_count() == 0) return invalid_argument("no CUDA device is present");
    return backend::make_cuda_backend(numerics, /*device=*/0);
#else
    return invalid_argument("this build has no CUDA backend");
#endif
}

engine::BackendProvider backend_provider(Device device) {
    engine::BackendProvider p;
    if (device == Device::kCPU) return p;  // ModelEngine's default: the CPU backend
    p.make = [device](const backend::Numerics& n) { return make_backend(device, n); };
#ifdef DSA_HAVE_CUDA
    p.memory = []() -> StatusOr<engine::DeviceMemoryInfo> {
        DSA_ASSIGN_OR_RETURN(backend::CudaMemoryInfo m, backend::cuda_memory_info(/*device=*/0));
        return engine::DeviceMemoryInfo{m.free_bytes, m.total_bytes};
    };
#endif
    return p;
}

}  // namespace dsa::app
