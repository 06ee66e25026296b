// Byte-level scanning helpers for the streaming parsers (see scan.h).
#include "parsers/scan.h"

#include <algorithm>

#include <fmt/format.h>

namespace dsa::parsers {

MarkerHit find_first(std::string_view text, std::span<const std::string_view> markers) {
    MarkerHit hit;
    int i = 0;
    for (std::string_view m : markers) {
        const size_t pos = text.find(m);
        if (pos != kNotFound && (hit.pos == kNotFound || pos < hit.pos)) hit = MarkerHit{pos, i, m.size()};
        ++i;
    }
    return hit;
}

size_t partial_suffix(std::string_view text, std::span<const std::string_view> markers) {
    size_t best = 0;
    for (std::string_view m : markers) {
        const size_t max_k = std::min(text.size(), m.size() - 1);
        for (size_t k = max_k; k > best; --k) {
            if (text.substr(text.size() - k) == m.substr(0, k)) {
                best = k;
                break;
            }
        }
    }
    return best;
}

namespace {

// Matches `lit` at text[*pos]; kNeedMore when the text ends inside it.
TagMatch::Status match_literal(std::string_view text, size_t* pos, std::string_view lit) {
    const std::string_view rest = text.substr(*pos);
    const size_t n = std::min(rest.size(), lit.size());
    if (rest.substr(0, n) != lit.substr(0, n)) return TagMatch::kFail;
    if (n < lit.size()) return TagMatch::kNeedMore;
    *pos += lit.size();
    return TagMatch::kOk;
}

TagMatch::Status match_attribute(std::string_view text, size_t* pos, std::string_view key, std::string* value) {
    const size_t start = *pos;
    while (*pos < text.size() && is_space(text[*pos])) ++*pos;
    if (*pos == text.size()) return TagMatch::kNeedMore;
    if (*pos == start) return TagMatch::kFail;
    for (std::string_view lit : {key, std::string_view("=\"")}) {
        const TagMatch::Status s = match_literal(text, pos, lit);
        if (s != TagMatch::kOk) return s;
    }
    const size_t end = text.find('"', *pos);
    if (end == kNotFound) return TagMatch::kNeedMore;
    *value = std::string(text.substr(*pos, end - *pos));
    *pos = end + 1;
    return TagMatch::kOk;
}

}  // namespace

TagMatch match_tag_attributes(std::string_view text, std::initializer_list<std::string_view> keys,
                              bool allow_self_closing, size_t max_length) {
    TagMatch m;
    size_t pos = 0;
    auto result = [&](TagMatch::Status s) {
        m.status = (s == TagMatch::kNeedMore && text.size() > max_length) ? TagMatch::kFail : s;
        return m;
    };
    for (std::string_view key : keys) {
        m.values.emplace_back();
        const TagMatch::Status s = match_attribute(text, &pos, key, &m.values.back());
        if (s != TagMatch::kOk) return result(s);
        if (m.values.back().empty() && key == "name") return result(TagMatch::kFail);
    }
    while (pos < text.size() && is_space(text[pos])) ++pos;
    if (pos == text.size()) return result(TagMatch::kNeedMore);
    if (allow_self_closing && text[pos] == '/') {
        const TagMatch::Status s = match_literal(text, &pos, "/>");
        m.self_closing = true;
        m.length = pos;
        return result(s);
    }
    if (text[pos] != '>') return result(TagMatch::kFail);
    m.length = pos + 1;
    return result(TagMatch::kOk);
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

bool all_space(std::string_view text) {
    for (char c : text) {
        if (!is_space(c)) return false;
    }
    return true;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
    while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
    return text;
}

size_t trailing_space(std::string_view text) {
    size_t n = 0;
    while (n < text.size() && is_space(text[text.size() - 1 - n])) ++n;
    return n;
}

void append_json_escaped(std::string& out, std::string_view raw) {
    for (char c : raw) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
                } else {
                    out += c;
                }
        }
    }
}

std::string json_quote(std::string_view raw) {
    std::string out = "\"";
    append_json_escaped(out, raw);
    return out + "\"";
}

}  // namespace dsa::parsers
