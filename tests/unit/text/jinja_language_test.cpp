// Language features of the Jinja interpreter, one behaviour per test. Expected strings are what Python jinja2
// (configured as transformers configures it: trim_blocks, lstrip_blocks, its tojson) renders for the same
// template and context.
#include <gtest/gtest.h>

#include "base/json.h"
#include "text/jinja/template.h"

namespace dsa::text::jinja {
namespace {

std::string render(const std::string& source, const OrderedJson& context = OrderedJson::object()) {
    auto tmpl = Template::parse(source);
    EXPECT_TRUE(tmpl.is_ok()) << tmpl.status().to_string();
    if (!tmpl.is_ok()) return "<parse error>";
    auto out = tmpl->render(context);
    EXPECT_TRUE(out.is_ok()) << out.status().to_string();
    return out.is_ok() ? *out : "<render error>";
}

TEST(JinjaLanguage, LiteralsAndPythonPrinting) {
    EXPECT_EQ(render("{{ 'a' ~ 1 ~ none ~ true }} {{ [1, 'a', none, true, 1.5] }} {{ {'a': 1, 'b': [1, 2]} }} {{ none }}"),
              "a1NoneTrue [1, 'a', None, True, 1.5] {'a': 1, 'b': [1, 2]} None");
    EXPECT_EQ(render("{{ \"it's\" }} {{ ['it\\'s', \"q\\\"d\", 'nl\\n'] }}"), "it's [\"it's\", 'q\"d', 'nl\\n']");
    EXPECT_EQ(render("{{ True }}{{ False }}{{ None }}{{ true }}{{ false }}{{ none }}"), "TrueFalseNoneTrueFalseNone");
    EXPECT_EQ(render("{{ (1, 2) }} {{ (1,) }} {{ () }} {{ \"a\" \"b\" 'c' }}"), "(1, 2) (1,) () abc");
    EXPECT_EQ(render("{{ \"\\u00e9\\x41\\101\" }} {{ \"\\U0001F600\" }}"), "éAA 😀");
}

TEST(JinjaLanguage, ArithmeticFollowsPython) {
    EXPECT_EQ(render("{{ 1 + 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1.5 * 2 }} "
                     "{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 3.0 }} {{ 10 / 5 }}"),
              "3 3 -4 2 3.5 1024 3.0 0.30000000000000004 1e+20 1e-05 3.0 2.0");
    EXPECT_EQ(render("{{ 'ab' * 3 }} {{ [1] * 2 }} {{ 1 ~ 2 + 3 ~ 4 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }} {{ 2 * 3 % 4 }}"),
              "ababab [1, 1] 1234 4 5 2");
    EXPECT_EQ(render("{{ 5.5 % 2 }} {{ -5.5 // 2 }} {{ 2 ** -1 }} {{ 1_000 + 0.5e1 }}"), "1.5 -3.0 0.5 1005.0");
    EXPECT_EQ(render("{{ '%s=%d' % ('a', 3) }} {{ '%s-%s'|format(1, 2) }}"), "a=3 1-2");
}

TEST(JinjaLanguage, ComparisonsAndLogic) {
    EXPECT_EQ(render("{{ 'a' if true else 'b' }} [{{ 'a' if false }}] {{ 1 and 2 }} {{ 0 or 'x' }} {{ not 1 }} "
                     "{{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} "
                     "{{ 3 not in [1] }} {{ [1, 2] == [1, 2] }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ not none is none }}"),
              "a [] 2 x False True False True True True True True True True False");
}

TEST(JinjaLanguage, AttributeSubscriptAndSlices) {
    OrderedJson ctx = {{"m", {{"content", "c"}, {"items", "shadowed"}}}};
    EXPECT_EQ(render("{{ m.content }} {{ m['content'] }} {{ m['items'] }} {{ m.missing }}|", ctx), "c c shadowed |");
    EXPECT_EQ(render("{{ 'abc'[::-1] }} {{ [1,2,3,4,5][1:4] }} {{ [1,2,3,4,5][-2:] }} {{ [1,2,3,4,5][::2] }} "
                     "{{ 'héllo'[1:3] }} {{ 'héllo'[-1] }} [{{ [1,2][5] }}] {{ 'abc'.0 }} {{ [[1,2]][0][1] }}"),
              "cba [2, 3, 4] [4, 5] [1, 3, 5] él o [] a 2");
}

TEST(JinjaLanguage, ForLoopVariables) {
    EXPECT_EQ(render("{% for x in [1,2,3,4] if x is even %}{{ loop.index }}/{{ loop.length }}:{{ x }} {{ loop.revindex }} "
                     "{{ loop.previtem }} {{ loop.nextitem }} {{ loop.first }} {{ loop.last }};{% endfor %}"),
              "1/2:2 2  4 True False;2/2:4 1 2  False True;");
    EXPECT_EQ(render("{% for a, b in [[1, 2], [3, 4]] %}{{ a }}-{{ b }}{{ ',' if not loop.last }}{% endfor %}"), "1-2,3-4");
    EXPECT_EQ(render("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}"), "empty");
    EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
                     {{"d", {{"a", 1}, {"b", 2}}}}),
              "a=1;b=2;ab");
    EXPECT_EQ(render("{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{{ loop.index0 }}{% endfor %}"), "a0b1a2");
    EXPECT_EQ(render("{% for x in [1,2] %}{% for y in ['a','b'] %}{{ loop.index }}{{ y }}{% endfor %}{{ loop.index }}{% endfor %}"),
              "1a2b11a2b2");
    EXPECT_EQ(render("{% for i in range(10) %}{% if i == 3 %}{% continue %}{% endif %}{% if i == 6 %}{% break %}{% endif %}"
                     "{{ i }}{% endfor %}"),
              "01245");
}

