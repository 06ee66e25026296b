// Scalar and row-level reference math shared by the CPU ops and their tests: DeepSeek act_quant (1x128 blocks,
// e4m3, optional power-of-two scales), the FP8 KV-cache tile quantizer (FlashMLA rule), FP8 128x128 block
// weight dequantization with partial edge blocks, and the 128-point Hadamard rotation.
#pragma once

#include <cstdint>

#include "backend/linear_weight.h"
#include "tensor/tensor.h"

namespace dsa::backend::cpu {

constexpr int64_t kQuantBlock = 128;
constexpr float kActQuantMinAmax = 1e-4f;  // act_quant clamps amax to at least this

// act_quant scale of one block: s = max(amax, 1e-4) / 448, rounded up to a power of two when ue8m0.
float act_quant_scale(float amax, bool ue8m0);
// FlashMLA KV-cache tile scale: 2^ceil(log2(max(amax / 448, 1e-4))).
float kv_fp8_scale(float amax);

// Quantizes n values with scale s: out[i] = e4m3(clamp(x[i] / s, -448, 448)).
void quantize_e4m3(const float* x, int64_t n, float s, uint8_t* out);
// Quantizes one block (n <= 128) with the act_quant rule; writes the e4m3 bytes and returns the scale.
float act_quant_block(const float* x, int64_t n, bool ue8m0, uint8_t* out);
// x [n] in place: every 1x128 block (the last may be shorter) replaced by its act_quant value fp8 * s.
void act_quant_dequant_row(float* x, int64_t n, bool ue8m0);

// FP8 block weight -> f32 [out, in]: W[i,j] = fp8(W8[i,j]) * scale_inv[i/128, j/128].
Tensor dequant_fp8_weight(const LinearWeight& w);
// Any LinearWeight as f32 [out, in] (a new tensor; f32 weights are copied).
Tensor weight_to_f32(const LinearWeight& w);

// y = H_128 x / sqrt(128) in place, H[i][j] = (-1)^popcount(i & j) (fast Walsh-Hadamard butterflies).
void hadamard128(float* x);

}  // namespace dsa::backend::cpu
