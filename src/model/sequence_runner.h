// SequenceRunner: drives DsaModel for ONE sequence at a time (prefill in chunks, then token-by-token decode)
// over KV stores it owns a contiguous page range of. The simplest user of the model: `dsaserve generate`, the
// parity tests and the incremental-vs-full checks. The serving engine batches many sequences instead.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/transformer.h"

namespace dsa::model {

class SequenceRunner {
public:
    // Uses pages [first_page, kv capacity) of `kv` (page 0 stays reserved for padding, as in the engine).
    SequenceRunner(DsaModel& model, KvStores& kv, int64_t page_size, int64_t first_page = 1);

    int64_t length() const { return static_cast<int64_t>(tokens_.size()); }
    int64_t capacity() const { return static_cast<int64_t>(pages_.size()) * page_size_; }
    const std::vector<int32_t>& tokens() const { return tokens_; }

    // Appends `tokens` (one forward); returns logits for every new token or only the last.
    ForwardOutput step(std::span<const int32_t> tokens, bool all_logits, const ForwardOptions& options = {});
    // Prefill in chunks of at most `chunk` tokens (0 = one shot); returns the logits of the last chunk's rows.
    ForwardOutput prefill(std::span<const int32_t> tokens, int64_t chunk, bool all_logits,
                          const ForwardOptions& options = {});

private:
    DsaModel& model_;
    KvStores& kv_;
    int64_t page_size_;
    std::vector<int32_t> pages_;
    std::vector<int32_t> tokens_;
};

// Index of the largest logit in row `row` of logits [R, V] f32 (lowest id on ties).
int32_t argmax_row(const Tensor& logits, int64_t row);

}  // namespace dsa::model
