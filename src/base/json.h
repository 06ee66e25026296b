// JSON type aliases used across modules (nlohmann). ordered_json keeps insertion order, which matters where
// Python's dict order is reproduced (tojson in chat templates, tool-call arguments).
#pragma once

#include <nlohmann/json.hpp>

namespace dsa {
using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;
}  // namespace dsa
