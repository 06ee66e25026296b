// Byte-exact tests of the dsv32 chat encoder: the worked examples A, B and C of the API spec (expected strings
// copied from the spec), the official vs SGLang tools preamble, DSML rendering of argument types, grouped tool
// results, reasoning kept only for the in-flight turn, the developer role, and the encoder's errors.
#include <gtest/gtest.h>

#include <string>

#include "text/dsv32_encoding.h"

namespace dsa::text {
namespace {

using Mode = Dsv32ThinkingMode;

// ---- expected outputs, copied verbatim from the API spec (sections 3.3 - 3.6) ----
constexpr const char* kExampleA = R"X(<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>Hi!<｜Assistant｜></think>Hello! How can I help?<｜end▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜></think>)X";
constexpr const char* kExampleB = R"X(<｜begin▁of▁sentence｜><｜User｜>Hi!<｜Assistant｜></think>Hello! How can I help?<｜end▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>)X";
constexpr const char* kExampleCTurn1 = R"X(<｜begin▁of▁sentence｜>

## Tools
You have access to a set of tools you can use to answer the user's question.
You can invoke functions by writing a "<｜DSML｜function_calls>" block like the following as part of your reply to the user:
<｜DSML｜function_calls>
<｜DSML｜invoke name="$FUNCTION_NAME">
<｜DSML｜parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</｜DSML｜parameter>
...
</｜DSML｜invoke>
<｜DSML｜invoke name="$FUNCTION_NAME2">
...
</｜DSML｜invoke>
</｜DSML｜function_calls>
String and scalar parameters should be specified as is without any escaping or quotes, while lists and objects should use JSON format. The "string" attribute should be set to "true" for string type parameters and "false" for other types (numbers, booleans, arrays, objects).
If the thinking_mode is enabled, then after function results you should strongly consider outputting a thinking block. Here is an example:
<｜DSML｜function_calls>
...
</｜DSML｜function_calls>
<function_results>
...
</function_results>
<think>...thinking about results</think>
Here are the functions available in JSONSchema format:
<functions>
{"description": "Get current weather for a city", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}, "strict": false}
</functions>
<｜User｜>What's the weather in Paris for 2 days?<｜Assistant｜><think>)X";
constexpr const char* kExampleCModelOutput = R"X(I should call get_weather.</think>

<｜DSML｜function_calls>
<｜DSML｜invoke name="get_weather">
<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>
<｜DSML｜parameter name="days" string="false">2</｜DSML｜parameter>
</｜DSML｜invoke>
</｜DSML｜function_calls><｜end▁of▁sentence｜>)X";
constexpr const char* kExampleCTurn2Suffix = R"X(I should call get_weather.</think>

<｜DSML｜function_calls>
<｜DSML｜invoke name="get_weather">
<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>
<｜DSML｜parameter name="days" string="false">2</｜DSML｜parameter>
</｜DSML｜invoke>
</｜DSML｜function_calls><｜end▁of▁sentence｜>

<function_results>
<result>{"temp_c": 18, "sky": "sunny"}</result>
</function_results>

<think>)X";
constexpr const char* kOfficialToolsTemplate = R"X(## Tools

You have access to a set of tools you can use to answer the user's question.
You can invoke functions by writing a "<｜DSML｜function_calls>" block like the following as part of your reply to the user:
<｜DSML｜function_calls>
<｜DSML｜invoke name="$FUNCTION_NAME">
<｜DSML｜parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</｜DSML｜parameter>
...
</｜DSML｜invoke>
<｜DSML｜invoke name="$FUNCTION_NAME2">
...
</｜DSML｜invoke>
</｜DSML｜function_calls>

String and scalar parameters should be specified as is without any escaping or quotes, while lists and objects should use JSON format. The "string" attribute should be set to "true" for string type parameters and "false" for other types (numbers, booleans, arrays, objects).

If the thinking_mode is enabled, then after function results you should strongly consider outputting a thinking block. Here is an example:

<｜DSML｜function_calls>
...
</｜DSML｜function_calls>

<function_results>
...
</function_results>

<think>...thinking about results</think>

Here are the functions available in JSONSchema format:
<functions>
{TOOL_LINES}
</functions>)X";

