// Measures what an L2 prefetch of a weight's first bytes, issued before a latency-bound stretch of a decode step,
// saves the bandwidth-bound kernel that streams the weight afterwards (batch-1 decode: norms, RoPE, top-k and the
// MLA leave HBM idle for tens of microseconds). Per prefetch size: flush L2, issue cp.async.bulk.prefetch.L2 of
// the first P MB, spin one CTA for the idle stretch, then time a full-GPU streaming read of the weight.
// Usage: l2_prefetch_bench [--weight-mb 117] [--idle-us 40]
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <vector>

#include "standalone_cuda.cuh"

namespace {

// One CTA: each thread prefetches 256 KB chunks of [p, p + bytes) into L2 (fire and forget).
__global__ void prefetch_l2_kernel(const uint8_t* p, int64_t bytes) {
    constexpr int64_t kChunk = 256 << 10;
    for (int64_t off = threadIdx.x * kChunk; off < bytes; off += int64_t(blockDim.x) * kChunk) {
        const int64_t n = bytes - off < kChunk ? bytes - off : kChunk;
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p + off), "r"(uint32_t(n)) : "memory");
    }
}

// Stands in for the latency-bound kernels: one thread waits `ns` nanoseconds.
__global__ void spin_kernel(uint64_t ns) {
    uint64_t start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        __nanosleep(1000);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns);
}

double arg(int argc, char** argv, const char* name, double dflt) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return std::atof(argv[i + 1]);
    return dflt;
}

}  // namespace

int main(int argc, char** argv) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        std::printf("l2_prefetch_bench: no CUDA device, skipped\n");
        return 0;
    }
    const int64_t weight = int64_t(arg(argc, argv, "--weight-mb", 117) * (1 << 20)) / 16 * 16;
    const double idle_us = arg(argc, argv, "--idle-us", 40);
    cudaDeviceProp prop{};
    CK(cudaGetDeviceProperties(&prop, 0));
    const int64_t flush_bytes = 512ll << 20;
    uint8_t *w = nullptr, *flush = nullptr;
    uint32_t* sink = nullptr;
    CK(cudaMalloc(&w, weight));
    CK(cudaMalloc(&flush, flush_bytes));
    CK(cudaMalloc(&sink, 4096 * sizeof(uint32_t)));
    CK(cudaMemset(w, 1, weight));
    CK(cudaMemset(flush, 2, flush_bytes));
    const int grid = prop.multiProcessorCount * 4;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::printf("L2 %d MB, weight %.1f MB, idle stretch %.0f us\n", prop.l2CacheSize >> 20, weight / 1048576.0,
                idle_us);
    const int sizes_mb[] = {0, 8, 16, 24, 32, 40, 48};
    for (int mb : sizes_mb) {
        const int64_t pre = std::min<int64_t>(int64_t(mb) << 20, weight);
        std::vector<float> t;
        for (int it = 0; it < 12; ++it) {
            stream_read_kernel<<<grid, 256>>>(reinterpret_cast<const uint4*>(flush), flush_bytes / 16, sink);
            if (pre > 0) prefetch_l2_kernel<<<1, 128>>>(w, pre);
            spin_kernel<<<1, 1>>>(uint64_t(idle_us * 1000));
            CK(cudaEventRecord(e0));
            stream_read_kernel<<<grid, 256>>>(reinterpret_cast<const uint4*>(w), weight / 16, sink);
            CK(cudaEventRecord(e1));
            CK(cudaEventSynchronize(e1));
            float ms = 0;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (it >= 2) t.push_back(ms * 1000.0f);
        }
        double sum = 0;
        for (float x : t) sum += x;
        const double us = sum / t.size();
        std::printf("[ metric ] l2_prefetch prefetch_mb=%d stream_us=%.2f effective_TBps=%.2f\n", mb, us,
                    weight / us / 1e6);
    }
    CK(cudaGetLastError());
    return 0;
}
