// Matcher tables: for each tool-call format and for JSON schemas, texts the grammar must accept (complete
// sentences) and texts it must reject; malformed schemas must be InvalidArgument.
#include <gtest/gtest.h>

#include "constrain/formats.h"
#include "constrain_test_util.h"

namespace dsa::constrain {
namespace {

using testing::is_prefix;
using testing::matches;
using testing::test_tools;

struct Case {
    std::string text;
    bool accept;
};

std::shared_ptr<const Grammar> tool_grammar(ToolFormat f, std::optional<std::string> named = std::nullopt,
                                            bool think = false) {
    auto g = tool_call_grammar(ToolCallSpec{f, test_tools(), std::move(named), false, think});
    EXPECT_TRUE(g.is_ok()) << g.status().to_string();
    return g.is_ok() ? *g : nullptr;
}

void check_table(const Grammar& g, const std::vector<Case>& cases) {
    for (const Case& c : cases) EXPECT_EQ(matches(g, c.text), c.accept) << c.text;
}

const std::string kCalls = "<｜DSML｜function_calls>\n";
const std::string kEnd = "</｜DSML｜function_calls>";
std::string invoke(const std::string& name, const std::string& params) {
    return "<｜DSML｜invoke name=\"" + name + "\">\n" + params + "</｜DSML｜invoke>\n";
}
std::string param(const std::string& k, bool raw, const std::string& v) {
    return "<｜DSML｜parameter name=\"" + k + "\" string=\"" + (raw ? "true" : "false") + "\">" + v +
           "</｜DSML｜parameter>\n";
}

TEST(ToolGrammar, DeepSeekV32Table) {
    auto g = tool_grammar(ToolFormat::kDeepSeekV32);
    ASSERT_TRUE(g);
    check_table(
        *g,
        {
            {kCalls + invoke("get_weather", param("city", true, "Paris")) + kEnd, true},
            {kCalls +
                 invoke("get_weather", param("city", true, " New York ") + param("days", false, "3") +
                                           param("unit", true, "f") + param("hourly", false, "true") +
                                           param("coords", false, "[48.8, -2.35e1]")) +
                 kEnd,
             true},
            {kCalls + invoke("get_weather", param("city", true, "Paris")) + invoke("get_time", "") + kEnd, true},
            {kCalls + invoke("get_time", param("tz", true, "CET")) + kEnd, true},
            {kCalls + invoke("get_time", param("tz", false, "null")) + kEnd, true},
            {kCalls + invoke("echo", param("x", false, "[1, {\"a\": null}]") + param("y", true, "hi")) + kEnd, true},
            {kCalls + invoke("get_wether", param("city", true, "Paris")) + kEnd, false},  // unknown function
            {kCalls + invoke("get_weather", param("days", false, "3")) + kEnd, false},    // missing required
            {kCalls + invoke("get_weather", param("city", true, "P") + param("days", true, "3")) + kEnd, false},
            {kCalls + invoke("get_weather", param("city", true, "P") + param("days", false, "2.5")) + kEnd, false},
            {kCalls + invoke("get_weather", param("city", true, "P") + param("unit", true, "k")) + kEnd, false},
            {kCalls + invoke("get_weather", param("city", true, "P") + param("country", true, "FR")) + kEnd, false},
            {kCalls + invoke("get_weather", param("city", false, "\"Paris\"")) + kEnd, false},  // strings are raw
            {kCalls + invoke("get_weather", param("city", true, "a</｜DSML｜invoke>b")) + kEnd, false},
            {kCalls + invoke("get_weather", param("city", true, "Paris")), false},  // block not closed
            {kCalls + kEnd, false},                                                 // no call
            {"Sure.\n\n" + kCalls + invoke("get_time", "") + kEnd, false},          // text first
            {kCalls + invoke("get_time", "") + kEnd + "\nmore", false},             // text after
        });
    // Parameters follow the declaration order (as the encoder writes them).
    EXPECT_FALSE(
        matches(*g, kCalls + invoke("get_weather", param("days", false, "1") + param("city", true, "P")) + kEnd));
    EXPECT_TRUE(is_prefix(*g, kCalls + invoke("get_weather", param("city", true, "Par"))));
}

TEST(ToolGrammar, DeepSeekV32Named) {
    auto g = tool_grammar(ToolFormat::kDeepSeekV32, "get_time");
    ASSERT_TRUE(g);
    check_table(*g, {
                        {kCalls + invoke("get_time", "") + kEnd, true},
                        {kCalls + invoke("get_weather", param("city", true, "Paris")) + kEnd, false},
                        {kCalls + invoke("get_time", "") + invoke("get_time", "") + kEnd, false},  // exactly one call
                    });
    EXPECT_FALSE(tool_call_grammar(ToolCallSpec{ToolFormat::kDeepSeekV32, test_tools(), "nope", false, false}).is_ok());
}

TEST(ToolGrammar, SingleCallOfAnyTool) {
    auto g = tool_call_grammar(ToolCallSpec{ToolFormat::kDeepSeekV32, test_tools(), std::nullopt, true, false});
    ASSERT_TRUE(g.is_ok());
    check_table(**g, {
                         {kCalls + invoke("get_time", "") + kEnd, true},
                         {kCalls + invoke("get_weather", param("city", true, "Paris")) + kEnd, true},
                         {kCalls + invoke("get_time", "") + invoke("get_time", "") + kEnd, false},
                     });
}

TEST(ToolGrammar, ReasoningComesFirst) {
    auto g = tool_grammar(ToolFormat::kDeepSeekV32, std::nullopt, /*think=*/true);
    ASSERT_TRUE(g);
    check_table(*g, {
                        {"I should call <b>it</b>.</think>" + kCalls + invoke("get_time", "") + kEnd, true},
                        {kCalls + invoke("get_time", "") + kEnd, false},  // the reasoning must be closed first
                    });
}

TEST(ToolGrammar, DeepSeekV31Table) {
    auto g = tool_grammar(ToolFormat::kDeepSeekV31);
    ASSERT_TRUE(g);
    const std::string b = "<｜tool▁calls▁begin｜>", e = "<｜tool▁calls▁end｜>";
    auto call = [](const std::string& n, const std::string& args) {
        return "<｜tool▁call▁begin｜>" + n + "<｜tool▁sep｜>" + args + "<｜tool▁call▁end｜>";
    };
    check_table(*g, {
                        {b + call("get_weather", R"({"city": "Paris", "days": 3})") + e, true},
                        {b + call("get_weather", R"({ "city" : "P\u00e9\n", "coords": [1, 2.5] })") + e, true},
                        {b + call("get_weather", R"({"city":"Paris"})") +
                             call("echo", R"({"any": [true, null, {"k": -1e5}]})") + e,
                         true},
                        {b + call("get_time", "{}") + e, true},
                        {b + call("get_weather", R"({"days": 3})") + e, false},
                        {b + call("get_weather", R"({"city": 5})") + e, false},
                        {b + call("get_weather", R"({"city": "P", "extra": 1})") + e, false},
                        {b + call("get_weather", R"({"city": "P", "coords": [1, 2, 3]})") + e, false},
                        {b + call("get_weather", R"({"city": "P",})") + e, false},
                        {b + call("get_time", "[]") + e, false},
                        {b + call("get_time", "{}"), false},
                    });
}

TEST(ToolGrammar, GlmTables) {
    auto g47 = tool_grammar(ToolFormat::kGlm47);
    auto g45 = tool_grammar(ToolFormat::kGlm45);
    ASSERT_TRUE(g47 && g45);
    check_table(*g47,
                {
                    {"<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value>"
                     "<arg_key>days</arg_key><arg_value>2</arg_value></tool_call>",
                     true},
                    {"<tool_call>get_time</tool_call><tool_call>echo<arg_key>q</arg_key><arg_value>{\"a\": "
                     "1}</arg_value></tool_call>",
                     true},
                    {"<tool_call>get_weather<arg_key>city</arg_key><arg_value>P</arg_value>"
                     "<arg_key>days</arg_key><arg_value>two</arg_value></tool_call>",
                     false},
                    {"<tool_call>get_weather</tool_call>", false},
                    {"<tool_call>get_weather<arg_key>city</arg_key><arg_value>a</b></arg_value></tool_call>", false},
                    {"", false},
                });
    check_table(
        *g45, {
                  {"<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>", true},
                  {"<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value></tool_call>", false},
              });
}

TEST(JsonGrammar, SchemaTable) {
    const OrderedJson schema = OrderedJson::parse(R"({"type": "object", "properties": {
        "name": {"type": "string"}, "score": {"type": "number"}, "n": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 1},
        "kind": {"const": "x"}}, "required": ["name"]})");
    auto g = json_grammar(schema, false);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    check_table(**g, {
                         {R"({"name": "x"})", true},
                         {"{\n  \"name\": \"x\\\"\\u00e9\",\n  \"score\": -0.5e-3,\n  \"n\": 10,\n  \"tags\": [\"a\", "
                          "\"b\"],\n  \"kind\": \"x\"\n}",
                          true},
                         {R"(  {"name":"日本"})", true},
                         {R"({"name": 1})", false},
                         {R"({"score": 1})", false},
                         {R"({"name": "x", "n": 1.5})", false},
                         {R"({"name": "x", "n": 01})", false},
                         {R"({"name": "x", "tags": []})", false},
                         {R"({"name": "x", "tags": ["c"]})", false},
                         {R"({"name": "x", "kind": "y"})", false},
                         {R"({"name": "x", "other": 1})", false},
                         {"{\"name\": \"a\tb\"}", false},  // raw control character
                         {"{\"name\": \"\xff\"}", false},  // not UTF-8
                         {R"({"name": "x"} trailing)", false},
                         {R"({"name": "x")", false},
                     });
}

