// Parameter structs and launchers of the MLA kernels (mla_kernels.cu: KV-cache rows, the per-head batched GEMM,
// the expanded-KV split; mla_attention.cu: sparse and dense attention). Same conventions as kernels.h: one params
// struct per kernel, bf16 passed as uint16_t, launchers check sizes and alignment and launch on the given stream;
// tensor-level checks are done by the op functions (mla_ops.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::backend::cuda {

// ---- latent KV store (kv_layout.h) ----
// Row `slots[t]` of the store = encode(c_kv[t], k_pe[t]); slots < 0 are skipped. fp8: the 656-byte layout with
// per-128 power-of-two scales 2^ceil(log2(max(amax / 448, 1e-4))); else the 1152-byte bf16 layout.
struct MlaKvWriteKernelParams {
    const uint16_t* c_kv = nullptr;  // [num_tokens, 512] bf16
    const uint16_t* k_pe = nullptr;  // [num_tokens, 64] bf16
    const int32_t* slots = nullptr;  // [num_tokens] i32, each < num_slots (or < 0: skipped)
    uint8_t* store = nullptr;        // [num_slots, row_bytes] u8
    int64_t num_tokens = 0, num_slots = 0;
    bool fp8 = false;
};
void launch_mla_kv_write(const MlaKvWriteKernelParams& p, cudaStream_t stream);

// out[i] = decode(row slots[i]) as bf16 (exact: bf16 rows are copied, fp8 * power-of-two scale fits bf16).
struct MlaKvReadKernelParams {
    const uint8_t* store = nullptr;  // [num_slots, row_bytes] u8
    const int32_t* slots = nullptr;  // [n] i32, each in [0, num_slots)
    uint16_t* out = nullptr;         // [n, 576] bf16
    int64_t n = 0, num_slots = 0;
    bool fp8 = false;
};
void launch_mla_kv_read(const MlaKvReadKernelParams& p, cudaStream_t stream);

// ---- per-head batched GEMM (the absorbed projections) ----
// For b in [0, batch): C_b[m, n] = bf16(sum_k A_b[m, k] * B_b(k, n)) with FP32 accumulation (tensor cores).
// A_b = a + b * a_batch_stride, row-major with leading dimension lda. B_b = b_ptr + b * b_batch_stride:
// b_transposed = false: B_b is [K, N] row-major (ldb); true: B_b is [N, K] row-major (ldb), i.e. C = A · B^T.
// All leading dimensions, batch strides and base pointers must allow 16-byte loads (multiples of 8 elements).
struct BatchedGemmParams {
    const uint16_t* a = nullptr;
    const uint16_t* b = nullptr;
    uint16_t* c = nullptr;
    int64_t m = 0, n = 0, k = 0, batch = 0;
    int64_t lda = 0, ldb = 0, ldc = 0;
    int64_t a_batch_stride = 0, b_batch_stride = 0, c_batch_stride = 0;
    bool b_transposed = false;
};
void launch_batched_gemm(const BatchedGemmParams& p, cudaStream_t stream);

// ---- expanded KV: split the kv_b output into per-head keys and values ----
// k[s, h] = [kv[s, h*(d_n+d_v) .. +d_n) ; latent[s, 512 .. 576)], v[s, h] = kv[s, h*(d_n+d_v)+d_n .. +d_v).
struct MlaExpandSplitParams {
    const uint16_t* kv = nullptr;      // [num_keys, heads * (nope_dim + v_dim)] bf16
    const uint16_t* latent = nullptr;  // [num_keys, 576] bf16 (k_pe = dims 512..575)
    uint16_t* k = nullptr;             // [num_keys, heads, nope_dim + 64] bf16
    uint16_t* v = nullptr;             // [num_keys, heads, v_dim] bf16
    int64_t num_keys = 0, heads = 0, nope_dim = 0, v_dim = 0;
};
void launch_mla_expand_split(const MlaExpandSplitParams& p, cudaStream_t stream);

