// Parameter structs and launchers of the lightning-indexer kernels (indexer_kernels.cu): key-cache writes,
// the per-head query preparation (Hadamard + FP8), the logits kernels (FP8 pages on tensor cores, F32 pages in
// the reference's exact float order), the exact top-k and the causal index lists. Index tensors that live on
// the device are range-checked inside the kernels (a trap aborts the process); the op layer checks host ones.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace dsa::backend::cuda {

// Writes one key per token into the paged store (slot < 0: skipped). FP8: Hadamard (exact butterfly order of the
// reference), bf16 rounding, act_quant (one scale per key) -> page bytes [64 x 128 e4m3 | 64 x f32].
// F32: the bf16 key widened to f32 at page row (slot % 64).
struct IndexerKWriteKernelParams {
    const uint16_t* k = nullptr;      // [num_tokens, 128] bf16
    const int32_t* slots = nullptr;   // [num_tokens] i32, < num_slots
    uint8_t* pages = nullptr;         // [num_slots / 64, page_bytes] u8
    int64_t num_tokens = 0, num_slots = 0;
    float hadamard_scale = 0.0f;      // 128^-0.5 as the host computes it (FP8 only)
    bool fp8 = true;
    bool ue8m0 = false;
};
void launch_indexer_k_write(const IndexerKWriteKernelParams& p, cudaStream_t stream);

// FP8 logits run on 8, 16, 32 or 64 heads: the prepared q of a model with fewer (or an odd count of) heads is
// padded with zero heads of weight 0, which add exactly +0 to every score. 0 for heads outside 1..64.
constexpr int64_t indexer_fp8_padded_heads(int64_t heads) {
    return heads < 1 || heads > 64 ? 0 : (heads <= 8 ? 8 : (heads <= 16 ? 16 : (heads <= 32 ? 32 : 64)));
}

// Per (token, head): q -> Hadamard -> bf16 -> act_quant; writes the e4m3 bytes and the folded weight
// wt = ((w * head_scale) * q_scale) * dim_scale, the reference's multiplication order. Heads heads ..
// padded_heads - 1 of each token get q = 0 and wt = 0.
struct IndexerQPrepParams {
    const uint16_t* q = nullptr;      // [num_tokens, heads, 128] bf16
    const float* weights = nullptr;   // [num_tokens, heads] f32
    uint8_t* q8 = nullptr;            // [num_tokens, padded_heads, 128] e4m3
    float* wt = nullptr;              // [num_tokens, padded_heads] f32
    int64_t num_tokens = 0, heads = 0, padded_heads = 0;
    float head_scale = 0.0f, dim_scale = 0.0f, hadamard_scale = 0.0f;
    bool ue8m0 = false;
};
void launch_indexer_q_prep(const IndexerQPrepParams& p, cudaStream_t stream);

// Logits of every visible key of each query: scores[t, s] for s <= query_limit[t]; with fill_masked the rest of
// the row (s < max_len) is -inf. FP8: q8 + wt from launch_indexer_q_prep (heads = its padded_heads: 8, 16, 32 or
// 64), score = sk * sum_j wt_j ReLU(q_j . k) on tensor cores with exact e4m3 products and f32 accumulation:
// by default wgmma m64nNk32 e4m3 (every k-step into its own zero-started accumulator, summed in f32; scores within
// ~1e-4 of the CPU's); DSA_INDEXER_LOGITS=f16: mma.sync m16n8k16 on the values widened to f16 (exact fallback);
// =e4m3: mma.sync m16n8k32 e4m3.
// F32: q bf16 + weights, the reference's float operations in its order (bit-exact). The FP8 grid depends on
// num_tokens and max_len only (CUDA-graph safe); CTAs whose key blocks lie past a row's device-side limit exit.
struct IndexerLogitsParams {
    const uint16_t* q = nullptr;         // F32: [T, heads, 128] bf16 (unused by FP8)
    const uint8_t* q8 = nullptr;         // FP8: [T, heads, 128] e4m3 (unused by F32)
    const float* weights = nullptr;      // FP8: wt [T, heads]; F32: raw weights [T, heads]
    const uint8_t* pages = nullptr;      // [num_slots / 64, page_bytes] u8
    const int32_t* key_slots = nullptr;  // [num_requests, max_len] i32
    const int32_t* query_request = nullptr;  // [T] i32
    const int32_t* query_limit = nullptr;    // [T] i32
    float* scores = nullptr;             // [T, max_len] f32
    int64_t num_tokens = 0, heads = 0, num_requests = 0, max_len = 0, num_slots = 0;
    float head_scale = 0.0f, dim_scale = 0.0f;  // F32 only
    bool fp8 = true;
    bool fill_masked = false;
};
void launch_indexer_logits(const IndexerLogitsParams& p, cudaStream_t stream);