constexpr const char* kWeatherTools =
    R"([{"type":"function","function":{"name":"get_weather","description":"Get current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}}}])";

OrderedJson parse(const std::string& s) { return OrderedJson::parse(s); }

std::string encode_ok(const OrderedJson& messages, const OrderedJson& tools, const Dsv32Options& options) {
    auto result = encode_dsv32(messages, tools, options);
    EXPECT_TRUE(result.is_ok()) << result.status().to_string();
    return result.is_ok() ? *result : std::string();
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
        s.replace(pos, from.size(), to);
    }
    return s;
}

TEST(Dsv32Encoding, ExampleAPlainChat) {
    auto messages = parse(R"([{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hi!"},
        {"role":"assistant","content":"Hello! How can I help?"},{"role":"user","content":"What is 2+2?"}])");
    EXPECT_EQ(encode_ok(messages, nullptr, Dsv32Options::sglang(Mode::kChat)), kExampleA);
    EXPECT_EQ(encode_ok(messages, nullptr, Dsv32Options{}), kExampleA);
}

TEST(Dsv32Encoding, ExampleBThinkingDropsEarlierReasoning) {
    auto messages = parse(R"([{"role":"user","content":"Hi!"},
        {"role":"assistant","content":"Hello! How can I help?","reasoning_content":"The user greets me."},
        {"role":"user","content":"What is 2+2?"}])");
    EXPECT_EQ(encode_ok(messages, nullptr, Dsv32Options::sglang(Mode::kThinking)), kExampleB);
    Dsv32Options keep = Dsv32Options::sglang(Mode::kThinking);
    keep.drop_thinking = false;  // reasoning before the last user turn is never rendered either way
    EXPECT_EQ(encode_ok(messages, nullptr, keep), kExampleB);
}

TEST(Dsv32Encoding, ExampleCTurn1SglangFlavour) {
    auto messages = parse(R"([{"role":"user","content":"What's the weather in Paris for 2 days?"}])");
    EXPECT_EQ(encode_ok(messages, parse(kWeatherTools), Dsv32Options::sglang(Mode::kThinking)), kExampleCTurn1);
}

OrderedJson example_c_turn2(bool arguments_as_string) {
    auto messages = parse(R"([{"role":"user","content":"What's the weather in Paris for 2 days?"},
        {"role":"assistant","content":null,"reasoning_content":"I should call get_weather.",
         "tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\", \"days\": 2}"}}]},
        {"role":"tool","tool_call_id":"call_1","content":"{\"temp_c\": 18, \"sky\": \"sunny\"}"}])");
    if (!arguments_as_string) {
        auto& fn = messages[1]["tool_calls"][0]["function"];
        fn["arguments"] = OrderedJson::parse(fn["arguments"].get<std::string>());
    }
    return messages;
}

TEST(Dsv32Encoding, ExampleCTurn2ExtendsTurn1) {
    const std::string expected = std::string(kExampleCTurn1) + kExampleCTurn2Suffix;
    const auto options = Dsv32Options::sglang(Mode::kThinking);
    EXPECT_EQ(encode_ok(example_c_turn2(true), parse(kWeatherTools), options), expected);
    EXPECT_EQ(encode_ok(example_c_turn2(false), parse(kWeatherTools), options), expected);
}

TEST(Dsv32Encoding, ExampleCModelOutputMatchesRenderedHistory) {
    // The assistant turn rendered in history is exactly what the model generated in turn 1.
    const std::string suffix = kExampleCTurn2Suffix;
    EXPECT_EQ(suffix.substr(0, std::string(kExampleCModelOutput).size()), kExampleCModelOutput);
}

TEST(Dsv32Encoding, ChatModeToolRoundTripHasNoReasoning) {
    auto options = Dsv32Options::sglang(Mode::kChat);
    const std::string prompt = encode_ok(example_c_turn2(true), parse(kWeatherTools), options);
    const std::string turn1 = replace_all(kExampleCTurn1, "<｜Assistant｜><think>", "<｜Assistant｜></think>");
    std::string suffix = replace_all(kExampleCTurn2Suffix, "I should call get_weather.</think>", "");
    suffix = suffix.substr(0, suffix.size() - std::string("<think>").size()) + "</think>";
    EXPECT_EQ(prompt, turn1 + suffix);
}

