// Renders every chat-template fixture of tests/golden/chat_templates (conversations built by
// tools/gen_jinja_fixtures.mjs, expected outputs from Python jinja2 configured as transformers configures it)
// through dsa::text::ChatTemplate and requires byte-identical output, or an error where jinja2 failed.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "base/json.h"
#include "text/chat_template.h"

namespace dsa::text {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

class ChatTemplateGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateGolden, RendersEveryFixtureByteIdentically) {
    const std::string root = DSA_SOURCE_DIR;
    std::string text = read_file(root + "/tests/golden/chat_templates/" + GetParam() + ".json");
    ASSERT_FALSE(text.empty()) << "missing fixture file for " << GetParam();
    OrderedJson fixture = OrderedJson::parse(text);
    std::string source = read_file(root + "/" + fixture["template"].get<std::string>());
    ASSERT_FALSE(source.empty());
    auto tmpl = ChatTemplate::from_string(source);
    ASSERT_TRUE(tmpl.is_ok()) << tmpl.status().to_string();

    const auto& cases = fixture["cases"];
    ASSERT_GE(cases.size(), 50u);
    int num_checked = 0;
    for (const auto& c : cases) {
        SCOPED_TRACE(c["name"].get<std::string>());
        OrderedJson kwargs = c["kwargs"];
        kwargs["bos_token"] = "<｜begin▁of▁sentence｜>";
        kwargs["eos_token"] = "<｜end▁of▁sentence｜>";
        auto out = tmpl->render(c["messages"], c["tools"], c["add_generation_prompt"].get<bool>(), kwargs);
        if (c["expected_error"].is_string()) {
            EXPECT_FALSE(out.is_ok()) << "jinja2 failed with " << c["expected_error"] << " but we rendered";
        } else {
            ASSERT_TRUE(out.is_ok()) << out.status().to_string();
            EXPECT_EQ(*out, c["expected"].get<std::string>());
        }
        ++num_checked;
    }
    EXPECT_EQ(num_checked, static_cast<int>(cases.size()));
}

INSTANTIATE_TEST_SUITE_P(Templates, ChatTemplateGolden, ::testing::Values("deepseek_v3", "deepseek_v31", "glm5"));

TEST(ChatTemplate, SpecExampleGlm5ToolRoundTrip) {
    // API_SPEC 6.1 rendered example: system + tools, a tool call with reasoning, a tool result.
    const std::string root = DSA_SOURCE_DIR;
    auto tmpl = ChatTemplate::from_file(root + "/templates/glm5.jinja");
    ASSERT_TRUE(tmpl.is_ok()) << tmpl.status().to_string();
    OrderedJson tools = OrderedJson::parse(R"([{"type": "function", "function": {"description": "Get weather for a city",
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"},
        "days": {"type": "integer"}}, "required": ["city"]}, "strict": false}}])");
    OrderedJson messages = OrderedJson::parse(R"([
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "", "reasoning_content": "Need the weather tool.",
         "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
        {"role": "tool", "content": "18C, sunny"}])");
    auto out = tmpl->render(messages, tools, /*add_generation_prompt=*/true, OrderedJson::object());
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(*out,
              "[gMASK]<sop><|system|>\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
              "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
              "{\"type\": \"function\", \"function\": {\"description\": \"Get weather for a city\", \"name\": \"get_weather\", "
              "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"days\": {\"type\": "
              "\"integer\"}}, \"required\": [\"city\"]}, \"strict\": false}}\n</tools>\n\nFor each function call, output the "
              "function name and arguments within the following XML format:\n<tool_call>{function-name}<arg_key>{arg-key-1}"
              "</arg_key><arg_value>{arg-value-1}</arg_value><arg_key>{arg-key-2}</arg_key><arg_value>{arg-value-2}"
              "</arg_value>...</tool_call><|system|>You are helpful.<|user|>What's the weather in Paris?<|assistant|><think>"
              "Need the weather tool.</think><tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value>"
              "<arg_key>days</arg_key><arg_value>2</arg_value></tool_call><|observation|><tool_response>18C, sunny"
              "</tool_response><|assistant|><think>");
}

TEST(ChatTemplate, SpecExampleDeepseekV31ToolRoundTrip) {
    // API_SPEC 4.2 example (official form, non-thinking, one tool round trip).
    const std::string root = DSA_SOURCE_DIR;
    auto tmpl = ChatTemplate::from_file(root + "/templates/deepseek_v31.jinja");
    ASSERT_TRUE(tmpl.is_ok()) << tmpl.status().to_string();
    OrderedJson messages = OrderedJson::parse(R"([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null,
         "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "content": "18C"}])");
    OrderedJson kwargs = {{"bos_token", "<｜begin▁of▁sentence｜>"}};
    auto out = tmpl->render(messages, nullptr, /*add_generation_prompt=*/true, kwargs);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(*out,
              "<｜begin▁of▁sentence｜><｜User｜>Weather in Paris?<｜Assistant｜></think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>"
              "get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
              "<｜tool▁output▁begin｜>18C<｜tool▁output▁end｜>");
}

TEST(ChatTemplate, RejectsBadInputs) {
    auto tmpl = ChatTemplate::from_string("{{ messages | length }}");
    ASSERT_TRUE(tmpl.is_ok());
    EXPECT_FALSE(tmpl->render(OrderedJson::object(), nullptr, false, nullptr).is_ok());
    EXPECT_FALSE(tmpl->render(OrderedJson::array(), "x", false, nullptr).is_ok());
    auto ok = tmpl->render(OrderedJson::array({1, 2}), nullptr, false, nullptr);
    ASSERT_TRUE(ok.is_ok());
    EXPECT_EQ(*ok, "2");
    EXPECT_EQ(ChatTemplate::from_file("/nonexistent/dir/t.jinja").status().code(), StatusCode::kNotFound);
    EXPECT_FALSE(ChatTemplate::from_string("{% if %}").is_ok());
}

TEST(ChatTemplate, ContextMatchesTransformers) {
    auto tmpl = ChatTemplate::from_string(
        "{{ tools is defined }} {{ tools is none }} {{ add_generation_prompt }} {{ documents is none }} {{ thinking }} "
        "{% generation %}{{ messages[0].content }}{% endgeneration %}");
    ASSERT_TRUE(tmpl.is_ok()) << tmpl.status().to_string();
    OrderedJson kwargs = {{"thinking", true}, {"messages", "ignored"}};
    auto out = tmpl->render(OrderedJson::parse(R"([{"role": "user", "content": "hi"}])"), nullptr, true, kwargs);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(*out, "True True True True True hi");
}

TEST(ChatTemplate, FromFileStripsSurroundingNewlines) {
    std::string path = ::testing::TempDir() + "chat_template_test.jinja";
    {
        std::ofstream f(path, std::ios::binary);
        f << "\n\n{{ messages | length }}\n\n";
    }
    auto tmpl = ChatTemplate::from_file(path);
    ASSERT_TRUE(tmpl.is_ok()) << tmpl.status().to_string();
    EXPECT_EQ(tmpl->source(), "{{ messages | length }}");
    auto out = tmpl->render(OrderedJson::array({1, 2, 3}), nullptr, false, nullptr);
    ASSERT_TRUE(out.is_ok());
    EXPECT_EQ(*out, "3");
}

}  // namespace
}  // namespace dsa::text
