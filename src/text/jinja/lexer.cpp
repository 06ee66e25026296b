// Jinja lexer (see lexer.h). Mirrors the state machine of jinja2's lexer: root state (data up to the next
// tag), tag states (expression tokens up to the matching end delimiter, brackets balanced), raw and comment.
#include "text/jinja/lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "text/jinja/unicode.h"

namespace dsa::text::jinja {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string normalize_source(std::string_view src, bool keep_trailing_newline) {
    std::string out;
    out.reserve(src.size());
    for (size_t i = 0; i < src.size(); ++i) {
        if (src[i] == '\r') {
            out.push_back('\n');
            if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
        } else {
            out.push_back(src[i]);
        }
    }
    if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

std::string rstrip_ws(std::string s) {
    while (!s.empty() && is_ws(s.back())) s.pop_back();
    return s;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Python unicode-escape decoding of a string literal body; unknown escapes are kept verbatim.
std::string unescape(std::string_view body) {
    std::string out;
    for (size_t i = 0; i < body.size(); ++i) {
        char c = body[i];
        if (c != '\\' || i + 1 >= body.size()) {
            out.push_back(c);
            continue;
        }
        char e = body[++i];
        switch (e) {
            case 'n': out.push_back('\n'); continue;
            case 't': out.push_back('\t'); continue;
            case 'r': out.push_back('\r'); continue;
            case 'b': out.push_back('\b'); continue;
            case 'f': out.push_back('\f'); continue;
            case 'v': out.push_back('\v'); continue;
            case 'a': out.push_back('\a'); continue;
            case '\\': out.push_back('\\'); continue;
            case '\'': out.push_back('\''); continue;
            case '"': out.push_back('"'); continue;
            case '\n': continue;
            default: break;
        }
        size_t width = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (width > 0) {
            char32_t cp = 0;
            bool ok = i + width < body.size();
            for (size_t k = 1; ok && k <= width; ++k) {
                int h = hex_value(body[i + k]);
                if (h < 0) ok = false;
                cp = cp * 16 + static_cast<char32_t>(std::max(h, 0));
            }
            if (!ok || cp > 0x10FFFF) throw JinjaError("invalid \\" + std::string(1, e) + " escape in string literal");
            utf8_append(out, cp);
            i += width;
            continue;
        }
        if (e >= '0' && e <= '7') {
            int v = e - '0';
            for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k) {
                v = v * 8 + (body[++i] - '0');
            }
            utf8_append(out, static_cast<char32_t>(v));
            continue;
        }
        out.push_back('\\');
        out.push_back(e);
    }
    return out;
}

class Lexer {
public:
    Lexer(std::string_view src, const LexOptions& opts)
        : src_(normalize_source(src, opts.keep_trailing_newline)), opts_(opts) {
        line_starts_.push_back(0);
        for (size_t i = 0; i < src_.size(); ++i) {
            if (src_[i] == '\n') line_starts_.push_back(i + 1);
        }
    }

    std::vector<Token> run() {
        while (pos_ < src_.size()) root_step();
        Token eof;
        eof.type = Token::Type::kEof;
        eof.pos = pos_at(src_.size());
        out_.push_back(eof);
        return std::move(out_);
    }

private:
    Pos pos_at(size_t offset) const {
        auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
        size_t line = static_cast<size_t>(it - line_starts_.begin());
        return Pos{static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
    }

    [[noreturn]] void fail(const std::string& msg, size_t offset) const { throw JinjaError(msg, pos_at(offset)); }

    void push(Token::Type type, std::string text, size_t offset) {
        Token t;
        t.type = type;
        t.text = std::move(text);
        t.pos = pos_at(offset);
        out_.push_back(std::move(t));
    }

    // Finds the next "{{", "{%" or "{#" at or after `from`.
    size_t find_tag(size_t from) const {
        for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
            if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
        }
        return std::string::npos;
    }

