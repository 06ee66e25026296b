// JSON schema compilation into grammar elements (see json_schema.h for the supported subset).
#include "constrain/json_schema.h"

#include <set>

namespace dsa::constrain {
namespace {

constexpr int kMaxAnyDepth = 4;      // nesting of objects / arrays inside a free-form value
constexpr int kMaxSchemaDepth = 64;  // schema nesting without $ref cycles

const std::set<std::string> kTypes = {"object", "array", "string", "number", "integer", "boolean", "null"};

std::string dump(const OrderedJson& v) { return v.dump(-1, ' ', false, OrderedJson::error_handler_t::replace); }

bool has_any(const OrderedJson& s, std::initializer_list<const char*> keys) {
    for (const char* k : keys)
        if (s.contains(k)) return true;
    return false;
}

StatusOr<int32_t> read_count(const OrderedJson& s, const char* key, int32_t fallback) {
    auto it = s.find(key);
    if (it == s.end()) return fallback;
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > (1 << 30))
        return invalid_argument("invalid JSON schema: '{}' must be a non-negative integer", key);
    return static_cast<int32_t>(it->get<int64_t>());
}

}  // namespace

int32_t SchemaCompiler::any(int depth) {
    auto it = any_.find(depth);
    if (it != any_.end()) return it->second;
    std::array<int32_t, kNumSlots> slots{-1, -1, g_.add_string(), g_.add_number(false), -1, g_.add_lit("null")};
    slots[kSlotBool] = g_.add_alt({{"true", -1}, {"false", -1}});
    if (depth < kMaxAnyDepth) {
        slots[kSlotObject] = g_.add_map(any(depth + 1));
        slots[kSlotArray] = g_.add_array(any(depth + 1), 0, -1);
    }
    int32_t id = g_.add_dispatch(slots);
    any_[depth] = id;
    return id;
}

StatusOr<int32_t> SchemaCompiler::compile(const OrderedJson& schema) { return compile_at(schema, 0); }

StatusOr<int32_t> SchemaCompiler::compile_at(const OrderedJson& s, int depth) {
    if (depth > kMaxSchemaDepth) return invalid_argument("invalid JSON schema: nested too deeply");
    if (s.is_boolean()) {
        if (!s.get<bool>()) return invalid_argument("invalid JSON schema: 'false' matches no value");
        return any();
    }
    if (!s.is_object())
        return invalid_argument("invalid JSON schema: a schema must be an object or a boolean, got {}", dump(s));
    if (auto it = s.find("$ref"); it != s.end()) {
        if (!it->is_string()) return invalid_argument("invalid JSON schema: '$ref' must be a string");
        return compile_ref(it->get<std::string>(), depth);
    }
    if (auto it = s.find("enum"); it != s.end()) {
        if (!it->is_array() || it->empty())
            return invalid_argument("invalid JSON schema: 'enum' must be a non-empty array");
        std::vector<std::pair<std::string, int32_t>> alts;
        for (const auto& v : *it) alts.emplace_back(dump(v), -1);
        return g_.add_alt(std::move(alts));
    }
    if (auto it = s.find("const"); it != s.end()) return g_.add_lit(dump(*it));
    for (const char* key : {"anyOf", "oneOf"}) {
        if (auto it = s.find(key); it != s.end()) {
            if (!it->is_array() || it->empty())
                return invalid_argument("invalid JSON schema: '{}' must be a non-empty array", key);
            return compile_union(*it, depth);
        }
    }
    if (auto it = s.find("allOf"); it != s.end()) {
        if (!it->is_array() || it->empty())
            return invalid_argument("invalid JSON schema: 'allOf' must be a non-empty array");
        if (it->size() == 1) return compile_at((*it)[0], depth + 1);
        return any();  // intersections are outside the subset
    }
    return compile_types(s, depth);
}

StatusOr<const OrderedJson*> SchemaCompiler::resolve(const std::string& ref) const {
    if (ref == "#") return &doc_;
    if (!ref.starts_with("#/"))
        return invalid_argument("invalid JSON schema: only local '$ref's (\"#/...\") are supported, got '{}'", ref);
    try {
        const OrderedJson& target = doc_.at(OrderedJson::json_pointer(ref.substr(1)));
        return &target;
    } catch (const std::exception&) {
        return invalid_argument("invalid JSON schema: '$ref' {} does not resolve", ref);
    }
}

StatusOr<int32_t> SchemaCompiler::compile_ref(const std::string& ref, int depth) {
    if (auto it = refs_.find(ref); it != refs_.end()) return it->second;
    DSA_ASSIGN_OR_RETURN(const OrderedJson* target, resolve(ref));
    int32_t id = g_.reserve();
    refs_[ref] = id;
    DSA_ASSIGN_OR_RETURN(int32_t body, compile_at(*target, depth + 1));
    g_.set_elem(id, g_.elem(body));
    return id;
}

