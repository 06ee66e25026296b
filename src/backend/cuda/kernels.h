// Parameter structs and launchers of the CUDA backend's own kernels (DESIGN §6.2: one params struct per
// kernel, each pointer with its shape and dtype). Launchers (in the .cu files) check sizes and launch on the
// given stream; tensor-level checks (dtype, device, contiguity) are done by the op functions that call them.
// bf16 data is passed as uint16_t bit patterns so this header needs no cuda_bf16.h.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace dsa::backend::cuda {

// ---- embedding ----
struct EmbeddingParams {
    const void* table = nullptr;    // [vocab, dim] bf16 (table_f32 = false) or f32
    const int32_t* ids = nullptr;   // [num_tokens] i32, each in [0, vocab)
    uint16_t* out = nullptr;        // [num_tokens, dim] bf16
    int64_t num_tokens = 0, dim = 0, vocab = 0;
    bool table_f32 = false;
};
void launch_embedding(const EmbeddingParams& p, cudaStream_t stream);

// ---- RMSNorm, optionally fused with the residual add and with act_quant of its output ----
// With delta: residual = bf16(residual + delta) in place (FP32 add), then out = bf16(w * r / rms(r)) of the
// rounded residual. Without delta: out = bf16(w * x / rms(x)) with x = residual (read only).
// With q8: also the act_quant of out (the bytes launch_act_quant makes from it, scales [dim / 128, rows]).
struct RmsNormParams {
    uint16_t* residual = nullptr;   // [rows, dim] bf16; updated in place when delta != nullptr
    const uint16_t* delta = nullptr;  // optional [rows, dim] bf16
    const float* weight = nullptr;  // [dim] f32
    uint16_t* out = nullptr;        // [rows, dim] bf16
    int64_t rows = 0, dim = 0;
    float eps = 1e-6f;
    uint8_t* q8 = nullptr;          // optional [rows, dim] e4m3 (needs rms_norm_quant_supported)
    float* q8_scales = nullptr;     // with q8: [dim / 128, rows] f32
    bool ue8m0 = false;             // with q8: power-of-two scales
};
void launch_rms_norm(const RmsNormParams& p, cudaStream_t stream);
// Whether launch_rms_norm can also quantize for these pointers and sizes (dim % 128 == 0, dim <= 8192, 16-byte
// aligned rows: the one-pass 8-wide path).
bool rms_norm_quant_supported(const RmsNormParams& p);

// ---- LayerNorm (biased variance, FP32 statistics) ----
struct LayerNormParams {
    const uint16_t* x = nullptr;    // [rows, dim] bf16
    const float* weight = nullptr;  // [dim] f32
    const float* bias = nullptr;    // [dim] f32
    uint16_t* out = nullptr;        // [rows, dim] bf16
    int64_t rows = 0, dim = 0;
    float eps = 1e-6f;
};
void launch_layer_norm(const LayerNormParams& p, cudaStream_t stream);

// ---- elementwise ----
struct AddParams {
    const uint16_t* a = nullptr;  // [n] bf16
    const uint16_t* b = nullptr;  // [n] bf16
    uint16_t* out = nullptr;      // [n] bf16 = bf16(a + b) with the add in FP32
    int64_t n = 0;
};
void launch_add(const AddParams& p, cudaStream_t stream);

// out = bf16(silu(gate) * up), silu(g) = g / (1 + exp(-g)) in FP32 (the SwiGLU product of the MLPs).
struct SwigluParams {
    const uint16_t* gate = nullptr;  // [n] bf16
    const uint16_t* up = nullptr;    // [n] bf16
    uint16_t* out = nullptr;         // [n] bf16
    int64_t n = 0;
};
void launch_swiglu(const SwigluParams& p, cudaStream_t stream);

struct Bf16ToF32Params {
    const uint16_t* in = nullptr;  // [n] bf16
    float* out = nullptr;          // [n] f32
    int64_t n = 0;
};
void launch_bf16_to_f32(const Bf16ToF32Params& p, cudaStream_t stream);

struct F32ToBf16Params {
    const float* in = nullptr;  // [n] f32
    uint16_t* out = nullptr;    // [n] bf16 (round to nearest even)
    int64_t n = 0;
};
void launch_f32_to_bf16(const F32ToBf16Params& p, cudaStream_t stream);

