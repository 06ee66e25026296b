// Invariant checks. A failed DSA_CHECK is a bug in dsaserve, never a user error: it prints the condition,
// the values compared and the source location, then aborts. User-caused failures use Status (status.h).
#pragma once

#include <memory>
#include <sstream>
#include <string>

namespace dsa::detail {

[[noreturn]] void check_failed(const char* file, int line, const std::string& what);

// Collects an optional streamed message and aborts when destroyed.
class CheckFailure {
public:
    CheckFailure(const char* file, int line, std::string what) : file_(file), line_(line), what_(std::move(what)) {}
    [[noreturn]] ~CheckFailure() noexcept(false) {
        std::string msg = what_;
        std::string extra = stream_.str();
        if (!extra.empty()) msg += " : " + extra;
        check_failed(file_, line_, msg);
    }
    std::ostream& stream() { return stream_; }

private:
    const char* file_;
    int line_;
    std::string what_;
    std::ostringstream stream_;
};

template <typename A, typename B>
std::string format_binary(const char* expr, const A& a, const B& b) {
    std::ostringstream os;
    os << "check failed: " << expr << " (" << a << " vs " << b << ")";
    return os.str();
}

template <typename A, typename B, typename Op>
std::unique_ptr<std::string> check_op(const A& a, const B& b, Op op, const char* expr) {
    if (op(a, b)) return nullptr;
    return std::make_unique<std::string>(format_binary(expr, a, b));
}

}  // namespace dsa::detail

#define DSA_CHECK(cond)                                                                   \
    if (__builtin_expect(!!(cond), 1)) {                                                  \
    } else                                                                                \
        ::dsa::detail::CheckFailure(__FILE__, __LINE__, "check failed: " #cond).stream()

#define DSA_CHECK_OP(a, b, op)                                                                           \
    if (auto _dsa_r = ::dsa::detail::check_op(                                                           \
            (a), (b), [](const auto& x, const auto& y) { return x op y; }, #a " " #op " " #b);            \
        !_dsa_r) {                                                                                       \
    } else                                                                                               \
        ::dsa::detail::CheckFailure(__FILE__, __LINE__, *_dsa_r).stream()

#define DSA_CHECK_EQ(a, b) DSA_CHECK_OP(a, b, ==)
#define DSA_CHECK_NE(a, b) DSA_CHECK_OP(a, b, !=)
#define DSA_CHECK_LT(a, b) DSA_CHECK_OP(a, b, <)
#define DSA_CHECK_LE(a, b) DSA_CHECK_OP(a, b, <=)
#define DSA_CHECK_GT(a, b) DSA_CHECK_OP(a, b, >)
#define DSA_CHECK_GE(a, b) DSA_CHECK_OP(a, b, >=)
