// Device and host pieces shared by the lightning-indexer kernel files (indexer_kernels.cu: key writes, q prep,
// logits; indexer_topk.cu: top-k and causal index lists): the page layout constants, the per-query addressing with
// its range traps, the masked-score fill, the SM count and a once-per-device shared-memory attribute setter.
// Everything is in an anonymous namespace: each including .cu file gets its own copy.
#pragma once

#include <atomic>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_check.h"

namespace dsa::backend::cuda {
namespace {
constexpr int kDim = 128;
constexpr int kPageTokens = 64;
constexpr int64_t kFp8PageBytes = 8448;
constexpr int64_t kFp8ScaleOffset = 8192;
constexpr int64_t kF32PageBytes = 32768;
constexpr unsigned kFull = 0xffffffffu;

// ---- shared by the logits, top-k and causal kernels ----

struct QueryRow {
    int64_t request, limit;
};

// The query's request and last visible position, trapping on out-of-range values (device-side index data).
__device__ __forceinline__ QueryRow query_row(const int32_t* request, const int32_t* limit, int64_t t,
                                              int64_t num_requests, int64_t max_len) {
    const QueryRow q{request[t], limit[t]};
    if (q.request < 0 || q.request >= num_requests || q.limit < 0 || q.limit >= max_len) __trap();
    return q;
}

__device__ __forceinline__ int32_t checked_slot(const int32_t* slot_row, int64_t pos, int64_t num_slots) {
    const int32_t s = slot_row[pos];
    if (s < 0 || s >= num_slots) __trap();
    return s;
}

// Writes -inf to row[s] for s in [max(begin, limit + 1), end) with `step` threads starting at `first`.
__device__ __forceinline__ void fill_masked(float* row, int64_t begin, int64_t end, int64_t limit, int first,
                                           int step) {
    const int64_t from = begin > limit + 1 ? begin : limit + 1;
    for (int64_t s = from + first; s < end; s += step) row[s] = -__int_as_float(0x7f800000);
}

// An attribute of the current device.
inline int current_device_attribute(cudaDeviceAttr attr) {
    int dev = 0, v = 0;
    DSA_CUDA_CHECK(cudaGetDevice(&dev));
    DSA_CUDA_CHECK(cudaDeviceGetAttribute(&v, attr, dev));
    return v;
}

int num_sms() {
    static const int n = current_device_attribute(cudaDevAttrMultiProcessorCount);
    return n;
}

// Raises a kernel's dynamic shared memory limit once per device (the attribute call is host work on every launch
// otherwise); one instance per kernel.
class SmemLimit {
public:
    void ensure(const void* kernel, int bytes) {
        int dev = 0;
        DSA_CUDA_CHECK(cudaGetDevice(&dev));
        if (dev >= 0 && dev < kDevices && set_[dev].load(std::memory_order_acquire) >= bytes) return;
        DSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        if (dev >= 0 && dev < kDevices) set_[dev].store(bytes, std::memory_order_release);
    }

private:
    static constexpr int kDevices = 64;
    std::atomic<int> set_[kDevices] = {};
};

}  // namespace
}  // namespace dsa::backend::cuda
