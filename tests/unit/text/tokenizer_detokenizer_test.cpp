// Incremental detokenizer: streaming one id at a time must give exactly Tokenizer::decode (with and without
// special tokens) on the whole golden corpus and on random id sequences, and no delta may ever end inside a
// UTF-8 character (emoji and CJK split across byte-level tokens are held back until complete).
#include <gtest/gtest.h>

#include "text/detokenizer.h"
#include "text/tokenizer_utf8.h"
#include "tokenizer_test_util.h"

namespace dsa::text {
namespace {

using testing::deepseek_tokenizer;
using testing::read_jsonl;
using testing::show_ids;

// Streams ids one at a time; checks every delta is well-formed UTF-8 on its own.
std::string stream(const std::shared_ptr<const Tokenizer>& tok, const std::vector<int32_t>& ids,
                   SpecialTokens special, size_t* num_held = nullptr) {
    IncrementalDetokenizer detok(tok, special);
    std::string text;
    for (int32_t id : ids) {
        std::string delta = detok.add(id);
        EXPECT_TRUE(utf8_is_valid(delta)) << "delta cuts a character after id " << id << " in " << show_ids(ids);
        if (num_held != nullptr && detok.num_pending_bytes() > 0) ++*num_held;
        text += delta;
    }
    std::string rest = detok.flush();
    EXPECT_TRUE(utf8_is_valid(rest));
    EXPECT_EQ(detok.num_tokens(), ids.size());
    return text + rest;
}

TEST(TokenizerDetokenizer, StreamingEqualsDecodeOnCorpus) {
    auto tok = deepseek_tokenizer();
    ASSERT_NE(tok, nullptr);
    auto rows = read_jsonl("encode.jsonl");
    ASSERT_GE(rows.size(), 2000u);
    size_t num_held = 0;
    for (const Json& row : rows) {
        std::vector<int32_t> ids = row.at("ids").get<std::vector<int32_t>>();
        std::string text = row.at("text").get<std::string>();
        ASSERT_EQ(stream(tok, ids, SpecialTokens::kKeep, &num_held), text) << show_ids(ids);
        ASSERT_EQ(stream(tok, ids, SpecialTokens::kSkip), tok->decode(ids, SpecialTokens::kSkip)) << show_ids(ids);
    }
    EXPECT_GT(num_held, 100u) << "the corpus should split characters across tokens";
}

TEST(TokenizerDetokenizer, StreamingEqualsDecodeOnRandomIds) {
    auto tok = deepseek_tokenizer();
    ASSERT_NE(tok, nullptr);
    for (const Json& row : read_jsonl("decode.jsonl")) {
        std::vector<int32_t> ids = row.at("ids").get<std::vector<int32_t>>();
        EXPECT_EQ(stream(tok, ids, SpecialTokens::kKeep), row.at("text").get<std::string>()) << show_ids(ids);
        EXPECT_EQ(stream(tok, ids, SpecialTokens::kSkip), row.at("text_skip").get<std::string>()) << show_ids(ids);
    }
}

TEST(TokenizerDetokenizer, EmojiIsNeverEmittedHalf) {
    auto tok = deepseek_tokenizer();
    ASSERT_NE(tok, nullptr);
    const std::string text = "ok 👨‍👩‍👧‍👦🫠🏴󠁧󠁢󠁳󠁣󠁴󠁿 done";
    std::vector<int32_t> ids = tok->encode(text);
    IncrementalDetokenizer detok(tok);
    std::string out;
    size_t num_empty = 0;
    for (int32_t id : ids) {
        std::string delta = detok.add(id);
        ASSERT_TRUE(utf8_is_valid(delta));
        num_empty += delta.empty();
        out += delta;
        ASSERT_EQ(text.compare(0, out.size(), out), 0) << "emitted text is not a prefix of the original";
    }
    EXPECT_GT(num_empty, 0u) << "some emoji byte must have been held back";
    out += detok.flush();
    EXPECT_EQ(out, text);
}

TEST(TokenizerDetokenizer, FlushTurnsIncompleteCharacterIntoReplacement) {
    auto tok = deepseek_tokenizer();
    ASSERT_NE(tok, nullptr);
    std::optional<int32_t> lead = tok->token_to_id("\xC3\xB0");  // byte 0xF0 in the byte-level alphabet
    ASSERT_TRUE(lead.has_value());
    IncrementalDetokenizer detok(tok);
    EXPECT_EQ(detok.add(*lead), "");
    EXPECT_EQ(detok.num_pending_bytes(), 1u);
    EXPECT_EQ(detok.add(tok->encode("A")), std::string(kReplacementChar) + "A");  // 0xF0 'A' is ill-formed
    EXPECT_EQ(detok.add(*lead), "");
    EXPECT_EQ(detok.flush(), std::string(kReplacementChar));
    EXPECT_EQ(detok.num_pending_bytes(), 0u);
}

}  // namespace
}  // namespace dsa::text