TEST(Dsv32Encoding, OfficialPreambleWithVerbatimToolLine) {
    auto messages = parse(R"([{"role":"user","content":"Hi"}])");
    const std::string line =
        R"({"name": "get_weather", "description": "Get current weather for a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}})";
    const std::string expected = "<｜begin▁of▁sentence｜>\n\n" +
                                 replace_all(kOfficialToolsTemplate, "{TOOL_LINES}", line) +
                                 "\n<｜User｜>Hi<｜Assistant｜></think>";
    auto tools = parse(kWeatherTools);
    auto& fn = tools[0]["function"];
    fn = OrderedJson{{"name", fn["name"]}, {"description", fn["description"]}, {"parameters", fn["parameters"]}};
    EXPECT_EQ(encode_ok(messages, tools, Dsv32Options{}), expected);
}

TEST(Dsv32Encoding, SglangToolLineFillsMissingFields) {
    auto tools = parse(R"([{"type":"function","function":{"name":"ping","strict":true}}])");
    const std::string prompt = encode_ok(parse(R"([{"role":"user","content":"x"}])"), tools, Dsv32Options::sglang(Mode::kChat));
    EXPECT_NE(prompt.find("\n<functions>\n{\"description\": null, \"name\": \"ping\", \"parameters\": null, \"strict\": true}\n</functions>\n"),
              std::string::npos);
}

TEST(Dsv32Encoding, ArgumentTypesAndMultipleResultsGrouped) {
    auto messages = parse(R"([{"role":"user","content":"go"},
        {"role":"assistant","content":"Checking.","tool_calls":[
          {"type":"function","function":{"name":"f","arguments":{"s":"Zürich \"q\"","n":7,"x":1.5,"b":true,"z":null,"a":[1,"two",{"k":"ü"}],"o":{"p":{"q":[]}}}}},
          {"type":"function","function":{"name":"g","arguments":"{}"}}]},
        {"role":"tool","content":"r1"},{"role":"tool","content":[{"type":"text","text":"r2a"},{"type":"image_url"},{"type":"text","text":"r2b"}]},
        {"role":"assistant","content":"Done."}])");
    const std::string expected =
        "<｜begin▁of▁sentence｜><｜User｜>go<｜Assistant｜></think>Checking.\n\n<｜DSML｜function_calls>\n"
        "<｜DSML｜invoke name=\"f\">\n"
        "<｜DSML｜parameter name=\"s\" string=\"true\">Zürich \"q\"</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"n\" string=\"false\">7</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"x\" string=\"false\">1.5</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"b\" string=\"false\">true</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"z\" string=\"false\">null</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"a\" string=\"false\">[1, \"two\", {\"k\": \"ü\"}]</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"o\" string=\"false\">{\"p\": {\"q\": []}}</｜DSML｜parameter>\n"
        "</｜DSML｜invoke>\n"
        "<｜DSML｜invoke name=\"g\">\n\n</｜DSML｜invoke>\n"
        "</｜DSML｜function_calls><｜end▁of▁sentence｜>\n\n<function_results>\n<result>r1</result>\n"
        "<result>r2a r2b</result>\n</function_results>\n\n</think>Done.<｜end▁of▁sentence｜>";
    EXPECT_EQ(encode_ok(messages, nullptr, Dsv32Options{}), expected);
}

TEST(Dsv32Encoding, ReasoningKeptForInFlightTurnOnly) {
    auto messages = parse(R"([{"role":"user","content":"q1"},
        {"role":"assistant","content":"a1","reasoning_content":"old"},
        {"role":"user","content":"q2"},
        {"role":"assistant","content":"","reasoning_content":"plan","tool_calls":[{"type":"function","function":{"name":"f","arguments":{"k":"v"}}}]},
        {"role":"tool","content":"out"}])");
    const std::string calls =
        "\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"k\" string=\"true\">v"
        "</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls><｜end▁of▁sentence｜>"
        "\n\n<function_results>\n<result>out</result>\n</function_results>\n\n";
    const std::string history = "<｜begin▁of▁sentence｜><｜User｜>q1<｜Assistant｜></think>a1<｜end▁of▁sentence｜>";
    EXPECT_EQ(encode_ok(messages, nullptr, Dsv32Options{Mode::kThinking}),
              history + "<｜User｜>q2<｜Assistant｜><think>plan</think>" + calls + "<think>");
    EXPECT_EQ(encode_ok(messages, nullptr, Dsv32Options{Mode::kChat}),
              history + "<｜User｜>q2<｜Assistant｜></think>" + calls + "</think>");
}

