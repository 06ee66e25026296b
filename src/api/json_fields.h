// Typed readers for request JSON fields with pydantic-like messages ("temperature: Input should be a valid
// number"). A JSON null reads as "absent" everywhere, as in SGLang's request models.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/status.h"

namespace dsa::api {

class FieldReader {
public:
    // `obj` must outlive the reader; `where` prefixes messages (e.g. "sampling_params.").
    explicit FieldReader(const OrderedJson& obj, std::string where = "") : obj_(obj), where_(std::move(where)) {}

    const OrderedJson* get(std::string_view key) const;  // nullptr when absent or null
    Status read(std::string_view key, std::optional<double>& out) const;
    Status read(std::string_view key, std::optional<int64_t>& out) const;
    Status read(std::string_view key, std::optional<bool>& out) const;
    Status read(std::string_view key, std::optional<std::string>& out) const;
    // A string or an array of strings.
    Status read_strings(std::string_view key, std::vector<std::string>& out) const;
    Status read_ids(std::string_view key, std::vector<int32_t>& out) const;

    // Same as read() but fills a plain value only when present.
    template <typename T, typename U>
    Status read_into(std::string_view key, U& out) const {
        std::optional<T> v;
        DSA_RETURN_IF_ERROR(read(key, v));
        if (v) out = static_cast<U>(*v);
        return Status::ok();
    }

    Status type_error(std::string_view key, std::string_view expected) const;

private:
    const OrderedJson& obj_;
    std::string where_;
};

// A token id array (each an integer in [0, 2^31)).
StatusOr<std::vector<int32_t>> json_to_ids(const OrderedJson& value, std::string_view what);

// Valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view text);

}  // namespace dsa::api
