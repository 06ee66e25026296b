// Does the order in which a weight-streaming GEMM walks its weight change the HBM bandwidth it gets? Each CTA of a
// 2-per-SM grid streams 128 rows x K bytes of a row-major [rows, K] FP8 weight (default: the 8 routed experts'
// gate_up at batch 1, 32768 x 7168 = 235 MB) through a cp.async shared-memory ring of 16 KB stages, the way
// fp8_stream_gemm.cu does, with the stage shape varied: R rows x (16384 / R) bytes (R = 128: today's 128 x 128-byte
// blocks; R = 16: 1 KB runs of each row) or 16 KB contiguous (a weight pre-tiled into 16 KB blocks). A plain
// grid-stride ld.global read of the same bytes is the reference. Prints TB/s and % of 4.8 TB/s per pattern.
// Usage: hbm_pattern_bench [--rows 32768] [--k 7168] [--stages 5]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "standalone_cuda.cuh"

namespace {

constexpr int kThreads = 256, kStageBytes = 16384, kRowsPerJob = 128;

__device__ __forceinline__ void cp16(uint32_t dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wait_groups() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Job j = rows [128 j, 128 j + 128) of the weight. Stage s of a job covers, for shape R (rows per stage, a divisor
// of 128; run = 16384 / R bytes of each row): row group (s % (128 / R)) and byte run s / (128 / R) of the rows, so
// consecutive stages walk the row groups of one K run before moving along K. R = 0: 16 KB contiguous pieces of the
// job's bytes (a pre-tiled layout).
template <int R, int S>
__global__ void __launch_bounds__(kThreads) ring_kernel(const uint8_t* w, int64_t k, int jobs, uint32_t* out) {
    extern __shared__ __align__(16) uint8_t ring[];
    const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(ring));
    const int64_t job_bytes = static_cast<int64_t>(kRowsPerJob) * k;
    const int stages = static_cast<int>(job_bytes / kStageBytes);
    uint32_t acc = 0;
    for (int job = blockIdx.x; job < jobs; job += gridDim.x) {
        const uint8_t* jw = w + job * job_bytes;
        auto issue = [&](int s) {
            if (s < stages) {
                const uint32_t dst = base + (s % S) * kStageBytes;
#pragma unroll
                for (int i = 0; i < kStageBytes / 16 / kThreads; ++i) {
                    const int c = threadIdx.x + i * kThreads;  // 16-byte chunk of the stage
                    const uint8_t* src;
                    if constexpr (R == 0) {
                        src = jw + static_cast<int64_t>(s) * kStageBytes + c * 16;
                    } else {
                        constexpr int kRun = kStageBytes / R, kGroups = kRowsPerJob / R;
                        const int row = (s % kGroups) * R + c / (kRun / 16), col = (s / kGroups) * kRun;
                        src = jw + static_cast<int64_t>(row) * k + col + (c % (kRun / 16)) * 16;
                    }
                    cp16(dst + c * 16, src);
                }
            }
            commit();
        };
        for (int s = 0; s < S - 1; ++s) issue(s);
        for (int s = 0; s < stages; ++s) {
            wait_groups<S - 2>();
            __syncthreads();
            issue(s + S - 1);
            acc ^= reinterpret_cast<const uint32_t*>(ring + (s % S) * kStageBytes)[threadIdx.x];
        }
        wait_groups<0>();
        __syncthreads();
    }
    if (acc == 0x12345678u) out[blockIdx.x] = acc;
}


template <typename F>
double median_us(F&& launch) {
    for (int i = 0; i < 3; ++i) launch();
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    std::vector<double> runs;
    for (int r = 0; r < 7; ++r) {
        CK(cudaEventRecord(a));
        for (int i = 0; i < 5; ++i) launch();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, a, b));
        runs.push_back(ms * 1e3 / 5);
    }
    std::sort(runs.begin(), runs.end());
    return runs[runs.size() / 2];
}

template <int R, int S>
void run_ring(const char* name, const uint8_t* w, int64_t rows, int64_t k, int sms, uint32_t* out) {
    const int smem = S * kStageBytes;
    CK(cudaFuncSetAttribute(ring_kernel<R, S>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    int per_sm = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, ring_kernel<R, S>, kThreads, smem));
    const int jobs = static_cast<int>(rows / kRowsPerJob);
    const int grid = std::min(jobs, std::min(per_sm, 2) * sms);
    const double us = median_us([&] { ring_kernel<R, S><<<grid, kThreads, smem>>>(w, k, jobs, out); });
    CK(cudaGetLastError());
    const double tbs = static_cast<double>(rows) * k / us / 1e6;
    std::printf("%-44s stages %d grid %4d  %8.2f us  %5.2f TB/s  %5.1f%% of 4.8\n", name, S, grid, us, tbs,
                100.0 * tbs / 4.8);
}

}  // namespace

int main(int argc, char** argv) {
    int64_t rows = 32768, k = 7168;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--rows")) rows = std::atoll(argv[i + 1]);
        if (!std::strcmp(argv[i], "--k")) k = std::atoll(argv[i + 1]);
    }
    int dev_count = 0;
    if (cudaGetDeviceCount(&dev_count) != cudaSuccess || dev_count == 0) {
        std::printf("hbm_pattern_bench: no CUDA device\n");
        return 0;
    }
    if (rows % kRowsPerJob != 0 || (kRowsPerJob * k) % kStageBytes != 0 || k % 1024 != 0) {
        std::fprintf(stderr, "hbm_pattern_bench: rows must be a multiple of 128 and K of 1024\n");
        return 1;
    }
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const size_t bytes = static_cast<size_t>(rows) * k;
    uint8_t* w = nullptr;
    uint32_t* out = nullptr;
    CK(cudaMalloc(&w, bytes));
    CK(cudaMalloc(&out, 4096 * sizeof(uint32_t)));
    CK(cudaMemset(w, 1, bytes));
    std::printf("weight %lld x %lld = %.1f MB, %d SMs\n", static_cast<long long>(rows), static_cast<long long>(k),
                bytes / 1e6, sms);
    const double plain = median_us([&] { stream_read_kernel<<<sms * 8, 512>>>(reinterpret_cast<const uint4*>(w),
                                                                            bytes / 16, out); });
    std::printf("%-44s                   %8.2f us  %5.2f TB/s  %5.1f%% of 4.8\n", "plain grid-stride ld.global", plain,
                bytes / plain / 1e6, 100.0 * bytes / plain / 1e6 / 4.8);
    run_ring<128, 5>("ring: 128 rows x 128 B per stage (today)", w, rows, k, sms, out);
    run_ring<128, 6>("ring: 128 rows x 128 B per stage (today)", w, rows, k, sms, out);
    run_ring<32, 5>("ring: 32 rows x 512 B per stage", w, rows, k, sms, out);
    run_ring<16, 5>("ring: 16 rows x 1 KB per stage", w, rows, k, sms, out);
    run_ring<0, 5>("ring: 16 KB contiguous per stage (pre-tiled)", w, rows, k, sms, out);
    run_ring<0, 6>("ring: 16 KB contiguous per stage (pre-tiled)", w, rows, k, sms, out);
    CK(cudaFree(w));
    CK(cudaFree(out));
    return 0;
}
