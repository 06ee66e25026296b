// Expression evaluation: names, literals, attribute / item / slice access (jinja2's getattr-then-getitem
// rules), calls, filters, tests, arithmetic with Python semantics, chained comparisons, and/or/not and the
// inline if. Undefined values print empty and iterate as empty but raise when used strictly.
#include <cmath>
#include <limits>

#include "text/jinja/interpreter.h"
#include "text/jinja/unicode.h"

namespace dsa::text::jinja {

void throw_undefined(const Value& v) {
    throw JinjaError(v.undefined_hint().empty() ? "value is undefined" : v.undefined_hint());
}

Value Interpreter::eval(const Expr& e) {
    DepthGuard guard(this);
    try {
        return eval_node(e);
    } catch (JinjaError& err) {
        if (!err.has_pos()) err.set_pos(e.pos);
        throw;
    }
}

Value Interpreter::eval_node(const Expr& e) {
    switch (e.kind) {
        case Expr::Kind::kLiteral: return e.literal;
        case Expr::Kind::kName: return lookup(e.name);
        case Expr::Kind::kList:
        case Expr::Kind::kTuple: {
            Array items;
            for (const auto& c : e.children) items.push_back(eval(*c));
            return e.kind == Expr::Kind::kTuple ? Value::tuple(std::move(items)) : Value::array(std::move(items));
        }
        case Expr::Kind::kDict: {
            Value o = Value::object();
            for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
                Value k = eval(*e.children[i]);
                o.obj().set(k.is_string() ? k.str() : to_str(k), eval(*e.children[i + 1]));
            }
            return o;
        }
        case Expr::Kind::kGetAttr: return get_attr(eval(*e.children[0]), e.name);
        case Expr::Kind::kGetItem: {
            Value obj = eval(*e.children[0]);
            return get_item(obj, eval(*e.children[1]));
        }
        case Expr::Kind::kSlice: return eval_slice(e);
        case Expr::Kind::kCall: return eval_call(e);
        case Expr::Kind::kFilter: return eval_filter(e);
        case Expr::Kind::kTest: return eval_test(e);
        case Expr::Kind::kUnary: {
            Value v = eval(*e.children[0]);
            if (e.name == "not") return Value(!v.truthy());
            if (v.is_undefined()) throw_undefined(v);
            if (!v.is_number()) throw JinjaError("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
            if (e.name == "+") return v.is_float() ? v : Value(v.as_int());
            if (v.is_float()) return Value(-v.as_double());
            if (v.as_int() == std::numeric_limits<int64_t>::min()) throw JinjaError("integer overflow");
            return Value(-v.as_int());
        }
        case Expr::Kind::kBinary: return eval_binary(e);
        case Expr::Kind::kCompare: return eval_compare(e);
        case Expr::Kind::kCondExpr: {
            if (eval(*e.children[0]).truthy()) return eval(*e.children[1]);
            if (e.children[2]) return eval(*e.children[2]);
            return Value::undefined("the inline if expression evaluated to false and no else section was defined");
        }
    }
    return Value();
}

// ---- attribute and item access ------------------------------------------------------------------------

namespace {

std::string type_repr(const Value& v) {
    if (v.is_none()) return "None";
    return v.type_name() + " object";
}

Value missing_attr(const Value& obj, const std::string& name) {
    return Value::undefined("'" + type_repr(obj) + "' has no attribute '" + name + "'");
}

// Python index normalisation: negative counts from the end; nullopt when out of range.
bool normalize_index(int64_t i, size_t n, size_t* out) {
    if (i < 0) i += static_cast<int64_t>(n);
    if (i < 0 || static_cast<uint64_t>(i) >= n) return false;
    *out = static_cast<size_t>(i);
    return true;
}

}  // namespace

Value Interpreter::get_attr(const Value& obj, const std::string& name) {
    if (obj.is_undefined()) throw_undefined(obj);
    if (obj.is_namespace()) {
        const Value* v = obj.obj().find(name);
        return v ? *v : missing_attr(obj, name);
    }
    Value method = bound_method(obj, name);
    if (!method.is_undefined()) return method;
    if (obj.is_object()) {
        const Value* v = obj.obj().find(name);
        if (v) return *v;
    }
    return missing_attr(obj, name);
}

Value Interpreter::get_item(const Value& obj, const Value& key) {
    if (obj.is_undefined()) throw_undefined(obj);
    if (obj.is_object() || obj.is_namespace()) {
        if (key.is_string()) {
            const Value* v = obj.obj().find(key.str());
            if (v) return *v;
            return get_attr(obj, key.str());
        }
        return Value::undefined("'" + type_repr(obj) + "' has no attribute '" + to_str(key) + "'");
    }
    if ((obj.is_array() || obj.is_string()) && (key.is_int() || key.is_bool())) {
        size_t idx = 0;
        if (obj.is_array()) {
            if (!normalize_index(key.as_int(), obj.items().size(), &idx)) return Value::undefined("list index out of range");
            return obj.items()[idx];
        }
        if (is_ascii(obj.str())) {
            if (!normalize_index(key.as_int(), obj.str().size(), &idx)) return Value::undefined("string index out of range");
            return Value(obj.str().substr(idx, 1));
        }
        std::u32string u = utf8_decode(obj.str());
        if (!normalize_index(key.as_int(), u.size(), &idx)) return Value::undefined("string index out of range");
        return Value(utf8_encode(u.substr(idx, 1)));
    }
    if (key.is_string()) return get_attr(obj, key.str());
    return Value::undefined("'" + type_repr(obj) + "' has no item " + repr(key));
}

namespace {

// Python slice indices for a sequence of length n.
std::vector<size_t> slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step_v) {
    int64_t step = step_v.is_none() || step_v.is_undefined() ? 1 : step_v.as_int();
    if (step == 0) throw JinjaError("slice step cannot be zero");
    auto clamp = [&](const Value& v, int64_t dflt) {
        if (v.is_none() || v.is_undefined()) return dflt;
        if (!v.is_int() && !v.is_bool()) throw JinjaError("slice indices must be integers or None");
        int64_t i = v.as_int();
        if (i < 0) i += n;
        if (step > 0) return std::clamp<int64_t>(i, 0, n);
        return std::clamp<int64_t>(i, -1, n - 1);
    };
    int64_t lo = clamp(start, step > 0 ? 0 : n - 1);
    int64_t hi = clamp(stop, step > 0 ? n : -1);
    std::vector<size_t> idx;
    for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) idx.push_back(static_cast<size_t>(i));
    return idx;
}

}  // namespace

