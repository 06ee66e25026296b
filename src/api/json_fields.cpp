// Typed JSON field readers and UTF-8 validation for request parsing.
#include "api/json_fields.h"

#include <cmath>
#include <limits>

namespace dsa::api {

const OrderedJson* FieldReader::get(std::string_view key) const {
    if (!obj_.is_object()) return nullptr;
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
}

Status FieldReader::type_error(std::string_view key, std::string_view expected) const {
    return invalid_argument("1 validation error: {}{}: Input should be {}", where_, key, expected);
}

Status FieldReader::read(std::string_view key, std::optional<double>& out) const {
    const OrderedJson* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_number()) return type_error(key, "a valid number");
    out = v->get<double>();
    return Status::ok();
}

Status FieldReader::read(std::string_view key, std::optional<int64_t>& out) const {
    const OrderedJson* v = get(key);
    if (!v) return Status::ok();
    if (v->is_number_integer()) {
        if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
            return type_error(key, "a valid integer");
        out = v->get<int64_t>();
        return Status::ok();
    }
    if (v->is_number_float()) {
        double d = v->get<double>();
        if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e18) {
            out = static_cast<int64_t>(d);
            return Status::ok();
        }
    }
    return type_error(key, "a valid integer");
}

Status FieldReader::read(std::string_view key, std::optional<bool>& out) const {
    const OrderedJson* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_boolean()) return type_error(key, "a valid boolean");
    out = v->get<bool>();
    return Status::ok();
}

Status FieldReader::read(std::string_view key, std::optional<std::string>& out) const {
    const OrderedJson* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_string()) return type_error(key, "a valid string");
    out = v->get<std::string>();
    return Status::ok();
}

Status FieldReader::read_strings(std::string_view key, std::vector<std::string>& out) const {
    const OrderedJson* v = get(key);
    if (!v) return Status::ok();
    if (v->is_string()) {
        out.push_back(v->get<std::string>());
        return Status::ok();
    }
    if (!v->is_array()) return type_error(key, "a valid string or a list of strings");
    for (const auto& e : *v) {
        if (!e.is_string()) return type_error(key, "a valid string or a list of strings");
        out.push_back(e.get<std::string>());
    }
    return Status::ok();
}

Status FieldReader::read_ids(std::string_view key, std::vector<int32_t>& out) const {
    const OrderedJson* v = get(key);
    if (!v) return Status::ok();
    auto ids = json_to_ids(*v, where_ + std::string(key));
    if (!ids.is_ok()) return ids.status();
    out = std::move(ids).value();
    return Status::ok();
}

StatusOr<std::vector<int32_t>> json_to_ids(const OrderedJson& value, std::string_view what) {
    if (!value.is_array()) return invalid_argument("1 validation error: {}: Input should be a valid list", what);
    std::vector<int32_t> ids;
    ids.reserve(value.size());
    for (const auto& e : value) {
        if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > std::numeric_limits<int32_t>::max())
            return invalid_argument("1 validation error: {}: Input should be a list of non-negative token ids", what);
        ids.push_back(static_cast<int32_t>(e.get<int64_t>()));
    }
    return ids;
}

bool is_valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        uint32_t cp = c & (0x7F >> len);
        for (int k = 1; k < len; ++k) {
            unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

}  // namespace dsa::api
