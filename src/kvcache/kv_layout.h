// Byte sizes of the two KV stores kvcache allocates: the MLA latent store (one row per token slot) and the
// paged indexer key store (one row per page). backend/kv_layout.h defines the same layouts for the ops; kvcache
// cannot include backend, so the numbers are repeated here and BOTH FILES MUST AGREE (the static_asserts below
// pin the values the kernels require). Slot s lives at latent row s and at indexer page s / page_size, row
// s % page_size: one slot space for both stores.
#pragma once

#include <cstdint>

namespace dsa::kvcache {

// Tokens per page. DeepGEMM's paged indexer kernel and FlashMLA's FP8 sparse decode require 64 on Hopper.
constexpr int kDefaultPageSize = 64;

// ---- MLA latent: per token c_kv (512, after kv_a_layernorm) and k_pe (64, after RoPE). ----
constexpr int64_t kMlaLatentDim = 512;
constexpr int64_t kMlaRopeDim = 64;
constexpr int64_t kMlaKvDim = kMlaLatentDim + kMlaRopeDim;  // 576

enum class MlaKvFormat : uint8_t {
    kF32,   // [576 f32] = 2304 B: exact, for the FP32 reference backend
    kBF16,  // [576 bf16] = 1152 B: c_kv then k_pe
    kFp8,   // 656 B: [512 e4m3 c_kv | 4 f32 tile scales | 64 bf16 k_pe] (FlashMLA "V32_FP8Sparse")
};

constexpr int64_t kMlaF32BytesPerToken = kMlaKvDim * 4;   // 2304
constexpr int64_t kMlaBf16BytesPerToken = kMlaKvDim * 2;  // 1152
constexpr int64_t kMlaFp8BytesPerToken = 656;
constexpr int64_t kMlaFp8ScaleOffset = 512;  // 4 x f32, tile j dequantizes c_kv[128j, 128j + 128)
constexpr int64_t kMlaFp8RopeOffset = 528;   // 64 x bf16 k_pe
static_assert(kMlaFp8RopeOffset == kMlaFp8ScaleOffset + 4 * 4);
static_assert(kMlaFp8BytesPerToken == kMlaFp8RopeOffset + kMlaRopeDim * 2);
static_assert(kMlaBf16BytesPerToken == 1152);

constexpr int64_t mla_bytes_per_token(MlaKvFormat f) {
    return f == MlaKvFormat::kF32    ? kMlaF32BytesPerToken
           : f == MlaKvFormat::kBF16 ? kMlaBf16BytesPerToken
                                     : kMlaFp8BytesPerToken;
}
const char* mla_kv_format_name(MlaKvFormat f);

// ---- Indexer keys: per token k^I (128) after LayerNorm -> RoPE -> Hadamard -> FP8, plus its f32 scale. ----
constexpr int64_t kIndexerHeadDim = 128;

enum class IndexerKeyFormat : uint8_t {
    kFp8,  // page = [page_size x 128 e4m3 | page_size x f32 scale]: 132 B per token, 8448 B per 64-token page
    kF32,  // page = [page_size x 128 f32]: 512 B per token (transformers numerics, no Hadamard / FP8)
};

constexpr int64_t kIndexerFp8BytesPerToken = kIndexerHeadDim + 4;                      // 132
constexpr int64_t kIndexerF32BytesPerToken = kIndexerHeadDim * 4;                      // 512
constexpr int64_t kIndexerFp8PageBytes = kDefaultPageSize * kIndexerFp8BytesPerToken;  // 8448
constexpr int64_t kIndexerFp8ScaleOffset = kDefaultPageSize * kIndexerHeadDim;         // 8192: scales after keys
static_assert(kIndexerFp8PageBytes == 8448);

constexpr int64_t indexer_bytes_per_token(IndexerKeyFormat f) {
    return f == IndexerKeyFormat::kFp8 ? kIndexerFp8BytesPerToken : kIndexerF32BytesPerToken;
}
const char* indexer_key_format_name(IndexerKeyFormat f);

// Slot of offset `offset` in page `page_id`: the index the sparse kernels and the cache writes take.
constexpr int64_t slot_of(int64_t page_id, int64_t offset, int64_t page_size) { return page_id * page_size + offset; }

}  // namespace dsa::kvcache
