// Typed field readers over config.json objects (see config_json.h).
#include "model/config_json.h"

#include <cmath>
#include <limits>

namespace dsa::model::config_json {
namespace {

Status missing_field(std::string_view parent, std::string_view key) {
    return invalid_argument("config field '{}' is required but missing", field_path(parent, key));
}

Status wrong_type(std::string_view parent, std::string_view key, std::string_view expected, const Json& value) {
    return invalid_argument("config field '{}' must be {}, got {}", field_path(parent, key), expected,
                            describe_value(value));
}

}  // namespace

const Json* find_field(const Json& obj, std::string_view key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(std::string(key));
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

std::string field_path(std::string_view parent, std::string_view key) {
    if (parent.empty()) return std::string(key);
    return std::string(parent) + "." + std::string(key);
}

std::string describe_value(const Json& value) {
    std::string text = value.dump();
    if (text.size() > 60) text = text.substr(0, 57) + "...";
    return text + " (" + value.type_name() + ")";
}

bool json_to_int(const Json& value, int64_t* out) {
    if (value.is_number_integer()) {
        *out = value.get<int64_t>();
        return true;
    }
    if (value.is_number_unsigned()) {
        uint64_t u = value.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
        *out = static_cast<int64_t>(u);
        return true;
    }
    if (value.is_number_float()) {
        double d = value.get<double>();
        if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) return false;
        *out = static_cast<int64_t>(d);
        return true;
    }
    return false;
}

Status read_int(const Json& obj, std::string_view key, int64_t* out, Need need, std::string_view parent) {
    const Json* v = find_field(obj, key);
    if (v == nullptr) return need == Need::kRequired ? missing_field(parent, key) : Status::ok();
    if (!json_to_int(*v, out)) return wrong_type(parent, key, "an integer", *v);
    return Status::ok();
}

Status read_double(const Json& obj, std::string_view key, double* out, Need need, std::string_view parent) {
    const Json* v = find_field(obj, key);
    if (v == nullptr) return need == Need::kRequired ? missing_field(parent, key) : Status::ok();
    if (!v->is_number()) return wrong_type(parent, key, "a number", *v);
    *out = v->get<double>();
    return Status::ok();
}

Status read_bool(const Json& obj, std::string_view key, bool* out, Need need, std::string_view parent) {
    const Json* v = find_field(obj, key);
    if (v == nullptr) return need == Need::kRequired ? missing_field(parent, key) : Status::ok();
    if (!v->is_boolean()) return wrong_type(parent, key, "a boolean", *v);
    *out = v->get<bool>();
    return Status::ok();
}

Status read_string(const Json& obj, std::string_view key, std::string* out, Need need, std::string_view parent) {
    const Json* v = find_field(obj, key);
    if (v == nullptr) return need == Need::kRequired ? missing_field(parent, key) : Status::ok();
    if (!v->is_string()) return wrong_type(parent, key, "a string", *v);
    *out = v->get<std::string>();
    return Status::ok();
}

}  // namespace dsa::model::config_json
