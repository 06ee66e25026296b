// bench-serving's datasets: ShareGPT parsing (human turn + reply, skipped and malformed entries), SGLang's
// filters and --sharegpt-output-len, the random datasets' length ranges, and the shipped sample file read
// through the byte-level test tokenizer.
#include "app/bench_datasets.h"

#include <gtest/gtest.h>

#include <set>

#include "base/mapped_file.h"
#include "text/tokenizer.h"

namespace dsa::app {
namespace {

// One token per space-separated word: lengths are easy to reason about.
std::vector<int32_t> words(std::string_view s) {
    std::vector<int32_t> ids;
    bool in_word = false;
    for (char c : s) {
        if (c != ' ' && !in_word) ids.push_back(static_cast<int32_t>(ids.size()));
        in_word = c != ' ';
    }
    return ids;
}

TEST(BenchDatasets, SampledLengthsStayInRange) {
    std::mt19937_64 rng(7);
    for (int v : sample_lengths(100, 0.25, 500, rng)) {
        EXPECT_GE(v, 25);
        EXPECT_LE(v, 100);
    }
    for (int v : sample_lengths(10, 0.0, 100, rng)) EXPECT_GE(v, 1);
    for (int v : sample_lengths(32, 1.0, 10, rng)) EXPECT_EQ(v, 32);
}

TEST(BenchDatasets, ParsesShareGptTurns) {
    auto pairs = parse_sharegpt(R"([
        {"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "q one"},
                           {"from": "gpt", "value": "a one"}]},
        {"conversation": [{"from": "human", "value": "q two"}, {"from": "gpt", "value": "a two"}]},
        {"conversations": [{"from": "human", "value": "only a question"}]},
        {"conversations": [{"from": "gpt", "value": "x"}, {"from": "gpt", "value": "y"}]},
        {"other": 1}
    ])");
    ASSERT_TRUE(pairs.is_ok()) << pairs.status().message();
    ASSERT_EQ(pairs->size(), 2u);
    EXPECT_EQ((*pairs)[0].prompt, "q one");  // the first human turn, not the system turn
    EXPECT_EQ((*pairs)[0].completion, "a one");
    EXPECT_EQ((*pairs)[1].prompt, "q two");
}

TEST(BenchDatasets, MalformedShareGptIsAnError) {
    EXPECT_FALSE(parse_sharegpt("{not json").is_ok());
    EXPECT_FALSE(parse_sharegpt(R"({"conversations": []})").is_ok());  // not a list
    auto bad_turn = parse_sharegpt(R"([{"conversations": [{"from": "human", "value": 3}, {"from": "gpt"}]}])");
    ASSERT_FALSE(bad_turn.is_ok());
    EXPECT_NE(bad_turn.status().message().find("entry 0 turn 0"), std::string::npos);
}

TEST(BenchDatasets, ShareGptFiltersLikeSglang) {
    std::vector<SharegptPair> pairs = {{"two words", "three more words"},  // kept
                                       {"one", "a b c"},                   // prompt < 2 tokens
                                       {"a b c d", "x"},                   // output < 2 tokens
                                       {"a b c d e f", "g h i j k l"}};    // 12 > context 10
    SharegptOptions opt;
    opt.num_prompts = 10;
    opt.context_len = 10;
    auto rows = sample_sharegpt(pairs, opt, words);
    ASSERT_TRUE(rows.is_ok());
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ((*rows)[0].prompt, "two words");
    EXPECT_EQ((*rows)[0].prompt_len, 2);
    EXPECT_EQ((*rows)[0].output_len, 3);
    EXPECT_TRUE((*rows)[0].prompt_ids.empty());

    opt.context_len.reset();
    opt.fixed_output_len = 8;  // --sharegpt-output-len replaces the reply's length, so "x" now passes
    rows = sample_sharegpt(pairs, opt, words);
    ASSERT_TRUE(rows.is_ok());
    EXPECT_EQ(rows->size(), 3u);
    for (const auto& r : *rows) EXPECT_EQ(r.output_len, 8);
    opt.num_prompts = 2;
    EXPECT_EQ(sample_sharegpt(pairs, opt, words)->size(), 2u);
    opt.fixed_output_len = 3;
    EXPECT_FALSE(sample_sharegpt(pairs, opt, words).is_ok());
}

TEST(BenchDatasets, ShareGptAppliesChatTemplate) {
    SharegptOptions opt;
    opt.num_prompts = 1;
    opt.chat_template = [](const std::string& u) -> StatusOr<std::string> { return "User: " + u + " Assistant:"; };
    auto rows = sample_sharegpt({{"hi there", "hello to you"}}, opt, words);
    ASSERT_TRUE(rows.is_ok());
    EXPECT_EQ((*rows)[0].prompt, "User: hi there Assistant:");
    EXPECT_EQ((*rows)[0].prompt_len, 4);
}

TEST(BenchDatasets, RandomIdsHaveSampledLengths) {
    RandomOptions opt{64, 16, 0.5, 40, 3, 100};
    auto rows = sample_random_ids(opt);
    ASSERT_EQ(rows.size(), 40u);
    std::set<int> lens;
    for (const auto& r : rows) {
        EXPECT_EQ(static_cast<int>(r.prompt_ids.size()), r.prompt_len);
        EXPECT_GE(r.prompt_len, 32);
        EXPECT_LE(r.prompt_len, 64);
        EXPECT_GE(r.output_len, 8);
        EXPECT_LE(r.output_len, 16);
        for (int32_t id : r.prompt_ids) EXPECT_LT(id, 100);
        lens.insert(r.prompt_len);
    }
    EXPECT_GT(lens.size(), 5u);
    EXPECT_EQ(sample_random_ids(opt)[7].prompt_ids, rows[7].prompt_ids);  // seeded
}

TEST(BenchDatasets, RandomFromShareGptRepeatsPromptTokens) {
    RandomOptions opt{10, 4, 1.0, 3, 1, 256};
    auto rows = sample_random_from_sharegpt({{"a b c", "x y"}}, opt, words);
    ASSERT_TRUE(rows.is_ok());
    ASSERT_EQ(rows->size(), 3u);
    EXPECT_EQ((*rows)[0].prompt_ids, (std::vector<int32_t>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0}));
    EXPECT_EQ((*rows)[0].output_len, 4);
    EXPECT_FALSE(sample_random_from_sharegpt({{"", "x"}}, opt, words).is_ok());
}

TEST(BenchDatasets, SampleFileThroughByteTokenizer) {
    const std::string dir = DSA_SOURCE_DIR;
    auto text = read_file(dir + "/tests/data/sharegpt_sample.json");
    ASSERT_TRUE(text.is_ok());
    auto pairs = parse_sharegpt(*text);
    ASSERT_TRUE(pairs.is_ok()) << pairs.status().message();
    EXPECT_EQ(pairs->size(), 7u);  // s6 has no reply
    auto tok = text::Tokenizer::from_file(dir + "/tests/golden/byte_tokenizer/tokenizer.json");
    ASSERT_TRUE(tok.is_ok());
    SharegptOptions opt;
    opt.num_prompts = 100;
    auto rows = sample_sharegpt(*pairs, opt, [&](std::string_view s) { return (*tok)->encode(s); });
    ASSERT_TRUE(rows.is_ok());
    ASSERT_EQ(rows->size(), 7u);
    for (const auto& r : *rows) {
        EXPECT_EQ(r.prompt_len, static_cast<int>(r.prompt.size()));  // one token per byte
        EXPECT_GE(r.output_len, 2);
    }
}

}  // namespace
}  // namespace dsa::app
