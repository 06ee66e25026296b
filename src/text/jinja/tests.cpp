// Builtin `is` tests (jinja2's tests.py): defined, none, string, number, mapping, sequence, iterable, even,
// divisibleby, equalto, sameas, lower, upper, comparison aliases and more. Python's bool is a number and an
// integer is not a bool: `true is number` holds, `true is integer` does not.
#include <cmath>
#include <unordered_map>

#include "text/jinja/interpreter.h"
#include "text/jinja/unicode.h"

namespace dsa::text::jinja {

namespace {

using Test = bool (*)(Interpreter&, const Value& v, CallArgs& a);

Value arg0(CallArgs& a) {
    if (a.args.empty() && a.kwargs.empty()) throw JinjaError("test requires an argument");
    return a.args.empty() ? a.kwargs[0].second : a.args[0];
}

int cmp_arg(const Value& v, CallArgs& a) {
    Value other = arg0(a);
    if (v.is_undefined()) throw_undefined(v);
    if (other.is_undefined()) throw_undefined(other);
    return compare(v, other);
}

bool same_as(const Value& v, const Value& o) {
    if (v.identity() || o.identity()) return v.identity() == o.identity();
    return v.kind() == o.kind() && equals(v, o);
}

// str.islower() / str.isupper(): at least one cased character and none of the other case.
bool is_cased_as(const std::string& s, bool upper) {
    std::string lo = str_lower(s), up = str_upper(s);
    return upper ? (up == s && lo != s) : (lo == s && up != s);
}

bool int_like(const Value& v) { return v.is_int() || v.is_bool(); }

// Python `value % divisor == 0` for the even / odd / divisibleby tests.
bool divisible(const Value& v, const Value& divisor, const char* test) {
    if (v.is_undefined()) throw_undefined(v);
    if (!v.is_number() || !divisor.is_number()) {
        throw JinjaError(std::string("'") + test + "' test needs numbers, got " + v.type_name() + " and " + divisor.type_name());
    }
    if (divisor.as_double() == 0) throw JinjaError("integer division or modulo by zero");
    if (int_like(v) && int_like(divisor)) return divisor.as_int() == -1 || v.as_int() % divisor.as_int() == 0;
    return std::fmod(v.as_double(), divisor.as_double()) == 0;
}

const std::unordered_map<std::string, Test>& tests() {
    static const std::unordered_map<std::string, Test> kTests = {
        {"defined", [](Interpreter&, const Value& v, CallArgs&) { return !v.is_undefined(); }},
        {"undefined", [](Interpreter&, const Value& v, CallArgs&) { return v.is_undefined(); }},
        {"none", [](Interpreter&, const Value& v, CallArgs&) { return v.is_none(); }},
        {"string", [](Interpreter&, const Value& v, CallArgs&) { return v.is_string(); }},
        {"number", [](Interpreter&, const Value& v, CallArgs&) { return v.is_number(); }},
        {"integer", [](Interpreter&, const Value& v, CallArgs&) { return v.is_int(); }},
        {"float", [](Interpreter&, const Value& v, CallArgs&) { return v.is_float(); }},
        {"boolean", [](Interpreter&, const Value& v, CallArgs&) { return v.is_bool(); }},
        {"true", [](Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }},
        {"false", [](Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }},
        {"mapping", [](Interpreter&, const Value& v, CallArgs&) { return v.is_object(); }},
        {"sequence", [](Interpreter&, const Value& v, CallArgs&) { return v.is_string() || v.is_array() || v.is_object(); }},
        {"iterable", [](Interpreter&, const Value& v, CallArgs&) {
             return v.is_string() || v.is_array() || v.is_object() || v.is_undefined();
         }},
        {"callable", [](Interpreter&, const Value& v, CallArgs&) { return v.is_callable(); }},
        {"escaped", [](Interpreter&, const Value&, CallArgs&) { return false; }},
        {"even", [](Interpreter&, const Value& v, CallArgs&) { return divisible(v, Value(2), "even"); }},
        {"odd", [](Interpreter&, const Value& v, CallArgs&) {
             if (v.is_undefined()) throw_undefined(v);
             if (!v.is_number()) throw JinjaError("'odd' test needs a number, got " + v.type_name());
             return v.is_float() ? std::fmod(v.as_double(), 2.0) != 0 ? std::fabs(std::fmod(v.as_double(), 2.0)) == 1.0 : false
                                 : v.as_int() % 2 != 0;
         }},
        {"divisibleby", [](Interpreter&, const Value& v, CallArgs& a) { return divisible(v, arg0(a), "divisibleby"); }},
        {"lower", [](Interpreter&, const Value& v, CallArgs&) { return is_cased_as(to_str(v), /*upper=*/false); }},
        {"upper", [](Interpreter&, const Value& v, CallArgs&) { return is_cased_as(to_str(v), /*upper=*/true); }},
        {"sameas", [](Interpreter&, const Value& v, CallArgs& a) { return same_as(v, arg0(a)); }},
        {"eq", [](Interpreter&, const Value& v, CallArgs& a) { return equals(v, arg0(a)); }},
        {"ne", [](Interpreter&, const Value& v, CallArgs& a) { return !equals(v, arg0(a)); }},
        {"lt", [](Interpreter&, const Value& v, CallArgs& a) { return cmp_arg(v, a) < 0; }},
        {"le", [](Interpreter&, const Value& v, CallArgs& a) { return cmp_arg(v, a) <= 0; }},
        {"gt", [](Interpreter&, const Value& v, CallArgs& a) { return cmp_arg(v, a) > 0; }},
        {"ge", [](Interpreter&, const Value& v, CallArgs& a) { return cmp_arg(v, a) >= 0; }},
        {"in", [](Interpreter& in, const Value& v, CallArgs& a) { return contains(in, arg0(a), v); }},
        {"filter", [](Interpreter&, const Value& v, CallArgs&) { return v.is_string() && is_filter_name(v.str()); }},
        {"test", [](Interpreter& in, const Value& v, CallArgs&) { return v.is_string() && in.has_test(v.str()); }},
    };
    return kTests;
}

const std::unordered_map<std::string, std::string>& aliases() {
    static const std::unordered_map<std::string, std::string> kAliases = {
        {"equalto", "eq"}, {"==", "eq"}, {"!=", "ne"}, {"<", "lt"}, {"lessthan", "lt"}, {"<=", "le"},
        {">", "gt"}, {"greaterthan", "gt"}, {">=", "ge"},
    };
    return kAliases;
}

}  // namespace

bool is_test_name(const std::string& name) { return tests().count(name) > 0 || aliases().count(name) > 0; }

bool Interpreter::has_test(const std::string& name) const { return is_test_name(name); }

bool Interpreter::apply_test(const std::string& name, const Value& input, CallArgs& args) {
    auto alias = aliases().find(name);
    const std::string& key = alias == aliases().end() ? name : alias->second;
    auto it = tests().find(key);
    if (it == tests().end()) throw JinjaError("no test named '" + name + "'");
    return it->second(*this, input, args);
}

}  // namespace dsa::text::jinja
