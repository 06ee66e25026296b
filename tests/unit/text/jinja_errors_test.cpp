// Error reporting (syntax and runtime errors carry line and column; raise_exception carries its message) and
// resource bounds (range size, loop iterations, output and string size, macro recursion, nesting depth,
// reference cycles) of the Jinja interpreter.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/json.h"
#include "text/jinja/template.h"

namespace dsa::text::jinja {
namespace {

using ::testing::HasSubstr;

// The error message of parsing + rendering `source`; empty when it succeeded.
std::string error_of(const std::string& source, const OrderedJson& context = OrderedJson::object(),
                     const TemplateOptions& options = {}) {
    auto tmpl = Template::parse(source, options);
    if (!tmpl.is_ok()) return tmpl.status().message();
    auto out = tmpl->render(context);
    return out.is_ok() ? std::string() : out.status().message();
}

TEST(JinjaErrors, SyntaxErrorsCarryLineAndColumn) {
    EXPECT_EQ(error_of("line1\n{{ x + }}"), "template syntax error at line 2, column 8: unexpected end of print statement");
    EXPECT_EQ(error_of("{% set x = %}"),
              "template syntax error at line 1, column 12: expected an expression, got end of statement block");
    EXPECT_EQ(error_of("{% if true %}\n{% for x in y %}\n{% endif %}"),
              "template syntax error at line 3, column 4: unexpected tag 'endif', expected 'endfor'");
    EXPECT_EQ(error_of("{% for x in y %}"),
              "template syntax error at line 1, column 17: unexpected end of template, expected 'endfor'");
    EXPECT_EQ(error_of("{{ 'unterminated }}"), "template syntax error at line 1, column 4: unterminated string literal");
    EXPECT_EQ(error_of("ok\n\n{{ 'abc' | nofilter }}"), "template syntax error at line 3, column 12: no filter named 'nofilter'");
    EXPECT_EQ(error_of("{% if false %}{{ x is nosuch }}{% endif %}"),
              "template syntax error at line 1, column 23: no test named 'nosuch'");
    EXPECT_EQ(error_of("{% include 'other.jinja' %}"),
              "template syntax error at line 1, column 4: unknown or unsupported tag 'include'");
    EXPECT_EQ(error_of("{{ 1 }"), "template syntax error at line 1, column 6: unexpected '}'");
    EXPECT_EQ(error_of("{# never closed"), "template syntax error at line 1, column 1: unterminated comment");
    EXPECT_EQ(error_of("{% raw %}abc"), "template syntax error at line 1, column 1: missing endraw for raw block");
}

TEST(JinjaErrors, RuntimeErrorsCarryLineAndColumn) {
    EXPECT_EQ(error_of("a\nb {{ 1 // 0 }}"), "template error at line 2, column 8: integer division or modulo by zero");
    EXPECT_EQ(error_of("{% for m in messages %}\n  {{ m.content.upper() }}\n{% endfor %}",
                       OrderedJson::parse(R"({"messages": [{"content": null}]})")),
              "template error at line 2, column 21: 'None' has no attribute 'upper'");
    EXPECT_EQ(error_of("{{ a.b.c }}", {{"a", OrderedJson::object()}}),
              "template error at line 1, column 7: 'dict object' has no attribute 'b'");
    EXPECT_EQ(error_of("{{ x + 1 }}"), "template error at line 1, column 6: 'x' is undefined");
    EXPECT_EQ(error_of("{{ 1 + 'a' }}"), "template error at line 1, column 6: unsupported operand type(s) for +: 'int' and 'str'");
    EXPECT_EQ(error_of("{% for i in 5 %}{% endfor %}"), "template error at line 1, column 4: 'int' object is not iterable");
    EXPECT_EQ(error_of("{% for a, b in [[1, 2, 3]] %}{% endfor %}"),
              "template error at line 1, column 4: too many values to unpack (expected 2)");
    EXPECT_EQ(error_of("{% set d = {'a': 1} %}{% set d.x = 2 %}"),
              "template error at line 1, column 26: cannot assign attribute on non-namespace object");
    EXPECT_EQ(error_of("{{ 1 < 'a' }}"), "template error at line 1, column 4: '<' not supported between instances of 'int' and 'str'");
    EXPECT_EQ(error_of("{{ {}|tojson }}{{ x|tojson }}"), "template error at line 1, column 21: Object of type Undefined is not JSON serializable");
}

TEST(JinjaErrors, RaiseExceptionCarriesItsMessage) {
    EXPECT_EQ(error_of("\n\n   {{ raise_exception('Only user and assistant roles are supported!') }}"),
              "template error at line 3, column 22: Only user and assistant roles are supported!");
    EXPECT_EQ(error_of("{% if messages|length == 0 %}{{ raise_exception('no messages') }}{% endif %}ok",
                       {{"messages", OrderedJson::array({1})}}),
              "");
}

TEST(JinjaErrors, HugeRangeIsRefusedUpFront) {
    std::string err = error_of("{% for i in range(10**9) %}{{ i }}{% endfor %}");
    EXPECT_THAT(err, HasSubstr("range() would create 1000000000 items, more than the limit"));
    EXPECT_THAT(err, HasSubstr("line 1, column 18"));
}

TEST(JinjaErrors, LoopIterationBudget) {
    TemplateOptions options;
    options.limits.max_loop_iterations = 1000;
    EXPECT_THAT(error_of("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", OrderedJson::object(), options),
                HasSubstr("exceeded the limit of 1000 loop iterations"));
    EXPECT_EQ(error_of("{% for i in range(10) %}{% for j in range(90) %}{% endfor %}{% endfor %}", OrderedJson::object(), options), "");
}

TEST(JinjaErrors, OutputAndStringSizeLimits) {
    TemplateOptions options;
    options.limits.max_output_bytes = 1 << 16;
    EXPECT_THAT(error_of("{% for i in range(1000) %}{{ 'x' * 100 }}{% endfor %}", OrderedJson::object(), options),
                HasSubstr("output exceeds the limit of 65536 bytes"));
    EXPECT_THAT(error_of("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                         OrderedJson::object(), options),
                HasSubstr("exceeds the limit of 65536 bytes"));
    EXPECT_THAT(error_of("{{ 'ab' * 1000000000 }}", OrderedJson::object(), options), HasSubstr("exceeds the limit"));
    EXPECT_THAT(error_of("{{ [1, 2] * 1000000000 }}", OrderedJson::object(), options), HasSubstr("items exceeds the limit"));
}

TEST(JinjaErrors, MacroRecursionIsBounded) {
    EXPECT_THAT(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"), HasSubstr("maximum macro call depth"));
}

TEST(JinjaErrors, DeepNestingIsASyntaxError) {
    EXPECT_THAT(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"), HasSubstr("nested too deeply"));
    std::string chain = "{{ 1";
    for (int i = 0; i < 5000; ++i) chain += " + 1";
    EXPECT_THAT(error_of(chain + " }}"), HasSubstr("nested too deeply"));
    std::string blocks;
    for (int i = 0; i < 1000; ++i) blocks += "{% if true %}";
    EXPECT_THAT(error_of(blocks), HasSubstr("nested too deeply"));
    OrderedJson deep = OrderedJson::array();
    for (int i = 0; i < 2000; ++i) deep = OrderedJson::array({deep});
    EXPECT_THAT(error_of("{{ x }}", {{"x", deep}}), HasSubstr("nested too deeply"));
}

TEST(JinjaErrors, ReferenceCyclesAreRefused) {
    EXPECT_THAT(error_of("{% set ns = namespace() %}{% set ns.self = ns %}"), HasSubstr("inside itself"));
    EXPECT_THAT(error_of("{% set l = [] %}{% set _ = l.append(l) %}"), HasSubstr("inside itself"));
    EXPECT_THAT(error_of("{% set l = [] %}{% set _ = l.append([[l]]) %}"), HasSubstr("inside itself"));
}

TEST(JinjaErrors, ContextMustBeAnObject) {
    auto tmpl = Template::parse("x");
    ASSERT_TRUE(tmpl.is_ok());
    auto out = tmpl->render(OrderedJson::array());
    ASSERT_FALSE(out.is_ok());
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dsa::text::jinja
