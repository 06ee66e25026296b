// Incremental detokenizer over the tokenizer's per-id bytes. Because U+FFFD replacement uses maximal
// subparts, decoding the stream in pieces (holding back only a trailing truncated sequence) gives exactly the
// one-shot result.
#include "text/detokenizer.h"

#include "text/tokenizer_utf8.h"

namespace dsa::text {

IncrementalDetokenizer::IncrementalDetokenizer(std::shared_ptr<const Tokenizer> tokenizer, SpecialTokens special)
    : tokenizer_(std::move(tokenizer)), special_(special) {}

void IncrementalDetokenizer::add(int32_t id, std::string& delta) {
    ++num_tokens_;
    if (special_ == SpecialTokens::kSkip && tokenizer_->is_special(id)) return;
    std::string_view bytes = tokenizer_->token_bytes(id);
    if (bytes.empty()) return;
    if (pending_.empty()) {
        size_t used = utf8_lossy_append(bytes, delta, /*final=*/false);
        pending_.assign(bytes.substr(used));
        return;
    }
    pending_.append(bytes);
    size_t used = utf8_lossy_append(pending_, delta, /*final=*/false);
    pending_.erase(0, used);
}

std::string IncrementalDetokenizer::add(int32_t id) {
    std::string delta;
    add(id, delta);
    return delta;
}

std::string IncrementalDetokenizer::add(std::span<const int32_t> ids) {
    std::string delta;
    for (int32_t id : ids) add(id, delta);
    return delta;
}

std::string IncrementalDetokenizer::flush() {
    std::string rest;
    utf8_lossy_append(pending_, rest, /*final=*/true);
    pending_.clear();
    return rest;
}

}  // namespace dsa::text