    void root_step() {
        size_t tag = find_tag(pos_);
        if (tag == std::string::npos) {
            emit_data(src_.substr(pos_), pos_);
            pos_ = src_.size();
            return;
        }
        char kind = src_[tag + 1];
        char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
        std::string text = src_.substr(pos_, tag - pos_);
        if (sign == '-') {
            text = rstrip_ws(std::move(text));
        } else if (sign != '+' && opts_.lstrip_blocks && kind != '{') {
            text = lstrip_line(std::move(text));
        }
        emit_data(std::move(text), pos_);
        size_t body = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
        if (kind == '#') {
            comment(tag, body);
        } else if (kind == '%' && raw_begin(tag, body)) {
            // handled
        } else {
            tag_tokens(tag, body, kind == '%');
        }
    }

    std::string lstrip_line(std::string text) const {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos == 0 && !line_starting_) return text;
        if (l_pos == text.size()) return text;
        for (size_t i = l_pos; i < text.size(); ++i) {
            if (!is_ws(text[i])) return text;
        }
        return text.substr(0, l_pos);
    }

    void emit_data(std::string text, size_t offset) {
        if (!text.empty()) push(Token::Type::kData, std::move(text), offset);
    }

    // After a tag end at `end` (just past the delimiter), applies `-` / trim_blocks and sets pos_.
    void finish_tag(size_t end, char sign, bool trim_newline) {
        if (sign == '-') {
            while (end < src_.size() && is_ws(src_[end])) ++end;
        } else if (sign != '+' && trim_newline && end < src_.size() && src_[end] == '\n') {
            ++end;
        }
        line_starting_ = end > 0 && src_[end - 1] == '\n';
        pos_ = end;
    }

    void comment(size_t tag, size_t body) {
        size_t end = src_.find("#}", body);
        if (end == std::string::npos) fail("unterminated comment", tag);
        char sign = end > body && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : '\0';
        finish_tag(end + 2, sign, opts_.trim_blocks);
    }

    // Matches `%}` or `-%}` at i (after optional spaces); returns the offset past it or npos.
    size_t match_block_end(size_t i, char* sign) const {
        while (i < src_.size() && is_ws(src_[i])) ++i;
        *sign = '\0';
        if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) *sign = src_[i++];
        if (src_.compare(i, 2, "%}") == 0) return i + 2;
        return std::string::npos;
    }

    size_t match_keyword(size_t i, std::string_view word) const {
        while (i < src_.size() && is_ws(src_[i])) ++i;
        if (src_.compare(i, word.size(), word) != 0) return std::string::npos;
        i += word.size();
        if (i < src_.size() && is_name_char(src_[i])) return std::string::npos;
        return i;
    }

    bool raw_begin(size_t tag, size_t body) {
        size_t after = match_keyword(body, "raw");
        if (after == std::string::npos) return false;
        char sign = '\0';
        size_t end = match_block_end(after, &sign);
        if (end == std::string::npos || sign == '+') return false;
        if (sign == '-') {
            while (end < src_.size() && is_ws(src_[end])) ++end;
        }
        for (size_t i = src_.find("{%", end); i != std::string::npos; i = src_.find("{%", i + 1)) {
            size_t b = i + 2;
            char bsign = b < src_.size() && (src_[b] == '-' || src_[b] == '+') ? src_[b] : '\0';
            size_t kw = match_keyword(b + (bsign ? 1 : 0), "endraw");
            if (kw == std::string::npos) continue;
            char esign = '\0';
            size_t close = match_block_end(kw, &esign);
            if (close == std::string::npos) continue;
            std::string text = src_.substr(end, i - end);
            line_starting_ = end > 0 && src_[end - 1] == '\n';
            if (bsign == '-') {
                text = rstrip_ws(std::move(text));
            } else if (bsign != '+' && opts_.lstrip_blocks) {
                text = lstrip_line(std::move(text));
            }
            emit_data(std::move(text), end);
            finish_tag(close, esign, opts_.trim_blocks);
            return true;
        }
        fail("missing endraw for raw block", tag);
    }