TEST(JinjaLanguage, ScopingAndNamespaces) {
    EXPECT_EQ(render("{% set x = 1 %}{% for i in [1,2] %}{{ x }}{% set x = i * 10 %}{{ x }}{% endfor %}{{ x }}"), "1101201");
    EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"), "10");
    EXPECT_EQ(render("{% if true %}{% set y = 5 %}{% endif %}{{ y }}"), "5");
    EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
    EXPECT_EQ(render("{% set s %}  block {{ 1 + 1 }} {% endset %}[{{ s }}]"), "[  block 2 ]");
    EXPECT_EQ(render("{% set s | upper %}abc{% endset %}{{ s }}"), "ABC");
}

TEST(JinjaLanguage, MacrosAndCallBlocks) {
    EXPECT_EQ(render("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}"
                     "{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} {{ greet('X', 'Yo') }}"),
              "Hello, Bob! Hi, Al! Yo, X!");
    EXPECT_EQ(render("{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}"), "(1, 2){'k': 3}");
    EXPECT_EQ(render("{% macro wrap(cls) %}<div class=\"{{ cls }}\">{{ caller() }}</div>{% endmacro %}"
                     "{% call wrap('c') %}inner{% endcall %}"),
              "<div class=\"c\">inner</div>");
    EXPECT_EQ(render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}"), "54321");
}

TEST(JinjaLanguage, FilterRawAndCommentBlocks) {
    EXPECT_EQ(render("{% filter upper %}hello {{ 'world' }}{% endfilter %}"), "HELLO WORLD");
    EXPECT_EQ(render("{% raw %}{{ not rendered }}{% endraw %}"), "{{ not rendered }}");
    EXPECT_EQ(render("a{# a comment {{ x }} #}b"), "ab");
}

