// What kvcache needs to know about the two KV stores it allocates: their formats and byte sizes, nothing of
// their inner layout (backend/kv_layout.h owns that: scale and rope offsets, paged indexer layout). kvcache
// cannot include backend, so the byte sizes are repeated here; engine/model_runner.cpp maps backend formats
// to these and static_asserts that every size agrees with backend's, so the two cannot drift. Slot s lives at
// latent row s and at indexer page s / page_size, row s % page_size: one slot space for both stores.
#pragma once

#include <cstdint>

namespace dsa::kvcache {

// Tokens per page. DeepGEMM's paged indexer kernel and FlashMLA's FP8 sparse decode require 64 on Hopper.
constexpr int kDefaultPageSize = 64;

// MLA latent store: one row per token slot (c_kv 512 + k_pe 64 values).
enum class MlaKvFormat : uint8_t {
    kF32,   // 2304 B: 576 f32 (the FP32 reference backend)
    kBF16,  // 1152 B: 576 bf16
    kFp8,   // 656 B: FlashMLA "V32_FP8Sparse" (512 e4m3 + 4 f32 scales + 64 bf16)
};

constexpr int64_t mla_bytes_per_token(MlaKvFormat f) {
    return f == MlaKvFormat::kF32 ? 2304 : f == MlaKvFormat::kBF16 ? 1152 : 656;
}
const char* mla_kv_format_name(MlaKvFormat f);

// Indexer key store: paged, page_size rows of one key (128 values) each.
enum class IndexerKeyFormat : uint8_t {
    kFp8,  // 132 B per token (128 e4m3 + 1 f32 scale): 8448 B per 64-token page (DeepGEMM paged layout)
    kF32,  // 512 B per token (128 f32): 32768 B per 64-token page (transformers numerics)
};

constexpr int64_t indexer_bytes_per_token(IndexerKeyFormat f) { return f == IndexerKeyFormat::kFp8 ? 132 : 512; }
const char* indexer_key_format_name(IndexerKeyFormat f);

// Slot of offset `offset` in page `page_id`: the index the sparse kernels and the cache writes take.
constexpr int64_t slot_of(int64_t page_id, int64_t offset, int64_t page_size) { return page_id * page_size + offset; }

}  // namespace dsa::kvcache
