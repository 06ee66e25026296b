// Builtin filters over sequences: join, select/reject(attr), map, list, first, last, sort, unique, reverse,
// dictsort, batch, sum, max, min — as jinja2's filters.py defines them (stable sorts, case-insensitive
// comparison of strings by default, dotted attribute paths).
#include <algorithm>
#include <set>

#include "text/jinja/interpreter.h"
#include "text/jinja/pystr.h"
#include "text/jinja/unicode.h"

namespace dsa::text::jinja {

namespace {

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0.
Value get_path(Interpreter& in, const Value& item, const Value& attribute) {
    if (attribute.is_int()) return in.get_item(item, attribute);
    Value cur = item;
    std::string path = to_str(attribute);
    for (const auto& part : pystr::split(path, std::string("."), -1)) {
        bool digits = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
        cur = in.get_item(cur, digits ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
    }
    return cur;
}

Value sort_key(const Value& v, bool case_sensitive) {
    if (!case_sensitive && v.is_string()) return Value(str_lower(v.str()));
    return v;
}

Value f_join(Interpreter& in, const Value& v, CallArgs& a) {
    std::string sep = to_str(a.get(0, "d", Value("")));
    Value attribute = a.get(1, "attribute", Value::none());
    std::string out;
    bool first = true;
    for (const auto& item : in.iterate(v)) {
        if (!first) out += sep;
        first = false;
        out += to_str(attribute.is_none() ? item : get_path(in, item, attribute));
        in.check_string_size(out.size());
    }
    return Value(std::move(out));
}

// select / reject / selectattr / rejectattr.
Value f_select(Interpreter& in, const Value& v, CallArgs& a, bool by_attr, bool keep) {
    size_t first_test_arg = by_attr ? 1 : 0;
    Value attribute = by_attr ? a.get(0, "attribute") : Value::none();
    bool has_test = a.args.size() > first_test_arg;
    std::string test = has_test ? to_str(a.args[first_test_arg]) : "";
    if (!v.truthy()) return Value::array();  // jinja2 iterates only a truthy input here
    CallArgs test_args;
    for (size_t i = first_test_arg + 1; i < a.args.size(); ++i) test_args.args.push_back(a.args[i]);
    Array out;
    for (const auto& item : in.iterate(v)) {
        Value x = by_attr ? get_path(in, item, attribute) : item;
        CallArgs targs = test_args;
        bool r = has_test ? in.apply_test(test, x, targs) : x.truthy();
        if (r == keep) out.push_back(item);
    }
    return Value::array(std::move(out));
}

Value f_map(Interpreter& in, const Value& v, CallArgs& a) {
    Array out;
    if (!v.truthy()) return Value::array();  // jinja2 iterates only a truthy input here
    bool by_attr = false;
    Value attribute, dflt = Value::undefined();
    for (const auto& [k, val] : a.kwargs) {
        if (k == "attribute") {
            by_attr = true;
            attribute = val;
        } else if (k == "default") {
            dflt = val;
        }
    }
    if (by_attr) {
        for (const auto& item : in.iterate(v)) {
            Value x = get_path(in, item, attribute);
            out.push_back(x.is_undefined() && !dflt.is_undefined() ? dflt : x);
        }
        return Value::array(std::move(out));
    }
    if (a.args.empty()) throw JinjaError("map requires a filter name or attribute=");
    std::string filter = to_str(a.args[0]);
    CallArgs fargs;
    fargs.args.assign(a.args.begin() + 1, a.args.end());
    fargs.kwargs = a.kwargs;
    for (const auto& item : in.iterate(v)) {
        CallArgs copy = fargs;
        out.push_back(in.apply_filter(filter, item, copy));
    }
    return Value::array(std::move(out));
}

Value f_sort(Interpreter& in, const Value& v, CallArgs& a) {
    bool reverse = a.get(0, "reverse", Value(false)).truthy();
    bool case_sensitive = a.get(1, "case_sensitive", Value(false)).truthy();
    Value attribute = a.get(2, "attribute", Value::none());
    Array items = in.iterate(v);
    std::vector<std::pair<Value, Value>> keyed;
    for (const auto& item : items) {
        keyed.emplace_back(sort_key(attribute.is_none() ? item : get_path(in, item, attribute), case_sensitive), item);
    }
    std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
        return reverse ? compare(y.first, x.first) < 0 : compare(x.first, y.first) < 0;
    });
    Array out;
    for (auto& kv : keyed) out.push_back(std::move(kv.second));
    return Value::array(std::move(out));
}

Value f_unique(Interpreter& in, const Value& v, CallArgs& a) {
    bool case_sensitive = a.get(0, "case_sensitive", Value(false)).truthy();
    Value attribute = a.get(1, "attribute", Value::none());
    Array seen, out;
    for (const auto& item : in.iterate(v)) {
        Value key = sort_key(attribute.is_none() ? item : get_path(in, item, attribute), case_sensitive);
        bool dup = std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); });
        if (dup) continue;
        seen.push_back(key);
        out.push_back(item);
    }
    return Value::array(std::move(out));
}

Value f_reverse(Interpreter& in, const Value& v, CallArgs&) {
    if (v.is_string()) {
        std::u32string u = utf8_decode(v.str());
        return Value(utf8_encode(std::u32string(u.rbegin(), u.rend())));
    }
    Array items = in.iterate(v);
    return Value::array(Array(items.rbegin(), items.rend()));
}