// ---- absorbed sparse attention (mla_attention.cu) ----
// out[t, h] = sum_j softmax_j(scale * q[t, h] . kv[slot_j]) * kv[slot_j, 0:512] over the valid slots of row t
// (slots[t, j] >= 0); a row without valid slots outputs zeros. kv rows are read from the store (bf16 or fp8
// layout, dequantized to bf16 in shared memory). bf16 mma.sync m16n8k16, FP32 accumulation and online softmax;
// P is rounded to bf16 before P·V. One CTA per (token, 64-head group), 64 gathered rows per step.
struct MlaSparseKernelParams {
    const uint16_t* q = nullptr;     // [num_tokens, heads, 576] bf16
    const uint8_t* store = nullptr;  // [num_slots, row_bytes] u8
    const int32_t* slots = nullptr;  // [num_tokens, width] i32: -1 unused, else < num_slots (else the kernel traps)
    uint16_t* out = nullptr;         // [num_tokens, heads, 512] bf16
    int64_t num_tokens = 0, heads = 0, width = 0, num_slots = 0;
    float softmax_scale = 0.0f;
    bool fp8 = false;
    // Split-K (set by the launcher, not by callers): with splits > 1 each CTA takes tiles_per_split tiles of its
    // token's list and writes unnormalized partials (FP32 O and per-row running max / sum) that a combine kernel
    // merges, so that small decode batches fill the GPU.
    int64_t splits = 1, tiles_per_split = 0;
    float* part_o = nullptr;   // [splits, num_tokens, heads, 512] f32
    float* part_ml = nullptr;  // [splits, num_tokens, heads, 2] f32: max (log2 units), sum
    // The caller merges the partials itself (mla_sparse_attention_o_q8: absorb_o reads them): with splits > 1 the
    // launchers skip the combine and out stays unwritten.
    bool combine_deferred = false;
};
// Splits of the token lists for this launch (1 = no split): enough CTAs to cover the SMs once (on the H200 at
// b = 1 capping them at 16 / 8 / 4 measured 15.2 / 20.8 / 32.1 us against 12.9 at the full 32).
int64_t mla_sparse_splits(int64_t num_tokens, int64_t heads, int64_t width, int num_sms);
// Runs the sparse kernel; with splits > 1, part_o / part_ml must hold the partials (sizes above).
void launch_mla_sparse_attention(const MlaSparseKernelParams& p, cudaStream_t stream);
// The same op on wgmma (mla_sparse_wgmma.cu, kernel "s1", the default below w3's 16 query tokens): same
// parameters, semantics, split-K partials and combine; two warpgroups per (token, 64-head group), warpgroup 0
// computes S of a whole 64-key tile and the softmax. launch_mla_sparse_attention (mma.sync) stays the fallback.
void launch_mla_sparse_wgmma(const MlaSparseKernelParams& p, cudaStream_t stream);
// Merges split-K partials (p.splits > 1) into p.out; called by the sparse launchers (nothing with p.combine_deferred).
void launch_mla_sparse_combine(const MlaSparseKernelParams& p, cudaStream_t stream);

// ---- expanded (MHA) dense attention (mla_attention.cu) ----
// Key s is visible to query t iff s <= q_positions[t] and (allowed == nullptr or s appears in allowed[t, :]).
// out[t, h] = sum_s softmax_s(scale * q[t, h] . k[s, h]) * v[s, h]; FP32 math, P rounded to bf16 before P·V.
struct MlaDenseKernelParams {
    const uint16_t* q = nullptr;             // [num_tokens, heads, qk_dim] bf16
    const uint16_t* k = nullptr;             // [num_keys, heads, qk_dim] bf16
    const uint16_t* v = nullptr;             // [num_keys, heads, v_dim] bf16
    const int32_t* q_positions = nullptr;    // [num_tokens] i32 in [0, num_keys)
    const uint32_t* allowed_bits = nullptr;  // optional [num_tokens, ceil(num_keys / 32)] visibility bitmap
    uint16_t* out = nullptr;                 // [num_tokens, heads, v_dim] bf16
    int64_t num_tokens = 0, heads = 0, num_keys = 0, qk_dim = 0, v_dim = 0;
    float softmax_scale = 0.0f;
};
void launch_mla_dense_attention(const MlaDenseKernelParams& p, cudaStream_t stream);

// bits[t, s / 32] |= 1 << (s % 32) for every allowed[t, j] >= 0 (bits must be zeroed first); entries >= num_keys
// trap (the CPU reference rejects them).
struct AllowedBitsParams {
    const int32_t* allowed = nullptr;  // [num_tokens, width] i32
    uint32_t* bits = nullptr;          // [num_tokens, words] u32
    int64_t num_tokens = 0, width = 0, num_keys = 0, words = 0;
};
void launch_allowed_bits(const AllowedBitsParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
