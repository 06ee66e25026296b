// Device memory of one CUDA device (cudaMemGetInfo), for the KV memory planner that `dsaserve serve` runs
// before sizing the KV pools on the GPU. Carries no CUDA headers; safe to call where no GPU is present.
#pragma once

#include <cstdint>

#include "base/status.h"

namespace dsa::backend {

struct CudaMemoryInfo {
    int64_t free_bytes = 0;
    int64_t total_bytes = 0;
};

// Free and total bytes of `device` as the driver reports them now; an error when the device does not exist or
// the driver call fails (never aborts).
StatusOr<CudaMemoryInfo> cuda_memory_info(int device = 0);

}  // namespace dsa::backend
