// libFuzzer target for the Jinja interpreter (lexer, parser, renderer). The input is a template (a 0x01 byte
// followed by k inserts snippet k of a table of Jinja syntax, so that the fuzzer reaches statements, filters
// and tests quickly), rendered against a fixed chat-like context with small limits. Checks: no crash, hang
// or unbounded memory; errors come back as Status; a successful render stays within the output limit and is
// deterministic.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/json.h"
#include "text/jinja/template.h"

namespace {

using dsa::OrderedJson;
using namespace dsa::text::jinja;

const char* const kSnippets[] = {
    "{{ ", " }}", "{% ", " %}", "{%- ", " -%}", "{{- ", " -}}", "{# ", " #}", "for m in messages", "endfor",
    "if ", "elif ", "else", "endif", "set ns = namespace(a=1)", "set ns.a = ", "macro f(x, y=2)", "endmacro",
    "call f(1)", "endcall", "filter upper", "endfilter", "raw", "endraw", "break", "continue", "loop.index",
    "loop.last", "m.content", "m['role']", "|tojson", "|tojson(indent=2)", "|join(', ')", "|default('d')", "|map(attribute='role')",
    "|selectattr('role', 'equalto', 'user')", "|length", "|trim", "|indent(2)", "|sort", "|unique", "|batch(2)",
    " is defined", " is not none", " is string", " is mapping", " in ", " not in ", " and ", " or ", " not ",
    ".split(',')", ".strip()", ".format(1)", ".items()", ".get('a')", ".append(1)", "range(", "raise_exception('e')",
    "[::-1]", "[1:]", "~", " + ", " * ", " // ", " % ", " ** ", "(", ")", "[", "]", "{", "}", "'str'", "\"s\\n\"",
    "none", "true", "1.5", "-1", "tools", "add_generation_prompt", "caller()", "varargs", "kwargs", "\n", "  ",
};
constexpr size_t kNumSnippets = sizeof(kSnippets) / sizeof(kSnippets[0]);

std::string decode(const uint8_t* data, size_t size) {
    std::string out;
    for (size_t i = 0; i < size; ++i) {
        if (data[i] == 0x01 && i + 1 < size) {
            out += kSnippets[data[++i] % kNumSnippets];
        } else {
            out.push_back(static_cast<char>(data[i]));
        }
    }
    return out;
}

const OrderedJson& context() {
    static const OrderedJson ctx = OrderedJson::parse(R"({
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "héllo 🚀"},
            {"role": "assistant", "content": null, "reasoning_content": "think",
             "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": [1.5, null]}}}]},
            {"role": "tool", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "part"}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "add_generation_prompt": true, "bos_token": "<s>"})");
    return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string source = decode(data, size);
    TemplateOptions options;
    options.limits.max_output_bytes = 1 << 20;
    options.limits.max_items = 10000;
    options.limits.max_loop_iterations = 100000;
    options.limits.max_call_depth = 40;
    auto tmpl = Template::parse(source, options);
    if (!tmpl.is_ok()) return 0;
    auto first = tmpl->render(context());
    if (!first.is_ok()) return 0;
    if (first->size() > options.limits.max_output_bytes) {
        std::fprintf(stderr, "output of %zu bytes passed the limit\n", first->size());
        std::abort();
    }
    if (source.find("strftime") == std::string::npos) {
        auto second = tmpl->render(context());
        if (!second.is_ok() || *second != *first) {
            std::fprintf(stderr, "render is not deterministic\n");
            std::abort();
        }
    }
    return 0;
}