TEST(JsonGrammar, JsonObjectAndRecursion) {
    auto obj = json_grammar(OrderedJson::parse(R"({"type": "object"})"), false);
    ASSERT_TRUE(obj.is_ok());
    check_table(**obj,
                {{R"({"a": [1, {"b": null}], "c": "d"})", true}, {"{}", true}, {"[1]", false}, {"\"x\"", false}});
    auto tree = json_grammar(OrderedJson::parse(R"({"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}},
        "$ref": "#/$defs/node"})"),
                             false);
    ASSERT_TRUE(tree.is_ok()) << tree.status().to_string();
    check_table(**tree,
                {{R"({"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]})", true}, {R"({"v": 1, "kids": [{}]})", false}});
    auto think = json_grammar(OrderedJson::parse(R"({"type": "integer"})"), true);
    ASSERT_TRUE(think.is_ok());
    check_table(**think, {{"hmm</think>42", true}, {"42", false}});
}

TEST(JsonGrammar, InvalidSchemasAreInvalidArgument) {
    for (const char* bad : {R"({"type": "strin"})", R"({"properties": 3})", R"({"required": "a"})", R"({"enum": []})",
                            R"({"$ref": "#/nope"})", R"({"minItems": 3, "maxItems": 1})", "false", "42",
                            R"({"type": 5})", R"({"items": 3})", R"({"anyOf": []})"}) {
        auto g = json_grammar(OrderedJson::parse(bad), false);
        ASSERT_FALSE(g.is_ok()) << bad;
        EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << bad;
    }
    OrderedJson tools = OrderedJson::parse(R"([{"type": "function", "function": {"name": "f",
        "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}}}])");
    for (ToolFormat f : {ToolFormat::kDeepSeekV32, ToolFormat::kDeepSeekV31, ToolFormat::kGlm47})
        EXPECT_FALSE(tool_call_grammar(ToolCallSpec{f, tools, std::nullopt, false, false}).is_ok());
}

}  // namespace
}  // namespace dsa::constrain
