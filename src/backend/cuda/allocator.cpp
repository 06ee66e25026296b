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

void CachingAllocator::set_graph_capture(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    capturing_ = on;
}

void* CachingAllocator::alloc(size_t bytes) {
    const size_t size = round_size(bytes == 0 ? 1 : bytes);
    void* p = nullptr;
    bool graph = false;
    {
        std::lock_guard<std::mutex> lock(mu_);
        graph = capturing_;
        auto& pool = graph ? graph_free_ : free_;
        auto it = pool.find(size);
        if (it != pool.end() && !it->second.empty()) {
            p = it->second.back();
            it->second.pop_back();
            if (!graph) cached_ -= size;
        }
    }
    if (p == nullptr) {
        DSA_CUDA_CHECK(cudaSetDevice(device_));
        cudaError_t err = cudaMalloc(&p, size);
        if (err == cudaErrorMemoryAllocation && !graph) {  // no release (a device sync) inside a capture
            (void)cudaGetLastError();
            release_cached();
            err = cudaMalloc(&p, size);
        }
        DSA_CHECK(err == cudaSuccess) << "cudaMalloc(" << size << " bytes) failed: " << cudaGetErrorString(err)
                                      << "; in use " << in_use_ << " bytes";
        if (graph) {
            std::lock_guard<std::mutex> lock(mu_);
            graph_bytes_ += size;
        }
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        live_[p] = Block{size, graph};
        in_use_ += size;
    }
    // Legacy default stream: ordered with the backend's (blocking) stream. Not while capturing (the legacy
    // stream cannot join a capture; the memset would not be part of the graph either).
    if (poison_ && !graph) DSA_CUDA_CHECK(cudaMemsetAsync(p, 0xff, size, nullptr));
    return p;
}

void CachingAllocator::free(void* p) {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    DSA_CHECK(it != live_.end()) << "freeing a device pointer this allocator does not own";
    const Block b = it->second;
    live_.erase(it);
    in_use_ -= b.size;
    if (defer_) {
        deferred_.emplace_back(p, b);
        return;
    }
    release_block(p, b);
}

void CachingAllocator::release_block(void* p, const Block& b) {
    if (b.graph) {
        graph_free_[b.size].push_back(p);
        return;
    }
    free_[b.size].push_back(p);
    cached_ += b.size;
}

void CachingAllocator::set_deferred_free(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    defer_ = on;
    if (on) return;
    for (const auto& [p, b] : deferred_) release_block(p, b);
    deferred_.clear();
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
