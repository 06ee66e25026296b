// Tables of the GPT-2 byte <-> code point alphabet, built once.
#include "text/byte_level.h"

#include <array>

#include "text/tokenizer_utf8.h"

namespace dsa::text {
namespace {

struct Tables {
    std::array<char32_t, 256> to_char{};
    std::array<int16_t, 0x144> to_byte{};  // every alphabet code point is < U+0144
    std::array<std::string, 256> utf8{};

    Tables() {
        to_byte.fill(-1);
        auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; };
        int next_extra = 0;
        for (int b = 0; b < 256; ++b) {
            to_char[b] = printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next_extra++);
            to_byte[to_char[b]] = static_cast<int16_t>(b);
            append_utf8(utf8[b], to_char[b]);
        }
    }
};

const Tables& tables() {
    static const Tables t;
    return t;
}

}  // namespace

char32_t byte_to_char(unsigned char b) { return tables().to_char[b]; }

int char_to_byte(char32_t cp) { return cp < 0x144 ? tables().to_byte[cp] : -1; }

void byte_level_encode_append(std::string_view bytes, std::string& out) {
    const Tables& t = tables();
    for (char c : bytes) out += t.utf8[static_cast<unsigned char>(c)];
}

std::string byte_level_decode_token(std::string_view token) {
    std::string bytes;
    bytes.reserve(token.size());
    if (!utf8_is_valid(token)) return std::string(token);
    for (size_t i = 0; i < token.size();) {
        int b = char_to_byte(next_code_point(token, i));
        if (b < 0) return std::string(token);
        bytes.push_back(static_cast<char>(b));
    }
    return bytes;
}

}  // namespace dsa::text
