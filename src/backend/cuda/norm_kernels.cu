// RMSNorm (plain and fused with the residual add) and LayerNorm: one block per row, FP32 statistics, one bf16
// rounding per output, as in the CPU reference. The fused add writes the bf16-rounded residual and normalizes
// that rounded value (the value the reference feeds the norm). Rows of at most 8 (or 1) elements per thread (every
// model width): one pass, the slice and the weights in registers. Wider rows: two passes, the second re-reads
// what this same thread read or wrote in the first (an L1/L2 hit).
// RMSNorm may also write the act_quant (e4m3 + per-128 scales) of its output for the FP8 linears that read it.
// Decode-path kernels are launched with PDL (pdl.cuh): each lets the next kernel start, then waits first thing.
#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/norm_row.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

using namespace norm_row;

template <int VEC>
__global__ void rms_norm_kernel(RmsNormParams p) {
    pdl_trigger();
    pdl_wait();  // PDL: nothing is read or written before the previous kernel is done
    const int64_t row = blockIdx.x;
    uint16_t* r = p.residual + row * p.dim;
    const uint16_t* d = p.delta ? p.delta + row * p.dim : nullptr;
    uint16_t* y = p.out + row * p.dim;
    if (p.dim <= static_cast<int64_t>(blockDim.x) * VEC) {  // block-uniform
        rms_norm_row_in_registers<VEC>(p, r, d, y, row);
        return;
    }
    float ss = 0.0f;
    for (int64_t i = threadIdx.x * VEC; i < p.dim; i += blockDim.x * VEC) {
        float v[VEC];
        residual_slice<VEC>(r, d, i, v, ss);
    }
    const float inv = rms_inv(p, block_sum_once(ss));
    for (int64_t i = threadIdx.x * VEC; i < p.dim; i += blockDim.x * VEC) {
        float v[VEC], w[VEC];
        load_bf16<VEC>(r + i, v);
        load_param<VEC>(p.weight, i, p.dim, w);
        scale_slice<VEC>(w, inv, v);
        store_bf16<VEC>(y + i, v);
    }
}

// LayerNorm of a row of at most blockDim.x * VEC held in registers (x, weight and bias loaded together); the
// arithmetic and order of the loop version.
template <int VEC>
__device__ __forceinline__ void layer_norm_row_in_registers(const LayerNormParams& p, const uint16_t* x,
                                                            uint16_t* y) {
    const int64_t i = threadIdx.x * VEC;
    const bool mine = i < p.dim;
    float v[VEC], w[VEC], b[VEC];
    load_param<VEC>(p.weight, i, p.dim, w);
    load_param<VEC>(p.bias, i, p.dim, b);
    float s = 0.0f;
    if (mine) {
        load_bf16<VEC>(x + i, v);
#pragma unroll
        for (int j = 0; j < VEC; ++j) s += v[j];
    }
    const float mean = block_sum(s) / static_cast<float>(p.dim);
    float var = 0.0f;
    if (mine) {
#pragma unroll
        for (int j = 0; j < VEC; ++j) var += (v[j] - mean) * (v[j] - mean);
    }
    const float inv = 1.0f / sqrtf(block_sum(var) / static_cast<float>(p.dim) + p.eps);
    if (!mine) return;
#pragma unroll
    for (int j = 0; j < VEC; ++j) v[j] = (v[j] - mean) * inv * w[j] + b[j];
    store_bf16<VEC>(y + i, v);
}

template <int VEC>
__global__ void layer_norm_kernel(LayerNormParams p) {
    pdl_trigger();
    pdl_wait();  // PDL: nothing is read or written before the previous kernel is done
    const int64_t row = blockIdx.x;
    const uint16_t* x = p.x + row * p.dim;
    uint16_t* y = p.out + row * p.dim;
    if (p.dim <= static_cast<int64_t>(blockDim.x) * VEC) {  // block-uniform
        layer_norm_row_in_registers<VEC>(p, x, y);
        return;
    }
    float s = 0.0f;
    for (int64_t i = threadIdx.x * VEC; i < p.dim; i += blockDim.x * VEC) {
        float v[VEC];
        load_bf16<VEC>(x + i, v);
#pragma unroll
        for (int j = 0; j < VEC; ++j) s += v[j];
    }
    const float mean = block_sum(s) / static_cast<float>(p.dim);
    float var = 0.0f;
    for (int64_t i = threadIdx.x * VEC; i < p.dim; i += blockDim.x * VEC) {
        float v[VEC];
        load_bf16<VEC>(x + i, v);
#pragma unroll
        for (int j = 0; j < VEC; ++j) var += (v[j] - mean) * (v[j] - mean);
    }
    const float inv = 1.0f / sqrtf(block_sum(var) / static_cast<float>(p.dim) + p.eps);
    for (int64_t i = threadIdx.x * VEC; i < p.dim; i += blockDim.x * VEC) {
        float v[VEC];
        load_bf16<VEC>(x + i, v);
#pragma unroll
        for (int j = 0; j < VEC; ++j) v[j] = (v[j] - mean) * inv * p.weight[i + j] + p.bias[i + j];
        store_bf16<VEC>(y + i, v);
    }
}

// Threads per row: enough for one 8-wide access each, a multiple of 32, at most 1024.
int row_threads(int64_t dim, int vec) {
    int64_t t = (dim / vec + 31) / 32 * 32;
    return static_cast<int>(t < 32 ? 32 : (t > 1024 ? 1024 : t));
}

}  // namespace

namespace {

bool rms_norm_vec(const RmsNormParams& p) {
    return p.dim % 8 == 0 && host::aligned16(p.residual) && host::aligned16(p.out) &&
           (p.delta == nullptr || host::aligned16(p.delta));
}

}  // namespace

bool rms_norm_quant_supported(const RmsNormParams& p) {
    return rms_norm_vec(p) && p.dim % 128 == 0 && p.dim <= 1024 * 8 && host::aligned16(p.q8);
}

void launch_rms_norm(const RmsNormParams& p, cudaStream_t stream) {
    if (p.rows == 0) return;
    DSA_CHECK(p.q8 == nullptr || (p.q8_scales != nullptr && rms_norm_quant_supported(p)))
        << "rms_norm with act_quant: dim " << p.dim << " (a multiple of 128, at most 8192, aligned rows)";
    const bool vec = rms_norm_vec(p);
    const dim3 grid(static_cast<unsigned>(p.rows));
    if (vec) host::launch_pdl(rms_norm_kernel<8>, grid, row_threads(p.dim, 8), 0, stream, p);
    else host::launch_pdl(rms_norm_kernel<1>, grid, row_threads(p.dim, 1), 0, stream, p);
    DSA_CUDA_CHECK_LAUNCH(rms_norm_kernel);
}

void launch_layer_norm(const LayerNormParams& p, cudaStream_t stream) {
    if (p.rows == 0) return;
    const bool vec = p.dim % 8 == 0 && host::aligned16(p.x) && host::aligned16(p.out);
    const dim3 grid(static_cast<unsigned>(p.rows));
    if (vec) host::launch_pdl(layer_norm_kernel<8>, grid, row_threads(p.dim, 8), 0, stream, p);
    else host::launch_pdl(layer_norm_kernel<1>, grid, row_threads(p.dim, 1), 0, stream, p);
    DSA_CUDA_CHECK_LAUNCH(layer_norm_kernel);
}

}  // namespace dsa::backend::cuda