// ---- RoPE ----
// Rotates dims [dim_offset, dim_offset + 2 * half) of every head in place:
// (a, b) -> (bf16(a c - b s), bf16(a s + b c)), pairs (2i, 2i+1) when interleaved, else (i, i + half).
struct RopeKernelParams {
    uint16_t* x = nullptr;              // [num_tokens, num_heads, head_dim] bf16
    const int32_t* positions = nullptr;  // [num_tokens] i32, each in [0, max_positions)
    const float* cos = nullptr;          // [max_positions, half] f32
    const float* sin = nullptr;          // [max_positions, half] f32
    int64_t num_tokens = 0, num_heads = 0, head_dim = 0, dim_offset = 0, half = 0, max_positions = 0;
    bool interleaved = true;
};
void launch_rope(const RopeKernelParams& p, cudaStream_t stream);

// ---- MLA latent write (fused_kernels.cu) ----
// Per token with slot >= 0: c_kv = bf16(w * x / rms(x)) of kv_a[:512] (launch_rms_norm's arithmetic and order),
// k_pe = RoPE(kv_a[512:576]) (launch_rope's), written into the slot's row as launch_mla_kv_write does (bf16-576,
// or fp8-656: per-128 e4m3 tiles with power-of-two scales, k_pe bf16). kv_a is read only.
struct MlaLatentWriteKernelParams {
    const uint16_t* kv_a = nullptr;      // [num_tokens, 576] bf16
    const float* weight = nullptr;       // [512] f32 kv_a_layernorm
    const int32_t* positions = nullptr;  // [num_tokens] i32, each in [0, max_positions)
    const float* cos = nullptr;          // [max_positions, 32] f32
    const float* sin = nullptr;          // [max_positions, 32] f32
    const int32_t* slots = nullptr;      // [num_tokens] i32, each < num_slots (< 0: skipped)
    uint8_t* store = nullptr;            // [num_slots, row_bytes] u8
    int64_t num_tokens = 0, num_slots = 0, max_positions = 0;
    float eps = 1e-6f;
    bool interleaved = true;
    bool fp8 = false;
};
void launch_mla_latent_write(const MlaLatentWriteKernelParams& p, cudaStream_t stream);

// ---- absorbed MLA query (fused_kernels.cu) ----
// out[r] = [q_absorbed[r] (512) ; RoPE(q[r, q_dim - 64 : q_dim])] for rows r = token * heads + head (launch_rope's
// arithmetic on the rope part; q is read only).
struct MlaQueryKernelParams {
    const uint16_t* q_absorbed = nullptr;  // [rows, 512] bf16
    const uint16_t* q = nullptr;           // [rows, q_dim] bf16
    const int32_t* positions = nullptr;    // [rows / heads] i32, each in [0, max_positions)
    const float* cos = nullptr;            // [max_positions, 32] f32
    const float* sin = nullptr;            // [max_positions, 32] f32
    uint16_t* out = nullptr;               // [rows, 576] bf16
    int64_t rows = 0, heads = 0, q_dim = 0, max_positions = 0;
    bool interleaved = true;
};
void launch_mla_query(const MlaQueryKernelParams& p, cudaStream_t stream);

// ---- indexer key write (fused_kernels.cu) ----
// Per token with slot >= 0: k = bf16 LayerNorm(wk_x) (launch_layer_norm's arithmetic and order at width 128),
// RoPE on dims [0, 64) (launch_rope's), then the key write of launch_indexer_k_write: FP8 (Hadamard * 128^-0.5,
// act_quant into the 8448-byte page) or the f32 row.
struct IndexerKeyWriteKernelParams {
    const uint16_t* wk_x = nullptr;      // [num_tokens, 128] bf16
    const float* weight = nullptr;       // [128] f32
    const float* bias = nullptr;         // [128] f32
    const int32_t* positions = nullptr;  // [num_tokens] i32, each in [0, max_positions)
    const float* cos = nullptr;          // [max_positions, 32] f32
    const float* sin = nullptr;          // [max_positions, 32] f32
    const int32_t* slots = nullptr;      // [num_tokens] i32, each < num_slots (< 0: skipped)
    uint8_t* pages = nullptr;            // key pages (indexer_common.cuh layout)
    int64_t num_tokens = 0, num_slots = 0, max_positions = 0;
    float eps = 1e-6f;
    float hadamard_scale = 0.0f;         // 128^-0.5
    bool interleaved = false;
    bool fp8 = true;
    bool ue8m0 = false;
};
void launch_indexer_key_write(const IndexerKeyWriteKernelParams& p, cudaStream_t stream);

