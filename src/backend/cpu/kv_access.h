// Row access to the KV stores of kv_layout.h for the CPU ops: encode/decode one token of the MLA latent store
// in any format, and one token of the paged indexer key store.
#pragma once

#include <cstdint>

#include "backend/kv_layout.h"

namespace dsa::backend::cpu {

// Encodes c_kv [512] and k_pe [64] into one row of `format` (FP8: per-128 power-of-two scales).
void encode_latent(const float* c_kv, const float* k_pe, MlaKvFormat format, uint8_t* row);
// Decodes one row into out [576] f32 (c_kv dequantized, then k_pe).
void decode_latent(const uint8_t* row, MlaKvFormat format, float* out);

// Pointer to the bytes of token `slot` in an MLA store (checked).
uint8_t* latent_row(const MlaKvStore& store, int64_t slot);
void check_mla_store(const MlaKvStore& store);
void check_indexer_store(const IndexerKeyStore& store);

// Writes one indexer key: FP8 store takes e4m3 bytes [128] + scale; F32 store takes values [128] (scale unused).
void store_indexer_key(IndexerKeyStore& store, int64_t slot, const uint8_t* k8, float scale);
void store_indexer_key_f32(IndexerKeyStore& store, int64_t slot, const float* k);
// Reads one indexer key as f32 values [128] (FP8: the decoded e4m3 values, not yet scaled) and its scale
// (F32 store: 1).
void load_indexer_key(const IndexerKeyStore& store, int64_t slot, float* k, float* scale);

}  // namespace dsa::backend::cpu
