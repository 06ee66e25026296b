// FakeRunner: stamps and the hash-derived logits.
#include "fake_runner.h"

#include <algorithm>

#include "base/check.h"

namespace dsa::engine::testing {
namespace {

uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

}  // namespace

FakeRunner::FakeRunner(int64_t num_pages, int64_t page_size, int64_t vocab)
    : num_pages_(num_pages),
      page_size_(page_size),
      vocab_(vocab),
      slots_(static_cast<size_t>((num_pages + 1) * page_size)) {}

void FakeRunner::logits_for(std::span<const int32_t> tokens, int64_t vocab, float* row) {
    uint64_t h = 0x1234;
    for (size_t p = 0; p < tokens.size(); ++p) h = mix(h ^ (static_cast<uint64_t>(tokens[p]) * 1000003u + p));
    for (int64_t v = 0; v < vocab; ++v) row[v] = static_cast<float>(mix(h + static_cast<uint64_t>(v)) % 1000) / 250.0f;
    row[h % static_cast<uint64_t>(vocab)] += 3.0f;  // a clear greedy winner
}

std::vector<int32_t> FakeRunner::expected_greedy(std::span<const int32_t> prompt, int64_t num_tokens, int64_t vocab) {
    std::vector<int32_t> seq(prompt.begin(), prompt.end()), out;
    std::vector<float> row(static_cast<size_t>(vocab));
    for (int64_t i = 0; i < num_tokens; ++i) {
        logits_for(seq, vocab, row.data());
        auto best = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
        out.push_back(best);
        seq.push_back(best);
    }
    return out;
}

Tensor FakeRunner::forward(std::span<const model::SequenceStep> steps) {
    ++num_forward_calls_;
    Tensor logits = Tensor::zeros({static_cast<int64_t>(steps.size()), vocab_}, DType::kF32);
    int64_t num_tokens = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
        const model::SequenceStep& s = steps[i];
        const int64_t len = s.num_cached + static_cast<int64_t>(s.new_tokens.size());
        DSA_CHECK_GE(static_cast<int64_t>(s.page_table.size()) * page_size_, len);
        auto slot = [&](int64_t p) {
            int32_t page = s.page_table[static_cast<size_t>(p / page_size_)];
            DSA_CHECK(page >= 1 && page <= num_pages_) << "page " << page;
            return static_cast<size_t>(page * page_size_ + p % page_size_);
        };
        for (size_t j = 0; j < s.new_tokens.size(); ++j) {
            int64_t p = s.num_cached + static_cast<int64_t>(j);
            slots_[slot(p)] = Stamp{s.new_tokens[j], p};
        }
        std::vector<int32_t> seen(static_cast<size_t>(len));
        for (int64_t p = 0; p < len; ++p) {
            const Stamp& st = slots_[slot(p)];
            if (st.position != p) ++num_bad_reads_;
            seen[static_cast<size_t>(p)] = st.token;
        }
        logits_for(seen, vocab_, logits.data<float>() + static_cast<int64_t>(i) * vocab_);
        num_tokens += static_cast<int64_t>(s.new_tokens.size());
    }
    max_tokens_per_forward_ = std::max(max_tokens_per_forward_, num_tokens);
    return logits;
}

}  // namespace dsa::engine::testing
