// JsonNormalizer: turns raw JSON text that arrives in pieces into the exact text Python's
// json.dumps(json.loads(raw), ensure_ascii=False) would give (", " / ": " separators, escapes decoded and
// re-encoded, numbers canonicalised), emitting each piece of output as soon as it is final. Output is never
// retracted. Malformed input is recovered deterministically instead of failing: the rest of the text becomes
// a JSON string in the slot where the error happened, and open strings / containers are closed at finish().
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dsa::parsers {

class JsonNormalizer {
public:
    std::string feed(std::string_view raw);
    std::string finish();
    bool complete() const { return expect_ == Expect::kDone && token_ == Token::kNone; }
    bool started() const { return started_; }

private:
    enum class Ctx : char { kArray, kObject };
    enum class Expect { kValue, kKey, kColon, kCommaOrClose, kDone };
    enum class Token { kNone, kString, kNumber, kLiteral, kGarbage };

    void on_char(char c, std::string& out);
    void on_structural(char c, std::string& out);
    void on_string_char(char c, std::string& out);
    void on_escape_char(char c, std::string& out);
    void on_broken_escape(char c, std::string& out);
    bool finish_scalar(std::string& out);  // number or literal in tok_; false when invalid
    void enter_garbage(std::string_view seed, std::string& out);
    void open(Ctx ctx, char c, std::string& out);
    void close(std::string& out);
    void value_done();
    std::string take_separator();

    std::vector<Ctx> stack_;
    Expect expect_ = Expect::kValue;
    Token token_ = Token::kNone;
    bool pending_comma_ = false;
    bool string_is_key_ = false;
    bool garbage_needs_null_ = false;
    bool started_ = false;
    std::string tok_;         // number / literal text, or an escape sequence in progress inside a string
    std::string garbage_ws_;  // whitespace held at the end of a garbage string (it is stripped at finish)
};

// Canonical Python text of a JSON number token (json.dumps(json.loads(tok))); empty when `tok` is not a
// valid JSON number.
std::string canonical_number(std::string_view tok);

}  // namespace dsa::parsers
