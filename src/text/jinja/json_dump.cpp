// Python json.dumps, byte for byte: separators ", " / ": " (item separator "," when indenting), float repr
// ("1.0", "1e-05", "NaN", "Infinity"), lower-case \u escapes, ensure_ascii with surrogate pairs, insertion
// order unless sort_keys. This is the tojson filter transformers installs for chat templates (ensure_ascii
// defaults to False there, unlike jinja2's own tojson, which also HTML-escapes).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "text/jinja/interpreter.h"
#include "text/jinja/unicode.h"

namespace dsa::text::jinja {

namespace {

void append_u(std::string& out, unsigned cp) {
    char buf[16];  // 6 characters and NUL for a UTF-16 unit; 16 bytes leave room for any unsigned value
    std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
    out += buf;
}

void dump_string(std::string& out, const std::string& s, bool ensure_ascii) {
    out.push_back('"');
    for (char32_t c : utf8_decode(s)) {
        switch (c) {
            case '"': out += "\\\""; continue;
            case '\\': out += "\\\\"; continue;
            case '\n': out += "\\n"; continue;
            case '\r': out += "\\r"; continue;
            case '\t': out += "\\t"; continue;
            case '\b': out += "\\b"; continue;
            case '\f': out += "\\f"; continue;
            default: break;
        }
        if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
            if (c >= 0x10000) {
                char32_t v = c - 0x10000;
                append_u(out, 0xD800 + static_cast<unsigned>(v >> 10));
                append_u(out, 0xDC00 + static_cast<unsigned>(v & 0x3FF));
            } else {
                append_u(out, static_cast<unsigned>(c));
            }
        } else {
            utf8_append(out, c);
        }
    }
    out.push_back('"');
}

std::string dump_float(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    return float_repr(d);
}

class Dumper {
public:
    explicit Dumper(const JsonDumpOptions& o) : o_(o) {}

    void dump(std::string& out, const Value& v, int level) {
        if (level > kMaxNesting) throw JinjaError("value nested too deeply for tojson");
        switch (v.kind()) {
            case Value::Kind::kNone: out += "null"; return;
            case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; return;
            case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
            case Value::Kind::kFloat: out += dump_float(v.as_double()); return;
            case Value::Kind::kString: dump_string(out, v.str(), o_.ensure_ascii); return;
            case Value::Kind::kArray: dump_array(out, v, level); return;
            case Value::Kind::kObject: dump_object(out, v, level); return;
            default: throw JinjaError("Object of type " + v.type_name() + " is not JSON serializable");
        }
    }

private:
    std::string newline(int level) const {
        std::string s = "\n";
        for (int i = 0; i < level; ++i) s += *o_.indent;
        return s;
    }

    void dump_array(std::string& out, const Value& v, int level) {
        if (v.items().empty()) {
            out += "[]";
            return;
        }
        out.push_back('[');
        if (o_.indent) out += newline(level + 1);
        for (size_t i = 0; i < v.items().size(); ++i) {
            if (i) out += o_.indent ? o_.item_sep + newline(level + 1) : o_.item_sep;
            dump(out, v.items()[i], level + 1);
        }
        if (o_.indent) out += newline(level);
        out.push_back(']');
    }

    void dump_object(std::string& out, const Value& v, int level) {
        if (v.obj().entries.empty()) {
            out += "{}";
            return;
        }
        std::vector<const std::pair<std::string, Value>*> entries;
        for (const auto& e : v.obj().entries) entries.push_back(&e);
        if (o_.sort_keys) {
            std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
        }
        out.push_back('{');
        if (o_.indent) out += newline(level + 1);
        for (size_t i = 0; i < entries.size(); ++i) {
            if (i) out += o_.indent ? o_.item_sep + newline(level + 1) : o_.item_sep;
            dump_string(out, entries[i]->first, o_.ensure_ascii);
            out += o_.key_sep;
            dump(out, entries[i]->second, level + 1);
        }
        if (o_.indent) out += newline(level);
        out.push_back('}');
    }

    const JsonDumpOptions& o_;
};

}  // namespace

std::string json_dumps(const Value& v, const JsonDumpOptions& options) {
    std::string out;
    Dumper(options).dump(out, v, 0);
    return out;
}

Value filter_tojson(Interpreter& in, const Value& v, CallArgs& a) {
    JsonDumpOptions o;
    o.ensure_ascii = a.get(0, "ensure_ascii", Value(false)).truthy();
    Value indent = a.get(1, "indent", Value::none());
    if (indent.is_string()) {
        o.indent = indent.str();
    } else if (!indent.is_none()) {
        if (!indent.is_int() && !indent.is_bool()) throw JinjaError("tojson: indent must be an integer, a string or None");
        o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent.as_int(), 0, 64)), ' ');
    }
    if (o.indent) o.item_sep = ",";
    Value seps = a.get(2, "separators", Value::none());
    if (!seps.is_none()) {
        if (!seps.is_array() || seps.items().size() != 2) throw JinjaError("tojson: separators must be an (item, key) pair");
        o.item_sep = to_str(seps.items()[0]);
        o.key_sep = to_str(seps.items()[1]);
    }
    o.sort_keys = a.get(3, "sort_keys", Value(false)).truthy();
    std::string s = json_dumps(v, o);
    in.check_string_size(s.size());
    return Value(std::move(s));
}

OrderedJson to_json(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::kNone: return nullptr;
        case Value::Kind::kBool: return v.as_bool();
        case Value::Kind::kInt: return v.as_int();
        case Value::Kind::kFloat: return v.as_double();
        case Value::Kind::kString: return v.str();
        case Value::Kind::kArray: {
            OrderedJson arr = OrderedJson::array();
            for (const auto& e : v.items()) arr.push_back(to_json(e));
            return arr;
        }
        case Value::Kind::kObject:
        case Value::Kind::kNamespace: {
            OrderedJson obj = OrderedJson::object();
            for (const auto& [k, e] : v.obj().entries) obj[k] = to_json(e);
            return obj;
        }
        default: throw JinjaError("Object of type " + v.type_name() + " is not JSON serializable");
    }
}

}  // namespace dsa::text::jinja
