// Checked CUDA calls: every runtime call and kernel launch of the CUDA backend goes through DSA_CUDA_CHECK /
// DSA_CUDA_CHECK_LAUNCH, which abort with the call, the error string and the source location (DESIGN §6.5).
// Kernel-side invariants are checked by the host launchers before launch, never inside kernels.
#pragma once

#include <cuda_runtime_api.h>

namespace dsa::backend::cuda {

[[noreturn]] void cuda_call_failed(const char* call, cudaError_t err, const char* file, int line);

}  // namespace dsa::backend::cuda

#define DSA_CUDA_CHECK(call)                                                                     \
    do {                                                                                         \
        cudaError_t _dsa_err = (call);                                                           \
        if (_dsa_err != cudaSuccess) ::dsa::backend::cuda::cuda_call_failed(#call, _dsa_err, __FILE__, __LINE__); \
    } while (0)

// After a <<<>>> launch: catches bad configurations (and earlier asynchronous faults) at the launch site.
#define DSA_CUDA_CHECK_LAUNCH(kernel_name) DSA_CUDA_CHECK(cudaPeekAtLastError())
