// Timing shared by the CUDA kernel benchmarks: the median seconds per call of a function enqueued on the
// backend's stream, measured with CUDA events over several repetitions after a short warm-up.
#pragma once

#include <algorithm>
#include <functional>
#include <vector>

#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"

namespace dsa::backend::bench {

// Median over `reps` repetitions of `calls` back-to-back calls of fn(i) (i = call index, for rotating copies
// of the inputs so that caches do not serve them); 3 untimed warm-up calls first.
inline double median_seconds_per_call(cuda::CudaBackend& be, const std::function<void(int)>& fn, int calls = 20,
                                      int reps = 5) {
    for (int i = 0; i < 3; ++i) fn(i);
    be.synchronize();
    cudaEvent_t a, b;
    DSA_CUDA_CHECK(cudaEventCreate(&a));
    DSA_CUDA_CHECK(cudaEventCreate(&b));
    std::vector<double> runs;
    for (int r = 0; r < reps; ++r) {
        DSA_CUDA_CHECK(cudaEventRecord(a, be.stream()));
        for (int i = 0; i < calls; ++i) fn(i);
        DSA_CUDA_CHECK(cudaEventRecord(b, be.stream()));
        DSA_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        DSA_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        runs.push_back(ms * 1e-3 / calls);
    }
    DSA_CUDA_CHECK(cudaEventDestroy(a));
    DSA_CUDA_CHECK(cudaEventDestroy(b));
    std::sort(runs.begin(), runs.end());
    return runs[runs.size() / 2];
}

}  // namespace dsa::backend::bench
