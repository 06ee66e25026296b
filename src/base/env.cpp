// Environment-variable registry.
#include "base/env.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <string_view>

#include "base/check.h"

namespace dsa {
namespace {

std::mutex& registry_mutex() {
    static std::mutex mu;
    return mu;
}
std::map<std::string, EnvVarInfo>& registry() {
    static std::map<std::string, EnvVarInfo> r;
    return r;
}

void declare(const char* name, std::string default_value, const char* help) {
    std::lock_guard<std::mutex> lock(registry_mutex());
    registry().try_emplace(name, EnvVarInfo{name, std::move(default_value), help});
}

}  // namespace

std::string env_string(const char* name, const char* default_value, const char* help) {
    declare(name, default_value, help);
    const char* v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::string(default_value);
}

int64_t env_int(const char* name, int64_t default_value, const char* help) {
    declare(name, std::to_string(default_value), help);
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return default_value;
    char* end = nullptr;
    long long x = std::strtoll(v, &end, 10);
    return (end != nullptr && *end == '\0') ? static_cast<int64_t>(x) : default_value;
}

int64_t env_count(const char* name, int64_t default_value, const char* help) {
    declare(name, std::to_string(default_value), help);
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return default_value;
    char* end = nullptr;
    const long long x = std::strtoll(v, &end, 10);
    DSA_CHECK(end != v && *end == '\0' && x >= 0) << name << "=" << v << ": expected a non-negative count";
    return static_cast<int64_t>(x);
}

bool env_bool(const char* name, bool default_value, const char* help) {
    declare(name, default_value ? "1" : "0", help);
    const char* v = std::getenv(name);
    if (v == nullptr) return default_value;
    std::string_view s(v);
    if (s == "1" || s == "true" || s == "True" || s == "TRUE" || s == "yes") return true;
    if (s == "0" || s == "false" || s == "False" || s == "FALSE" || s == "no" || s.empty()) return false;
    return default_value;
}

std::vector<EnvVarInfo> registered_env_vars() {
    std::lock_guard<std::mutex> lock(registry_mutex());
    std::vector<EnvVarInfo> out;
    for (auto& [k, v] : registry()) out.push_back(v);
    return out;
}

}  // namespace dsa
