// The MLA absorbs of decode batches (1..64 tokens) read straight from the FP8 kv_b_proj and its 128x128 f32 block
// scales, with no BF16 copy of the weight: absorb_q y[t,h,c] = sum_i x[t,h,i] W[h*B+i, c] (W_UK) and absorb_o
// y[t,h,v] = sum_c x[t,h,c] W[h*B+d_n+v, c] (W_UV), B = d_n + d_v, bf16 in/out, FP32 sums with each block scale
// applied to the sum over its block (exact factorisation). DSA_MLA_ABSORB picks the path (mla_ops.cpp dispatches).
// Decode fusions (DSA_FUSED_ABSORB): absorb_q may write into the 576-wide MLA query with its RoPE part, absorb_o
// may also write the act_quant of its output for o_proj, and read split-K attention partials (merging them itself).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::backend::cuda {

inline constexpr int64_t kAbsorbFp8MaxTokens = 64;

// absorb_q straight into the MLA query (AbsorbFp8Params::rope): y is the [T, H, 576] query, x the q_b output
// [T, H, d_n + 64]; the kernel also writes RoPE(x[..., d_n:]) into y[..., 512:] (mla_query's math).
struct AbsorbQRope {
    const int32_t* positions = nullptr;  // [tokens] i32 in [0, max_positions); null: no RoPE part
    const float* cos = nullptr;          // [max_positions, 32] f32
    const float* sin = nullptr;          // [max_positions, 32] f32
    int64_t max_positions = 0;
    bool interleaved = true;
};

struct AbsorbFp8Params {
    const uint16_t* x = nullptr;     // bf16: absorb_q q_nope [T, H, x_ld]; absorb_o o_latent [T, H, 512] (contiguous)
    const uint8_t* w = nullptr;      // e4m3 kv_b [H * (d_n + d_v), 512] row-major
    const float* w_scale = nullptr;  // f32 [ceil(rows / 128), scale_ld]: block (row / 128, col / 128)
    uint16_t* y = nullptr;           // bf16: absorb_q [T, H, y_ld]; absorb_o [T, H, d_v] (contiguous)
    int64_t tokens = 0, heads = 0, nope_dim = 0, v_dim = 0, scale_ld = 0;
    int64_t x_ld = 0, y_ld = 0;      // absorb_q's per-head row pitch of x / y in elements (0: d_n / 512)
    AbsorbQRope rope;                // absorb_q only (needs x_ld = d_n + 64, y_ld = 576)
    // absorb_o only (optional): also act_quant(y) as one [T, H * d_v] activation (1x128 blocks, d_v % 128 == 0):
    // e4m3 codes [T, H * d_v] and scales [H * d_v / 128, T] (block kb of token t at kb * T + t), bit-equal to
    // launch_act_quant of y.
    uint8_t* q8 = nullptr;
    float* q8_scales = nullptr;
    bool ue8m0 = false;
    // absorb_o with q8 only (optional): o_latent as the sparse attention's split-K partials instead of x (s1's
    // format, mla_kernels.h; x unused): the CTAs merge their head's rows first (mla_combine.cuh: the bf16 values
    // launch_mla_sparse_combine writes) and absorb those. 2 <= splits, rows per CTA x splits <= kAbsorbCombineMax.
    const float* part_o = nullptr;   // [splits, T, H, 512] f32
    const float* part_ml = nullptr;  // [splits, T, H, 2] f32: max (log2 units), sum
    int64_t splits = 0;
};
inline constexpr int64_t kAbsorbCombineMax = 512;

// DSA_MLA_ABSORB (read on every call): unset, empty or 'auto': the FP8 kernels where the H200 measured them faster
// than the BF16 copy (absorb_q at <= kAbsorbQAutoTokens tokens, absorb_o at <= kAbsorbFp8MaxTokens); 'fp8': at every
// size they take; 'bf16': never. Anything else fails.
inline constexpr int64_t kAbsorbQAutoTokens = 32;
bool absorb_fp8_wanted(bool absorb_q, int64_t tokens);

// Whether the kernels take p: 1 <= tokens <= kAbsorbFp8MaxTokens, d_n and d_v multiples of 32, 16-byte aligned
// pointers; absorb_q also (d_n / 32 - 1) x ceil(tokens / 16) x 2 KB of shared memory <= 48 KB (d_n <= 224 at 64
// tokens) and x_ld / y_ld multiples of 8 (>= d_n / 512; with the RoPE part exactly d_n + 64 / 576); absorb_o with
// the act_quant outputs also d_v % 128 == 0 and at most kAbsorbOQuantMaxTokens tokens (its 16-warp CTAs in one wave:
// H200, absorb_o + act_quant vs one kernel: B = 1 6.91 -> 6.24 us, B = 8 7.36 -> 6.35, but B = 64 13.72 -> 17.56 with
// two waves of one CTA per SM). Otherwise the caller keeps its unfused path.
inline constexpr int64_t kAbsorbOQuantMaxTokens = 32;
bool absorb_q_fp8_supported(const AbsorbFp8Params& p);
bool absorb_o_fp8_supported(const AbsorbFp8Params& p);

// Tuning for benchmarks (0: the default): at most max_mtiles m16 token tiles per CTA (default 2; beyond: more CTAs,
// each reading its weight slice again, from L2), `ngroups` column groups per CTA where they fit (default 1).
void set_absorb_fp8_tuning(int max_mtiles, int ngroups);

void launch_absorb_q_fp8(const AbsorbFp8Params& p, cudaStream_t stream);
void launch_absorb_o_fp8(const AbsorbFp8Params& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
