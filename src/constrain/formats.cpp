// Tool-call and JSON grammars. A call format is described by its literals (block, call, parameter markers);
// the parameter chain writes a function's parameters in declaration order (optional ones may be skipped,
// required ones may not), each as a raw string or as JSON depending on its schema. Raw values may not contain
// the start of a closing marker ("</｜DSML｜" for DSML, "</" for GLM), so a value can never end its call early.
#include "constrain/formats.h"

#include <functional>

#include "constrain/json_schema.h"

namespace dsa::constrain {
namespace {

struct Syntax {
    std::string block_open, block_close;  // around all calls (may be empty)
    std::function<std::string(const std::string&)> call_open;
    std::string call_close;
    bool json_args = false;  // arguments as one JSON object (deepseekv31)
    // Per-parameter formats: head before a value (name, raw?), free-name pieces, raw-value stop and rest,
    // and the close after a JSON value.
    std::function<std::string(const std::string&, bool)> param_head;
    std::string free_name_open, free_name_stop;  // free keys: open + key text up to stop
    std::function<std::string(bool)> free_after_name;
    std::string raw_stop, raw_rest, json_close;
};

Syntax dsml_syntax() {
    Syntax s;
    s.block_open = "<｜DSML｜function_calls>\n";
    s.block_close = "</｜DSML｜function_calls>";
    s.call_open = [](const std::string& n) { return "<｜DSML｜invoke name=\"" + n + "\">\n"; };
    s.call_close = "</｜DSML｜invoke>\n";
    s.param_head = [](const std::string& k, bool raw) {
        return "<｜DSML｜parameter name=\"" + k + "\" string=\"" + (raw ? "true" : "false") + "\">";
    };
    s.free_name_open = "<｜DSML｜parameter name=\"";
    s.free_name_stop = "\"";
    s.free_after_name = [](bool raw) { return std::string(" string=\"") + (raw ? "true" : "false") + "\">"; };
    s.raw_stop = "</｜DSML｜";
    s.raw_rest = "parameter>\n";
    s.json_close = "</｜DSML｜parameter>\n";
    return s;
}

Syntax v31_syntax() {
    Syntax s;
    s.block_open = "<｜tool▁calls▁begin｜>";
    s.block_close = "<｜tool▁calls▁end｜>";
    s.call_open = [](const std::string& n) { return "<｜tool▁call▁begin｜>" + n + "<｜tool▁sep｜>"; };
    s.call_close = "<｜tool▁call▁end｜>";
    s.json_args = true;
    return s;
}

Syntax glm_syntax(bool newlines) {
    const std::string nl = newlines ? "\n" : "";
    Syntax s;
    s.call_open = [nl](const std::string& n) { return "<tool_call>" + n + nl; };
    s.call_close = "</tool_call>";
    s.param_head = [nl](const std::string& k, bool) { return "<arg_key>" + k + "</arg_key>" + nl + "<arg_value>"; };
    s.free_name_open = "<arg_key>";
    s.free_name_stop = "</arg_key>";
    s.free_after_name = [nl](bool) { return nl + "<arg_value>"; };
    s.raw_stop = "</";
    s.raw_rest = "arg_value>" + nl;
    s.json_close = "</arg_value>" + nl;
    return s;
}

class ToolGrammarBuilder {
  public:
    ToolGrammarBuilder(const ToolCallSpec& spec, Syntax syntax) : spec_(spec), syn_(std::move(syntax)) {}
    StatusOr<std::shared_ptr<const Grammar>> build();

  private:
    using Options = std::vector<std::pair<std::string, int32_t>>;
    StatusOr<int32_t> call_body(const OrderedJson& fn, int32_t more);
    // `end`: the option that closes the call (its literal and what follows).
    StatusOr<int32_t> param_chain(const ParamList& list, SchemaCompiler& sc,
                                  const std::pair<std::string, int32_t>& end);
    StatusOr<Options> value_options(const ParamList::Param& p, SchemaCompiler& sc, int32_t next);
    int32_t free_chain(SchemaCompiler& sc, const std::pair<std::string, int32_t>& end);

