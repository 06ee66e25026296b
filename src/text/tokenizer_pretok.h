// The pre-tokenizer of a byte-level BPE tokenizer.json: a flat list of split stages (Split with a regex or a
// literal, Digits, and the ByteLevel regex when use_regex is set), each applied to every piece produced by
// the stage before, as Hugging Face's PreTokenizedString does. Pieces are byte spans of the input text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/status.h"
#include "text/tokenizer_regex.h"

namespace dsa::text {

struct Span {
    uint32_t begin;
    uint32_t len;
};

// What happens to the pieces a pattern matches (Hugging Face SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct SplitStage {
    std::optional<Regex> regex;  // a Regex pattern, or
    std::string literal;         // a String pattern
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
};

class PreTokenizer {
public:
    // Parses the "pre_tokenizer" object (null allowed). Fails on types this tokenizer does not implement.
    static StatusOr<PreTokenizer> from_json(const Json& j);

    // Splits text[piece] into sub-pieces appended to out (spans into text). `scratch` is reused storage.
    void split(std::string_view text, Span piece, std::vector<Span>& out, std::vector<Span>& scratch) const;

    bool has_byte_level() const { return has_byte_level_; }
    size_t num_stages() const { return stages_.size(); }

private:
    Status add_json(const Json& j);
    void apply_stage(const SplitStage& st, std::string_view text, Span piece, std::vector<Span>& out) const;

    std::vector<SplitStage> stages_;
    bool has_byte_level_ = false;
};

// The GPT-2 regex the ByteLevel pre-tokenizer uses when use_regex is true.
inline constexpr std::string_view kByteLevelRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace dsa::text
