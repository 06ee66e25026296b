// ForwardBatch: what one model step computes — the new tokens of several sequences, where their KV goes, and
// where each sequence's earlier tokens live. Built from per-sequence page tables (slot(p) = page[p / P] * P +
// p % P, RUNTIME_NOTES §2.4). The model never sees requests: only these tensors. Host (CPU) tensors; the
// model copies what its backend needs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/kv_layout.h"
#include "tensor/tensor.h"

namespace dsa::model {

// One sequence's part of a step.
struct SequenceStep {
    std::span<const int32_t> new_tokens;  // tokens computed this step (positions num_cached ...)
    int64_t num_cached = 0;               // positions [0, num_cached) are already in the KV stores
    std::span<const int32_t> page_table;  // pages of the sequence, covering num_cached + new_tokens.size()
    bool all_logits = false;              // logits for every new token (else only for the last one)
};

struct SequenceSpan {
    int64_t token_offset = 0;  // first row of this sequence in the batch
    int64_t num_new = 0;
    int64_t num_cached = 0;
    int64_t length() const { return num_cached + num_new; }
};

struct ForwardBatch {
    Tensor token_ids;      // [T] i32
    Tensor positions;      // [T] i32, position of each token within its sequence
    Tensor out_slots;      // [T] i32, KV slot each new token is written to
    Tensor key_slots;      // [B, max_len] i32, slot of position p of sequence b (-1 past its length)
    Tensor query_request;  // [T] i32, sequence (row of key_slots) of each token
    Tensor logit_rows;     // [R] i32, rows of T whose logits are computed
    std::vector<SequenceSpan> seqs;

    int64_t num_tokens() const { return token_ids.defined() ? token_ids.dim(0) : 0; }
    int64_t num_seqs() const { return static_cast<int64_t>(seqs.size()); }
};

// Builds a batch; checks (DSA_CHECK) that every page table covers its sequence.
ForwardBatch build_forward_batch(std::span<const SequenceStep> steps, int64_t page_size);

// The KV memory the model reads and writes: one latent store per layer (main layers, then MTP layers) and one
// indexer key store per layer that runs its own indexer (undefined data for IndexCache Shared layers).
struct KvStores {
    std::vector<backend::MlaKvStore> mla;
    std::vector<backend::IndexerKeyStore> indexer;
};

}  // namespace dsa::model

namespace dsa::backend {
class Backend;
}

namespace dsa::model {

struct ModelConfig;
// Allocates zeroed host KV stores for every layer (main + `num_mtp_layers`), in the given formats, with
// `num_pages` pages of `page_size` slots (page 0 included). For tests and the single-sequence runner; the
// serving engine sizes its stores through the kvcache module.
KvStores allocate_kv_stores(const ModelConfig& config, backend::MlaKvFormat mla_format,
                            backend::IndexerKeyFormat indexer_format, int64_t num_pages, int64_t page_size,
                            int64_t num_mtp_layers);
// The same on `backend`'s device, in the formats its Numerics imply (zeroed there too).
KvStores allocate_kv_stores(backend::Backend& backend, const ModelConfig& config, int64_t num_pages,
                            int64_t page_size, int64_t num_mtp_layers);

}  // namespace dsa::model