Value Interpreter::eval_slice(const Expr& e) {
    Value obj = eval(*e.children[0]);
    Value parts[3];
    for (int k = 0; k < 3; ++k) parts[k] = e.children[k + 1] ? eval(*e.children[k + 1]) : Value::none();
    if (obj.is_undefined()) throw_undefined(obj);
    if (obj.is_array()) {
        Array out;
        for (size_t i : slice_indices(static_cast<int64_t>(obj.items().size()), parts[0], parts[1], parts[2])) {
            out.push_back(obj.items()[i]);
        }
        return Value::array(std::move(out));
    }
    if (obj.is_string()) {
        std::u32string u = utf8_decode(obj.str());
        std::u32string out;
        for (size_t i : slice_indices(static_cast<int64_t>(u.size()), parts[0], parts[1], parts[2])) out.push_back(u[i]);
        return Value(utf8_encode(out));
    }
    throw JinjaError("'" + obj.type_name() + "' object is not subscriptable");
}

// ---- calls, filters, tests ----------------------------------------------------------------------------

CallArgs Interpreter::eval_args(const Expr& e, size_t first_arg) {
    CallArgs a;
    a.pos = e.pos;
    for (size_t i = first_arg; i < e.children.size(); ++i) a.args.push_back(eval(*e.children[i]));
    for (const auto& [k, v] : e.kwargs) a.kwargs.emplace_back(k, eval(*v));
    return a;
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
    if (callee.is_undefined()) throw_undefined(callee);
    if (!callee.is_callable()) throw JinjaError("'" + callee.type_name() + "' object is not callable");
    return callee.fn().fn(*this, args);
}

Value Interpreter::eval_call(const Expr& e) {
    Value callee = eval(*e.children[0]);
    CallArgs args = eval_args(e, 1);
    return call(callee, args);
}

Value Interpreter::eval_filter(const Expr& e) {
    Value input = eval(*e.children[0]);
    CallArgs args = eval_args(e, 1);
    return apply_filter(e.name, input, args);
}

Value Interpreter::eval_test(const Expr& e) {
    Value input = eval(*e.children[0]);
    CallArgs args = eval_args(e, 1);
    bool r = apply_test(e.name, input, args);
    return Value(e.negated ? !r : r);
}

// ---- operators ----------------------------------------------------------------------------------------

Value Interpreter::eval_binary(const Expr& e) {
    if (e.name == "and" || e.name == "or") {
        Value left = eval(*e.children[0]);
        bool take_left = e.name == "and" ? !left.truthy() : left.truthy();
        return take_left ? left : eval(*e.children[1]);
    }
    Value a = eval(*e.children[0]);
    Value b = eval(*e.children[1]);
    if (e.name == "~") {
        std::string s = to_str(a);
        std::string t = to_str(b);
        check_string_size(s.size() + t.size());
        return Value(s + t);
    }
    return arithmetic(e.name, a, b);
}

bool contains(Interpreter& in, const Value& container, const Value& item) {
    if (container.is_string()) {
        if (!item.is_string()) throw JinjaError("'in <string>' requires string as left operand, not " + item.type_name());
        return container.str().find(item.str()) != std::string::npos;
    }
    if (container.is_mapping_like() && !container.is_namespace()) {
        return item.is_string() && container.obj().find(item.str()) != nullptr;
    }
    if (container.is_array() || container.is_undefined()) {
        for (const auto& e : in.iterate(container)) {
            if (equals(e, item)) return true;
        }
        return false;
    }
    throw JinjaError("argument of type '" + container.type_name() + "' is not iterable");
}

Value Interpreter::eval_compare(const Expr& e) {
    Value left = eval(*e.children[0]);
    for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.children[i + 1]);
        const std::string& op = e.ops[i];
        bool r = false;
        if (op == "==") {
            r = equals(left, right);
        } else if (op == "!=") {
            r = !equals(left, right);
        } else if (op == "in" || op == "not in") {
            r = contains(*this, right, left) == (op == "in");
        } else {
            if (left.is_undefined()) throw_undefined(left);
            if (right.is_undefined()) throw_undefined(right);
            int c = compare(left, right);
            r = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
        }
        if (!r) return Value(false);
        left = std::move(right);
    }
    return Value(true);
}

}  // namespace dsa::text::jinja
