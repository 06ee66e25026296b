// CachingAllocator: the device memory behind every CUDA Tensor (installed as the Tensor device-allocator hook).
// Freed blocks go back to per-size free lists and are reused by later allocations on the backend's stream,
// which is stream-ordered and therefore safe. Sizes round up to 512 B (below 1 MiB) or 2 MiB. With poisoning on,
// every allocation is filled with 0xFF bytes (NaN in bf16 and f32) so that tests see unwritten outputs.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace dsa::backend::cuda {

class CachingAllocator {
public:
    // The process-wide allocator; the first call fixes the device.
    static CachingAllocator& instance(int device);

    void* alloc(size_t bytes);
    void free(void* p);
    // Returns every cached (free) block to the driver.
    void release_cached();
    void set_poison(bool on) { poison_ = on; }
    size_t bytes_in_use() const { return in_use_; }
    size_t bytes_cached() const { return cached_; }
    int device() const { return device_; }

private:
    explicit CachingAllocator(int device) : device_(device) {}
    static size_t round_size(size_t bytes);

    int device_;
    bool poison_ = false;
    std::mutex mu_;
    std::unordered_map<size_t, std::vector<void*>> free_;  // rounded size -> free blocks
    std::unordered_map<void*, size_t> live_;                // block -> rounded size
    size_t in_use_ = 0, cached_ = 0;
};

}  // namespace dsa::backend::cuda
