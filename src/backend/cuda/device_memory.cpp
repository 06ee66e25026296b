// cuda_memory_info: cudaSetDevice + cudaMemGetInfo with errors returned as Status (device_memory.h).
#include "backend/cuda/device_memory.h"

#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_backend.h"

namespace dsa::backend {

StatusOr<CudaMemoryInfo> cuda_memory_info(int device) {
    const int count = cuda_device_count();
    if (device < 0 || device >= count) {
        return invalid_argument("CUDA device {} requested, {} present", device, count);
    }
    size_t free_bytes = 0, total_bytes = 0;
    cudaError_t err = cudaSetDevice(device);
    if (err == cudaSuccess) err = cudaMemGetInfo(&free_bytes, &total_bytes);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return make_error(StatusCode::kInternal, "cudaMemGetInfo on device {}: {}", device, cudaGetErrorString(err));
    }
    return CudaMemoryInfo{static_cast<int64_t>(free_bytes), static_cast<int64_t>(total_bytes)};
}

}  // namespace dsa::backend