    void tag_tokens(size_t tag, size_t i, bool block) {
        push(block ? Token::Type::kBlockBegin : Token::Type::kVarBegin, "", tag);
        const char close = block ? '%' : '}';
        int depth = 0;
        while (true) {
            while (i < src_.size() && is_ws(src_[i])) ++i;
            if (i >= src_.size()) fail(block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'", tag);
            if (depth == 0) {
                char sign = (src_[i] == '-' || src_[i] == '+') ? src_[i] : '\0';
                size_t d = i + (sign ? 1 : 0);
                if (d + 1 < src_.size() && src_[d] == close && src_[d + 1] == '}' && (block || sign != '+')) {
                    push(block ? Token::Type::kBlockEnd : Token::Type::kVarEnd, "", i);
                    finish_tag(d + 2, sign, block && opts_.trim_blocks);
                    return;
                }
            }
            i = expr_token(i, &depth);
        }
    }

    size_t expr_token(size_t i, int* depth) {
        char c = src_[i];
        if (is_name_start(c)) {
            size_t j = i;
            while (j < src_.size() && is_name_char(src_[j])) ++j;
            push(Token::Type::kName, src_.substr(i, j - i), i);
            return j;
        }
        if (is_digit(c)) return number(i);
        if (c == '\'' || c == '"') return string_literal(i);
        static const char* kOps2[] = {"//", "**", "==", "!=", "<=", ">="};
        for (const char* op : kOps2) {
            if (src_.compare(i, 2, op) == 0) {
                push(Token::Type::kOp, op, i);
                return i + 2;
            }
        }
        if (std::string_view("+-*/%~<>=()[]{}.,:|;").find(c) == std::string_view::npos) {
            fail(std::string("unexpected character '") + c + "'", i);
        }
        if (c == '(' || c == '[' || c == '{') ++*depth;
        if (c == ')' || c == ']' || c == '}') {
            if (*depth == 0) fail(std::string("unexpected '") + c + "'", i);
            --*depth;
        }
        push(Token::Type::kOp, std::string(1, c), i);
        return i + 1;
    }

    size_t digits(size_t j) const {
        while (j < src_.size() && (is_digit(src_[j]) || (src_[j] == '_' && j + 1 < src_.size() && is_digit(src_[j + 1])))) ++j;
        return j;
    }

    size_t number(size_t i) {
        size_t j = digits(i);
        bool after_dot = !out_.empty() && out_.back().type == Token::Type::kOp && out_.back().text == ".";
        bool is_float = false;
        if (!after_dot && j + 1 < src_.size() && src_[j] == '.' && is_digit(src_[j + 1])) {
            j = digits(j + 1);
            is_float = true;
        }
        if (!after_dot && j < src_.size() && (src_[j] == 'e' || src_[j] == 'E')) {
            size_t k = j + 1;
            if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
            if (k < src_.size() && is_digit(src_[k])) {
                j = digits(k);
                is_float = true;
            }
        }
        std::string text;
        for (size_t k = i; k < j; ++k) {
            if (src_[k] != '_') text.push_back(src_[k]);
        }
        push(is_float ? Token::Type::kFloat : Token::Type::kInt, text, i);
        errno = 0;
        if (is_float) {
            out_.back().float_value = std::strtod(text.c_str(), nullptr);
        } else {
            out_.back().int_value = std::strtoll(text.c_str(), nullptr, 10);
            if (errno == ERANGE) fail("integer literal too large", i);
        }
        return j;
    }

    size_t string_literal(size_t i) {
        char q = src_[i];
        size_t j = i + 1;
        while (j < src_.size() && src_[j] != q) j += src_[j] == '\\' ? 2 : 1;
        if (j >= src_.size()) fail("unterminated string literal", i);
        try {
            push(Token::Type::kString, unescape(std::string_view(src_).substr(i + 1, j - i - 1)), i);
        } catch (JinjaError& e) {
            fail(e.what(), i);
        }
        return j + 1;
    }

    std::string src_;
    LexOptions opts_;
    std::vector<size_t> line_starts_;
    std::vector<Token> out_;
    size_t pos_ = 0;
    bool line_starting_ = true;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const LexOptions& options) {
    return Lexer(source, options).run();
}

}  // namespace dsa::text::jinja
