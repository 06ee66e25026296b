// Transcript data (see transcripts.h) and the golden checks: the non-streaming parse of every transcript
// gives the expected content and calls.
#include "transcripts.h"

#include <gtest/gtest.h>

#include "parser_test_util.h"

namespace dsa::parsers::testing {

std::vector<Transcript> dsml_transcripts() {
    const std::string p = "deepseekv32";
    const std::string weather = dsml_invoke("get_weather", {dsml_param("city", true, "Paris"), dsml_param("days", false, "2")});
    return {
        {"v32_plain", p, "Hello, world! 2 < 3 and <b>bold</b> <｜not DSML｜>\n\nbye\n",
         "Hello, world! 2 < 3 and <b>bold</b> <｜not DSML｜>\n\nbye\n", {}},
        {"v32_example_c", p, "\n\n" + dsml_block({weather}), "",
         {{"get_weather", R"({"city": "Paris", "days": 2})"}}},
        {"v32_text_two_calls", p,
         "Let me check.\n\n" + dsml_block({weather, dsml_invoke("get_time", {dsml_param("tz", true, "CET")})}),
         "Let me check.", {{"get_weather", R"({"city": "Paris", "days": 2})"}, {"get_time", R"({"tz": "CET"})"}}},
        {"v32_unicode_escapes", p,
         dsml_block({dsml_invoke("get_weather", {dsml_param("city", true, "  Zürich 東京 🌧\t")}),
                     dsml_invoke("write_file", {dsml_param("path", true, "/tmp/a \"b\".txt"),
                                                dsml_param("content", true, "line1\nline2\\")})}),
         "", {{"get_weather", R"({"city": "Zürich 東京 🌧"})"},
              {"write_file", R"({"path": "/tmp/a \"b\".txt", "content": "line1\nline2\\"})"}}},
        {"v32_nested_json", p,
         "Writing.\n\n" + dsml_block({dsml_invoke("write_file", {dsml_param("meta", false, R"({"a":[1,2.50,{"b":null}],"c":"x\u00e9"})")})}),
         "Writing.", {{"write_file", R"({"meta": {"a": [1, 2.5, {"b": null}], "c": "xé"}})"}}},
        {"v32_types", p,
         dsml_block({dsml_invoke("write_file", {dsml_param("path", true, "42"), dsml_param("mode", false, "07"),
                                                dsml_param("flag", false, " true "), dsml_param("meta", false, "[ ]"),
                                                dsml_param("content", false, "1e2")})}),
         "", {{"write_file", R"({"path": "42", "mode": "07", "flag": true, "meta": [], "content": 100.0})"}}},
        {"v32_self_closing_and_json_body", p,
         dsml_block({"<｜DSML｜invoke name=\"get_time\"/>",
                     "<｜DSML｜invoke name=\"get_weather\">\n{\"city\":\"Rome\",\"days\":3}\n</｜DSML｜invoke>"}),
         "", {{"get_time", "{}"}, {"get_weather", R"({"city": "Rome", "days": 3})"}}},
        {"v32_truncated_value", p,
         "Checking.\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
         "<｜DSML｜parameter name=\"city\" string=\"true\">Par",
         "Checking.", {{"get_weather", R"({"city": "Par"})", true}}},
        {"v32_truncated_before_invoke", p, "Sure.\n\n<｜DSML｜function_calls>\n<｜DSML｜inv",
         "Sure.\n\n<｜DSML｜function_calls>\n<｜DSML｜inv", {}},
        {"v32_unknown_tool_block_is_text", p,
         "x\n\n" + dsml_block({dsml_invoke("launch", {dsml_param("n", false, "3")})}),
         "x\n\n" + dsml_block({dsml_invoke("launch", {dsml_param("n", false, "3")})}), {}},
        {"v32_text_after_block", p, dsml_block({dsml_invoke("get_time", {dsml_param("tz", true, "UTC")})}) + "\nDone.",
         "\nDone.", {{"get_time", R"({"tz": "UTC"})"}}},
        {"v32_long_arguments", p, dsml_block({dsml_invoke("write_file", {dsml_param("content", true, long_text())})}),
         "", {{"write_file", "{\"content\": \"" + long_text_json().substr(0, long_text_json().size() - 2) + "\"}"}}},
    };
}

std::vector<Transcript> v31_transcripts() {
    const std::string p = "deepseekv31";
    return {
        {"v31_plain", p, "Just text, a <｜tool▁sep｜> token and < symbols >", "Just text, a <｜tool▁sep｜> token and < symbols >", {}},
        {"v31_one_call", p, "Sure.  " + kV31Begin + v31_call("get_weather", R"({"city":"Paris","days":2})") + kV31End,
         "Sure.", {{"get_weather", R"({"city": "Paris", "days": 2})"}}},
        {"v31_two_calls_unicode", p,
         kV31Begin + v31_call("get_weather", R"({"city": "\u00e9t\u00e9 \ud83c\udf27 東京"})") +
             v31_call("get_time", R"({"tz":"CET"})") + kV31End,
         "", {{"get_weather", R"({"city": "été 🌧 東京"})"}, {"get_time", R"({"tz": "CET"})"}}},
        {"v31_nested", p,
         kV31Begin + v31_call("write_file", R"({"meta": {"list": [1, -0, 3.0e0, true, null], "s": "a\"b\\c\n\/"}})") + kV31End,
         "", {{"write_file", R"({"meta": {"list": [1, 0, 3.0, true, null], "s": "a\"b\\c\n/"}})"}}},
        {"v31_invalid_json_recovered", p, kV31Begin + v31_call("get_weather", R"({"city": Paris})") + kV31End, "",
         {{"get_weather", R"({"city": "Paris}"})"}}},
        {"v31_truncated_args", p, "Ok." + kV31Begin + "<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Ber", "Ok.",
         {{"get_weather", R"({"city": "Ber"})", true}}},
        {"v31_truncated_name", p, "Ok." + kV31Begin + "<｜tool▁call▁begin｜>get_wea",
         "Ok." + kV31Begin + "<｜tool▁call▁begin｜>get_wea", {}},
        {"v31_text_after_block", p, kV31Begin + v31_call("get_time", "{}") + kV31End + "\n\nAnything else?",
         "\n\nAnything else?", {{"get_time", "{}"}}},
        {"v31_long_arguments", p,
         kV31Begin + v31_call("write_file", "{\"content\": \"" + long_text_json() + "\"}") + kV31End, "",
         {{"write_file", "{\"content\": \"" + long_text_json() + "\"}"}}},
    };
}

