// Shared fixtures of the constrained-decoding tests: the request tools used across formats, whole-text
// matching against a grammar, and a validator for the JSON-schema subset the grammars enforce.
#pragma once

#include <string>
#include <string_view>

#include "base/json.h"
#include "constrain/formats.h"
#include "constrain/grammar.h"

namespace dsa::constrain::testing {

inline OrderedJson test_tools() {
    return OrderedJson::parse(R"([
      {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                       "unit": {"type": "string", "enum": ["c", "f"]},
                       "hourly": {"type": "boolean"},
                       "coords": {"type": "array", "items": {"type": "number"}, "maxItems": 2}},
        "required": ["city"]}}},
      {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object",
        "properties": {"tz": {"type": ["string", "null"]}}}}},
      {"type": "function", "function": {"name": "echo"}}
    ])");
}

// The whole text is a complete sentence of the grammar.
inline bool matches(const Grammar& g, std::string_view text) {
    MatchState s = g.start();
    return g.feed(s, text) && g.can_end(s);
}

// The text is a prefix of some sentence.
inline bool is_prefix(const Grammar& g, std::string_view text) {
    MatchState s = g.start();
    return g.feed(s, text);
}

// Validates `v` against the subset of JSON schema the grammars enforce (type, enum, const, properties with no
// extra keys when properties are listed, required, items, minItems, maxItems, $ref into `doc`).
inline bool validates(const OrderedJson& v, const OrderedJson& schema, const OrderedJson& doc, std::string* why) {
    auto fail = [&](const std::string& m) {
        if (why) *why = m + " at " + v.dump();
        return false;
    };
    if (schema.is_boolean()) return schema.get<bool>() || fail("false schema");
    if (!schema.is_object()) return true;
    if (schema.contains("$ref")) {
        const std::string ref = schema["$ref"].get<std::string>();
        return validates(v, ref == "#" ? doc : doc.at(OrderedJson::json_pointer(ref.substr(1))), doc, why);
    }
    if (schema.contains("enum")) {
        for (const auto& e : schema["enum"])
            if (e == v) return true;
        return fail("not in enum");
    }
    if (schema.contains("type")) {
        OrderedJson types = schema["type"].is_array() ? schema["type"] : OrderedJson::array({schema["type"]});
        bool ok = false;
        for (const auto& t : types) {
            const std::string s = t.get<std::string>();
            ok = ok || (s == "object" && v.is_object()) || (s == "array" && v.is_array()) ||
                 (s == "string" && v.is_string()) || (s == "number" && v.is_number()) ||
                 (s == "integer" && v.is_number_integer()) || (s == "boolean" && v.is_boolean()) ||
                 (s == "null" && v.is_null());
        }
        if (!ok) return fail("wrong type");
    }
    if (v.is_object()) {
        const OrderedJson props = schema.value("properties", OrderedJson::object());
        for (const auto& r : schema.value("required", OrderedJson::array()))
            if (!v.contains(r.get<std::string>())) return fail("missing " + r.get<std::string>());
        for (const auto& [k, sub] : v.items()) {
            if (props.contains(k)) {
                if (!validates(sub, props[k], doc, why)) return false;
            } else if (!props.empty()) {
                return fail("extra key " + k);
            }
        }
    }
    if (v.is_array()) {
        if (schema.contains("minItems") && v.size() < schema["minItems"].get<size_t>()) return fail("too few items");
        if (schema.contains("maxItems") && v.size() > schema["maxItems"].get<size_t>()) return fail("too many items");
        if (schema.contains("items"))
            for (const auto& x : v)
                if (!validates(x, schema["items"], doc, why)) return false;
    }
    return true;
}

}  // namespace dsa::constrain::testing
