// Byte-exact checks of the tokenizer against the @huggingface/tokenizers oracle on the DeepSeek-V3
// tokenizer.json: every corpus string encodes to the oracle's ids and decodes back to itself; random id
// sequences decode to the oracle's text (with and without special tokens); batch encode equals encode.
#include <gtest/gtest.h>

#include "text/tokenizer.h"
#include "tokenizer_test_util.h"

namespace dsa::text {
namespace {

using testing::deepseek_tokenizer;
using testing::read_jsonl;
using testing::show_ids;

TEST(TokenizerGolden, LoadsDeepSeekV3) {
    auto tok = deepseek_tokenizer();
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(tok->vocab_size(), 128815);
    EXPECT_EQ(tok->token_to_id("<｜User｜>"), 128803);
    EXPECT_EQ(tok->token_to_id("<｜begin▁of▁sentence｜>"), 0);
    EXPECT_EQ(tok->id_to_token(128804), "<｜Assistant｜>");
    EXPECT_TRUE(tok->is_special(1));
    EXPECT_FALSE(tok->is_special(128803));  // special: false, but still an added token
    EXPECT_TRUE(tok->is_added(128803));
    EXPECT_FALSE(tok->id_to_token(-1).has_value());
    EXPECT_FALSE(tok->id_to_token(tok->vocab_size()).has_value());
}

TEST(TokenizerGolden, EncodeMatchesOracleOnCorpus) {
    auto tok = deepseek_tokenizer();
    ASSERT_NE(tok, nullptr);
    auto rows = read_jsonl("encode.jsonl");
    ASSERT_GE(rows.size(), 2000u);
    size_t failures = 0;
    for (const Json& row : rows) {
        std::string text = row.at("text").get<std::string>();
        std::vector<int32_t> want = row.at("ids").get<std::vector<int32_t>>();
        std::vector<int32_t> got = tok->encode(text);
        if (got != want && ++failures <= 10) {
            ADD_FAILURE() << "encode(" << Json(text).dump() << ")\n  got  " << show_ids(got) << "\n  want "
                          << show_ids(want);
        }
        std::string back = tok->decode(want);
        if (back != text && ++failures <= 10) {
            ADD_FAILURE() << "decode(" << show_ids(want) << ") = " << Json(back).dump() << ", want "
                          << Json(text).dump();
        }
    }
    EXPECT_EQ(failures, 0u) << "of " << rows.size() << " corpus strings";
}

TEST(TokenizerGolden, DecodeMatchesOracleOnRandomIds) {
    auto tok = deepseek_tokenizer();
    ASSERT_NE(tok, nullptr);
    auto rows = read_jsonl("decode.jsonl");
    ASSERT_GE(rows.size(), 100u);
    size_t num_replacements = 0;
    for (const Json& row : rows) {
        std::vector<int32_t> ids = row.at("ids").get<std::vector<int32_t>>();
        std::string want = row.at("text").get<std::string>();
        EXPECT_EQ(tok->decode(ids), want) << show_ids(ids);
        EXPECT_EQ(tok->decode(ids, SpecialTokens::kSkip), row.at("text_skip").get<std::string>()) << show_ids(ids);
        num_replacements += want.find("\xEF\xBF\xBD") != std::string::npos;
    }
    EXPECT_GT(num_replacements, 10u) << "the fixture should exercise ill-formed UTF-8";
}

TEST(TokenizerGolden, BatchEncodeEqualsEncode) {
    auto tok = deepseek_tokenizer();
    ASSERT_NE(tok, nullptr);
    std::vector<std::string> texts;
    for (const Json& row : read_jsonl("encode.jsonl")) texts.push_back(row.at("text").get<std::string>());
    ASSERT_FALSE(texts.empty());
    for (int threads : {1, 3, 0}) {
        auto batch = tok->encode_batch(texts, threads);
        ASSERT_EQ(batch.size(), texts.size());
        for (size_t i = 0; i < texts.size(); ++i) ASSERT_EQ(batch[i], tok->encode(texts[i])) << "text #" << i;
    }
}

TEST(TokenizerGolden, HugeRunsRoundTripAndSplitAsShortOnes) {
    auto tok = deepseek_tokenizer();
    ASSERT_NE(tok, nullptr);
    // `\s+(?!\S)` leaves the last space of a run to the next word: N spaces + "x" = (N-1 spaces) + " x".
    const size_t n = 200000;
    std::vector<int32_t> want = tok->encode(std::string(n - 1, ' '));
    std::vector<int32_t> tail = tok->encode(" x");
    want.insert(want.end(), tail.begin(), tail.end());
    EXPECT_EQ(tok->encode(std::string(n, ' ') + "x"), want);
    for (const std::string& unit : {std::string("中"), std::string("\n"), std::string("ab"), std::string("😀")}) {
        std::string text;
        for (size_t i = 0; i < 50000; ++i) text += unit;
        std::vector<int32_t> ids = tok->encode(text);
        EXPECT_LT(ids.size(), text.size());
        EXPECT_EQ(tok->decode(ids), text) << "unit " << Json(unit).dump();
    }
}

}  // namespace
}  // namespace dsa::text