// ---- the decode writes beside the q_a norm (fused_kernels.cu) ----
// One launch of three independent parts: launch_rms_norm of `norm` (no delta; the one-pass 8-wide path, with its
// act_quant when q8 is set), launch_mla_latent_write of `latent` and, when key.num_tokens > 0,
// launch_indexer_key_write of `key`: the same bytes as the three launches.
struct DecodeWritesKernelParams {
    RmsNormParams norm;
    MlaLatentWriteKernelParams latent;
    IndexerKeyWriteKernelParams key;
};
bool decode_writes_supported(const DecodeWritesKernelParams& p);
void launch_decode_writes(const DecodeWritesKernelParams& p, cudaStream_t stream);

// The indexer q RoPE folded into the FP8 q preparation (indexer_kernels.cu): launch_indexer_q_prep with q's first
// 64 dims rotated first (apply_rope's arithmetic and bf16 rounding, the bytes of apply_rope then the q prep); q is
// only read.
struct IndexerQRopeParams {
    const int32_t* positions = nullptr;  // [num_tokens] i32, each in [0, max_positions)
    const float* cos = nullptr;          // [max_positions, 32] f32
    const float* sin = nullptr;          // [max_positions, 32] f32
    int64_t max_positions = 0;
    bool interleaved = false;
};
struct IndexerQPrepParams;
void launch_indexer_q_prep(const IndexerQPrepParams& p, const IndexerQRopeParams& rope, cudaStream_t stream);

// ---- FP8 (DeepSeek act_quant and block weights) ----
// Per token per 128-column block: s = max(amax, 1e-4) / 448 (rounded up to a power of two with ue8m0),
// q = e4m3(clamp(x / s, +-448)). Writes q and the scales in cuBLASLt's VEC128 layout
// scales[kb * scale_ld + m] (M-major, scale_ld = rows rounded up to 4), and/or the dequantized value
// bf16(fp8(q) * s) for the fallback path. The last block may be partial (cols % 128 != 0).
struct ActQuantParams {
    const uint16_t* x = nullptr;  // [rows, cols] bf16
    uint8_t* q = nullptr;         // optional [rows, cols] e4m3
    float* scales = nullptr;      // optional [ceil(cols/128), scale_ld] f32 (with q)
    uint16_t* dequant = nullptr;  // optional [rows, cols] bf16
    int64_t rows = 0, cols = 0, scale_ld = 0;
    bool ue8m0 = false;
};
void launch_act_quant(const ActQuantParams& p, cudaStream_t stream);

// W[n, k] = bf16(fp8(w8[n, k]) * scale_inv[n / 128, k / 128]): the once-dequantized BF16 copy of an FP8 weight.
struct DequantWeightParams {
    const uint8_t* w = nullptr;          // [rows, cols] e4m3
    const float* scale_inv = nullptr;    // [ceil(rows/128), scale_ld] f32
    uint16_t* out = nullptr;             // [rows, cols] bf16
    int64_t rows = 0, cols = 0, scale_ld = 0;
};
void launch_dequant_weight(const DequantWeightParams& p, cudaStream_t stream);

// ---- decode slots (Backend::decode_slots) ----
// key_slots[b, q] = page_table[b, q / page_size] * page_size + q % page_size for q <= positions[b], else -1;
// out_slots[b] = key_slots[b, positions[b]]. Positions outside [0, min(width, pages * page_size)) or negative
// pages trap.
struct DecodeSlotsParams {
    const int32_t* page_table = nullptr;  // [rows, pages] i32
    const int32_t* positions = nullptr;   // [rows] i32
    int32_t* key_slots = nullptr;         // [rows, width] i32
    int32_t* out_slots = nullptr;         // [rows] i32
    int64_t rows = 0, pages = 0, page_size = 0, width = 0;
};
void launch_decode_slots(const DecodeSlotsParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
