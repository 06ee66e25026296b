// The GPT-2 byte-level alphabet used by byte-level BPE tokenizers: each byte 0..255 is shown as one
// printable code point (printable Latin-1 bytes map to themselves, the rest to U+0100..U+0143). Vocabulary
// entries are strings over this alphabet; decoding maps them back to raw bytes.
#pragma once

#include <string>
#include <string_view>

namespace dsa::text {

// The code point that stands for byte b.
char32_t byte_to_char(unsigned char b);

// The byte a code point stands for, or -1 when cp is not in the alphabet.
int char_to_byte(char32_t cp);

// Maps raw bytes to their alphabet string (UTF-8), appended to out.
void byte_level_encode_append(std::string_view bytes, std::string& out);

// The bytes of one vocabulary token, as the Hugging Face ByteLevel decoder produces them: when every code
// point of the token is in the alphabet, the bytes they stand for; otherwise (added tokens such as
// "<｜User｜>") the token's own UTF-8 bytes.
std::string byte_level_decode_token(std::string_view token);

}  // namespace dsa::text
