// Pieces shared by the standalone CUDA experiments in bench/ (l2_prefetch_bench, hbm_pattern_bench), which link
// only the CUDA runtime: a checked-call macro that exits with the failing call, and a full-GPU streaming read.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#define CK(x)                                                                    \
    do {                                                                         \
        cudaError_t e_ = (x);                                                    \
        if (e_ != cudaSuccess) {                                                 \
            std::fprintf(stderr, "%s failed: %s\n", #x, cudaGetErrorString(e_)); \
            std::exit(1);                                                        \
        }                                                                        \
    } while (0)

// Reads every 16-byte word of w once (grid-stride, no L1 allocation), one partial XOR per CTA so that nothing is
// optimised away.
static __global__ void stream_read_kernel(const uint4* w, int64_t words, uint32_t* out) {
    uint32_t acc = 0;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < words; i += int64_t(gridDim.x) * blockDim.x) {
        uint4 v;
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                     : "l"(w + i));
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) out[blockIdx.x] = acc;
}