std::vector<Transcript> glm_transcripts() {
    const std::string p = "glm47";
    return {
        {"glm_plain", p, "a < b and <tool> <tool_cal", "a < b and <tool> <tool_cal", {}},
        {"glm_spec_example", p,
         "I will check." + glm_call("get_weather", {{"city", "Paris"}, {"days", "2"}}), "I will check.",
         {{"get_weather", R"({"city": "Paris", "days": 2})"}}},
        {"glm_two_calls_text_between", p,
         "A " + glm_call("get_time", {{"tz", "UTC"}}) + "\n" + glm_call("get_weather", {{"city", " 北京 ✓ "}}) + "\nB",
         "A\nB", {{"get_time", R"({"tz": "UTC"})"}, {"get_weather", R"({"city": " 北京 ✓ "})"}}},
        {"glm_schema_types", p,
         glm_call("write_file", {{"path", "/x"}, {"mode", "7"}, {"flag", "True"},
                                 {"meta", R"({"k": [1,2], "u": "\u00fc"})"}, {"content", "true"}}),
         "", {{"write_file", R"({"path": "/x", "mode": 7, "flag": true, "meta": {"k": [1, 2], "u": "ü"}, "content": "true"})"}}},
        {"glm_unknown_keys", p, glm_call("get_weather", {{"extra", "hello world"}, {"n", "3.50"}}), "",
         {{"get_weather", R"({"extra": "hello world", "n": 3.5})"}}},
        {"glm_no_args", p, glm_call("get_time", {}), "", {{"get_time", "{}"}}},
        {"glm_truncated", p, "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Pa", "",
         {{"get_weather", R"({"city": "Pa"})", true}}},
        {"glm_unknown_tool_is_text", p, "x " + glm_call("rm_rf", {{"p", "/"}}), "x " + glm_call("rm_rf", {{"p", "/"}}), {}},
        {"glm_long_arguments", p, glm_call("write_file", {{"content", long_text()}}), "",
         {{"write_file", "{\"content\": \"" + long_text_json() + "\"}"}}},
        {"glm45_spec_example", "glm45",
         "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>北京</arg_value>\n</tool_call>", "",
         {{"get_weather", R"({"city": "北京"})"}}},
        {"glm45_literal_newlines", "glm45",
         "<tool_call>get_weather\\n<arg_key>city</arg_key>\\n<arg_value> Paris </arg_value>\\n<arg_key>days</arg_key>"
         "<arg_value>3</arg_value>\\n</tool_call>",
         "", {{"get_weather", R"({"city": "Paris", "days": 3})"}}},
    };
}