// The FP8 logits on wgmma (indexer_logits_wgmma.cu; heads 8, 16, 32 or 64): what launch_indexer_logits runs for
// FP8 unless DSA_INDEXER_LOGITS selects the mma.sync kernels (f16 or e4m3). Same contract, no masked fill.
// kChained (DSA_INDEXER_LOGITS=chain): the 4 k-steps of a block accumulate in the tensor core (DeepGEMM's MQA-logits
// scheme) instead of one zero-started accumulator each; kChainedWide (=chain4): the same at 4 CTAs per SM.
enum class WgmmaLogits { kSeparate, kChained, kChainedWide };
void launch_indexer_logits_wgmma(const IndexerLogitsParams& p, cudaStream_t stream,
                                 WgmmaLogits variant = WgmmaLogits::kSeparate);
// The chained kernel at 4 (tma) / 3 (tma3) CTAs per SM with a key block that is one page of the store loaded by one
// tensor-map copy (other blocks gathered as before; indexer_logits_tma.cu); evict_first (tmaef, the default): the
// page copies L2 evict-first. Applies when the store is whole pages (num_slots a positive multiple of 64).
inline bool indexer_logits_tma_applies(const IndexerLogitsParams& p) {
    return p.num_slots > 0 && p.num_slots % 64 == 0;
}
void launch_indexer_logits_tma(const IndexerLogitsParams& p, cudaStream_t stream, int ctas_per_sm = 4,
                               bool evict_first = false);

// Exact top-k of each score row over s = 0..query_limit[t]: score descending, equal scores -> lower position,
// min(k, limit + 1) entries then -1; slots through key_slots. k <= kIndexerMaxTopk. Rows are split over a
// cluster of up to 8 CTAs when the batch leaves SMs idle (chosen from num_tokens and max_len only).
// position_order (or DSA_INDEXER_TOPK_ORDER unset / =position, read at every launch: the default): the same set in
// ascending position order (no sort; a row of <= k keys is written straight as 0..limit); =score: score order.
// DSA_INDEXER_TOPK: unset / auto: position order the lean kernel (indexer_topk_lean.cu: rows in registers, one CTA
// per row up to 16384 positions or clusters of up to 8 CTAs of <= 8192) where it applies, else the fast kernel
// (indexer_topk_fast.cu); score order the shared-memory kernel's candidate path for 4096 <= max_len <= 65536 (where
// it won on the H200), the global-memory one otherwise; global / smem / cand / fast / lean force one.
constexpr int64_t kIndexerMaxTopk = 8192;
struct IndexerTopkKernelParams {
    const float* scores = nullptr;           // [T, max_len] f32
    const int32_t* key_slots = nullptr;      // [num_requests, max_len] i32
    const int32_t* query_request = nullptr;  // [T] i32
    const int32_t* query_limit = nullptr;    // [T] i32
    int32_t* positions = nullptr;            // [T, k] i32
    int32_t* slots = nullptr;                // [T, k] i32
    int64_t num_tokens = 0, num_requests = 0, max_len = 0, k = 0;
    bool position_order = false;
};
void launch_indexer_topk(const IndexerTopkKernelParams& p, cudaStream_t stream);

// The same top-k with each CTA's segment of the row cached in shared memory (indexer_topk_smem.cu; what
// launch_indexer_topk runs under DSA_INDEXER_TOPK=smem or auto): false (nothing launched) when a segment of the
// widest row does not fit in a cluster of 8.
bool launch_indexer_topk_smem(const IndexerTopkKernelParams& p, cudaStream_t stream);

// Row t: positions 0..limit ascending with their slots, then -1 (width > every limit).
struct CausalIndicesKernelParams {
    const int32_t* key_slots = nullptr;      // [num_requests, max_len] i32
    const int32_t* query_request = nullptr;  // [T] i32
    const int32_t* query_limit = nullptr;    // [T] i32, < min(width, max_len)
    int32_t* positions = nullptr;            // [T, width] i32
    int32_t* slots = nullptr;                // [T, width] i32
    int64_t num_tokens = 0, num_requests = 0, max_len = 0, width = 0;
};
void launch_causal_indices(const CausalIndicesKernelParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
