// Methods reachable through attribute access, as Python objects have them: str (startswith, split, strip,
// format, ...), dict (items, keys, values, get) and list (append, pop, index, count, insert, extend). A method
// is a callable bound to its receiver; list mutations act on the shared list.
#include <unordered_map>

#include "text/jinja/interpreter.h"
#include "text/jinja/pystr.h"
#include "text/jinja/unicode.h"

namespace dsa::text::jinja {

namespace {

using Method = Value (*)(Interpreter&, const Value& self, CallArgs& a);

std::string arg_str(CallArgs& a, size_t i, const std::string& name, const std::string& method) {
    Value v = a.get(i, name);
    if (!v.is_string()) throw JinjaError(method + "() argument must be str, not " + v.type_name());
    return v.str();
}

std::optional<std::string> opt_str(CallArgs& a, size_t i, const std::string& name) {
    Value v = a.get(i, name, Value::none());
    if (v.is_none()) return std::nullopt;
    if (!v.is_string()) throw JinjaError("expected a string or None, got " + v.type_name());
    return v.str();
}

int64_t arg_int(CallArgs& a, size_t i, const std::string& name, int64_t dflt) {
    Value v = a.get(i, name, Value(dflt));
    if (!v.is_int() && !v.is_bool()) throw JinjaError("'" + name + "' must be an integer, not " + v.type_name());
    return v.as_int();
}

Value strings(const std::vector<std::string>& parts) {
    Array out;
    for (const auto& p : parts) out.emplace_back(p);
    return Value::array(std::move(out));
}

Value affix_test(const Value& self, CallArgs& a, bool prefix) {
    Value arg = a.get(0, prefix ? "prefix" : "suffix");
    Array options = arg.is_array() ? arg.items() : Array{arg};
    const std::string& s = self.str();
    for (const auto& o : options) {
        if (!o.is_string()) throw JinjaError(std::string(prefix ? "startswith" : "endswith") + " first arg must be str or a tuple of str");
        const std::string& p = o.str();
        bool hit = p.size() <= s.size() && (prefix ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0);
        if (hit) return Value(true);
    }
    return Value(false);
}

std::string format_field(const std::string& field, CallArgs& a, size_t* auto_index) {
    if (field.find(':') != std::string::npos || field.find('!') != std::string::npos) {
        throw JinjaError("format specifications are not supported in str.format");
    }
    if (field.empty()) {
        if (*auto_index >= a.args.size()) throw JinjaError("Replacement index " + std::to_string(*auto_index) + " out of range for positional args tuple");
        return to_str(a.args[(*auto_index)++]);
    }
    if (field.find_first_not_of("0123456789") == std::string::npos) {
        size_t i = std::stoul(field);
        if (i >= a.args.size()) throw JinjaError("Replacement index " + field + " out of range for positional args tuple");
        return to_str(a.args[i]);
    }
    for (const auto& [k, v] : a.kwargs) {
        if (k == field) return to_str(v);
    }
    throw JinjaError("KeyError: '" + field + "'");
}

Value str_format(Interpreter& in, const Value& self, CallArgs& a) {
    const std::string& f = self.str();
    std::string out;
    size_t auto_index = 0;
    for (size_t i = 0; i < f.size(); ++i) {
        char c = f[i];
        if ((c == '{' || c == '}') && i + 1 < f.size() && f[i + 1] == c) {
            out.push_back(c);
            ++i;
        } else if (c == '{') {
            size_t end = f.find('}', i);
            if (end == std::string::npos) throw JinjaError("Single '{' encountered in format string");
            out += format_field(f.substr(i + 1, end - i - 1), a, &auto_index);
            i = end;
        } else if (c == '}') {
            throw JinjaError("Single '}' encountered in format string");
        } else {
            out.push_back(c);
        }
        in.check_string_size(out.size());
    }
    return Value(std::move(out));
}

Value str_join(Interpreter& in, const Value& self, CallArgs& a) {
    std::string out;
    bool first = true;
    for (const auto& item : in.iterate(a.get(0, "iterable"))) {
        if (!item.is_string()) throw JinjaError("sequence item: expected str instance, " + item.type_name() + " found");
        if (!first) out += self.str();
        first = false;
        out += item.str();
        in.check_string_size(out.size());
    }
    return Value(std::move(out));
}

const std::unordered_map<std::string, Method>& string_methods() {
    static const std::unordered_map<std::string, Method> kMethods = {
        {"startswith", [](Interpreter&, const Value& s, CallArgs& a) { return affix_test(s, a, true); }},
        {"endswith", [](Interpreter&, const Value& s, CallArgs& a) { return affix_test(s, a, false); }},
        {"split", [](Interpreter&, const Value& s, CallArgs& a) { return strings(pystr::split(s.str(), opt_str(a, 0, "sep"), arg_int(a, 1, "maxsplit", -1))); }},
        {"rsplit", [](Interpreter&, const Value& s, CallArgs& a) { return strings(pystr::rsplit(s.str(), opt_str(a, 0, "sep"), arg_int(a, 1, "maxsplit", -1))); }},
        {"splitlines", [](Interpreter&, const Value& s, CallArgs& a) { return strings(pystr::splitlines(s.str(), a.get(0, "keepends", Value(false)).truthy())); }},
        {"strip", [](Interpreter&, const Value& s, CallArgs& a) { return Value(pystr::strip(s.str(), opt_str(a, 0, "chars"), pystr::Side::kBoth)); }},
        {"lstrip", [](Interpreter&, const Value& s, CallArgs& a) { return Value(pystr::strip(s.str(), opt_str(a, 0, "chars"), pystr::Side::kLeft)); }},
        {"rstrip", [](Interpreter&, const Value& s, CallArgs& a) { return Value(pystr::strip(s.str(), opt_str(a, 0, "chars"), pystr::Side::kRight)); }},
        {"upper", [](Interpreter&, const Value& s, CallArgs&) { return Value(str_upper(s.str())); }},
        {"lower", [](Interpreter&, const Value& s, CallArgs&) { return Value(str_lower(s.str())); }},
        {"title", [](Interpreter&, const Value& s, CallArgs&) { return Value(pystr::title(s.str())); }},
        {"capitalize", [](Interpreter&, const Value& s, CallArgs&) { return Value(pystr::capitalize(s.str())); }},
        {"replace", [](Interpreter& in, const Value& s, CallArgs& a) {
             std::string r = pystr::replace(s.str(), arg_str(a, 0, "old", "replace"), arg_str(a, 1, "new", "replace"), arg_int(a, 2, "count", -1));
             in.check_string_size(r.size());
             return Value(std::move(r));
         }},
        {"format", str_format},
        {"join", str_join},
        {"find", [](Interpreter&, const Value& s, CallArgs& a) { return Value(pystr::find(s.str(), arg_str(a, 0, "sub", "find"), false)); }},
        {"rfind", [](Interpreter&, const Value& s, CallArgs& a) { return Value(pystr::find(s.str(), arg_str(a, 0, "sub", "rfind"), true)); }},
        {"index", [](Interpreter&, const Value& s, CallArgs& a) {
             int64_t i = pystr::find(s.str(), arg_str(a, 0, "sub", "index"), false);
             if (i < 0) throw JinjaError("substring not found");
             return Value(i);
         }},
        {"count", [](Interpreter&, const Value& s, CallArgs& a) { return Value(pystr::count(s.str(), arg_str(a, 0, "sub", "count"))); }},
        {"removeprefix", [](Interpreter&, const Value& s, CallArgs& a) {
             std::string p = arg_str(a, 0, "prefix", "removeprefix");
             return Value(s.str().compare(0, p.size(), p) == 0 ? s.str().substr(p.size()) : s.str());
         }},
        {"removesuffix", [](Interpreter&, const Value& s, CallArgs& a) {
             std::string p = arg_str(a, 0, "suffix", "removesuffix");
             bool hit = !p.empty() && p.size() <= s.str().size() && s.str().compare(s.str().size() - p.size(), p.size(), p) == 0;
             return Value(hit ? s.str().substr(0, s.str().size() - p.size()) : s.str());
         }},
        {"isdigit", [](Interpreter&, const Value& s, CallArgs&) { return Value(pystr::all_chars(s.str(), py_isdigit)); }},
        {"isalpha", [](Interpreter&, const Value& s, CallArgs&) { return Value(pystr::all_chars(s.str(), py_isalpha)); }},
        {"isalnum", [](Interpreter&, const Value& s, CallArgs&) { return Value(pystr::all_chars(s.str(), py_isalnum)); }},
        {"isspace", [](Interpreter&, const Value& s, CallArgs&) { return Value(pystr::all_chars(s.str(), py_isspace)); }},
        {"islower", [](Interpreter&, const Value& s, CallArgs&) { return Value(str_lower(s.str()) == s.str() && str_upper(s.str()) != s.str()); }},
        {"isupper", [](Interpreter&, const Value& s, CallArgs&) { return Value(str_upper(s.str()) == s.str() && str_lower(s.str()) != s.str()); }},
    };
    return kMethods;
}

Value dict_items(const Value& self) {
    Array out;
    for (const auto& [k, v] : self.obj().entries) out.push_back(Value::tuple({Value(k), v}));
    return Value::array(std::move(out));
}

const std::unordered_map<std::string, Method>& dict_methods() {
    static const std::unordered_map<std::string, Method> kMethods = {
        {"items", [](Interpreter&, const Value& d, CallArgs&) { return dict_items(d); }},
        {"keys", [](Interpreter&, const Value& d, CallArgs&) {
             Array out;
             for (const auto& [k, v] : d.obj().entries) out.emplace_back(k);
             return Value::array(std::move(out));
         }},
        {"values", [](Interpreter&, const Value& d, CallArgs&) {
             Array out;
             for (const auto& [k, v] : d.obj().entries) out.push_back(v);
             return Value::array(std::move(out));
         }},
        {"get", [](Interpreter&, const Value& d, CallArgs& a) {
             Value key = a.get(0, "key");
             const Value* v = key.is_string() ? d.obj().find(key.str()) : nullptr;
             return v ? *v : a.get(1, "default", Value::none());
         }},
    };
    return kMethods;
}

void check_insertable(const Value& list, const Value& item) {
    check_no_cycle(item, list.identity(), 1);
}

const std::unordered_map<std::string, Method>& list_methods() {
    static const std::unordered_map<std::string, Method> kMethods = {
        {"append", [](Interpreter& in, const Value& l, CallArgs& a) {
             Value item = a.get(0, "object");
             check_insertable(l, item);
             in.check_items(l.items().size() + 1);
             l.items().push_back(item);
             return Value::none();
         }},
        {"extend", [](Interpreter& in, const Value& l, CallArgs& a) {
             Array more = in.iterate(a.get(0, "iterable"));
             for (const auto& m : more) check_insertable(l, m);
             in.check_items(l.items().size() + more.size());
             l.items().insert(l.items().end(), more.begin(), more.end());
             return Value::none();
         }},
        {"insert", [](Interpreter& in, const Value& l, CallArgs& a) {
             auto n = static_cast<int64_t>(l.items().size());
             int64_t i = std::clamp<int64_t>(arg_int(a, 0, "index", 0), -n, n);
             if (i < 0) i += n;
             Value item = a.get(1, "object");
             check_insertable(l, item);
             in.check_items(l.items().size() + 1);
             l.items().insert(l.items().begin() + i, item);
             return Value::none();
         }},
        {"pop", [](Interpreter&, const Value& l, CallArgs& a) {
             auto n = static_cast<int64_t>(l.items().size());
             int64_t i = arg_int(a, 0, "index", -1);
             if (i < 0) i += n;
             if (i < 0 || i >= n) throw JinjaError("pop index out of range");
             Value v = l.items()[static_cast<size_t>(i)];
             l.items().erase(l.items().begin() + i);
             return v;
         }},
        {"index", [](Interpreter&, const Value& l, CallArgs& a) {
             Value x = a.get(0, "value");
             for (size_t i = 0; i < l.items().size(); ++i) {
                 if (equals(l.items()[i], x)) return Value(static_cast<int64_t>(i));
             }
             throw JinjaError(repr(x) + " is not in list");
         }},
        {"count", [](Interpreter&, const Value& l, CallArgs& a) {
             Value x = a.get(0, "value");
             int64_t n = 0;
             for (const auto& e : l.items()) n += equals(e, x) ? 1 : 0;
             return Value(n);
         }},
    };
    return kMethods;
}

}  // namespace

Value bound_method(const Value& self, const std::string& name) {
    const std::unordered_map<std::string, Method>* table = self.is_string() ? &string_methods()
                                                           : self.is_object() ? &dict_methods()
                                                           : self.is_array()  ? &list_methods()
                                                                              : nullptr;
    if (!table) return Value::undefined();
    auto it = table->find(name);
    if (it == table->end()) return Value::undefined();
    Method m = it->second;
    return Value::callable(name, [m, self](Interpreter& in, CallArgs& a) { return m(in, self, a); });
}

}  // namespace dsa::text::jinja
