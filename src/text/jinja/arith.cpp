// Binary arithmetic with Python semantics: int overflow is an error (Python would grow a big int), `/` is
// true division, `//` and `%` floor, str/list `+` concatenate and `*` repeat (size-limited), and
// `str % args` does printf-style formatting for %s %r %d %i %f %%.
#include <cmath>
#include <cstdio>

#include "text/jinja/interpreter.h"

namespace dsa::text::jinja {

namespace {

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
    throw JinjaError("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

int64_t checked_op(char op, int64_t x, int64_t y) {
    int64_t r = 0;
    bool overflow = op == '+' ? __builtin_add_overflow(x, y, &r)
                    : op == '-' ? __builtin_sub_overflow(x, y, &r)
                                : __builtin_mul_overflow(x, y, &r);
    if (overflow) throw JinjaError("integer overflow");
    return r;
}

int64_t int_pow(int64_t base, int64_t exp) {
    int64_t r = 1;
    for (int64_t i = 0; i < exp; ++i) {
        if (__builtin_mul_overflow(r, base, &r)) throw JinjaError("integer overflow");
        if (r == 0 || r == 1) break;
    }
    if (r == 1 && base == -1 && exp % 2 == 1) r = -1;
    return r;
}

double py_fmod(double a, double b) {
    double m = std::fmod(a, b);
    if (m != 0 && ((m < 0) != (b < 0))) m += b;
    return m;
}

Value numeric(const std::string& op, const Value& a, const Value& b) {
    bool fl = a.is_float() || b.is_float();
    if (op == "/") {
        if (b.as_double() == 0) throw JinjaError("division by zero");
        return Value(a.as_double() / b.as_double());
    }
    if (fl) {
        double x = a.as_double(), y = b.as_double();
        if (op == "+") return Value(x + y);
        if (op == "-") return Value(x - y);
        if (op == "*") return Value(x * y);
        if (op == "**") return Value(std::pow(x, y));
        if (y == 0) throw JinjaError("float division by zero");
        if (op == "//") return Value(std::floor(x / y));
        return Value(py_fmod(x, y));
    }
    int64_t x = a.as_int(), y = b.as_int();
    if (op == "+" || op == "-" || op == "*") return Value(checked_op(op[0], x, y));
    if (op == "**") return y < 0 ? Value(std::pow(static_cast<double>(x), static_cast<double>(y))) : Value(int_pow(x, y));
    if (y == 0) throw JinjaError("integer division or modulo by zero");
    if (x == INT64_MIN && y == -1) throw JinjaError("integer overflow");
    int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) {
        q -= 1;
        m += y;
    }
    return Value(op == "//" ? q : m);
}

std::string format_one(char conv, const Value& v) {
    switch (conv) {
        case 's': return to_str(v);
        case 'r': return repr(v);
        case 'd':
        case 'i':
            if (!v.is_number()) throw JinjaError("%" + std::string(1, conv) + " format: a real number is required, not " + v.type_name());
            return std::to_string(v.is_float() ? static_cast<int64_t>(v.as_double()) : v.as_int());
        case 'f': {
            if (!v.is_number()) throw JinjaError("must be real number, not " + v.type_name());
            char buf[64];
            std::snprintf(buf, sizeof(buf), "%f", v.as_double());
            return buf;
        }
        default: throw JinjaError("unsupported format character '" + std::string(1, conv) + "'");
    }
}

}  // namespace

std::string percent_format(const std::string& fmt, const Value& args) {
    Array list = args.is_array() ? args.items() : Array{args};
    size_t next = 0;
    std::string out;
    for (size_t i = 0; i < fmt.size(); ++i) {
        if (fmt[i] != '%') {
            out.push_back(fmt[i]);
            continue;
        }
        if (++i >= fmt.size()) throw JinjaError("incomplete format");
        if (fmt[i] == '%') {
            out.push_back('%');
            continue;
        }
        if (next >= list.size()) throw JinjaError("not enough arguments for format string");
        out += format_one(fmt[i], list[next++]);
    }
    if (next < list.size()) throw JinjaError("not all arguments converted during string formatting");
    return out;
}

Value Interpreter::arithmetic(const std::string& op, const Value& a, const Value& b) {
    if (a.is_undefined()) throw_undefined(a);
    if (b.is_undefined()) throw_undefined(b);
    if (a.is_number() && b.is_number()) return numeric(op, a, b);
    if (op == "+" && a.is_string() && b.is_string()) {
        check_string_size(a.str().size() + b.str().size());
        return Value(a.str() + b.str());
    }
    if (op == "+" && a.is_array() && b.is_array()) {
        check_items(a.items().size() + b.items().size());
        Array out = a.items();
        out.insert(out.end(), b.items().begin(), b.items().end());
        return Value::array(std::move(out));
    }
    if (op == "*" && (a.is_int() || a.is_bool()) && (b.is_string() || b.is_array())) return arithmetic(op, b, a);
    if (op == "*" && (b.is_int() || b.is_bool()) && (a.is_string() || a.is_array())) {
        int64_t n = std::max<int64_t>(b.as_int(), 0);
        size_t unit = a.is_string() ? a.str().size() : a.items().size();
        if (unit > 0 && static_cast<uint64_t>(n) > (a.is_string() ? limits_.max_output_bytes : limits_.max_items) / unit) {
            if (a.is_string()) check_string_size(limits_.max_output_bytes + 1);
            check_items(limits_.max_items + 1);
        }
        if (a.is_string()) {
            std::string out;
            for (int64_t i = 0; i < n && unit > 0; ++i) out += a.str();
            return Value(std::move(out));
        }
        Array out;
        for (int64_t i = 0; i < n && unit > 0; ++i) out.insert(out.end(), a.items().begin(), a.items().end());
        return Value::array(std::move(out));
    }
    if (op == "%" && a.is_string()) {
        std::string s = percent_format(a.str(), b);
        check_string_size(s.size());
        return Value(std::move(s));
    }
    unsupported(op, a, b);
}

}  // namespace dsa::text::jinja
