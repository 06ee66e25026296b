// The MLA absorbs of decode batches (1..64 tokens) read straight from the FP8 kv_b_proj and its 128x128 f32 block
// scales, with no BF16 copy of the weight: absorb_q y[t,h,c] = sum_i x[t,h,i] W[h*B+i, c] (W_UK) and absorb_o
// y[t,h,v] = sum_c x[t,h,c] W[h*B+d_n+v, c] (W_UV), B = d_n + d_v, bf16 in/out, FP32 sums with each block scale
// applied to the sum over its block (exact factorisation). DSA_MLA_ABSORB picks the path (mla_ops.cpp dispatches).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::backend::cuda {

inline constexpr int64_t kAbsorbFp8MaxTokens = 64;

struct AbsorbFp8Params {
    const uint16_t* x = nullptr;     // bf16: absorb_q q_nope [T, H, d_n]; absorb_o o_latent [T, H, 512] (contiguous)
    const uint8_t* w = nullptr;      // e4m3 kv_b [H * (d_n + d_v), 512] row-major
    const float* w_scale = nullptr;  // f32 [ceil(rows / 128), scale_ld]: block (row / 128, col / 128)
    uint16_t* y = nullptr;           // bf16: absorb_q [T, H, 512]; absorb_o [T, H, d_v] (contiguous)
    int64_t tokens = 0, heads = 0, nope_dim = 0, v_dim = 0, scale_ld = 0;
};

// DSA_MLA_ABSORB (read on every call): unset, empty or 'auto': the FP8 kernels where the H200 measured them faster
// than the BF16 copy (absorb_q at <= kAbsorbQAutoTokens tokens, absorb_o at <= kAbsorbFp8MaxTokens); 'fp8': at every
// size they take; 'bf16': never. Anything else fails.
inline constexpr int64_t kAbsorbQAutoTokens = 32;
bool absorb_fp8_wanted(bool absorb_q, int64_t tokens);

// Whether the kernels take p: 1 <= tokens <= kAbsorbFp8MaxTokens, d_n and d_v multiples of 32, 16-byte aligned
// pointers; absorb_q also (d_n / 32 - 1) x ceil(tokens / 16) x 2 KB of shared memory <= 48 KB (d_n <= 224 at 64
// tokens). Otherwise the caller keeps its BF16 path.
bool absorb_q_fp8_supported(const AbsorbFp8Params& p);
bool absorb_o_fp8_supported(const AbsorbFp8Params& p);

// Tuning for benchmarks (0: the default): at most max_mtiles m16 token tiles per CTA (default 2; beyond: more CTAs,
// each reading its weight slice again, from L2), `ngroups` column groups per CTA where they fit (default 1),
// absorb_q's columns per warp (default 32; 64: 8-byte weight loads).
void set_absorb_fp8_tuning(int max_mtiles, int ngroups, int q_cols_per_warp = 0);

void launch_absorb_q_fp8(const AbsorbFp8Params& p, cudaStream_t stream);
void launch_absorb_o_fp8(const AbsorbFp8Params& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
