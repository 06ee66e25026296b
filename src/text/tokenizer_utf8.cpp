// UTF-8 stepping and lossy decoding with the maximal-subpart rule (Unicode §3.9, "U+FFFD substitution of
// maximal subparts"), matching Rust's String::from_utf8_lossy and the WHATWG TextDecoder.
#include "text/tokenizer_utf8.h"

#include <cstring>

namespace dsa::text {
namespace {

// Number of continuation bytes after lead byte b and the allowed range of the first one; need < 0: invalid.
struct LeadInfo {
    int need;
    uint8_t lo;
    uint8_t hi;
};

LeadInfo lead_info(uint8_t b) {
    if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
    if (b == 0xE0) return {2, 0xA0, 0xBF};
    if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {2, 0x80, 0xBF};
    if (b == 0xED) return {2, 0x80, 0x9F};
    if (b == 0xF0) return {3, 0x90, 0xBF};
    if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
    if (b == 0xF4) return {3, 0x80, 0x8F};
    return {-1, 0, 0};
}

}  // namespace

Utf8Step utf8_step(const uint8_t* p, size_t n) {
    if (p[0] < 0x80) return {Utf8Kind::kValid, 1};
    LeadInfo info = lead_info(p[0]);
    if (info.need < 0) return {Utf8Kind::kInvalid, 1};
    for (int k = 1; k <= info.need; ++k) {
        if (static_cast<size_t>(k) >= n) return {Utf8Kind::kTruncated, n};
        uint8_t lo = k == 1 ? info.lo : 0x80;
        uint8_t hi = k == 1 ? info.hi : 0xBF;
        if (p[k] < lo || p[k] > hi) return {Utf8Kind::kInvalid, static_cast<size_t>(k)};
    }
    return {Utf8Kind::kValid, static_cast<size_t>(info.need + 1)};
}

size_t utf8_lossy_append(std::string_view in, std::string& out, bool final) {
    const auto* p = reinterpret_cast<const uint8_t*>(in.data());
    size_t n = in.size();
    size_t i = 0;
    size_t run_start = 0;  // start of the pending run of valid bytes, copied in one append
    while (i < n) {
        if (p[i] < 0x80) {
            ++i;
            continue;
        }
        Utf8Step st = utf8_step(p + i, n - i);
        if (st.kind == Utf8Kind::kValid) {
            i += st.len;
            continue;
        }
        out.append(in.data() + run_start, i - run_start);
        if (st.kind == Utf8Kind::kTruncated && !final) return i;
        out.append(kReplacementChar);
        i += st.len;
        run_start = i;
    }
    out.append(in.data() + run_start, n - run_start);
    return n;
}

std::string utf8_lossy(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    utf8_lossy_append(in, out, /*final=*/true);
    return out;
}

bool utf8_is_valid(std::string_view in) {
    const auto* p = reinterpret_cast<const uint8_t*>(in.data());
    size_t n = in.size();
    for (size_t i = 0; i < n;) {
        if (i + 8 <= n) {  // ASCII fast path, 8 bytes at a time
            uint64_t w;
            std::memcpy(&w, p + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        if (p[i] < 0x80) {
            ++i;
            continue;
        }
        Utf8Step st = utf8_step(p + i, n - i);
        if (st.kind != Utf8Kind::kValid) return false;
        i += st.len;
    }
    return true;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

char32_t next_code_point(std::string_view s, size_t& i) {
    auto b0 = static_cast<uint8_t>(s[i]);
    if (b0 < 0x80) {
        ++i;
        return b0;
    }
    int len = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
    char32_t cp = b0 & (0x3F >> (len - 1));
    for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
    i += len;
    return cp;
}

}  // namespace dsa::text