    const ToolCallSpec& spec_;
    Syntax syn_;
    std::shared_ptr<Grammar> g_ = std::make_shared<Grammar>();
};

StatusOr<std::shared_ptr<const Grammar>> ToolGrammarBuilder::build() {
    if (!spec_.tools.is_array() || spec_.tools.empty()) return invalid_argument("tool-call constraint: no tools");
    const int32_t more = g_->reserve();  // after a call: another call (required) or the end of the block
    Options calls;
    for (const auto& t : spec_.tools) {
        const OrderedJson& fn = t.contains("function") ? t["function"] : t;
        if (!fn.is_object() || !fn.contains("name") || !fn["name"].is_string())
            return invalid_argument("tool-call constraint: every tool needs function.name");
        const std::string name = fn["name"].get<std::string>();
        if (spec_.named && name != *spec_.named) continue;
        DSA_ASSIGN_OR_RETURN(int32_t body, call_body(fn, more));
        calls.emplace_back(syn_.call_open(name), body);
    }
    if (calls.empty()) return invalid_argument("Tool '{}' not found in tools list.", spec_.named.value_or(""));
    Elem more_elem = Elem::of(ElemKind::kAlt);
    if (!spec_.named && !spec_.single_call) more_elem.alts = calls;
    more_elem.alts.emplace_back(syn_.block_close, -1);  // "" for GLM: the output may end after any call
    g_->set_elem(more, std::move(more_elem));
    std::vector<int32_t> root;
    if (spec_.after_think) root.push_back(g_->add_until("</think>"));
    if (!syn_.block_open.empty()) root.push_back(g_->add_lit(syn_.block_open));
    root.push_back(g_->add_alt(std::move(calls)));
    g_->set_root(g_->add_seq(std::move(root)));
    return std::shared_ptr<const Grammar>(g_);
}

// The arguments and the call's closing marker, then `more`.
StatusOr<int32_t> ToolGrammarBuilder::call_body(const OrderedJson& fn, int32_t more) {
    const OrderedJson params = fn.contains("parameters") ? fn["parameters"] : OrderedJson();
    SchemaCompiler sc(*g_, params);
    const std::pair<std::string, int32_t> close{syn_.call_close, more};
    if (syn_.json_args) {
        DSA_ASSIGN_OR_RETURN(int32_t obj, sc.compile_object_schema(params));
        return g_->add_seq({obj, g_->add_lit(syn_.call_close), more});
    }
    DSA_ASSIGN_OR_RETURN(ParamList list, list_params(params, params));
    if (list.free) return free_chain(sc, close);
    return param_chain(list, sc, close);
}

// chain[i]: the parameters from i on. Its options: any parameter j >= i up to the first required one, or (if
// none of i.. is required) the end of the call.
StatusOr<int32_t> ToolGrammarBuilder::param_chain(const ParamList& list, SchemaCompiler& sc,
                                                  const std::pair<std::string, int32_t>& end) {
    const size_t n = list.params.size();
    std::vector<int32_t> chain(n + 1);
    for (auto& c : chain) c = g_->reserve();
    for (size_t i = n + 1; i-- > 0;) {
        Options opts;
        bool required_ahead = false;
        for (size_t j = i; j < n && !required_ahead; ++j) {
            DSA_ASSIGN_OR_RETURN(Options o, value_options(list.params[j], sc, chain[j + 1]));
            opts.insert(opts.end(), o.begin(), o.end());
            required_ahead = list.params[j].required;
        }
        Elem alt = Elem::of(ElemKind::kAlt);
        alt.alts = std::move(opts);
        if (!required_ahead) alt.alts.push_back(end);
        g_->set_elem(chain[i], std::move(alt));
    }
    return chain[0];
}

StatusOr<ToolGrammarBuilder::Options> ToolGrammarBuilder::value_options(const ParamList::Param& p, SchemaCompiler& sc,
                                                                        int32_t next) {
    DSA_ASSIGN_OR_RETURN(RawSplit split, sc.split(p.schema));
    Options out;
    if (split.string_ok && split.string_enum.empty()) {
        int32_t raw = g_->add_seq({g_->add_until(syn_.raw_stop), g_->add_lit(syn_.raw_rest), next});
        out.emplace_back(syn_.param_head(p.name, true), raw);
    } else if (split.string_ok) {
        Options values;
        for (const std::string& v : split.string_enum) values.emplace_back(v + syn_.raw_stop + syn_.raw_rest, next);
        out.emplace_back(syn_.param_head(p.name, true), g_->add_alt(std::move(values)));
    }
    if (split.json >= 0) {
        int32_t json = g_->add_seq({split.json, g_->add_lit(syn_.json_close), next});
        out.emplace_back(syn_.param_head(p.name, false), json);
    }
    return out;
}

// Parameters with free names: name text, then a raw or JSON value; repeated, or the end of the call.
int32_t ToolGrammarBuilder::free_chain(SchemaCompiler& sc, const std::pair<std::string, int32_t>& end) {
    const int32_t chain = g_->reserve();
    const int32_t raw = g_->add_seq({g_->add_until(syn_.raw_stop), g_->add_lit(syn_.raw_rest), chain});
    const int32_t json = g_->add_seq({sc.any(1), g_->add_lit(syn_.json_close), chain});
    Options kinds{{syn_.free_after_name(true), raw}};
    if (syn_.free_after_name(true) != syn_.free_after_name(false))
        kinds.emplace_back(syn_.free_after_name(false), json);
    const int32_t value = g_->add_alt(std::move(kinds));
    const int32_t named = g_->add_seq({g_->add_until(syn_.free_name_stop), value});
    Elem alt = Elem::of(ElemKind::kAlt);
    alt.alts = {{syn_.free_name_open, named}, end};
    g_->set_elem(chain, std::move(alt));
    return chain;
}

}  // namespace

StatusOr<ToolFormat> tool_format_for_parser(std::string_view parser) {
    if (parser == "deepseekv32") return ToolFormat::kDeepSeekV32;
    if (parser == "deepseekv31") return ToolFormat::kDeepSeekV31;
    if (parser == "glm47") return ToolFormat::kGlm47;
    if (parser == "glm45") return ToolFormat::kGlm45;
    return not_found("tool-call parser '{}' has no constrained-decoding format", parser);
}

StatusOr<std::shared_ptr<const Grammar>> tool_call_grammar(const ToolCallSpec& spec) {
    Syntax syn;
    switch (spec.format) {
        case ToolFormat::kDeepSeekV32:
            syn = dsml_syntax();
            break;
        case ToolFormat::kDeepSeekV31:
            syn = v31_syntax();
            break;
        case ToolFormat::kGlm47:
            syn = glm_syntax(false);
            break;
        case ToolFormat::kGlm45:
            syn = glm_syntax(true);
            break;
    }
    return ToolGrammarBuilder(spec, std::move(syn)).build();
}

StatusOr<std::shared_ptr<const Grammar>> json_grammar(const OrderedJson& schema, bool after_think) {
    auto g = std::make_shared<Grammar>();
    SchemaCompiler sc(*g, schema);
    DSA_ASSIGN_OR_RETURN(int32_t value, sc.compile(schema));
    std::vector<int32_t> root;
    if (after_think) root.push_back(g->add_until("</think>"));
    root.push_back(g->add_ws());
    root.push_back(value);
    g->set_root(g->add_seq(std::move(root)));
    return std::shared_ptr<const Grammar>(g);
}

}  // namespace dsa::constrain
