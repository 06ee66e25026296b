// Value construction, truthiness, Python str()/repr(), equality and ordering.
#include "text/jinja/value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "text/jinja/unicode.h"

namespace dsa::text::jinja {

Value Value::undefined(std::string hint) {
    Value v;
    v.s_ = std::move(hint);
    return v;
}
Value Value::none() {
    Value v;
    v.kind_ = Kind::kNone;
    return v;
}
Value::Value(bool b) : kind_(Kind::kBool), b_(b) {}
Value::Value(int64_t i) : kind_(Kind::kInt), i_(i) {}
Value::Value(double d) : kind_(Kind::kFloat), d_(d) {}
Value::Value(std::string s) : kind_(Kind::kString), s_(std::move(s)) {}

Value Value::array(Array items) {
    Value v;
    v.kind_ = Kind::kArray;
    v.arr_ = std::make_shared<Array>(std::move(items));
    return v;
}
Value Value::tuple(Array items) {
    Value v = array(std::move(items));
    v.tuple_ = true;
    return v;
}
Value Value::object() {
    Value v;
    v.kind_ = Kind::kObject;
    v.obj_ = std::make_shared<ObjectData>();
    return v;
}
Value Value::make_namespace() {
    Value v = object();
    v.kind_ = Kind::kNamespace;
    return v;
}
Value Value::callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn) {
    Value v;
    v.kind_ = Kind::kCallable;
    v.fn_ = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
    return v;
}

Value Value::from_json(const OrderedJson& j, int depth) {
    if (depth > kMaxNesting) throw JinjaError("JSON input nested too deeply");
    switch (j.type()) {
        case OrderedJson::value_t::null: return none();
        case OrderedJson::value_t::boolean: return Value(j.get<bool>());
        case OrderedJson::value_t::number_integer: return Value(j.get<int64_t>());
        case OrderedJson::value_t::number_unsigned: {
            auto u = j.get<uint64_t>();
            if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
            return Value(static_cast<int64_t>(u));
        }
        case OrderedJson::value_t::number_float: return Value(j.get<double>());
        case OrderedJson::value_t::string: return Value(j.get<std::string>());
        case OrderedJson::value_t::array: {
            Array items;
            items.reserve(j.size());
            for (const auto& e : j) items.push_back(from_json(e, depth + 1));
            return array(std::move(items));
        }
        case OrderedJson::value_t::object: {
            Value o = object();
            for (const auto& [k, e] : j.items()) o.obj().entries.emplace_back(k, from_json(e, depth + 1));
            return o;
        }
        default: return none();
    }
}

const void* Value::identity() const {
    if (arr_) return arr_.get();
    if (obj_) return obj_.get();
    if (fn_) return fn_.get();
    return nullptr;
}

bool Value::truthy() const {
    switch (kind_) {
        case Kind::kUndefined:
        case Kind::kNone: return false;
        case Kind::kBool: return b_;
        case Kind::kInt: return i_ != 0;
        case Kind::kFloat: return d_ != 0.0;
        case Kind::kString: return !s_.empty();
        case Kind::kArray: return !arr_->empty();
        case Kind::kObject: return !obj_->entries.empty();
        default: return true;
    }
}

size_t Value::length() const {
    switch (kind_) {
        case Kind::kUndefined: return 0;
        case Kind::kString: return utf8_length(s_);
        case Kind::kArray: return arr_->size();
        case Kind::kObject: return obj_->entries.size();
        default: throw JinjaError("object of type '" + type_name() + "' has no len()");
    }
}

std::string Value::type_name() const {
    static const char* kNames[] = {"Undefined", "NoneType", "bool",      "int",     "float",
                                   "str",       "list",     "dict",      "Namespace", "function"};
    return kNames[static_cast<int>(kind_)];
}

const Value* ObjectData::find(const std::string& key) const {
    for (const auto& [k, v] : entries) {
        if (k == key) return &v;
    }
    return nullptr;
}

void ObjectData::set(const std::string& key, Value v) {
    for (auto& [k, old] : entries) {
        if (k == key) {
            old = std::move(v);
            return;
        }
    }
    entries.emplace_back(key, std::move(v));
}

Value CallArgs::get(size_t i, const std::string& name, Value fallback) {
    if (i < args.size()) return args[i];
    for (const auto& [k, v] : kwargs) {
        if (k == name) return v;
    }
    return fallback;
}

bool CallArgs::has(size_t i, const std::string& name) const {
    if (i < args.size()) return true;
    for (const auto& [k, v] : kwargs) {
        if (k == name) return true;
    }
    return false;
}

std::string float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
    std::string sci(buf, res.ptr);  // e.g. "-1.2345e+02"
    size_t epos = sci.find('e');
    int exp = std::stoi(sci.substr(epos + 1));
    std::string mant = sci.substr(0, epos);
    bool neg = mant[0] == '-';
    if (neg) mant = mant.substr(1);
    std::string digits;
    for (char c : mant) {
        if (c != '.') digits.push_back(c);
    }
    std::string out = neg ? "-" : "";
    if (exp < -4 || exp >= 16) {
        out += digits.substr(0, 1);
        if (digits.size() > 1) out += "." + digits.substr(1);
        char eb[16];
        std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return out + eb;
    }
    if (exp < 0) return out + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    auto int_len = static_cast<size_t>(exp + 1);
    if (digits.size() <= int_len) return out + digits + std::string(int_len - digits.size(), '0') + ".0";
    return out + digits.substr(0, int_len) + "." + digits.substr(int_len);
}

