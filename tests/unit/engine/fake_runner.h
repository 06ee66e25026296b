// FakeRunner: a deterministic stand-in for the model, for scheduler / engine tests without weights. Every
// computed position writes a stamp (token, position) into its KV slot; the logits of a sequence's last token
// are a function of the stamps read back through the page table for ALL its positions, so a wrong page table,
// a reused page with the wrong content or a skipped position changes the output, and is also counted in
// num_bad_reads(). expected_greedy() computes the same tokens straight from the prompt (the oracle).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/model_runner.h"

namespace dsa::engine::testing {

class FakeRunner final : public ModelRunner {
  public:
    FakeRunner(int64_t num_pages, int64_t page_size, int64_t vocab);

    int64_t vocab_size() const override { return vocab_; }
    int64_t num_pages() const override { return num_pages_; }
    int64_t page_size() const override { return page_size_; }
    Tensor forward(std::span<const model::SequenceStep> steps) override;

    int64_t num_bad_reads() const { return num_bad_reads_; }
    int64_t num_forward_calls() const { return num_forward_calls_; }
    int64_t max_tokens_per_forward() const { return max_tokens_per_forward_; }

    // The logits row the fake model gives after `tokens` (all positions present).
    static void logits_for(std::span<const int32_t> tokens, int64_t vocab, float* row);
    // Greedy continuation of `prompt` by `num_tokens` tokens (no EOS handling).
    static std::vector<int32_t> expected_greedy(std::span<const int32_t> prompt, int64_t num_tokens, int64_t vocab);

  private:
    struct Stamp {
        int32_t token = -1;
        int64_t position = -1;
    };
    int64_t num_pages_, page_size_, vocab_;
    std::vector<Stamp> slots_;
    int64_t num_bad_reads_ = 0;
    int64_t num_forward_calls_ = 0;
    int64_t max_tokens_per_forward_ = 0;
};

}  // namespace dsa::engine::testing
