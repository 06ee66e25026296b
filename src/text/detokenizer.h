// Incremental detokenizer: one per request. Feed output ids one at a time and get the text that became
// final. Bytes of a UTF-8 character split across tokens (byte-level BPE for CJK and emoji) are held back
// until the character is complete; definitely ill-formed bytes become U+FFFD at once. The concatenation of
// every delta plus flush() equals Tokenizer::decode of all ids (with the same SpecialTokens option). Byte-level
// decoding strips nothing, so no prompt tokens are needed as context (unlike SentencePiece decoders).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "text/tokenizer.h"

namespace dsa::text {

class IncrementalDetokenizer {
public:
    explicit IncrementalDetokenizer(std::shared_ptr<const Tokenizer> tokenizer,
                                    SpecialTokens special = SpecialTokens::kKeep);

    // Adds one id and appends the newly final text to `delta`.
    void add(int32_t id, std::string& delta);
    // Adds one id and returns the newly final text (possibly empty).
    std::string add(int32_t id);
    std::string add(std::span<const int32_t> ids);

    // End of the stream: returns what was held back, an incomplete character becoming U+FFFD.
    std::string flush();

    size_t num_tokens() const { return num_tokens_; }
    size_t num_pending_bytes() const { return pending_.size(); }

private:
    std::shared_ptr<const Tokenizer> tokenizer_;
    SpecialTokens special_;
    std::string pending_;  // a trailing incomplete UTF-8 sequence (at most 3 bytes)
    size_t num_tokens_ = 0;
};

}  // namespace dsa::text
