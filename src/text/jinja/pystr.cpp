// Python str methods on UTF-8 strings (see pystr.h).
#include "text/jinja/pystr.h"

#include "text/jinja/unicode.h"
#include "text/jinja/value.h"

namespace dsa::text::jinja::pystr {

std::string strip(const std::string& s, const std::optional<std::string>& chars, Side side) {
    std::u32string u = utf8_decode(s);
    std::u32string set = chars ? utf8_decode(*chars) : std::u32string();
    auto drop = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
    size_t lo = 0, hi = u.size();
    if (side != Side::kRight) {
        while (lo < hi && drop(u[lo])) ++lo;
    }
    if (side != Side::kLeft) {
        while (hi > lo && drop(u[hi - 1])) --hi;
    }
    return utf8_encode(u.substr(lo, hi - lo));
}

namespace {

std::vector<std::string> split_ws(const std::u32string& u, int64_t maxsplit) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < u.size()) {
        while (i < u.size() && py_isspace(u[i])) ++i;
        if (i >= u.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
            size_t end = u.size();
            while (end > i && py_isspace(u[end - 1])) --end;
            out.push_back(utf8_encode(u.substr(i, end - i)));
            break;
        }
        size_t j = i;
        while (j < u.size() && !py_isspace(u[j])) ++j;
        out.push_back(utf8_encode(u.substr(i, j - i)));
        i = j;
    }
    return out;
}

}  // namespace

std::vector<std::string> split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
    if (!sep) return split_ws(utf8_decode(s), maxsplit);
    if (sep->empty()) throw JinjaError("empty separator");
    std::vector<std::string> out;
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        size_t at = s.find(*sep, start);
        if (at == std::string::npos) break;
        out.push_back(s.substr(start, at - start));
        start = at + sep->size();
    }
    out.push_back(s.substr(start));
    return out;
}

std::vector<std::string> rsplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
    if (maxsplit < 0) return split(s, sep, maxsplit);
    if (!sep) {
        std::u32string u = utf8_decode(s);
        std::u32string r(u.rbegin(), u.rend());
        std::vector<std::string> parts = split_ws(r, maxsplit);
        std::vector<std::string> out;
        for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
            std::u32string p = utf8_decode(*it);
            out.push_back(utf8_encode(std::u32string(p.rbegin(), p.rend())));
        }
        return out;
    }
    if (sep->empty()) throw JinjaError("empty separator");
    std::vector<std::string> rev;
    size_t end = s.size();
    while (static_cast<int64_t>(rev.size()) < maxsplit) {
        if (end < sep->size()) break;
        size_t at = s.rfind(*sep, end - sep->size());
        if (at == std::string::npos) break;
        rev.push_back(s.substr(at + sep->size(), end - at - sep->size()));
        end = at;
    }
    rev.push_back(s.substr(0, end));
    return std::vector<std::string>(rev.rbegin(), rev.rend());
}

std::vector<std::string> splitlines(const std::string& s, bool keepends) {
    std::u32string u = utf8_decode(s);
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t i = 0; i < u.size(); ++i) {
        char32_t c = u[i];
        bool nl = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                  c == 0x85 || c == 0x2028 || c == 0x2029;
        if (!nl) continue;
        size_t end = i;
        if (c == '\r' && i + 1 < u.size() && u[i + 1] == '\n') ++i;
        out.push_back(utf8_encode(u.substr(start, (keepends ? i + 1 : end) - start)));
        start = i + 1;
    }
    if (start < u.size()) out.push_back(utf8_encode(u.substr(start)));
    return out;
}

std::string replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
    std::string out;
    if (old.empty()) {
        std::u32string u = utf8_decode(s);
        int64_t n = 0;
        for (size_t i = 0; i <= u.size(); ++i) {
            if (count < 0 || n < count) {
                out += repl;
                ++n;
            }
            if (i < u.size()) utf8_append(out, u[i]);
        }
        return out;
    }
    size_t start = 0;
    int64_t n = 0;
    while (count < 0 || n < count) {
        size_t at = s.find(old, start);
        if (at == std::string::npos) break;
        out.append(s, start, at - start);
        out += repl;
        start = at + old.size();
        ++n;
    }
    out.append(s, start, std::string::npos);
    return out;
}

std::string title(const std::string& s) {
    std::string out;
    bool prev_cased = false;
    for (char32_t c : utf8_decode(s)) {
        bool cased = py_isalpha(c);
        utf8_append(out, cased ? (prev_cased ? py_lower(c) : py_upper(c)) : c);
        prev_cased = cased;
    }
    return out;
}

std::string jinja_title(const std::string& s) {
    // Words start after runs of [-\s({[<]; the first character is upper-cased, the rest lower-cased.
    std::string out;
    bool word_start = true;
    for (char32_t c : utf8_decode(s)) {
        bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c);
        if (sep) {
            utf8_append(out, c);
            word_start = true;
            continue;
        }
        utf8_append(out, word_start ? py_upper(c) : py_lower(c));
        word_start = false;
    }
    return out;
}

std::string capitalize(const std::string& s) {
    std::string out;
    bool first = true;
    for (char32_t c : utf8_decode(s)) {
        utf8_append(out, first ? py_upper(c) : py_lower(c));
        first = false;
    }
    return out;
}

int64_t find(const std::string& s, const std::string& sub, bool reverse) {
    size_t at = reverse ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) return -1;
    return static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, at)));
}

int64_t count(const std::string& s, const std::string& sub) {
    if (sub.empty()) return static_cast<int64_t>(utf8_length(s)) + 1;
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return n;
}

bool all_chars(const std::string& s, bool (*pred)(char32_t)) {
    if (s.empty()) return false;
    for (char32_t c : utf8_decode(s)) {
        if (!pred(c)) return false;
    }
    return true;
}

std::string indent(const std::string& s, const std::string& pad, bool first, bool blank) {
    std::vector<std::string> lines = splitlines(s + "\n", false);
    std::string rv;
    if (blank) {
        for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + pad : "") + lines[i];
    } else {
        rv = lines.empty() ? "" : lines[0];
        for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : pad + lines[i]);
    }
    return first ? pad + rv : rv;
}

size_t wordcount(const std::string& s) {
    size_t n = 0;
    bool in_word = false;
    for (char32_t c : utf8_decode(s)) {
        bool w = py_isword(c);
        if (w && !in_word) ++n;
        in_word = w;
    }
    return n;
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out.push_back(c);
        }
    }
    return out;
}

}  // namespace dsa::text::jinja::pystr
