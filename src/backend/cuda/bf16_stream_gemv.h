// Weight-streaming BF16 kernels for a few rows of activations (decode): each weight byte is read once, FP32
// accumulation, bf16 or f32 output. Two layouts, both batched (one weight matrix per batch entry, e.g. per head):
//  - rows:    y[b][m][n] = sum_k x[b][m][k] * W[b][n][k]   (W rows contiguous in k: linear layers, W_UV absorb)
//  - columns: y[b][m][n] = sum_k x[b][m][k] * W[b][k][n]   (W rows contiguous in n: the W_UK absorb)
// Used where cuBLAS's small-M kernels reach a fraction of HBM bandwidth (router-sized weights, per-head absorbs).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace dsa::backend::cuda {

inline constexpr int64_t kBf16GemvMaxRows = 8;  // m (activation rows) at most

struct Bf16GemvParams {
    const uint16_t* x = nullptr;  // bf16, x[b][m][k] at b * x_batch_stride + m * ldx + k
    const uint16_t* w = nullptr;  // bf16, rows layout: [b][n][k] (ldw between n); columns: [b][k][n] (ldw between k)
    void* y = nullptr;            // y[b][m][n] at b * y_batch_stride + m * ldy + n; bf16 or f32 (y_f32)
    int64_t m = 0, n = 0, k = 0, batch = 1;
    int64_t ldx = 0, ldw = 0, ldy = 0;
    int64_t x_batch_stride = 0, w_batch_stride = 0, y_batch_stride = 0;
    bool y_f32 = false;
};

// Whether the kernels take these parameters: 1 <= m <= kBf16GemvMaxRows, the vectorised dimension (k for rows,
// n for columns) and every stride a multiple of 8 elements, 16-byte aligned bases.
bool bf16_gemv_rows_supported(const Bf16GemvParams& p);
bool bf16_gemv_cols_supported(const Bf16GemvParams& p);

void launch_bf16_gemv_rows(const Bf16GemvParams& p, cudaStream_t stream);
// Short rows (k <= 512, the W_UV absorb) through the short-row kernel (default) or the general rows kernel
// (DSA_BF16_GEMV_SHORT=0 or set_bf16_gemv_short_rows(false): later launches; benches compare the two).
bool bf16_gemv_short_rows();
void set_bf16_gemv_short_rows(bool on);
void launch_bf16_gemv_cols(const Bf16GemvParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