TEST(Dsv32Encoding, EmptyAndNullContent) {
    auto messages = parse(R"([{"role":"system","content":null},{"role":"user","content":""},{"role":"assistant","content":null},
        {"role":"user","content":[]}])");
    EXPECT_EQ(encode_ok(messages, nullptr, Dsv32Options{}),
              "<｜begin▁of▁sentence｜><｜User｜><｜Assistant｜></think><｜end▁of▁sentence｜><｜User｜><｜Assistant｜></think>");
}

TEST(Dsv32Encoding, DeveloperRoleAndResponseFormat) {
    auto messages = parse(R"([{"role":"system","content":"S","response_format":{"type":"json_object"}},
        {"role":"developer","content":"find it"}])");
    EXPECT_EQ(encode_ok(messages, nullptr, Dsv32Options{Mode::kThinking}),
              "<｜begin▁of▁sentence｜>S\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to "
              "reply:\n{\"type\": \"json_object\"}<｜User｜>\n\n# The user's message is: find it<｜Assistant｜><think>");
}

TEST(Dsv32Encoding, RolesAreCaseInsensitive) {
    auto messages = parse(R"([{"role":"System","content":"S"},{"role":"USER","content":"x"}])");
    EXPECT_EQ(encode_ok(messages, nullptr, Dsv32Options{}), "<｜begin▁of▁sentence｜>S<｜User｜>x<｜Assistant｜></think>");
}

TEST(Dsv32Encoding, NoBosOption) {
    Dsv32Options options;
    options.add_bos = false;
    EXPECT_EQ(encode_ok(parse(R"([{"role":"user","content":"x"}])"), nullptr, options),
              "<｜User｜>x<｜Assistant｜></think>");
}

void expect_invalid(const std::string& messages, Mode mode, const std::string& needle) {
    auto result = encode_dsv32(parse(messages), nullptr, Dsv32Options{mode});
    ASSERT_FALSE(result.is_ok());
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find(needle), std::string::npos) << result.status().message();
}

TEST(Dsv32Encoding, Errors) {
    expect_invalid(R"([{"role":"user","content":"x"},{"role":"tool","content":"r"}])", Mode::kChat, "No tool calls");
    expect_invalid(R"([{"role":"user","content":"x"},{"role":"assistant","content":"a","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]},
        {"role":"tool","content":"r1"},{"role":"tool","content":"r2"}])", Mode::kChat, "No tool calls");
    expect_invalid(R"([{"role":"wizard","content":"x"}])", Mode::kChat, "unknown message role");
    expect_invalid(R"([{"role":"latest_reminder","content":"x"}])", Mode::kChat, "unknown message role");
    expect_invalid(R"([{"role":"developer","content":""}])", Mode::kChat, "developer");
    expect_invalid(R"([{"role":"user","content":"x"},{"role":"assistant","content":"a"}])", Mode::kThinking,
                   "reasoning_content or tool_calls");
    expect_invalid(R"([{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"[1]"}}]}])",
                   Mode::kChat, "JSON object");
    expect_invalid(R"([{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{bad"}}]}])",
                   Mode::kChat, "not valid JSON");
}

TEST(PythonJsonDumps, MatchesPythonJsonDumps) {
    auto v = OrderedJson::parse(R"({"b": [1, 2.5, -0.0001, 1e-05, true, null], "a": "é\n\"\\\u0001", "e": {}, "f": []})");
    EXPECT_EQ(python_json_dumps(v),
              "{\"b\": [1, 2.5, -0.0001, 1e-05, true, null], \"a\": \"é\\n\\\"\\\\\\u0001\", \"e\": {}, \"f\": []}");
    EXPECT_EQ(python_json_dumps(OrderedJson(std::string("bad\xff"))), "\"bad\xEF\xBF\xBD\"");
}

}  // namespace
}  // namespace dsa::text
