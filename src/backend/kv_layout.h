// Byte layouts of the two KV stores the ops read and write: the MLA latent store (one row per token slot) and
// the paged indexer key store. The kvcache module allocates them from these constants; the ops only take the
// memory (as u8 tensors) plus slot indices. Slot s of a paged store lives in page s / 64 at row s % 64.
// The FP8 formats are the ones FlashMLA (656-byte "V32_FP8Sparse") and DeepGEMM (paged indexer) consume.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace dsa::backend {

// ---- MLA latent cache: per token c_kv (512, after kv_a_layernorm) and k_pe (64, after RoPE). ----
constexpr int64_t kMlaLatentDim = 512;                       // r_kv
constexpr int64_t kMlaRopeDim = 64;                          // d_r
constexpr int64_t kMlaKvDim = kMlaLatentDim + kMlaRopeDim;   // 576
constexpr int64_t kMlaFp8TileDim = 128;                      // one f32 scale per 128 c_kv values
constexpr int64_t kMlaFp8NumTiles = kMlaLatentDim / kMlaFp8TileDim;  // 4

enum class MlaKvFormat : uint8_t {
    kF32,   // [576 f32] = 2304 B: exact, for the pure-FP32 reference
    kBF16,  // [576 bf16] = 1152 B: c_kv then k_pe
    kFp8,   // 656 B: [512 e4m3 c_kv | 4 f32 scales | 64 bf16 k_pe]
};

constexpr int64_t kMlaF32BytesPerToken = kMlaKvDim * 4;   // 2304
constexpr int64_t kMlaBf16BytesPerToken = kMlaKvDim * 2;  // 1152
constexpr int64_t kMlaFp8BytesPerToken = 656;
constexpr int64_t kMlaFp8ScaleOffset = 512;  // 4 x f32, tile j dequantizes c_kv[128j, 128j+128)
constexpr int64_t kMlaFp8RopeOffset = 528;   // 64 x bf16 k_pe, not quantized
static_assert(kMlaFp8RopeOffset == kMlaFp8ScaleOffset + kMlaFp8NumTiles * 4);
static_assert(kMlaFp8BytesPerToken == kMlaFp8RopeOffset + kMlaRopeDim * 2);

constexpr int64_t mla_kv_bytes_per_token(MlaKvFormat f) {
    return f == MlaKvFormat::kF32 ? kMlaF32BytesPerToken
           : f == MlaKvFormat::kBF16 ? kMlaBf16BytesPerToken
                                     : kMlaFp8BytesPerToken;
}
const char* mla_kv_format_name(MlaKvFormat f);

// The MLA store: row `slot` holds one token. Slot = page_id * page_size + offset (page size is the kvcache's).
struct MlaKvStore {
    Tensor data;  // [num_slots, mla_kv_bytes_per_token(format)] u8
    MlaKvFormat format = MlaKvFormat::kBF16;
    int64_t num_slots() const { return data.dim(0); }
};

// ---- Indexer key cache: per token k^I (128) after LayerNorm -> RoPE (-> Hadamard -> FP8). ----
constexpr int64_t kIndexerHeadDim = 128;
constexpr int64_t kIndexerPageSize = 64;  // tokens per page

enum class IndexerKeyFormat : uint8_t {
    kFp8,  // page = [64 x 128 e4m3 | 64 x f32 scale] = 8448 B (DeepGEMM paged layout)
    kF32,  // page = [64 x 128 f32] = 32768 B (transformers numerics: no Hadamard, no FP8)
};

constexpr int64_t kIndexerFp8BytesPerToken = kIndexerHeadDim + 4;                     // 132
constexpr int64_t kIndexerFp8PageBytes = kIndexerPageSize * kIndexerFp8BytesPerToken;  // 8448
constexpr int64_t kIndexerFp8ScaleOffset = kIndexerPageSize * kIndexerHeadDim;        // 8192: scales after keys
constexpr int64_t kIndexerF32PageBytes = kIndexerPageSize * kIndexerHeadDim * 4;       // 32768
static_assert(kIndexerFp8PageBytes == 8448);

constexpr int64_t indexer_page_bytes(IndexerKeyFormat f) {
    return f == IndexerKeyFormat::kFp8 ? kIndexerFp8PageBytes : kIndexerF32PageBytes;
}
const char* indexer_key_format_name(IndexerKeyFormat f);

// The paged indexer store: slot s lives in page s / 64, row s % 64.
struct IndexerKeyStore {
    Tensor data;  // [num_pages, indexer_page_bytes(format)] u8
    IndexerKeyFormat format = IndexerKeyFormat::kFp8;
    int64_t num_slots() const { return data.dim(0) * kIndexerPageSize; }
};

}  // namespace dsa::backend
