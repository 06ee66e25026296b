// Typed field readers over a config.json object, shared by the config parser. A missing optional field or a
// JSON null leaves the output untouched (the default stays); a wrong type is kInvalidArgument naming the field
// (with its parent, e.g. "rope_scaling.factor"), the expected type and the value found.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/json.h"
#include "base/status.h"

namespace dsa::model::config_json {

enum class Need : uint8_t { kOptional, kRequired };

// The value of `key`, or nullptr when absent or null.
const Json* find_field(const Json& obj, std::string_view key);

// "parent.key" or "key".
std::string field_path(std::string_view parent, std::string_view key);

// A short rendering of a JSON value and its type for error messages: `"abc" (string)`.
std::string describe_value(const Json& value);

Status read_int(const Json& obj, std::string_view key, int64_t* out, Need need, std::string_view parent = {});
Status read_double(const Json& obj, std::string_view key, double* out, Need need, std::string_view parent = {});
Status read_bool(const Json& obj, std::string_view key, bool* out, Need need, std::string_view parent = {});
Status read_string(const Json& obj, std::string_view key, std::string* out, Need need, std::string_view parent = {});

// Converts a JSON number to an integer when it has an integral value (4096 or 4096.0).
bool json_to_int(const Json& value, int64_t* out);

}  // namespace dsa::model::config_json