TEST(JinjaLanguage, WhitespaceControlTrimAndLstripBlocks) {
    EXPECT_EQ(render("  {% if true %}\n    yes\n  {% endif %}\n  done"), "    yes\n  done");
    EXPECT_EQ(render("{%- if true -%}   a   {%- endif -%}   b"), "ab");
    EXPECT_EQ(render("{% if x %}\n  {%- for i in [1, 2] %}\n    item {{ i }}\n  {%- endfor %}\n{% endif %}\nend", {{"x", true}}),
              "    item 1    item 2end");
    EXPECT_EQ(render("line1\n    {# comment #}\nline2\n  {%- set y = 1 %}\n\t{% if true %}tab{% endif %}"),
              "line1\nline2tab");
    EXPECT_EQ(render("a   {%- raw -%}   raw {{ x }}  {%- endraw -%}   b"), "araw {{ x }}b");
    EXPECT_EQ(render("{{- 'x' -}}\n   {{ 'y' }}   \n{%+ if true %}keep{% endif %}\n {% if true +%}\nz{% endif %}"),
              "xy   \nkeep\nz");
    EXPECT_EQ(render("{{ 'x' }}\n{{ 'y' }}\n\n"), "x\ny\n");
    EXPECT_EQ(render("{% for m in msgs %}\n  {% if m %}\n    <{{ m }}>\n  {% endif %}\n{% endfor %}",
                     {{"msgs", {"a", "", "b"}}}),
              "    <a>\n    <b>\n");
    EXPECT_EQ(render("a\r\nb\r\n"), "a\nb");
    // lstrip_blocks also applies before {% endraw %}.
    EXPECT_EQ(render("d\n{#- c -#}  {% raw -%}a{{ y }} \n {% endraw %} \n "), "da{{ y }} \n \n ");
}

TEST(JinjaLanguage, Tests) {
    EXPECT_EQ(render("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} "
                     "{{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ {} is mapping }} "
                     "{{ [] is sequence }} {{ 'a' is sequence }} {{ {} is iterable }} {{ true is boolean }} {{ true is true }} "
                     "{{ 0 is false }} {{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} "
                     "{{ 1 is equalto 1 }} {{ none is sameas none }} {{ 'abc' is lower }} {{ 'ABC' is upper }} "
                     "{{ '123' is lower }} {{ x is iterable }}"),
              "False True True True True True True False True True True True True True True False True True True False "
              "True True True True False True");
    EXPECT_EQ(render("{{ 'a' is in 'abc' }} {{ 3 is gt 2 }} {{ 3 is ge 3 }} {{ 2 is lt 1 }} {{ 'a' is ne 'b' }} "
                     "{{ x is not defined }}"),
              "True True True False True True");
}

TEST(JinjaLanguage, StringFilters) {
    EXPECT_EQ(render("{{ '  hi  '|trim }} {{ 'xxhixx'|trim('x') }} {{ 'hello world'|title }} {{ 'hELLO'|capitalize }} "
                     "{{ 'a-b c'|title }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 42|string }} {{ 'straße'|upper }} {{ 'X'|lower }}"),
              "hi hi Hello World Hello A-B C bba 42 STRASSE x");
    EXPECT_EQ(render("{{ 'one two  three'|wordcount }} {{ '<a href=\"x\">&</a>'|escape }} {{ 'x'|e }} {{ 'x'|safe }}"),
              "3 &lt;a href=&#34;x&#34;&gt;&amp;&lt;/a&gt; x x");
    EXPECT_EQ(render("{{ \"line1\\nline2\\n\\nline4\"|indent(2) }}|{{ \"line1\\nline2\"|indent(2, true) }}|"
                     "{{ \"a\\n\\nb\"|indent(2, blank=true) }}|{{ \"a\\nb\"|indent('>>') }}"),
              "line1\n  line2\n\n  line4|  line1\n  line2|a\n  \n  b|a\n>>b");
}

TEST(JinjaLanguage, NumberFilters) {
    EXPECT_EQ(render("{{ '42'|int + 1 }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '3.5'|float }} {{ -3|abs }} "
                     "{{ 2.5|round }} {{ 3.14159|round(2) }} {{ 2.7|round(0, 'floor') }} {{ 3|round }} {{ 2.675|round(2) }} "
                     "{{ 0.5|round }} {{ -1.5|round }}"),
              "43 4 0 7 3.5 3 2.0 3.14 2.0 3 2.67 0.0 -2.0");
}

