// Added tokens (`added_tokens` of tokenizer.json, special or not, e.g. "<｜User｜>") are split out of the text
// before pre-tokenization, leftmost-longest, honouring single_word / lstrip / rstrip the way Hugging Face's
// AddedVocabulary does. Tokens with normalized=false are split first; normalized ones are then split out of the
// remaining (normalized) pieces.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/status.h"

namespace dsa::text {

struct AddedToken {
    int32_t id = -1;
    std::string content;
    bool special = false;
    bool lstrip = false;
    bool rstrip = false;
    bool single_word = false;
    bool normalized = false;

    static StatusOr<AddedToken> from_json(const Json& j);
};

// A piece of the input: plain text to pre-tokenize (added_id < 0) or one added token (its span includes the
// whitespace an lstrip/rstrip token absorbed).
struct TextPiece {
    uint32_t begin;
    uint32_t len;
    int32_t added_id;
};

// A byte trie over the contents of one set of added tokens.
class AddedTokenMatcher {
public:
    void build(const std::vector<AddedToken>& tokens, bool normalized_set);
    bool empty() const { return tokens_.empty(); }

    // Splits every plain piece of `in` around the matches, appending to `out`.
    void split(std::string_view text, const std::vector<TextPiece>& in, std::vector<TextPiece>& out) const;

private:
    struct Node {
        int32_t token = -1;                             // index into tokens_ when a token ends here
        std::vector<std::pair<uint8_t, int32_t>> kids;  // sorted by byte
    };
    int32_t child(int32_t node, uint8_t b) const;
    // Longest token starting at text[pos] (before `end`), as an index into tokens_, or -1; sets *len.
    int32_t longest_match(std::string_view text, size_t pos, size_t end, size_t* len) const;
    void split_piece(std::string_view text, TextPiece piece, std::vector<TextPiece>& out) const;

    std::vector<AddedToken> tokens_;
    std::vector<Node> nodes_;
    std::array<bool, 256> first_byte_{};
};

// Unicode White_Space (Rust char::is_whitespace).
bool is_unicode_whitespace(char32_t cp);

}  // namespace dsa::text