// Alternatives of distinct JSON types merge into one dispatch; for a type claimed twice the first wins (the
// output then satisfies the union, though not every value of the union can be written).
StatusOr<int32_t> SchemaCompiler::compile_union(const OrderedJson& alts, int depth) {
    std::array<int32_t, kNumSlots> slots{-1, -1, -1, -1, -1, -1};
    for (const auto& a : alts) {
        DSA_ASSIGN_OR_RETURN(int32_t id, compile_at(a, depth + 1));
        if (g_.elem(id).kind != ElemKind::kDispatch) return any();
        for (int k = 0; k < kNumSlots; ++k) {
            auto slot = static_cast<size_t>(k);
            if (slots[slot] < 0) slots[slot] = g_.elem(id).slots[slot];
        }
    }
    return g_.add_dispatch(slots);
}

StatusOr<int32_t> SchemaCompiler::compile_types(const OrderedJson& s, int depth) {
    std::vector<std::string> types;
    if (auto it = s.find("type"); it != s.end()) {
        if (it->is_string())
            types.push_back(it->get<std::string>());
        else if (it->is_array() && !it->empty()) {
            for (const auto& t : *it) {
                if (!t.is_string()) return invalid_argument("invalid JSON schema: 'type' entries must be strings");
                types.push_back(t.get<std::string>());
            }
        } else {
            return invalid_argument("invalid JSON schema: 'type' must be a string or a non-empty array of strings");
        }
    } else if (has_any(s, {"properties", "required", "additionalProperties"})) {
        types.push_back("object");
    } else if (has_any(s, {"items", "minItems", "maxItems"})) {
        types.push_back("array");
    } else {
        return any();
    }
    std::array<int32_t, kNumSlots> slots{-1, -1, -1, -1, -1, -1};
    const bool any_number = std::find(types.begin(), types.end(), "number") != types.end();
    for (const std::string& t : types) {
        if (!kTypes.count(t)) return invalid_argument("invalid JSON schema: unknown type '{}'", t);
        if (t == "integer" && any_number) continue;
        DSA_ASSIGN_OR_RETURN(int32_t id, type_elem(t, s, depth));
        const int slot = t == "object"    ? kSlotObject
                         : t == "array"   ? kSlotArray
                         : t == "string"  ? kSlotString
                         : t == "boolean" ? kSlotBool
                         : t == "null"    ? kSlotNull
                                          : kSlotNumber;
        slots[static_cast<size_t>(slot)] = id;
    }
    return g_.add_dispatch(slots);
}

StatusOr<int32_t> SchemaCompiler::type_elem(const std::string& t, const OrderedJson& s, int depth) {
    if (t == "object") return compile_object(s, depth);
    if (t == "array") return compile_array(s, depth);
    if (t == "string") return g_.add_string();
    if (t == "number" || t == "integer") return g_.add_number(t == "integer");
    if (t == "boolean") return g_.add_alt({{"true", -1}, {"false", -1}});
    return g_.add_lit("null");
}

StatusOr<int32_t> SchemaCompiler::compile_object(const OrderedJson& s, int depth) {
    DSA_ASSIGN_OR_RETURN(ParamList list, list_params(s, doc_));
    if (list.free) {
        auto addl = s.find("additionalProperties");
        if (addl != s.end() && addl->is_object()) {
            DSA_ASSIGN_OR_RETURN(int32_t value, compile_at(*addl, depth + 1));
            return g_.add_map(value);
        }
        return g_.add_map(any(1));
    }
    std::vector<Property> props;
    for (const auto& p : list.params) {
        DSA_ASSIGN_OR_RETURN(int32_t value, compile_at(p.schema, depth + 1));
        props.push_back(Property{dump(OrderedJson(p.name)), value, p.required});
    }
    return g_.add_object(std::move(props));
}

StatusOr<int32_t> SchemaCompiler::compile_array(const OrderedJson& s, int depth) {
    DSA_ASSIGN_OR_RETURN(int32_t min_items, read_count(s, "minItems", 0));
    DSA_ASSIGN_OR_RETURN(int32_t max_items, read_count(s, "maxItems", -1));
    if (max_items >= 0 && min_items > max_items)
        return invalid_argument("invalid JSON schema: minItems ({}) is larger than maxItems ({})", min_items,
                                max_items);
    int32_t item = any(1);
    if (auto it = s.find("items"); it != s.end()) {
        if (!it->is_object() && !it->is_boolean())
            return invalid_argument("invalid JSON schema: 'items' must be a schema (object or boolean)");
        if (it->is_boolean() && !it->get<bool>()) {
            max_items = 0;
            if (min_items > 0) return invalid_argument("invalid JSON schema: 'items: false' with minItems > 0");
        } else {
            DSA_ASSIGN_OR_RETURN(item, compile_at(*it, depth + 1));
        }
    }
    return g_.add_array(item, min_items, max_items);
}

