// Leveled logging implementation: one locked write per line, with a UTC timestamp.
#include "base/logging.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

namespace dsa {
namespace {

std::atomic<int>& level_storage() {
    static std::atomic<int> level = [] {
        LogLevel l = LogLevel::kInfo;
        if (const char* env = std::getenv("DSA_LOG_LEVEL")) parse_log_level(env, &l);
        return static_cast<int>(l);
    }();
    return level;
}

const char* level_tag(LogLevel level) {
    switch (level) {
        case LogLevel::kDebug: return "DEBUG";
        case LogLevel::kInfo: return "INFO";
        case LogLevel::kWarning: return "WARNING";
        case LogLevel::kError: return "ERROR";
    }
    return "?";
}

}  // namespace

void set_log_level(LogLevel level) { level_storage().store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(level_storage().load(std::memory_order_relaxed)); }

bool parse_log_level(std::string_view name, LogLevel* out) {
    if (name == "debug") *out = LogLevel::kDebug;
    else if (name == "info") *out = LogLevel::kInfo;
    else if (name == "warning" || name == "warn") *out = LogLevel::kWarning;
    else if (name == "error" || name == "critical") *out = LogLevel::kError;
    else return false;
    return true;
}

namespace detail {

LogLine::LogLine(LogLevel level, const char* file, int line) : level_(level) {
    (void)file;
    (void)line;
}

LogLine::~LogLine() {
    static std::mutex mu;
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char ts[32];
    std::strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    std::lock_guard<std::mutex> lock(mu);
    std::fprintf(stderr, "[%s %s] %s\n", ts, level_tag(level_), stream_.str().c_str());
}

}  // namespace detail
}  // namespace dsa
