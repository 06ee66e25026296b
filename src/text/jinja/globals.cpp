// Global functions available to every template: range, namespace, dict (jinja2), and raise_exception,
// strftime_now (the two transformers adds for chat templates). range() is size-limited up front, so
// range(10**9) fails with a clear error instead of allocating.
#include <ctime>

#include "text/jinja/interpreter.h"

namespace dsa::text::jinja {

namespace {

int64_t int_arg(const Value& v) {
    if (!v.is_int() && !v.is_bool()) throw JinjaError("'" + v.type_name() + "' object cannot be interpreted as an integer");
    return v.as_int();
}

Value g_range(Interpreter& in, CallArgs& a) {
    if (a.args.empty() || a.args.size() > 3) throw JinjaError("range expected 1 to 3 arguments, got " + std::to_string(a.args.size()));
    int64_t start = 0, stop = 0, step = 1;
    if (a.args.size() == 1) {
        stop = int_arg(a.args[0]);
    } else {
        start = int_arg(a.args[0]);
        stop = int_arg(a.args[1]);
        if (a.args.size() == 3) step = int_arg(a.args[2]);
    }
    if (step == 0) throw JinjaError("range() arg 3 must not be zero");
    __int128 span = step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
    __int128 mag = step > 0 ? step : -static_cast<__int128>(step);
    __int128 count = span <= 0 ? 0 : (span + mag - 1) / mag;
    if (count > static_cast<__int128>(in.limits().max_items)) {
        throw JinjaError("range() would create " + std::to_string(static_cast<long long>(std::min<__int128>(count, INT64_MAX))) +
                         " items, more than the limit of " + std::to_string(in.limits().max_items));
    }
    Array out;
    out.reserve(static_cast<size_t>(count));
    for (__int128 i = 0; i < count; ++i) out.emplace_back(static_cast<int64_t>(start + i * step));
    return Value::array(std::move(out));
}

void fill_mapping(Value& target, CallArgs& a, const char* what) {
    if (a.args.size() > 1) throw JinjaError(std::string(what) + " expected at most 1 positional argument");
    if (!a.args.empty()) {
        const Value& src = a.args[0];
        if (src.is_mapping_like()) {
            for (const auto& [k, v] : src.obj().entries) target.obj().set(k, v);
        } else if (src.is_array()) {
            for (const auto& pair : src.items()) {
                if (!pair.is_array() || pair.items().size() != 2) throw JinjaError(std::string(what) + " sequence elements must be pairs");
                target.obj().set(to_str(pair.items()[0]), pair.items()[1]);
            }
        } else {
            throw JinjaError(std::string("cannot convert '") + src.type_name() + "' to " + what);
        }
    }
    for (const auto& [k, v] : a.kwargs) target.obj().set(k, v);
}

Value g_namespace(Interpreter&, CallArgs& a) {
    Value ns = Value::make_namespace();
    fill_mapping(ns, a, "namespace");
    return ns;
}

Value g_dict(Interpreter&, CallArgs& a) {
    Value d = Value::object();
    fill_mapping(d, a, "dict");
    return d;
}

Value g_raise_exception(Interpreter&, CallArgs& a) {
    throw JinjaError(a.args.empty() ? std::string("raise_exception called") : to_str(a.args[0]));
}

Value g_strftime_now(Interpreter&, CallArgs& a) {
    std::string fmt = a.args.empty() ? std::string() : to_str(a.args[0]);
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[512];
    size_t n = fmt.size() < 200 ? std::strftime(buf, sizeof(buf), fmt.c_str(), &tm) : 0;
    if (n == 0 && !fmt.empty()) throw JinjaError("strftime_now: format produced no output or is too long");
    return Value(std::string(buf, n));
}

}  // namespace

std::unordered_map<std::string, Value> default_globals() {
    return {
        {"range", Value::callable("range", g_range)},
        {"namespace", Value::callable("namespace", g_namespace)},
        {"dict", Value::callable("dict", g_dict)},
        {"raise_exception", Value::callable("raise_exception", g_raise_exception)},
        {"strftime_now", Value::callable("strftime_now", g_strftime_now)},
    };
}

}  // namespace dsa::text::jinja
