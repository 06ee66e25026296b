// Minimal leveled logging to stderr: DSA_LOG(kInfo) << "..." . Thread-safe per line. The level is set from
// the CLI (--log-level) or DSA_LOG_LEVEL.
#pragma once

#include <sstream>
#include <string_view>

namespace dsa {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void set_log_level(LogLevel level);
LogLevel log_level();
bool parse_log_level(std::string_view name, LogLevel* out);

namespace detail {
class LogLine {
public:
    LogLine(LogLevel level, const char* file, int line);
    ~LogLine();
    std::ostream& stream() { return stream_; }

private:
    LogLevel level_;
    std::ostringstream stream_;
};
}  // namespace detail

}  // namespace dsa

#define DSA_LOG(level)                                                                 \
    if (::dsa::LogLevel::level < ::dsa::log_level()) {                                 \
    } else                                                                             \
        ::dsa::detail::LogLine(::dsa::LogLevel::level, __FILE__, __LINE__).stream()
