// JsonNormalizer and ValueStreamer tests: Python json.dumps output for valid JSON (separators, escapes,
// numbers, unicode), the recovery of malformed JSON, and piece-wise feeding giving the same text.
#include <gtest/gtest.h>

#include "parser_test_util.h"
#include "parsers/json_stream.h"
#include "parsers/value_stream.h"
#include "text/dsv32_encoding.h"

namespace dsa::parsers {
namespace {

std::string normalize(std::string_view raw) {
    JsonNormalizer n;
    std::string out = n.feed(raw);
    return out + n.finish();
}

std::string normalize_bytewise(std::string_view raw) {
    JsonNormalizer n;
    std::string out;
    for (char c : raw) out += n.feed(std::string_view(&c, 1));
    return out + n.finish();
}

struct JsonCase {
    std::string raw;
    std::string expected;
};

TEST(JsonNormalizer, ValidJsonLikePython) {
    const std::vector<JsonCase> cases = {
        {R"({"a":1,"b":[true,false,null],"c":{}})", R"({"a": 1, "b": [true, false, null], "c": {}})"},
        {R"(  [ 1 , -0 , 2.50 , 1E3, -1.5e-7, 12345678901234567890 ] )", R"([1, 0, 2.5, 1000.0, -1.5e-07, 12345678901234567890])"},
        {R"({"s":"\u00e9\n\t\"\\\/\u0001\ud83d\ude00 ü"})", "{\"s\": \"é\\n\\t\\\"\\\\/\\u0001😀 ü\"}"},
        {R"("plain")", R"("plain")"},
        {R"([[],[{}],{"k":[[]]}])", R"([[], [{}], {"k": [[]]}])"},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(normalize(c.raw), c.expected) << c.raw;
        EXPECT_EQ(normalize_bytewise(c.raw), c.expected) << c.raw;
        EXPECT_EQ(text::python_json_dumps(OrderedJson::parse(c.raw)), c.expected) << c.raw;
    }
}

TEST(JsonNormalizer, MalformedIsRecoveredDeterministically) {
    const std::vector<JsonCase> cases = {
        {R"({"a": oops})", R"({"a": "oops}"})"},
        {R"({"a": 1, x})", R"({"a": 1, "x}": null})"},
        {R"([1, 2,])", R"([1, 2])"},
        {R"({"a": [1, 2)", R"({"a": [1, 2]})"},
        {R"({"a": "unterminated)", R"({"a": "unterminated"})"},
        {R"({"a")", R"({"a": null})"},
        {R"({"a":)", R"({"a": null})"},
        {R"({"a": 01})", R"({"a": "01}"})"},
        {R"({"a": tru})", R"({"a": "tru}"})"},
        {R"({"a": "bad \q escape \u12"})", R"({"a": "bad \\q escape \\u12"})"},
        {R"({"a": 1} trailing)", R"({"a": 1})"},
        {R"(["\ud800x", "\ud83d\u0041", "\ud83d\x"])", "[\"\uFFFDx\", \"\uFFFDA\", \"\uFFFD\\\\x\"]"},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(normalize(c.raw), c.expected) << c.raw;
        EXPECT_EQ(normalize_bytewise(c.raw), c.expected) << c.raw;
        EXPECT_FALSE(OrderedJson::parse(c.expected, nullptr, false).is_discarded()) << c.expected;
    }
}

std::string stream_value(ValueOptions options, std::string_view raw, size_t piece) {
    ValueStreamer v(options);
    std::string out;
    for (size_t i = 0; i < raw.size(); i += piece) out += v.feed(raw.substr(i, piece));
    return out + v.finish();
}

TEST(ValueStreamer, StringsAndScalars) {
    const ValueOptions str{ValueKind::kString, true, false};
    const ValueOptions json{ValueKind::kJson, true, false};
    const ValueOptions glm{ValueKind::kJson, false, true};
    for (size_t piece : {1, 2, 3, 100}) {
        EXPECT_EQ(stream_value(str, "  a \"b\"\n c  ", piece), R"("a \"b\"\n c")");
        EXPECT_EQ(stream_value(str, "", piece), R"("")");
        EXPECT_EQ(stream_value(json, " 42 ", piece), "42");
        EXPECT_EQ(stream_value(json, "07", piece), R"("07")");
        EXPECT_EQ(stream_value(json, " hello world ", piece), R"("hello world")");
        EXPECT_EQ(stream_value(glm, " hello world ", piece), R"(" hello world ")");
        EXPECT_EQ(stream_value(glm, "None", piece), "null");
        EXPECT_EQ(stream_value(json, "None", piece), R"("None")");
        EXPECT_EQ(stream_value(json, R"( {"x":[1]} )", piece), R"({"x": [1]})");
        EXPECT_EQ(stream_value(json, std::string(300, '7'), piece), "\"" + std::string(300, '7') + "\"");
    }
}

TEST(ValueStreamer, LongPlainTextStreams) {
    ValueStreamer v(ValueOptions{ValueKind::kJson, true, false});
    const std::string text(ValueStreamer::kMaxHeldScalar + 10, 'x');
    EXPECT_EQ(v.feed(text), "\"" + text);
    EXPECT_EQ(v.feed("y"), "y");
    EXPECT_EQ(v.finish(), "\"");
}

}  // namespace
}  // namespace dsa::parsers
