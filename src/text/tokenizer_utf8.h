// UTF-8 helpers shared by the tokenizer and the incremental detokenizer: stepping over one sequence with the
// Unicode "maximal subpart" rule (what Rust's from_utf8_lossy and the WHATWG decoder do), lossy decoding
// into U+FFFD, and encoding a code point. Decoding a byte stream in pieces gives the same text as decoding it
// at once, which is what lets the detokenizer stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsa::text {

enum class Utf8Kind { kValid, kInvalid, kTruncated };

// One step at p[0..n), n >= 1. kValid: a well-formed sequence of `len` bytes. kInvalid: an ill-formed
// maximal subpart of `len` bytes (>= 1) that becomes one U+FFFD. kTruncated: all n bytes are a valid prefix
// of a longer sequence (len == n); more input may complete it.
struct Utf8Step {
    Utf8Kind kind;
    size_t len;
};
Utf8Step utf8_step(const uint8_t* p, size_t n);

// Appends `in` to `out`, replacing every ill-formed maximal subpart by U+FFFD. When `final` is false, a
// trailing truncated sequence is not consumed. Returns the number of bytes of `in` consumed.
size_t utf8_lossy_append(std::string_view in, std::string& out, bool final);

// Whole-string lossy conversion (final).
std::string utf8_lossy(std::string_view in);

bool utf8_is_valid(std::string_view in);

void append_utf8(std::string& out, char32_t cp);

// Decodes the code point starting at s[i] of a valid UTF-8 string; advances i.
char32_t next_code_point(std::string_view s, size_t& i);

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

}  // namespace dsa::text