namespace {

class TranscriptGolden : public ::testing::TestWithParam<Transcript> {};

TEST_P(TranscriptGolden, NonStreamingParseMatchesExpected) {
    const Transcript& t = GetParam();
    auto parser = make_tool_parser(t.parser, test_tools());
    ASSERT_NE(parser, nullptr);
    const ToolParseResult r = parser->parse(t.text);
    EXPECT_EQ(r.content, t.content);
    ASSERT_EQ(r.calls.size(), t.calls.size());
    for (size_t i = 0; i < r.calls.size(); ++i) {
        EXPECT_EQ(r.calls[i].index, static_cast<int>(i));
        EXPECT_EQ(r.calls[i].id, "call_" + std::to_string(i));
        EXPECT_EQ(r.calls[i].name, t.calls[i].name);
        EXPECT_EQ(r.calls[i].arguments, t.calls[i].arguments);
        EXPECT_EQ(r.calls[i].truncated, t.calls[i].truncated);
        if (!t.calls[i].truncated) {
            EXPECT_FALSE(OrderedJson::parse(r.calls[i].arguments, nullptr, false).is_discarded()) << r.calls[i].arguments;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(All, TranscriptGolden, ::testing::ValuesIn(all_transcripts()),
                         [](const auto& info) { return info.param.name; });

TEST(ToolParserFactory, UnknownNameListsSupported) {
    auto r = make_tool_call_parser("qwen25", test_tools());
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("deepseekv31, deepseekv32, glm45, glm47"), std::string::npos);
    auto rr = make_reasoning_parser("qwen3", {});
    ASSERT_FALSE(rr.is_ok());
    EXPECT_NE(rr.status().message().find("deepseek-v3, glm45"), std::string::npos);
}

TEST(ToolParserResult, ToolIndexIsPositionInTools) {
    auto parser = make_tool_parser("deepseekv32", test_tools());
    const auto r = parser->parse(dsml_block({dsml_invoke("write_file", {}), dsml_invoke("get_time", {})}));
    ASSERT_EQ(r.calls.size(), 2u);
    EXPECT_EQ(r.calls[0].tool_index, 2);
    EXPECT_EQ(r.calls[1].tool_index, 1);
    EXPECT_EQ(r.calls[0].arguments, "{}");
}

TEST(ToolParserResult, ForwardUnknownTools) {
    ToolParserOptions options = counting_ids();
    options.forward_unknown_tools = true;
    auto parser = make_tool_call_parser("glm47", test_tools(), options);
    ASSERT_TRUE(parser.is_ok());
    const auto r = (*parser)->parse(glm_call("other", {{"a", "1"}}));
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0].name, "other");
    EXPECT_EQ(r.calls[0].arguments, R"({"a": 1})");
    EXPECT_EQ(r.calls[0].tool_index, -1);
}

TEST(ToolParserResult, DefaultIdsLookLikeSglang) {
    auto parser = make_tool_call_parser("glm47", test_tools());
    ASSERT_TRUE(parser.is_ok());
    const auto r = (*parser)->parse(glm_call("get_time", {}) + glm_call("get_time", {}));
    ASSERT_EQ(r.calls.size(), 2u);
    for (const auto& c : r.calls) {
        ASSERT_EQ(c.id.size(), 29u);
        EXPECT_EQ(c.id.substr(0, 5), "call_");
        EXPECT_EQ(c.id.find_first_not_of("0123456789abcdef", 5), std::string::npos);
    }
    EXPECT_NE(r.calls[0].id, r.calls[1].id);
}

}  // namespace
}  // namespace dsa::parsers::testing
