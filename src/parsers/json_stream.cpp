// JsonNormalizer (see json_stream.h): a character-level state machine over JSON with lenient recovery.
// Invariant: everything returned by feed() is a prefix of what a complete parse of the same bytes would
// print, whatever the split of the input into pieces.
#include "parsers/json_stream.h"

#include <cstdlib>

#include "base/json.h"
#include "parsers/scan.h"

namespace dsa::parsers {
namespace {

constexpr size_t kMaxScalarToken = 1024;
constexpr size_t kMaxDepth = 256;

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_number_char(char c) { return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

constexpr unsigned kReplacement = 0xFFFD;

// Appends a decoded \u escape as Python would print it; lone surrogates (which Python would print as
// unencodable characters) become U+FFFD so the output stays valid UTF-8 and valid JSON.
void append_code_point(std::string& out, unsigned cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = kReplacement;
    std::string utf8;
    append_utf8(utf8, cp);
    append_json_escaped(out, utf8);
}

unsigned hex4(std::string_view s) { return static_cast<unsigned>(std::strtoul(std::string(s).c_str(), nullptr, 16)); }

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool valid_number(std::string_view t, bool* is_integer) {
    size_t i = 0;
    auto digits = [&] {
        const size_t start = i;
        while (i < t.size() && is_digit(t[i])) ++i;
        return i > start;
    };
    if (i < t.size() && t[i] == '-') ++i;
    if (i < t.size() && t[i] == '0') {
        ++i;
    } else if (!digits()) {
        return false;
    }
    *is_integer = true;
    if (i < t.size() && t[i] == '.') {
        ++i;
        if (!digits()) return false;
        *is_integer = false;
    }
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
        ++i;
        if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
        if (!digits()) return false;
        *is_integer = false;
    }
    return i == t.size();
}

}  // namespace

std::string canonical_number(std::string_view tok) {
    bool is_integer = false;
    if (!valid_number(tok, &is_integer)) return "";
    if (is_integer) {
        if (tok.find_first_not_of("-0") == std::string_view::npos) return "0";  // -0 and 0
        return std::string(tok);
    }
    return Json(std::strtod(std::string(tok).c_str(), nullptr)).dump();
}

std::string JsonNormalizer::feed(std::string_view raw) {
    std::string out;
    for (char c : raw) on_char(c, out);
    return out;
}

std::string JsonNormalizer::take_separator() {
    const bool comma = pending_comma_;
    pending_comma_ = false;
    return comma ? ", " : "";
}

void JsonNormalizer::value_done() { expect_ = stack_.empty() ? Expect::kDone : Expect::kCommaOrClose; }

void JsonNormalizer::on_char(char c, std::string& out) {
    switch (token_) {
        case Token::kGarbage:
            if (is_space(c)) {
                garbage_ws_ += c;
            } else {
                append_json_escaped(out, garbage_ws_);
                garbage_ws_.clear();
                append_json_escaped(out, std::string_view(&c, 1));
            }
            return;
        case Token::kString:
            on_string_char(c, out);
            return;
        case Token::kNumber:
        case Token::kLiteral: {
            const bool continues = token_ == Token::kNumber ? is_number_char(c) : (c >= 'a' && c <= 'z');
            if (continues && tok_.size() < kMaxScalarToken) {
                tok_ += c;
                return;
            }
            if (!finish_scalar(out)) {
                enter_garbage(tok_ + c, out);
                return;
            }
            break;  // the scalar is done; `c` is structural
        }
        case Token::kNone:
            break;
    }
    on_structural(c, out);
}

void JsonNormalizer::open(Ctx ctx, char c, std::string& out) {
    if (stack_.size() >= kMaxDepth) {
        enter_garbage(std::string_view(&c, 1), out);
        return;
    }
    out += take_separator();
    out += c;
    stack_.push_back(ctx);
    expect_ = ctx == Ctx::kObject ? Expect::kKey : Expect::kValue;
}

void JsonNormalizer::close(std::string& out) {
    out += stack_.back() == Ctx::kObject ? '}' : ']';
    stack_.pop_back();
    pending_comma_ = false;  // a trailing comma is tolerated and dropped
    value_done();
}

void JsonNormalizer::on_structural(char c, std::string& out) {
    if (expect_ == Expect::kDone || is_space(c)) return;  // text after the top-level value is ignored
    started_ = true;
    const bool in_object = !stack_.empty() && stack_.back() == Ctx::kObject;
    const bool in_array = !stack_.empty() && stack_.back() == Ctx::kArray;
    switch (expect_) {
        case Expect::kValue:
            if (c == '{') return open(Ctx::kObject, c, out);
            if (c == '[') return open(Ctx::kArray, c, out);
            if (c == ']' && in_array) return close(out);
            if (c == '"') {
                out += take_separator() + "\"";
                token_ = Token::kString;
                string_is_key_ = false;
                return;
            }
            if (c == '-' || is_digit(c) || c == 't' || c == 'f' || c == 'n') {
                token_ = (c == '-' || is_digit(c)) ? Token::kNumber : Token::kLiteral;
                tok_ = std::string(1, c);
                return;
            }
            break;
        case Expect::kKey:
            if (c == '"') {
                out += take_separator() + "\"";
                token_ = Token::kString;
                string_is_key_ = true;
                return;
            }
            if (c == '}') return close(out);
            break;
        case Expect::kColon:
            if (c == ':') {
                out += ": ";
                expect_ = Expect::kValue;
                return;
            }
            break;
        case Expect::kCommaOrClose:
            if (c == ',') {
                pending_comma_ = true;
                expect_ = in_object ? Expect::kKey : Expect::kValue;
                return;
            }
            if ((c == '}' && in_object) || (c == ']' && in_array)) return close(out);
            break;
        case Expect::kDone:
            return;
    }
    enter_garbage(std::string_view(&c, 1), out);
}

void JsonNormalizer::on_string_char(char c, std::string& out) {
    if (!tok_.empty()) return on_escape_char(c, out);
    if (c == '\\') {
        tok_ = "\\";
    } else if (c == '"') {
        out += '"';
        token_ = Token::kNone;
        if (string_is_key_) {
            expect_ = Expect::kColon;
        } else {
            value_done();
        }
    } else {
        append_json_escaped(out, std::string_view(&c, 1));
    }
}

// tok_ holds "\", "\u..", or "\uD8xx\u.." (a high surrogate waiting for its low half).
void JsonNormalizer::on_escape_char(char c, std::string& out) {
    if (tok_.size() == 1) {
        static constexpr std::string_view kSimple = "\"\\/bfnrt";
        static constexpr std::string_view kDecoded = "\"\\/\b\f\n\r\t";
        if (c == 'u') {
            tok_ += c;
            return;
        }
        const size_t k = kSimple.find(c);
        std::string literal = k == std::string_view::npos ? "\\" + std::string(1, c) : std::string(1, kDecoded[k]);
        tok_.clear();
        append_json_escaped(out, literal);  // an unknown escape is kept literally (lenient)
        return;
    }
    const bool want_hex = tok_.size() < 6 || (tok_.size() > 7 && tok_.size() < 12);
    const bool ok = want_hex ? is_hex(c) : (tok_.size() == 6 ? c == '\\' : c == 'u');
    if (!ok) return on_broken_escape(c, out);
    tok_ += c;
    if (tok_.size() == 6) {
        const unsigned cp = hex4(std::string_view(tok_).substr(2, 4));
        if (cp >= 0xD800 && cp <= 0xDBFF) return;  // wait for the low surrogate
        tok_.clear();
        append_code_point(out, cp);
    } else if (tok_.size() == 12) {
        const unsigned hi = hex4(std::string_view(tok_).substr(2, 4));
        const unsigned lo = hex4(std::string_view(tok_).substr(8, 4));
        tok_.clear();
        if (lo < 0xDC00 || lo > 0xDFFF) {  // a high surrogate without its low half
            append_code_point(out, kReplacement);
            append_code_point(out, lo);
            return;
        }
        append_code_point(out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
    }
}

// `c` cannot continue the \u escape in tok_: what was held is kept as literal text (a complete high surrogate
// stays a \uXXXX escape), then `c` is read again.
void JsonNormalizer::on_broken_escape(char c, std::string& out) {
    const std::string held = tok_;
    tok_.clear();
    if (held.size() < 6) {
        append_json_escaped(out, held);
        return on_string_char(c, out);
    }
    append_code_point(out, kReplacement);  // the complete high surrogate in `held` has no low half
    if (held.size() == 7) {
        tok_ = "\\";
        return on_escape_char(c, out);
    }
    if (held.size() > 7) append_json_escaped(out, held.substr(6));
    on_string_char(c, out);
}

bool JsonNormalizer::finish_scalar(std::string& out) {
    std::string text;
    if (token_ == Token::kNumber) {
        text = canonical_number(tok_);
    } else if (tok_ == "true" || tok_ == "false" || tok_ == "null") {
        text = tok_;
    }
    if (text.empty()) return false;
    out += take_separator() + text;
    token_ = Token::kNone;
    tok_.clear();
    value_done();
    return true;
}

void JsonNormalizer::enter_garbage(std::string_view seed, std::string& out) {
    const bool in_object = !stack_.empty() && stack_.back() == Ctx::kObject;
    const std::string held = std::string(seed);
    switch (expect_) {
        case Expect::kValue: out += take_separator() + "\""; garbage_needs_null_ = false; break;
        case Expect::kKey: out += take_separator() + "\""; garbage_needs_null_ = true; break;
        case Expect::kColon: out += ": \""; garbage_needs_null_ = false; break;
        case Expect::kCommaOrClose: out += ", \""; garbage_needs_null_ = in_object; break;
        case Expect::kDone: return;
    }
    token_ = Token::kGarbage;
    tok_.clear();
    for (char c : held) on_char(c, out);
}

std::string JsonNormalizer::finish() {
    std::string out;
    if ((token_ == Token::kNumber || token_ == Token::kLiteral) && !finish_scalar(out)) {
        enter_garbage(tok_, out);
    }
    if (token_ == Token::kString) {
        if (!tok_.empty()) append_json_escaped(out, tok_);  // an unfinished escape stays literal
        tok_.clear();
        out += '"';
        if (string_is_key_) out += ": null";
    } else if (token_ == Token::kGarbage) {
        out += garbage_needs_null_ ? "\": null" : "\"";
    } else if (expect_ == Expect::kColon) {
        out += ": null";
    } else if (expect_ == Expect::kValue && !stack_.empty() && stack_.back() == Ctx::kObject) {
        out += "null";
    }
    for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) out += *it == Ctx::kObject ? '}' : ']';
    stack_.clear();
    token_ = Token::kNone;
    expect_ = Expect::kDone;
    return out;
}

}  // namespace dsa::parsers