Value f_dictsort(Interpreter&, const Value& v, CallArgs& a) {
    if (!v.is_object()) throw JinjaError("dictsort filter requires a mapping");
    bool case_sensitive = a.get(0, "case_sensitive", Value(false)).truthy();
    std::string by = to_str(a.get(1, "by", Value("key")));
    bool reverse = a.get(2, "reverse", Value(false)).truthy();
    if (by != "key" && by != "value") throw JinjaError("You can only sort by either \"key\" or \"value\"");
    std::vector<std::pair<std::string, Value>> entries = v.obj().entries;
    size_t pos = by == "key" ? 0 : 1;
    std::stable_sort(entries.begin(), entries.end(), [&](const auto& x, const auto& y) {
        Value kx = sort_key(pos == 0 ? Value(x.first) : x.second, case_sensitive);
        Value ky = sort_key(pos == 0 ? Value(y.first) : y.second, case_sensitive);
        return reverse ? compare(ky, kx) < 0 : compare(kx, ky) < 0;
    });
    Array out;
    for (const auto& [k, e] : entries) out.push_back(Value::tuple({Value(k), e}));
    return Value::array(std::move(out));
}

Value f_batch(Interpreter& in, const Value& v, CallArgs& a) {
    int64_t n = a.get(0, "linecount").as_int();
    Value fill = a.get(1, "fill_with", Value::none());
    if (n <= 0) throw JinjaError("batch size must be positive");
    Array out, cur;
    for (const auto& item : in.iterate(v)) {
        cur.push_back(item);
        if (static_cast<int64_t>(cur.size()) == n) {
            out.push_back(Value::array(std::move(cur)));
            cur.clear();
        }
    }
    if (!cur.empty()) {
        while (!fill.is_none() && static_cast<int64_t>(cur.size()) < n) cur.push_back(fill);
        out.push_back(Value::array(std::move(cur)));
    }
    return Value::array(std::move(out));
}

Value f_sum(Interpreter& in, const Value& v, CallArgs& a) {
    Value attribute = a.get(0, "attribute", Value::none());
    Value total = a.get(1, "start", Value(0));
    CallArgs none;
    for (const auto& item : in.iterate(v)) {
        Value x = attribute.is_none() ? item : get_path(in, item, attribute);
        if (!x.is_number() || !total.is_number()) throw JinjaError("unsupported operand type(s) for +: '" + total.type_name() + "' and '" + x.type_name() + "'");
        int64_t sum = 0;
        if (!total.is_float() && !x.is_float() && __builtin_add_overflow(total.as_int(), x.as_int(), &sum)) {
            throw JinjaError("integer overflow");
        }
        total = total.is_float() || x.is_float() ? Value(total.as_double() + x.as_double()) : Value(sum);
    }
    return total;
}

Value f_minmax(Interpreter& in, const Value& v, CallArgs& a, bool want_max) {
    bool case_sensitive = a.get(0, "case_sensitive", Value(false)).truthy();
    Value attribute = a.get(1, "attribute", Value::none());
    Array items = in.iterate(v);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    size_t best = 0;
    Value best_key;
    for (size_t i = 0; i < items.size(); ++i) {
        Value key = sort_key(attribute.is_none() ? items[i] : get_path(in, items[i], attribute), case_sensitive);
        if (i == 0 || (want_max ? compare(key, best_key) > 0 : compare(key, best_key) < 0)) {
            best = i;
            best_key = key;
        }
    }
    return items[best];
}

}  // namespace

bool is_sequence_filter(const std::string& name) {
    static const std::set<std::string> kNames = {"join", "select", "reject", "selectattr", "rejectattr", "map",
                                                 "list", "first", "last", "sort", "unique", "reverse",
                                                 "dictsort", "batch", "sum", "max", "min"};
    return kNames.count(name) > 0;
}

Value filter_sequence_op(Interpreter& in, const std::string& name, const Value& v, CallArgs& a) {
    if (name == "join") return f_join(in, v, a);
    if (name == "select") return f_select(in, v, a, /*by_attr=*/false, /*keep=*/true);
    if (name == "reject") return f_select(in, v, a, /*by_attr=*/false, /*keep=*/false);
    if (name == "selectattr") return f_select(in, v, a, /*by_attr=*/true, /*keep=*/true);
    if (name == "rejectattr") return f_select(in, v, a, /*by_attr=*/true, /*keep=*/false);
    if (name == "map") return f_map(in, v, a);
    if (name == "list") return Value::array(in.iterate(v));
    if (name == "first" || name == "last") {
        Array items = in.iterate(v);
        if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
        return name == "first" ? items.front() : items.back();
    }
    if (name == "sort") return f_sort(in, v, a);
    if (name == "unique") return f_unique(in, v, a);
    if (name == "reverse") return f_reverse(in, v, a);
    if (name == "dictsort") return f_dictsort(in, v, a);
    if (name == "batch") return f_batch(in, v, a);
    if (name == "sum") return f_sum(in, v, a);
    return f_minmax(in, v, a, /*want_max=*/name == "max");
}

}  // namespace dsa::text::jinja
