// Unit tests of the tokenizer parts on a tiny hand-built byte-level BPE tokenizer.json: merge order, added
// token flags (lstrip / rstrip / single_word / special), Split delimiter behaviours, the Oniguruma `\s`
// rewrite, UTF-8 maximal-subpart replacement, and load errors for unsupported or malformed files.
#include <gtest/gtest.h>

#include "text/byte_level.h"
#include "text/tokenizer.h"
#include "text/tokenizer_pretok.h"
#include "text/tokenizer_regex.h"
#include "text/tokenizer_utf8.h"

namespace dsa::text {
namespace {

std::string bl(std::string_view raw) {
    std::string s;
    byte_level_encode_append(raw, s);
    return s;
}

// 256 byte tokens (ids 0..255 in byte order) plus merged tokens, and added tokens from 1000 on.
Json tiny_tokenizer_json() {
    Json vocab = Json::object();
    for (int b = 0; b < 256; ++b) vocab[bl(std::string(1, static_cast<char>(b)))] = b;
    Json merges = Json::array();
    int next = 256;
    for (auto [l, r] : std::vector<std::pair<std::string, std::string>>{
             {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}, {"a", "a"}, {"b", "c"}, {"a", "bc"}}) {
        vocab[bl(l + r)] = next++;
        merges.push_back(bl(l) + " " + bl(r));
    }
    auto added = [](int id, const char* content, bool special, bool lstrip, bool rstrip, bool single_word) {
        return Json{{"id", id},       {"content", content}, {"special", special},        {"lstrip", lstrip},
                    {"rstrip", rstrip}, {"single_word", single_word}, {"normalized", false}};
    };
    return Json{
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
        {"normalizer", nullptr},
        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"added_tokens",
         {added(1000, "<L>", false, true, false, false), added(1001, "<R>", false, false, true, false),
          added(1002, "<W>", false, false, false, true), added(1003, "<S>", true, false, false, false)}},
    };
}

std::shared_ptr<const Tokenizer> tiny() {
    auto t = Tokenizer::from_json(tiny_tokenizer_json());
    EXPECT_TRUE(t.is_ok()) << t.status().to_string();
    return t.is_ok() ? *t : nullptr;
}

std::vector<int32_t> cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

TEST(TokenizerUnit, MergesApplyByRankLeftmostFirst) {
    auto tok = tiny();
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(tok->encode("hello"), std::vector<int32_t>{*tok->token_to_id("hello")});
    int32_t aa = *tok->token_to_id("aa"), a = 'a';
    EXPECT_EQ(tok->encode("aaa"), (std::vector<int32_t>{aa, a}));
    EXPECT_EQ(tok->encode("aaaa"), (std::vector<int32_t>{aa, aa}));
    // "b c" (rank 6) before "a bc" (rank 7), while "a a" never applies to "abc".
    EXPECT_EQ(tok->encode("abc"), std::vector<int32_t>{*tok->token_to_id("abc")});
    // A long word goes through the heap merge loop and must agree with the short-word loop piecewise.
    std::string longword(301, 'a');
    std::vector<int32_t> want(150, aa);
    want.push_back(a);
    EXPECT_EQ(tok->encode(longword), want);
    EXPECT_EQ(tok->encode(" world"), cat({*tok->token_to_id(bl(" w"))}, tok->encode("orld")));
}

TEST(TokenizerUnit, AddedTokenStripFlags) {
    auto tok = tiny();
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(tok->encode("x  <L>y"), cat(cat(tok->encode("x"), {1000}), tok->encode("y")));
    EXPECT_EQ(tok->encode("x<R> \n y"), cat(cat(tok->encode("x"), {1001}), tok->encode("y")));
    EXPECT_EQ(tok->encode("x <L> y"), cat(cat(tok->encode("x"), {1000}), tok->encode(" y")));
}

TEST(TokenizerUnit, SingleWordTokensNeedWordBoundaries) {
    auto tok = tiny();
    ASSERT_NE(tok, nullptr);
    auto has_w = [](const std::vector<int32_t>& ids) { return std::count(ids.begin(), ids.end(), 1002) > 0; };
    EXPECT_FALSE(has_w(tok->encode("a<W>b")));
    EXPECT_FALSE(has_w(tok->encode("é<W>")));
    EXPECT_TRUE(has_w(tok->encode("a <W> b")));
    EXPECT_TRUE(has_w(tok->encode("<W>")));
    EXPECT_TRUE(has_w(tok->encode("(<W>)")));
}

TEST(TokenizerUnit, SkipSpecialTokensOnlySkipsSpecialOnes) {
    auto tok = tiny();
    ASSERT_NE(tok, nullptr);
    std::vector<int32_t> ids = tok->encode("<S>hi<R>");
    EXPECT_EQ(tok->decode(ids), "<S>hi<R>");
    EXPECT_EQ(tok->decode(ids, SpecialTokens::kSkip), "hi<R>");
    EXPECT_EQ(tok->decode(std::vector<int32_t>{-5, 104, 99999, 105}), "hi");  // unknown ids are dropped
}

TEST(TokenizerUnit, InvalidUtf8InputIsReplaced) {
    auto tok = tiny();
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(tok->encode("a\xFF" "b"), tok->encode("a\xEF\xBF\xBD" "b"));
    EXPECT_EQ(tok->encode("\xF0\x9F"), tok->encode("\xEF\xBF\xBD"));
    EXPECT_TRUE(tok->encode("").empty());
}

std::vector<std::string> split_with(const char* behavior, bool invert, std::string_view text) {
    Json j = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
    auto p = PreTokenizer::from_json(j);
    EXPECT_TRUE(p.is_ok()) << p.status().to_string();
    std::vector<Span> out, scratch;
    p->split(text, Span{0, static_cast<uint32_t>(text.size())}, out, scratch);
    std::vector<std::string> pieces;
    for (Span s : out) pieces.emplace_back(text.substr(s.begin, s.len));
    return pieces;
}

TEST(TokenizerUnit, SplitBehaviours) {
    using V = std::vector<std::string>;
    EXPECT_EQ(split_with("Removed", false, "a-b--c"), (V{"a", "b", "c"}));
    EXPECT_EQ(split_with("Isolated", false, "a-b--c"), (V{"a", "-", "b", "-", "-", "c"}));
    EXPECT_EQ(split_with("MergedWithPrevious", false, "a-b--c"), (V{"a-", "b-", "-", "c"}));
    EXPECT_EQ(split_with("MergedWithNext", false, "a-b--c"), (V{"a", "-b", "-", "-c"}));
    EXPECT_EQ(split_with("Contiguous", false, "a-b--c"), (V{"a", "-", "b", "--", "c"}));
    EXPECT_EQ(split_with("Removed", true, "a-b--c"), (V{"-", "-", "-"}));
}

TEST(TokenizerUnit, RegexWhitespaceMatchesOniguruma) {
    EXPECT_EQ(rewrite_oniguruma_pattern(R"(\s+(?!\S)|[^\s\p{L}])"), R"(\p{White_Space}+(?!\P{White_Space})|[^\p{White_Space}\p{L}])");
    EXPECT_EQ(rewrite_oniguruma_pattern(R"(\\s)"), R"(\\s)");
    auto re = Regex::compile(R"(^\s+$)");
    ASSERT_TRUE(re.is_ok()) << re.status().to_string();
    size_t b = 0, e = 0;
    EXPECT_TRUE(re->find("\xC2\x85", 0, &b, &e));          // U+0085 NEL is White_Space
    EXPECT_TRUE(re->find("\xE3\x80\x80", 0, &b, &e));      // U+3000
    EXPECT_FALSE(re->find("\xE2\x80\x8B", 0, &b, &e));     // U+200B is not
    EXPECT_FALSE(Regex::compile("(unclosed").is_ok());
}

TEST(TokenizerUnit, Utf8MaximalSubparts) {
    const std::string r(kReplacementChar);
    EXPECT_EQ(utf8_lossy("\xF0\x9F\x98" "A"), r + "A");
    EXPECT_EQ(utf8_lossy("\xC0\xAF"), r + r);
    EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), r + r + r);
    EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), r + r + r + r);
    EXPECT_EQ(utf8_lossy("\xE2\x82"), r);
    EXPECT_EQ(utf8_lossy("ok \xE2\x82\xAC"), "ok \xE2\x82\xAC");
    std::string out;
    EXPECT_EQ(utf8_lossy_append("ab\xE2\x82", out, /*final=*/false), 2u);
    EXPECT_EQ(out, "ab");
}

