// Byte-level encoding of the MLA latent rows and the paged indexer keys (layouts in kv_layout.h).
#include "backend/cpu/kv_access.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/quant.h"
#include "tensor/numeric.h"

namespace dsa::backend::cpu {

void encode_latent(const float* c_kv, const float* k_pe, MlaKvFormat format, uint8_t* row) {
    if (format == MlaKvFormat::kF32) {
        std::memcpy(row, c_kv, kMlaLatentDim * 4);
        std::memcpy(row + kMlaLatentDim * 4, k_pe, kMlaRopeDim * 4);
        return;
    }
    uint16_t pe[kMlaRopeDim];
    for (int64_t i = 0; i < kMlaRopeDim; ++i) pe[i] = f32_to_bf16(k_pe[i]);
    if (format == MlaKvFormat::kBF16) {
        uint16_t c[kMlaLatentDim];
        for (int64_t i = 0; i < kMlaLatentDim; ++i) c[i] = f32_to_bf16(c_kv[i]);
        std::memcpy(row, c, sizeof(c));
        std::memcpy(row + kMlaLatentDim * 2, pe, sizeof(pe));
        return;
    }
    for (int64_t j = 0; j < kMlaFp8NumTiles; ++j) {
        const float* tile = c_kv + j * kMlaFp8TileDim;
        float amax = 0.0f;
        for (int64_t i = 0; i < kMlaFp8TileDim; ++i) amax = std::max(amax, std::fabs(tile[i]));
        const float scale = kv_fp8_scale(amax);
        quantize_e4m3(tile, kMlaFp8TileDim, scale, row + j * kMlaFp8TileDim);
        std::memcpy(row + kMlaFp8ScaleOffset + j * 4, &scale, 4);
    }
    std::memcpy(row + kMlaFp8RopeOffset, pe, sizeof(pe));
}

void decode_latent(const uint8_t* row, MlaKvFormat format, float* out) {
    if (format == MlaKvFormat::kF32) {
        std::memcpy(out, row, kMlaKvDim * 4);
        return;
    }
    uint16_t b[kMlaKvDim];
    if (format == MlaKvFormat::kBF16) {
        std::memcpy(b, row, sizeof(b));
        for (int64_t i = 0; i < kMlaKvDim; ++i) out[i] = bf16_to_f32(b[i]);
        return;
    }
    float scales[kMlaFp8NumTiles];
    std::memcpy(scales, row + kMlaFp8ScaleOffset, sizeof(scales));
    for (int64_t i = 0; i < kMlaLatentDim; ++i) out[i] = fp8e4m3_to_f32(row[i]) * scales[i / kMlaFp8TileDim];
    std::memcpy(b, row + kMlaFp8RopeOffset, kMlaRopeDim * 2);
    for (int64_t i = 0; i < kMlaRopeDim; ++i) out[kMlaLatentDim + i] = bf16_to_f32(b[i]);
}

void check_mla_store(const MlaKvStore& s) {
    DSA_CHECK(s.data.defined() && s.data.device() == Device::kCPU && s.data.is_contiguous()) << "MLA store";
    DSA_CHECK(s.data.dtype() == DType::kU8 && s.data.ndim() == 2) << "MLA store must be [slots, bytes] u8";
    DSA_CHECK_EQ(s.data.dim(1), mla_kv_bytes_per_token(s.format)) << "row bytes of " << mla_kv_format_name(s.format);
}

uint8_t* latent_row(const MlaKvStore& s, int64_t slot) {
    DSA_CHECK(slot >= 0 && slot < s.num_slots()) << "MLA slot " << slot << " of " << s.num_slots();
    return s.data.data<uint8_t>() + slot * s.data.dim(1);
}

void check_indexer_store(const IndexerKeyStore& s) {
    DSA_CHECK(s.data.defined() && s.data.device() == Device::kCPU && s.data.is_contiguous()) << "indexer store";
    DSA_CHECK(s.data.dtype() == DType::kU8 && s.data.ndim() == 2) << "indexer store must be [pages, bytes] u8";
    DSA_CHECK_EQ(s.data.dim(1), indexer_page_bytes(s.format)) << indexer_key_format_name(s.format);
}

namespace {
uint8_t* indexer_page(const IndexerKeyStore& s, int64_t slot) {
    DSA_CHECK(slot >= 0 && slot < s.num_slots()) << "indexer slot " << slot << " of " << s.num_slots();
    return s.data.data<uint8_t>() + (slot / kIndexerPageSize) * s.data.dim(1);
}
}  // namespace

void store_indexer_key(IndexerKeyStore& s, int64_t slot, const uint8_t* k8, float scale) {
    DSA_CHECK(s.format == IndexerKeyFormat::kFp8);
    uint8_t* page = indexer_page(s, slot);
    const int64_t row = slot % kIndexerPageSize;
    std::memcpy(page + row * kIndexerHeadDim, k8, kIndexerHeadDim);
    std::memcpy(page + kIndexerFp8ScaleOffset + row * 4, &scale, 4);
}

void store_indexer_key_f32(IndexerKeyStore& s, int64_t slot, const float* k) {
    DSA_CHECK(s.format == IndexerKeyFormat::kF32);
    uint8_t* page = indexer_page(s, slot);
    std::memcpy(page + (slot % kIndexerPageSize) * kIndexerHeadDim * 4, k, kIndexerHeadDim * 4);
}

void load_indexer_key(const IndexerKeyStore& s, int64_t slot, float* k, float* scale) {
    const uint8_t* page = indexer_page(s, slot);
    const int64_t row = slot % kIndexerPageSize;
    if (s.format == IndexerKeyFormat::kF32) {
        std::memcpy(k, page + row * kIndexerHeadDim * 4, kIndexerHeadDim * 4);
        *scale = 1.0f;
        return;
    }
    for (int64_t i = 0; i < kIndexerHeadDim; ++i) k[i] = fp8e4m3_to_f32(page[row * kIndexerHeadDim + i]);
    std::memcpy(scale, page + kIndexerFp8ScaleOffset + row * 4, 4);
}

}  // namespace dsa::backend::cpu
