// CachingAllocator (allocator.h): exact-size free lists over cudaMalloc; on out-of-memory the cache is released
// and the allocation retried once before aborting with the requested size.
#include "backend/cuda/allocator.h"

#include "backend/cuda/cuda_check.h"
#include "base/check.h"

namespace dsa::backend::cuda {

CachingAllocator& CachingAllocator::instance(int device) {
    // Never destroyed: tensors may be freed during static destruction.
    static CachingAllocator* a = new CachingAllocator(device);
    DSA_CHECK_EQ(a->device_, device) << "the CUDA backend supports one device per process for now";
    return *a;
}

size_t CachingAllocator::round_size(size_t bytes) {
    constexpr size_t kSmall = 512, kLarge = 2u << 20;
    if (bytes < (1u << 20)) return (bytes + kSmall - 1) / kSmall * kSmall;
    return (bytes + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::alloc(size_t bytes) {
    const size_t size = round_size(bytes == 0 ? 1 : bytes);
    void* p = nullptr;
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = free_.find(size);
        if (it != free_.end() && !it->second.empty()) {
            p = it->second.back();
            it->second.pop_back();
            cached_ -= size;
        }
    }
    if (p == nullptr) {
        DSA_CUDA_CHECK(cudaSetDevice(device_));
        cudaError_t err = cudaMalloc(&p, size);
        if (err == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            release_cached();
            err = cudaMalloc(&p, size);
        }
        DSA_CHECK(err == cudaSuccess) << "cudaMalloc(" << size << " bytes) failed: " << cudaGetErrorString(err)
                                      << "; in use " << in_use_ << " bytes";
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        live_[p] = size;
        in_use_ += size;
    }
    // Legacy default stream: ordered with the backend's (blocking) stream.
    if (poison_) DSA_CUDA_CHECK(cudaMemsetAsync(p, 0xff, size, nullptr));
    return p;
}

void CachingAllocator::free(void* p) {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    DSA_CHECK(it != live_.end()) << "freeing a device pointer this allocator does not own";
    const size_t size = it->second;
    live_.erase(it);
    in_use_ -= size;
    free_[size].push_back(p);
    cached_ += size;
}

void CachingAllocator::release_cached() {
    std::lock_guard<std::mutex> lock(mu_);
    DSA_CUDA_CHECK(cudaDeviceSynchronize());
    for (auto& [size, blocks] : free_) {
        for (void* p : blocks) DSA_CUDA_CHECK(cudaFree(p));
        blocks.clear();
    }
    cached_ = 0;
}

}  // namespace dsa::backend::cuda
