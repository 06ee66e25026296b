// CachingAllocator: the device memory behind every CUDA Tensor (installed as the Tensor device-allocator hook).
// Freed blocks go back to per-size free lists and are reused by later allocations on the backend's stream,
// which is stream-ordered and therefore safe. Sizes round up to 512 B (below 1 MiB) or 2 MiB. With poisoning on,
// every allocation is filled with 0xFF bytes (NaN in bf16 and f32) so that tests see unwritten outputs.
// While a CUDA graph is being captured, allocations come from a separate graph pool: its blocks go back to the
// graph pool when freed and are handed out again only during a later capture (graphs replay one at a time on
// one stream, so they may share temporaries), never to eager work that could overwrite a graph's buffers.
// While a side branch runs on a second stream (CudaBackend::begin_side_branch .. join_side_branch), frees are held
// back until the join: a block freed by either branch could otherwise go to the other one while still in use.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <utility>
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
    // Routes alloc() to the graph pool (capture begins) or back to the eager pool (capture ends).
    void set_graph_capture(bool on);
    // Holds every free back (on) until the call that turns it off returns the held blocks to their pools.
    void set_deferred_free(bool on);
    size_t graph_pool_bytes() const { return graph_bytes_; }
    size_t bytes_in_use() const { return in_use_; }
    size_t bytes_cached() const { return cached_; }
    int device() const { return device_; }

private:
    explicit CachingAllocator(int device) : device_(device) {}
    static size_t round_size(size_t bytes);

    int device_;
    bool poison_ = false;
    std::mutex mu_;
    struct Block {
        size_t size = 0;
        bool graph = false;  // belongs to the graph pool
    };
    void release_block(void* p, const Block& b);  // back to its pool (mu_ held)
    bool capturing_ = false;
    bool defer_ = false;
    std::vector<std::pair<void*, Block>> deferred_;  // freed while defer_ was on
    std::unordered_map<size_t, std::vector<void*>> free_;        // eager pool: rounded size -> free blocks
    std::unordered_map<size_t, std::vector<void*>> graph_free_;  // graph pool: rounded size -> free blocks
    std::unordered_map<void*, Block> live_;                      // block -> size and pool
    size_t in_use_ = 0, cached_ = 0, graph_bytes_ = 0;
};

}  // namespace dsa::backend::cuda
