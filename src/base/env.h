// Registry of the environment variables dsaserve reads (SGLang-compatible names where they exist). Every
// variable is declared once with its default and meaning, so `dsaserve --help-env` can list them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsa {

struct EnvVarInfo {
    std::string name;
    std::string default_value;
    std::string help;
};

// Declares a variable (idempotent) and returns its value or the default.
std::string env_string(const char* name, const char* default_value, const char* help);
int64_t env_int(const char* name, int64_t default_value, const char* help);
bool env_bool(const char* name, bool default_value, const char* help);
// A non-negative integer (a count); unset or empty: the default; anything else fails with a message naming it.
int64_t env_count(const char* name, int64_t default_value, const char* help);

std::vector<EnvVarInfo> registered_env_vars();

}  // namespace dsa