TEST(JinjaLanguage, SequenceFilters) {
    EXPECT_EQ(render("{{ [3,1,2]|sort }} {{ ['b','A','c']|sort }} {{ ['b','A','c']|sort(case_sensitive=true) }} "
                     "{{ [3,1,2]|sort(reverse=true) }} {{ [1,2,1,3]|unique|list }} {{ [1,2,3]|reverse|list }} {{ 'abc'|reverse }} "
                     "{{ [1,2,3]|sum }} {{ [1,5,3]|max }} {{ [4,2,8]|min }} {{ [1,2,3]|first }} {{ [1,2,3]|last }} [{{ []|first }}]"),
              "[1, 2, 3] ['A', 'b', 'c'] ['A', 'b', 'c'] [3, 2, 1] [1, 2, 3] [3, 2, 1] cba 6 5 2 1 3 []");
    EXPECT_EQ(render("{{ {'b': 1, 'a': 2}|dictsort }} {{ {'b': 1, 'a': 2}|items|list }} {{ [1,2,3,4,5]|batch(2)|list }} "
                     "{{ [1,2,3]|batch(2, 0)|list }} {{ ['a', 'b']|join }} {{ [1, 2]|join('-') }} {{ 'ab'|list }} "
                     "{{ {'k': 1}|list }} {{ [1, 2]|length }} {{ 'héllo'|length }} {{ x|length }} {{ [1]|count }}"),
              "[('a', 2), ('b', 1)] [('b', 1), ('a', 2)] [[1, 2], [3, 4], [5]] [[1, 2], [3, 0]] ab 1-2 ['a', 'b'] "
              "['k'] 2 5 0 1");
}

TEST(JinjaLanguage, SelectMapAndAttributes) {
    OrderedJson users = OrderedJson::parse(R"({"users": [{"name": "a", "active": true, "age": 40},
        {"name": "b", "active": false, "age": 20}, {"name": "c", "active": true, "age": 35}]})");
    EXPECT_EQ(render("{{ users|selectattr('active')|map(attribute='name')|join(', ') }} "
                     "{{ users|rejectattr('active')|map(attribute='name')|list }} "
                     "{{ users|selectattr('age', 'gt', 30)|map(attribute='name')|list }} "
                     "{{ users|map(attribute='missing', default='d')|list }} "
                     "{{ users|sort(attribute='age')|map(attribute='name')|join }} {{ users|sum(attribute='age') }} "
                     "{{ users|selectattr('name', 'equalto', 'c')|list|length }}",
                     users),
              "a, c ['b'] ['a', 'c'] ['d', 'd', 'd'] bca 95 1");
    EXPECT_EQ(render("{{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3,4]|reject('odd')|list }} {{ ['a', 'b']|map('upper')|list }} "
                     "{{ [' a ', 'b ']|map('trim')|join('|') }} {{ [1, 0, none, 'x']|select|list }} "
                     "{{ [{'a': {'b': [10, 20]}}]|map(attribute='a.b.1')|list }}"),
              "[1, 3] [2, 4] ['A', 'B'] a|b [1, 'x'] [20]");
}

TEST(JinjaLanguage, DefaultAndUndefined) {
    EXPECT_EQ(render("{{ x|default('dflt') }} {{ none|default('dflt') }} {{ ''|default('dflt', true) }} "
                     "{{ 0|d('z', boolean=true) }} {{ 'set'|default('no') }}"),
              "dflt None dflt z set");
    EXPECT_EQ(render("[{{ x }}] {{ x is defined }} {% for i in x %}never{% endfor %}{{ x|length }} {{ not x }} "
                     "{{ x == x }} [{{ x ~ 'a' }}] {{ 'a' in x }} {{ x|list }}"),
              "[] False 0 True True [a] False []");
}

