// DeepSeek-V3.2 additions on top of the V3 tokenizer.json: V3.2 renames the placeholders 128798/128799 to
// <think>/</think> and the DSML tool-call marker "｜DSML｜" is an added token. The test patches the V3 file the
// same way and checks that each is split out as one token wherever it appears, and round-trips. (The id
// given to ｜DSML｜ here, the first free one, stands in for V3.2's, which is not verified.)
#include <gtest/gtest.h>

#include "text/tokenizer.h"
#include "tokenizer_test_util.h"

namespace dsa::text {
namespace {

constexpr int32_t kThinkOpen = 128798;
constexpr int32_t kThinkClose = 128799;
constexpr int32_t kDsml = 128815;
constexpr int32_t kUser = 128803;
constexpr int32_t kAssistant = 128804;
constexpr int32_t kEos = 1;

Json added_token_json(int32_t id, const std::string& content) {
    return Json{{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false},   {"normalized", true}, {"special", false}};
}

std::shared_ptr<const Tokenizer> v32_tokenizer() {
    static const std::shared_ptr<const Tokenizer> tok = []() -> std::shared_ptr<const Tokenizer> {
        Json j = testing::deepseek_tokenizer_json();
        if (j.is_null()) return nullptr;
        for (Json& t : j.at("added_tokens")) {
            if (t.at("id") == kThinkOpen) t = added_token_json(kThinkOpen, "<think>");
            if (t.at("id") == kThinkClose) t = added_token_json(kThinkClose, "</think>");
        }
        j.at("added_tokens").push_back(added_token_json(kDsml, "｜DSML｜"));
        auto r = Tokenizer::from_json(j);
        EXPECT_TRUE(r.is_ok()) << r.status().to_string();
        return r.is_ok() ? *r : nullptr;
    }();
    return tok;
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

TEST(TokenizerV32, ThinkTokensAreSingleTokens) {
    auto v3 = testing::deepseek_tokenizer();
    auto tok = v32_tokenizer();
    ASSERT_NE(v3, nullptr);
    ASSERT_NE(tok, nullptr);
    EXPECT_GT(v3->encode("<think>").size(), 1u) << "in V3 <think> is plain text";
    EXPECT_EQ(tok->encode("<think>"), std::vector<int32_t>{kThinkOpen});
    EXPECT_EQ(tok->encode("</think>"), std::vector<int32_t>{kThinkClose});
    EXPECT_EQ(tok->token_to_id("</think>"), kThinkClose);
    EXPECT_FALSE(tok->token_to_id("<｜place▁holder▁no▁798｜>").has_value());

    std::string prompt = "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜></think>ok<｜end▁of▁sentence｜>";
    std::vector<int32_t> want = concat({{0, kUser}, tok->encode("hi"), {kAssistant, kThinkClose}, tok->encode("ok"),
                                        {kEos}});
    EXPECT_EQ(tok->encode(prompt), want);
    EXPECT_EQ(tok->decode(want), prompt);
    std::string thinking = "<｜User｜>q<｜Assistant｜><think>\nreason</think>\n\nanswer";
    std::vector<int32_t> ids = tok->encode(thinking);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), kThinkOpen), 1);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), kThinkClose), 1);
    EXPECT_EQ(tok->decode(ids), thinking);
}

TEST(TokenizerV32, DsmlMarkerIsSplitOut) {
    auto tok = v32_tokenizer();
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(tok->vocab_size(), kDsml + 1);
    EXPECT_EQ(tok->id_to_token(kDsml), "｜DSML｜");
    EXPECT_EQ(tok->encode("<｜DSML｜invoke name=\"f\">"),
              concat({tok->encode("<"), {kDsml}, tok->encode("invoke name=\"f\">")}));

    std::string calls =
        "\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
        "<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"days\" string=\"false\">2</｜DSML｜parameter>\n"
        "</｜DSML｜invoke>\n</｜DSML｜function_calls><｜end▁of▁sentence｜>";
    std::vector<int32_t> ids = tok->encode(calls);
    size_t markers = 0;
    for (size_t p = calls.find("｜DSML｜"); p != std::string::npos; p = calls.find("｜DSML｜", p + 1)) ++markers;
    EXPECT_EQ(markers, 8u);
    EXPECT_EQ(static_cast<size_t>(std::count(ids.begin(), ids.end(), kDsml)), markers);
    EXPECT_EQ(ids.back(), kEos);
    EXPECT_EQ(tok->decode(ids), calls);
    EXPECT_EQ(tok->decode(ids, SpecialTokens::kSkip), calls.substr(0, calls.size() - std::string("<｜end▁of▁sentence｜>").size()));
}

}  // namespace
}  // namespace dsa::text
