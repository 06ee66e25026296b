// JSON schema -> grammar elements, for a practical subset: type (one or a list), enum, const, properties /
// required / additionalProperties, items / minItems / maxItems, anyOf / oneOf over distinct types, $ref into
// the same document (recursion allowed). Keywords outside the subset (pattern, minimum, formats...) are not
// enforced; a schema with none of the recognised keywords accepts any JSON value. Malformed schemas are an
// InvalidArgument (HTTP 400). Objects with properties are written in declaration order, without extra keys.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/json.h"
#include "base/status.h"
#include "constrain/grammar.h"

namespace dsa::constrain {

// How a value of a schema can be written where strings appear raw (DSML string="true", GLM arg values) and
// everything else as JSON.
struct RawSplit {
    bool string_ok = false;                // a raw string is allowed
    std::vector<std::string> string_enum;  // when non-empty, the only allowed raw strings
    int32_t json = -1;                     // element for the non-string values, -1 if there are none
};

class SchemaCompiler {
  public:
    // `document` is the root the $refs point into (usually the schema itself).
    SchemaCompiler(Grammar& g, const OrderedJson& document) : g_(g), doc_(document) {}

    StatusOr<int32_t> compile(const OrderedJson& schema);
    StatusOr<RawSplit> split(const OrderedJson& schema);
    // An object element for a tool's `parameters` (missing / null / {} = any object).
    StatusOr<int32_t> compile_object_schema(const OrderedJson& schema);
    // Any JSON value (nesting bounded).
    int32_t any(int depth = 0);

  private:
    StatusOr<int32_t> compile_at(const OrderedJson& schema, int depth);
    StatusOr<int32_t> compile_ref(const std::string& ref, int depth);
    StatusOr<const OrderedJson*> resolve(const std::string& ref) const;
    StatusOr<int32_t> compile_types(const OrderedJson& schema, int depth);
    StatusOr<int32_t> compile_union(const OrderedJson& alts, int depth);
    StatusOr<int32_t> compile_object(const OrderedJson& schema, int depth);
    StatusOr<int32_t> compile_array(const OrderedJson& schema, int depth);
    StatusOr<int32_t> type_elem(const std::string& type, const OrderedJson& schema, int depth);

    Grammar& g_;
    const OrderedJson& doc_;
    std::map<std::string, int32_t> refs_;
    std::map<int, int32_t> any_;
};

// Properties of a tool's parameters schema in declaration order (for formats that write one parameter at a
// time); `free` when the schema allows arbitrary keys.
struct ParamList {
    struct Param {
        std::string name;
        OrderedJson schema;
        bool required = false;
    };
    std::vector<Param> params;
    bool free = false;
};
StatusOr<ParamList> list_params(const OrderedJson& parameters, const OrderedJson& document);

}  // namespace dsa::constrain
