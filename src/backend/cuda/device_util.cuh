// Device helpers shared by the CUDA backend's kernels: bf16 vector loads/stores as f32 (8 x bf16 = one 16-byte
// access), block-wide sums, grid sizing and the alignment test the launchers use to pick the vector path.
// Included by .cu files only.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace dsa::backend::cuda {

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t b) { return __bfloat162float(__ushort_as_bfloat16(b)); }
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) { return __bfloat16_as_ushort(__float2bfloat16_rn(f)); }
__device__ __forceinline__ float round_bf16(float f) { return __bfloat162float(__float2bfloat16_rn(f)); }

// VEC (1 or 8) consecutive bf16 values at p as f32; VEC = 8 needs 16-byte alignment.
template <int VEC>
__device__ __forceinline__ void load_bf16(const uint16_t* p, float (&v)[VEC]) {
    if constexpr (VEC == 8) {
        const uint4 u = *reinterpret_cast<const uint4*>(p);
        const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const float2 f = __bfloat1622float2(h[k]);
            v[2 * k] = f.x;
            v[2 * k + 1] = f.y;
        }
    } else {
        static_assert(VEC == 1);
        v[0] = bf16_bits_to_f32(p[0]);
    }
}

// Rounds VEC f32 values to bf16 and stores them at p.
template <int VEC>
__device__ __forceinline__ void store_bf16(uint16_t* p, const float (&v)[VEC]) {
    if constexpr (VEC == 8) {
        uint4 u;
        __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
        for (int k = 0; k < 4; ++k) h[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
        *reinterpret_cast<uint4*>(p) = u;
    } else {
        static_assert(VEC == 1);
        p[0] = f32_to_bf16_bits(v[0]);
    }
}

// 16 bytes of a streamed-once operand (weights): read-only path, no L1 allocation.
__device__ __forceinline__ uint4 load_stream16(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float s = lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : 0.0f;
        s = warp_sum(s);
        if (lane == 0) total = s;
    }
    __syncthreads();
    const float r = total;
    __syncthreads();  // the next block_sum may overwrite `total`
    return r;
}

}  // namespace dsa::backend::cuda

namespace dsa::backend::cuda::host {

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Blocks for a grid-stride loop over n items with `threads` per block (capped; the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads) {
    const int64_t blocks = (n + threads - 1) / threads;
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

}  // namespace dsa::backend::cuda::host