namespace {

std::string repr_string(const std::string& s) {
    bool has_single = s.find('\'') != std::string::npos;
    bool has_double = s.find('"') != std::string::npos;
    char q = (has_single && !has_double) ? '"' : '\'';
    std::string out(1, q);
    for (char32_t c : utf8_decode(s)) {
        if (c == static_cast<char32_t>(q) || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0)) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
            out += buf;
        } else {
            utf8_append(out, c);
        }
    }
    out.push_back(q);
    return out;
}

std::string repr_at(const Value& v, int depth) {
    if (depth > kMaxNesting) throw JinjaError("value nested too deeply to print");
    switch (v.kind()) {
        case Value::Kind::kString: return repr_string(v.str());
        case Value::Kind::kArray: {
            std::string out = v.is_tuple() ? "(" : "[";
            for (size_t i = 0; i < v.items().size(); ++i) {
                if (i) out += ", ";
                out += repr_at(v.items()[i], depth + 1);
            }
            if (v.is_tuple() && v.items().size() == 1) out += ",";
            return out + (v.is_tuple() ? ")" : "]");
        }
        case Value::Kind::kObject: {
            std::string out = "{";
            bool first = true;
            for (const auto& [k, e] : v.obj().entries) {
                if (!first) out += ", ";
                first = false;
                out += repr_string(k) + ": " + repr_at(e, depth + 1);
            }
            return out + "}";
        }
        case Value::Kind::kUndefined: return "Undefined";
        default: return to_str(v);
    }
}

int sign(double d) { return d < 0 ? -1 : d > 0 ? 1 : 0; }

}  // namespace

std::string repr(const Value& v) { return repr_at(v, 0); }

std::string to_str(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::kUndefined: return "";
        case Value::Kind::kNone: return "None";
        case Value::Kind::kBool: return v.as_bool() ? "True" : "False";
        case Value::Kind::kInt: return std::to_string(v.as_int());
        case Value::Kind::kFloat: return float_repr(v.as_double());
        case Value::Kind::kString: return v.str();
        case Value::Kind::kArray:
        case Value::Kind::kObject: return repr_at(v, 0);
        case Value::Kind::kNamespace: return "<Namespace>";
        case Value::Kind::kCallable: return "<function " + v.fn().name + ">";
    }
    return "";
}

namespace {

bool equals_at(const Value& a, const Value& b, int depth) {
    if (depth > kMaxNesting) throw JinjaError("value nested too deeply to compare");
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
        return a.as_int() == b.as_int();
    }
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
        case Value::Kind::kUndefined:
        case Value::Kind::kNone: return true;
        case Value::Kind::kString: return a.str() == b.str();
        case Value::Kind::kArray: {
            if (a.items().size() != b.items().size()) return false;
            for (size_t i = 0; i < a.items().size(); ++i) {
                if (!equals_at(a.items()[i], b.items()[i], depth + 1)) return false;
            }
            return true;
        }
        case Value::Kind::kObject: {
            if (a.obj().entries.size() != b.obj().entries.size()) return false;
            for (const auto& [k, e] : a.obj().entries) {
                const Value* other = b.obj().find(k);
                if (!other || !equals_at(e, *other, depth + 1)) return false;
            }
            return true;
        }
        default: return a.identity() == b.identity();
    }
}

}  // namespace

bool equals(const Value& a, const Value& b) { return equals_at(a, b, 0); }

int compare(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return sign(a.as_double() - b.as_double());
        return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    }
    if (a.is_string() && b.is_string()) return a.str() < b.str() ? -1 : a.str() > b.str() ? 1 : 0;
    if (a.is_array() && b.is_array()) {
        size_t n = std::min(a.items().size(), b.items().size());
        for (size_t i = 0; i < n; ++i) {
            if (!equals(a.items()[i], b.items()[i])) return compare(a.items()[i], b.items()[i]);
        }
        return a.items().size() < b.items().size() ? -1 : a.items().size() > b.items().size() ? 1 : 0;
    }
    throw JinjaError("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

void check_depth(const Value& v, int depth) {
    if (depth > kMaxNesting) throw JinjaError("value nested too deeply");
    if (v.is_array()) {
        for (const auto& e : v.items()) check_depth(e, depth + 1);
    } else if (v.is_mapping_like()) {
        for (const auto& [k, e] : v.obj().entries) check_depth(e, depth + 1);
    }
}

void check_no_cycle(const Value& v, const void* target, int depth) {
    if (depth > kMaxNesting) throw JinjaError("value nested too deeply");
    if (target != nullptr && v.identity() == target) throw JinjaError("cannot store an object inside itself");
    if (v.is_array()) {
        for (const auto& e : v.items()) check_no_cycle(e, target, depth + 1);
    } else if (v.is_mapping_like()) {
        for (const auto& [k, e] : v.obj().entries) check_no_cycle(e, target, depth + 1);
    }
}

}  // namespace dsa::text::jinja