TEST(TokenizerUnit, ByteLevelAlphabet) {
    EXPECT_EQ(byte_to_char(' '), U'\u0120');
    EXPECT_EQ(byte_to_char('A'), U'A');
    for (int b = 0; b < 256; ++b) EXPECT_EQ(char_to_byte(byte_to_char(static_cast<unsigned char>(b))), b);
    EXPECT_EQ(char_to_byte(U'\uFF5C'), -1);
    EXPECT_EQ(byte_level_decode_token("\xC4\xA0hi"), " hi");
    EXPECT_EQ(byte_level_decode_token("<｜User｜>"), "<｜User｜>");
}

TEST(TokenizerUnit, LoadErrors) {
    EXPECT_EQ(Tokenizer::from_json_text("{not json").status().code(), StatusCode::kDataLoss);
    Json j = tiny_tokenizer_json();
    j["normalizer"] = {{"type", "NFKC"}};
    EXPECT_EQ(Tokenizer::from_json(j).status().code(), StatusCode::kUnimplemented);
    j = tiny_tokenizer_json();
    j["model"]["merges"].push_back("zz qq");
    EXPECT_EQ(Tokenizer::from_json(j).status().code(), StatusCode::kDataLoss);
    j = tiny_tokenizer_json();
    j["pre_tokenizer"] = {{"type", "Metaspace"}};
    EXPECT_EQ(Tokenizer::from_json(j).status().code(), StatusCode::kUnimplemented);
    j = tiny_tokenizer_json();
    j["model"].erase("vocab");
    EXPECT_EQ(Tokenizer::from_json(j).status().code(), StatusCode::kDataLoss);
    EXPECT_EQ(Tokenizer::from_file("/nonexistent/tokenizer.json").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace dsa::text