StatusOr<int32_t> SchemaCompiler::compile_object_schema(const OrderedJson& schema) {
    if (schema.is_null() || (schema.is_object() && schema.empty())) return g_.add_map(any(1));
    DSA_ASSIGN_OR_RETURN(int32_t id, compile(schema));
    const Elem& e = g_.elem(id);
    if (e.kind != ElemKind::kDispatch || e.slots[kSlotObject] < 0)
        return invalid_argument("invalid JSON schema: the function parameters must describe an object");
    return e.slots[kSlotObject];
}

StatusOr<RawSplit> SchemaCompiler::split(const OrderedJson& schema) {
    RawSplit out;
    const OrderedJson* s = &schema;
    for (int hops = 0; s->is_object() && s->contains("$ref") && hops < 16; ++hops) {
        if (!(*s)["$ref"].is_string()) return invalid_argument("invalid JSON schema: '$ref' must be a string");
        DSA_ASSIGN_OR_RETURN(s, resolve((*s)["$ref"].get<std::string>()));
    }
    auto values = s->is_object() && s->contains("enum") ? s->find("enum")
                  : s->is_object()                      ? s->find("const")
                                                        : s->end();
    if (s->is_object() && values != s->end()) {
        OrderedJson list = values.key() == "const" ? OrderedJson::array({*values}) : *values;
        if (!list.is_array() || list.empty())
            return invalid_argument("invalid JSON schema: 'enum' must be a non-empty array");
        std::vector<std::pair<std::string, int32_t>> others;
        for (const auto& v : list) {
            if (v.is_string())
                out.string_enum.push_back(v.get<std::string>());
            else
                others.emplace_back(dump(v), -1);
        }
        out.string_ok = !out.string_enum.empty();
        if (!others.empty()) out.json = g_.add_alt(std::move(others));
        return out;
    }
    DSA_ASSIGN_OR_RETURN(int32_t id, compile(*s));
    const Elem& e = g_.elem(id);
    if (e.kind != ElemKind::kDispatch) {  // not splittable by type: JSON only
        out.json = id;
        return out;
    }
    std::array<int32_t, kNumSlots> slots = e.slots;
    out.string_ok = slots[kSlotString] >= 0;
    slots[kSlotString] = -1;
    if (std::any_of(slots.begin(), slots.end(), [](int32_t x) { return x >= 0; })) out.json = g_.add_dispatch(slots);
    return out;
}

StatusOr<ParamList> list_params(const OrderedJson& s, const OrderedJson& /*document*/) {
    ParamList out;
    if (s.is_null() || s.is_boolean()) {
        out.free = true;
        return out;
    }
    if (!s.is_object()) return invalid_argument("invalid JSON schema: the parameters must be an object schema");
    std::set<std::string> required;
    if (auto it = s.find("required"); it != s.end()) {
        if (!it->is_array()) return invalid_argument("invalid JSON schema: 'required' must be an array of strings");
        for (const auto& r : *it) {
            if (!r.is_string()) return invalid_argument("invalid JSON schema: 'required' must be an array of strings");
            required.insert(r.get<std::string>());
        }
    }
    auto props = s.find("properties");
    if (props != s.end() && !props->is_object())
        return invalid_argument("invalid JSON schema: 'properties' must be an object");
    auto addl = s.find("additionalProperties");
    if (addl != s.end() && !addl->is_boolean() && !addl->is_object())
        return invalid_argument("invalid JSON schema: 'additionalProperties' must be a boolean or a schema");
    const bool no_props = props == s.end() || props->empty();
    const bool closed = addl != s.end() && addl->is_boolean() && !addl->get<bool>();
    if (no_props && required.empty() && !closed) {
        out.free = true;
        return out;
    }
    std::set<std::string> listed;
    if (props != s.end()) {
        for (const auto& [name, sub] : props->items()) {
            out.params.push_back({name, sub, required.count(name) > 0});
            listed.insert(name);
        }
    }
    for (const std::string& r : required)  // required but not described: any value
        if (!listed.count(r)) out.params.push_back({r, OrderedJson::object(), true});
    return out;
}

}  // namespace dsa::constrain
