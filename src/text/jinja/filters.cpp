// Builtin filters, matching jinja2's filters.py (and transformers' tojson override: json.dumps with
// ensure_ascii=False by default, indent / separators / sort_keys keyword arguments). Filters that take an
// `attribute` accept dotted paths ("a.b", "items.0").
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "text/jinja/interpreter.h"
#include "text/jinja/pystr.h"
#include "text/jinja/unicode.h"

namespace dsa::text::jinja {

Value filter_tojson(Interpreter& in, const Value& v, CallArgs& a);  // json_dump.cpp
Value filter_sequence_op(Interpreter& in, const std::string& name, const Value& v, CallArgs& a);  // filters_seq.cpp
bool is_sequence_filter(const std::string& name);

namespace {

using Filter = Value (*)(Interpreter&, const Value& v, CallArgs& a);

std::string str_arg(CallArgs& a, size_t i, const std::string& name, const std::string& dflt) {
    Value v = a.get(i, name, Value(dflt));
    return v.is_string() ? v.str() : to_str(v);
}

Value f_default(Interpreter&, const Value& v, CallArgs& a) {
    Value dflt = a.get(0, "default_value", Value(""));
    bool boolean = a.get(1, "boolean", Value(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return dflt;
    return v;
}

Value f_length(Interpreter&, const Value& v, CallArgs&) { return Value(static_cast<int64_t>(v.length())); }

Value f_int(Interpreter&, const Value& v, CallArgs& a) {
    Value dflt = a.get(0, "default", Value(0));
    int64_t base = a.get(1, "base", Value(10)).as_int();
    if (v.is_int() || v.is_bool()) return Value(v.as_int());
    if (v.is_float()) {
        if (!std::isfinite(v.as_double())) return dflt;
        return Value(static_cast<int64_t>(v.as_double()));
    }
    if (!v.is_string()) return dflt;
    std::string s = pystr::strip(v.str(), std::nullopt, pystr::Side::kBoth);
    std::string digits;
    for (char c : s) {
        if (c != '_') digits.push_back(c);
    }
    if (!digits.empty()) {
        char* end = nullptr;
        errno = 0;
        long long r = std::strtoll(digits.c_str(), &end, static_cast<int>(base));
        if (*end == '\0' && errno == 0) return Value(static_cast<int64_t>(r));
        double d = std::strtod(digits.c_str(), &end);
        if (*end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value(static_cast<int64_t>(d));
    }
    return dflt;
}

Value f_float(Interpreter&, const Value& v, CallArgs& a) {
    Value dflt = a.get(0, "default", Value(0.0));
    if (v.is_number()) return Value(v.as_double());
    if (!v.is_string()) return dflt;
    std::string s = pystr::strip(v.str(), std::nullopt, pystr::Side::kBoth);
    if (s.empty()) return dflt;
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (*end != '\0') return dflt;
    return Value(d);
}

Value f_abs(Interpreter&, const Value& v, CallArgs&) {
    if (v.is_float()) return Value(std::fabs(v.as_double()));
    if (v.is_int() || v.is_bool()) {
        if (v.as_int() == INT64_MIN) throw JinjaError("integer overflow");
        return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
    }
    throw JinjaError("bad operand type for abs(): '" + v.type_name() + "'");
}

Value f_round(Interpreter&, const Value& v, CallArgs& a) {
    int64_t precision = a.get(0, "precision", Value(0)).as_int();
    std::string method = str_arg(a, 1, "method", "common");
    if (!v.is_number()) throw JinjaError("round() requires a number, not " + v.type_name());
    if (method != "common" && method != "floor" && method != "ceil") {
        throw JinjaError("method must be common, ceil or floor");
    }
    if (method == "common" && !v.is_float()) return Value(v.as_int());
    double x = v.as_double();
    if (method != "common") {
        double scale = std::pow(10.0, static_cast<double>(precision));
        return Value((method == "floor" ? std::floor(x * scale) : std::ceil(x * scale)) / scale);
    }
    if (precision < 0 || precision > 300 || !std::isfinite(x)) return Value(precision == 0 ? std::nearbyint(x) : x);
    char buf[400];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), x);
    return Value(std::strtod(buf, nullptr));
}

Value f_string(Interpreter&, const Value& v, CallArgs&) { return Value(to_str(v)); }
Value f_upper(Interpreter&, const Value& v, CallArgs&) { return Value(str_upper(to_str(v))); }
Value f_lower(Interpreter&, const Value& v, CallArgs&) { return Value(str_lower(to_str(v))); }
Value f_title(Interpreter&, const Value& v, CallArgs&) { return Value(pystr::jinja_title(to_str(v))); }
Value f_capitalize(Interpreter&, const Value& v, CallArgs&) { return Value(pystr::capitalize(to_str(v))); }
Value f_escape(Interpreter&, const Value& v, CallArgs&) { return Value(pystr::html_escape(to_str(v))); }
Value f_safe(Interpreter&, const Value& v, CallArgs&) { return v.is_string() ? v : Value(to_str(v)); }
Value f_wordcount(Interpreter&, const Value& v, CallArgs&) {
    return Value(static_cast<int64_t>(pystr::wordcount(to_str(v))));
}

Value f_trim(Interpreter&, const Value& v, CallArgs& a) {
    Value chars = a.get(0, "chars", Value::none());
    std::optional<std::string> set;
    if (!chars.is_none()) set = to_str(chars);
    return Value(pystr::strip(to_str(v), set, pystr::Side::kBoth));
}

Value f_replace(Interpreter& in, const Value& v, CallArgs& a) {
    Value count = a.get(2, "count", Value::none());
    std::string r = pystr::replace(to_str(v), str_arg(a, 0, "old", ""), str_arg(a, 1, "new", ""),
                                   count.is_none() ? -1 : count.as_int());
    in.check_string_size(r.size());
    return Value(std::move(r));
}

Value f_indent(Interpreter& in, const Value& v, CallArgs& a) {
    Value width = a.get(0, "width", Value(4));
    std::string pad;
    if (width.is_string()) {
        pad = width.str();
    } else {
        int64_t n = width.as_int();
        in.check_string_size(static_cast<size_t>(std::max<int64_t>(n, 0)));
        pad = std::string(static_cast<size_t>(std::max<int64_t>(n, 0)), ' ');
    }
    std::string s = to_str(v);
    in.check_string_size(s.size() + pad.size() * (static_cast<size_t>(std::count(s.begin(), s.end(), '\n')) + 1));
    return Value(pystr::indent(s, pad, a.get(1, "first", Value(false)).truthy(), a.get(2, "blank", Value(false)).truthy()));
}

Value f_format(Interpreter& in, const Value& v, CallArgs& a) {
    if (!a.kwargs.empty()) throw JinjaError("format filter: keyword arguments are not supported");
    std::string r = percent_format(to_str(v), a.args.size() == 1 ? Value::array({a.args[0]}) : Value::array(a.args));
    in.check_string_size(r.size());
    return Value(std::move(r));
}

Value f_items(Interpreter&, const Value& v, CallArgs&) {
    if (v.is_undefined()) return Value::array();
    if (!v.is_object()) throw JinjaError("Can only get item pairs from a mapping.");
    Array out;
    for (const auto& [k, e] : v.obj().entries) out.push_back(Value::tuple({Value(k), e}));
    return Value::array(std::move(out));
}

Value f_attr(Interpreter& in, const Value& v, CallArgs& a) { return in.get_attr(v, str_arg(a, 0, "name", "")); }

const std::unordered_map<std::string, Filter>& filters() {
    static const std::unordered_map<std::string, Filter> kFilters = {
        {"default", f_default}, {"d", f_default},         {"length", f_length},   {"count", f_length},
        {"int", f_int},         {"float", f_float},       {"abs", f_abs},         {"round", f_round},
        {"string", f_string},   {"upper", f_upper},       {"lower", f_lower},     {"title", f_title},
        {"capitalize", f_capitalize}, {"escape", f_escape}, {"e", f_escape},     {"safe", f_safe},
        {"wordcount", f_wordcount}, {"trim", f_trim},     {"replace", f_replace}, {"indent", f_indent},
        {"format", f_format},   {"items", f_items},       {"attr", f_attr},       {"tojson", filter_tojson},
    };
    return kFilters;
}

}  // namespace

bool is_filter_name(const std::string& name) { return filters().count(name) > 0 || is_sequence_filter(name); }

Value Interpreter::apply_filter(const std::string& name, const Value& input, CallArgs& args) {
    auto it = filters().find(name);
    if (it != filters().end()) return it->second(*this, input, args);
    if (is_sequence_filter(name)) return filter_sequence_op(*this, name, input, args);
    throw JinjaError("no filter named '" + name + "'");
}

}  // namespace dsa::text::jinja
