// Tokenizer for Hugging Face `tokenizer.json` files of the byte-level BPE kind (DeepSeek-V3.x, GLM):
// added tokens split out first, then the pre-tokenizer splits (PCRE2), then byte-level BPE per piece.
// Immutable after loading and safe to share between threads; encode/decode match the Rust `tokenizers`
// crate (encode without post-processor tokens: callers write BOS themselves, as the chat templates do).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/status.h"
#include "text/tokenizer_added.h"
#include "text/tokenizer_bpe.h"
#include "text/tokenizer_pretok.h"

namespace dsa::text {

enum class SpecialTokens { kKeep, kSkip };

class Tokenizer {
public:
    static StatusOr<std::shared_ptr<const Tokenizer>> from_file(const std::string& path);
    static StatusOr<std::shared_ptr<const Tokenizer>> from_json_text(std::string_view json_text);
    static StatusOr<std::shared_ptr<const Tokenizer>> from_json(const Json& j);

    // Text -> ids. Invalid UTF-8 in `text` is first replaced by U+FFFD (maximal subparts).
    std::vector<int32_t> encode(std::string_view text) const;
    void encode_append(std::string_view text, std::vector<int32_t>& out) const;
    // Encodes every text on `num_threads` threads (0: all hardware threads). Result i belongs to texts[i].
    std::vector<std::vector<int32_t>> encode_batch(std::span<const std::string> texts, int num_threads = 0) const;

    // Ids -> text, as Hugging Face's decode: token bytes concatenated, ill-formed UTF-8 replaced by U+FFFD.
    // Unknown ids are dropped. kSkip drops added tokens marked special.
    std::string decode(std::span<const int32_t> ids, SpecialTokens special = SpecialTokens::kKeep) const;

    std::optional<int32_t> token_to_id(std::string_view token) const;
    std::optional<std::string_view> id_to_token(int32_t id) const;
    // One more than the largest id of the vocab and the added tokens.
    int32_t vocab_size() const { return static_cast<int32_t>(id_to_token_.size()); }
    bool is_special(int32_t id) const;
    bool is_added(int32_t id) const;
    // The raw bytes an id decodes to (possibly a partial UTF-8 sequence); empty for unknown ids.
    std::string_view token_bytes(int32_t id) const;
    const std::vector<AddedToken>& added_tokens() const { return added_; }

private:
    Tokenizer() = default;
    Status load(const Json& j);
    Status load_added_tokens(const Json& j);
    Status check_normalizer(const Json& j) const;
    Status check_decoder(const Json& j) const;
    void build_id_tables();
    void encode_valid(std::string_view text, std::vector<int32_t>& out) const;

    std::unique_ptr<BpeModel> model_;
    PreTokenizer pre_tokenizer_;
    std::vector<AddedToken> added_;
    AddedTokenMatcher raw_matcher_;         // added tokens with normalized=false
    AddedTokenMatcher normalized_matcher_;  // added tokens with normalized=true
    TokenMap added_to_id_;
    std::vector<std::string> id_to_token_;  // "" for holes
    std::vector<std::string> id_bytes_;
    std::vector<uint8_t> id_flags_;         // kFlag* bits
};

}  // namespace dsa::text
