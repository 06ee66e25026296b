// FP8 kernels for the block-scaled linears: the per-token activation quantization (DeepSeek act_quant, one warp
// per 1x128 block, scales written in cuBLASLt's VEC128 layout) and the once-per-weight dequantization of a
// 128x128 block FP8 weight to BF16 (the fallback GEMM operand). e4m3 conversion saturates to +-448 and keeps
// NaN (__NV_SATFINITE), as the CPU reference's clamp-then-cast does. The scale / code rule is act_quant.cuh's
// (shared with the norms that quantize their output).
// Decode-path kernels are launched with PDL (pdl.cuh): each lets the next kernel start, then waits first thing.
#include <cuda_fp8.h>

#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/pdl.cuh"

namespace dsa::backend::cuda {
namespace {

constexpr int kBlock = 128;

__device__ __forceinline__ float e4m3_to_f32(uint8_t b) {
    const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(b), __NV_E4M3);
    return __half2float(__half(h));
}

// One warp per (row, 128-column block); lane l holds columns 4l .. 4l+3 of the block.
__global__ void act_quant_kernel(ActQuantParams p) {
    pdl_trigger();
    pdl_wait();  // PDL: nothing is read or written before the previous kernel is done
    const int64_t num_kb = (p.cols + kBlock - 1) / kBlock;
    const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (warp >= p.rows * num_kb) return;  // whole warps exit together
    const int64_t row = warp / num_kb, kb = warp % num_kb;
    const int64_t c0 = kb * kBlock + lane * 4;
    const uint16_t* x = p.x + row * p.cols;
    float v[4];
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        v[j] = c0 + j < p.cols ? bf16_bits_to_f32(x[c0 + j]) : 0.0f;
        amax = fmaxf(amax, fabsf(v[j]));
    }
    amax = warp_max(amax);
    const float s = act_quant_scale(amax, p.ue8m0);
    if (p.scales != nullptr && lane == 0) p.scales[kb * p.scale_ld + row] = s;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if (c0 + j >= p.cols) break;
        const uint8_t q = act_quant_code(v[j], s);
        if (p.q != nullptr) p.q[row * p.cols + c0 + j] = q;
        if (p.dequant != nullptr) p.dequant[row * p.cols + c0 + j] = f32_to_bf16_bits(e4m3_to_f32(q) * s);
    }
}

// Each thread converts 8 consecutive weights (cols % 8 == 0: one 8-byte load, one 16-byte store) or 1.
template <int VEC>
__global__ void dequant_weight_kernel(DequantWeightParams p) {
    const int64_t total = p.rows * p.cols / VEC;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t e = idx * VEC;
        const int64_t r = e / p.cols, c = e % p.cols;
        const float s = p.scale_inv[(r / kBlock) * p.scale_ld + c / kBlock];
        float v[VEC];
        if constexpr (VEC == 8) {
            const uint2 u = *reinterpret_cast<const uint2*>(p.w + e);
            const uint8_t* b = reinterpret_cast<const uint8_t*>(&u);
#pragma unroll
            for (int j = 0; j < 8; ++j) v[j] = e4m3_to_f32(b[j]) * s;
        } else {
            v[0] = e4m3_to_f32(p.w[e]) * s;
        }
        store_bf16<VEC>(p.out + e, v);
    }
}

}  // namespace

void launch_act_quant(const ActQuantParams& p, cudaStream_t stream) {
    if (p.rows == 0 || p.cols == 0) return;
    const int64_t warps = p.rows * ((p.cols + kBlock - 1) / kBlock);
    constexpr int kThreads = 256;
    const int64_t blocks = (warps * 32 + kThreads - 1) / kThreads;
    host::launch_pdl(act_quant_kernel, static_cast<unsigned>(blocks), kThreads, 0, stream, p);
    DSA_CUDA_CHECK_LAUNCH(act_quant_kernel);
}

void launch_dequant_weight(const DequantWeightParams& p, cudaStream_t stream) {
    if (p.rows == 0 || p.cols == 0) return;
    constexpr int kThreads = 256;
    if (p.cols % 8 == 0 && host::aligned16(p.out) && (reinterpret_cast<uintptr_t>(p.w) & 7u) == 0) {
        dequant_weight_kernel<8><<<host::grid_for(p.rows * p.cols / 8, kThreads), kThreads, 0, stream>>>(p);
    } else {
        dequant_weight_kernel<1><<<host::grid_for(p.rows * p.cols, kThreads), kThreads, 0, stream>>>(p);
    }
    DSA_CUDA_CHECK_LAUNCH(dequant_weight_kernel);
}

}  // namespace dsa::backend::cuda
