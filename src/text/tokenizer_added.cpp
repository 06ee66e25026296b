// Added-token matching: leftmost-longest over a byte trie, then the single_word filter and lstrip/rstrip
// widening of Hugging Face's AddedVocabulary::find_matches.
#include "text/tokenizer_added.h"

#include <algorithm>

#include "text/tokenizer_regex.h"
#include "text/tokenizer_utf8.h"

namespace dsa::text {
namespace {

// Hugging Face tests single_word boundaries with a Unicode `\w` (Rust regex semantics).
bool is_word_char(char32_t cp) {
    static const Regex kWord = *Regex::compile(R"(^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])");
    std::string s;
    append_utf8(s, cp);
    size_t b = 0, e = 0;
    return kWord.find(s, 0, &b, &e);
}

char32_t last_code_point(std::string_view s) {
    size_t i = s.size() - 1;
    while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
    return next_code_point(s, i);
}

}  // namespace

bool is_unicode_whitespace(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

StatusOr<AddedToken> AddedToken::from_json(const Json& j) {
    if (!j.contains("id") || !j.contains("content")) return data_loss("added token without id or content");
    AddedToken t;
    t.id = j.at("id").get<int32_t>();
    t.content = j.at("content").get<std::string>();
    t.special = j.value("special", false);
    t.lstrip = j.value("lstrip", false);
    t.rstrip = j.value("rstrip", false);
    t.single_word = j.value("single_word", false);
    t.normalized = j.value("normalized", !t.special);
    if (t.content.empty()) return data_loss("added token {} has empty content", t.id);
    if (!utf8_is_valid(t.content)) return data_loss("added token {} is not valid UTF-8", t.id);
    return t;
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t b) const {
    const auto& kids = nodes_[node].kids;
    auto it = std::lower_bound(kids.begin(), kids.end(), b, [](const auto& kv, uint8_t x) { return kv.first < x; });
    return it != kids.end() && it->first == b ? it->second : -1;
}

void AddedTokenMatcher::build(const std::vector<AddedToken>& tokens, bool normalized_set) {
    tokens_.clear();
    nodes_.assign(1, Node{});
    first_byte_.fill(false);
    for (const AddedToken& t : tokens) {
        if (t.normalized != normalized_set) continue;
        int32_t node = 0;
        for (char c : t.content) {
            auto b = static_cast<uint8_t>(c);
            int32_t next = child(node, b);
            if (next < 0) {
                next = static_cast<int32_t>(nodes_.size());
                nodes_.emplace_back();
                auto& kids = nodes_[node].kids;
                auto pos = std::lower_bound(kids.begin(), kids.end(), b,
                                            [](const auto& kv, uint8_t x) { return kv.first < x; });
                kids.insert(pos, {b, next});
            }
            node = next;
        }
        if (nodes_[node].token < 0) {  // the first token with a given content wins
            nodes_[node].token = static_cast<int32_t>(tokens_.size());
            tokens_.push_back(t);
        }
        first_byte_[static_cast<uint8_t>(t.content[0])] = true;
    }
}

int32_t AddedTokenMatcher::longest_match(std::string_view text, size_t pos, size_t end, size_t* len) const {
    int32_t best = -1;
    int32_t node = 0;
    for (size_t i = pos; i < end; ++i) {
        node = child(node, static_cast<uint8_t>(text[i]));
        if (node < 0) break;
        if (nodes_[node].token >= 0) {
            best = nodes_[node].token;
            *len = i + 1 - pos;
        }
    }
    return best;
}

void AddedTokenMatcher::split_piece(std::string_view text, TextPiece piece, std::vector<TextPiece>& out) const {
    const size_t base = piece.begin, end = piece.begin + piece.len;
    size_t done = base;  // everything before `done` has been emitted
    size_t pos = base;
    while (pos < end) {
        if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
            ++pos;
            continue;
        }
        size_t len = 0;
        int32_t k = longest_match(text, pos, end, &len);
        if (k < 0) {
            ++pos;
            continue;
        }
        const AddedToken& t = tokens_[k];
        size_t start = pos, stop = pos + len;
        pos = stop;  // matches never overlap
        if (t.single_word) {
            bool word_before = start > base && is_word_char(last_code_point(text.substr(base, start - base)));
            size_t j = stop;
            bool word_after = stop < end && is_word_char(next_code_point(text.substr(0, end), j));
            if (word_before || word_after) continue;
        }
        if (t.lstrip) {
            while (start > done) {
                size_t p = start - 1;
                while (p > done && (static_cast<uint8_t>(text[p]) & 0xC0) == 0x80) --p;
                size_t q = p;
                if (!is_unicode_whitespace(next_code_point(text, q))) break;
                start = p;
            }
        }
        if (t.rstrip) {
            while (stop < end) {
                size_t q = stop;
                if (!is_unicode_whitespace(next_code_point(text.substr(0, end), q))) break;
                stop = q;
            }
            pos = stop;
        }
        if (start > done) out.push_back({static_cast<uint32_t>(done), static_cast<uint32_t>(start - done), -1});
        out.push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(stop - start), t.id});
        done = stop;
    }
    if (end > done) out.push_back({static_cast<uint32_t>(done), static_cast<uint32_t>(end - done), -1});
}

void AddedTokenMatcher::split(std::string_view text, const std::vector<TextPiece>& in,
                              std::vector<TextPiece>& out) const {
    for (const TextPiece& p : in) {
        if (p.added_id >= 0 || tokens_.empty()) out.push_back(p);
        else split_piece(text, p, out);
    }
}

}  // namespace dsa::text