TEST(JinjaLanguage, TojsonMatchesPythonJsonDumps) {
    OrderedJson ctx = OrderedJson::parse(R"({"d": {"z": 1, "a": [1.5, "x"], "m": {"k": null}, "e": "😀"}})");
    EXPECT_EQ(render("{{ d|tojson }}", ctx), "{\"z\": 1, \"a\": [1.5, \"x\"], \"m\": {\"k\": null}, \"e\": \"😀\"}");
    EXPECT_EQ(render("{{ d|tojson(indent=2) }}", ctx),
              "{\n  \"z\": 1,\n  \"a\": [\n    1.5,\n    \"x\"\n  ],\n  \"m\": {\n    \"k\": null\n  },\n  \"e\": \"😀\"\n}");
    EXPECT_EQ(render("{{ d|tojson(sort_keys=true) }}", ctx),
              "{\"a\": [1.5, \"x\"], \"e\": \"😀\", \"m\": {\"k\": null}, \"z\": 1}");
    EXPECT_EQ(render("{{ d|tojson(separators=(',', ':')) }}", ctx), "{\"z\":1,\"a\":[1.5,\"x\"],\"m\":{\"k\":null},\"e\":\"😀\"}");
    EXPECT_EQ(render("{{ 'é\"\\\\\\n\\t\\x01'|tojson }} {{ 'é😀'|tojson(ensure_ascii=true) }} {{ 1.0|tojson }} "
                     "{{ 1e-7|tojson }} {{ [true, none, [], {}]|tojson }} {{ [1, [2, {}], []]|tojson(indent=1) }}"),
              "\"é\\\"\\\\\\n\\t\\u0001\" \"\\u00e9\\ud83d\\ude00\" 1.0 1e-07 [true, null, [], {}] "
              "[\n 1,\n [\n  2,\n  {}\n ],\n []\n]");
}

TEST(JinjaLanguage, StringMethods) {
    EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} "
                     "{{ 'xxhixx'.strip('x') }} [{{ '  hi'.lstrip() }}] [{{ 'hi  '.rstrip() }}] {{ 'abc'.upper() }} "
                     "{{ 'ABC'.lower() }} {{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} "
                     "{{ 'aXbXc'.replace('X', '-') }} {{ 'hello world'.title() }}"),
              "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ['a,b', 'c'] hi [hi] [hi] ABC abc True True a-b-c Hello World");
    EXPECT_EQ(render("{{ '{} and {}'.format(1, 'b') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='N') }} "
                     "{{ 'hello'.find('l') }} {{ 'hello'.count('l') }} {{ '-'.join(['a', 'b']) }} {{ 'a\\nb\\r\\nc'.splitlines() }} "
                     "{{ 'abc'.find('z') }} [{{ '\\u3000 x \\u3000'.strip() }}]"),
              "1 and b aba N! 2 2 a-b ['a', 'b', 'c'] -1 [x]");
}

TEST(JinjaLanguage, DictAndListMethods) {
    OrderedJson ctx = {{"d", {{"a", 1}, {"b", 2}}}};
    EXPECT_EQ(render("{{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} "
                     "{{ d.get('zz', 'def') }} {{ d.get('zz') }}",
                     ctx),
              "[('a', 1), ('b', 2)] ['a', 'b'] [1, 2] 1 def None");
    // list mutation (jinja2's immutable sandbox, used by transformers, refuses these; we allow them).
    EXPECT_EQ(render("{% set x = [1, 2] %}{% set y = x %}{% set _ = y.append(3) %}{{ x }} {{ x.pop() }} {{ x }} "
                     "{{ x.index(2) }} {{ [1, 1, 2].count(1) }}"),
              "[1, 2, 3] 3 [1, 2] 1 2");
}

TEST(JinjaLanguage, Globals) {
    EXPECT_EQ(render("{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1, b=2) }} "
                     "{{ namespace(a=1).a }} {{ strftime_now('%Y')|length }}"),
              "[0, 1, 2] [1, 4, 7] [5, 3, 1] {'a': 1, 'b': 2} 1 4");
}

TEST(JinjaLanguage, UnicodeCaseMapping) {
    EXPECT_EQ(render("{{ 'ÉCOLE'.lower() }} {{ 'Ωμέγα'.upper() }} {{ 'ça'.upper() }} {{ 'ПРИВЕТ'.lower() }}"),
              "école ΩΜΈΓΑ ÇA привет");
}

}  // namespace
}  // namespace dsa::text::jinja
