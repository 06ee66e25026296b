// Status and StatusOr<T>: the typed error for user-caused failures (bad input, malformed files, limits).
// Broken invariants are not Statuses: they abort through DSA_CHECK (check.h). Codes map onto HTTP statuses
// in api/ and onto CLI exit messages in app/.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace dsa {

enum class StatusCode {
    kOk = 0,
    kInvalidArgument,     // bad request field, bad flag value -> HTTP 400
    kNotFound,            // unknown model, missing tensor or file -> HTTP 404 / CLI error
    kOutOfRange,          // prompt longer than the context -> HTTP 400
    kFailedPrecondition,  // valid request the current state cannot serve
    kResourceExhausted,   // body too large, queue full -> HTTP 413 / 503
    kUnauthenticated,     // bad API key -> HTTP 401
    kUnimplemented,       // "not supported yet"
    kDataLoss,            // malformed or truncated checkpoint / config file
    kUnavailable,         // server shutting down
    kCancelled,           // client went away
    kInternal,            // a failure that is not the user's fault but is reported, not aborted
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
public:
    Status() = default;
    Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

    static Status ok() { return Status(); }
    bool is_ok() const { return code_ == StatusCode::kOk; }
    StatusCode code() const { return code_; }
    const std::string& message() const { return message_; }
    std::string to_string() const;

private:
    StatusCode code_ = StatusCode::kOk;
    std::string message_;
};

template <typename... Args>
Status make_error(StatusCode code, fmt::format_string<Args...> f, Args&&... args) {
    return Status(code, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status invalid_argument(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kInvalidArgument, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status data_loss(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kDataLoss, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status not_found(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kNotFound, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status unimplemented(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kUnimplemented, fmt::format(f, std::forward<Args>(args)...));
}

// StatusOr<T>: a value or a non-ok Status.
template <typename T>
class [[nodiscard]] StatusOr {
public:
    StatusOr(T value) : v_(std::move(value)) {}  // NOLINT(implicit)
    StatusOr(Status status) : v_(std::move(status)) {  // NOLINT(implicit)
        if (std::get<Status>(v_).is_ok()) v_ = Status(StatusCode::kInternal, "StatusOr built from an ok Status");
    }

    bool is_ok() const { return std::holds_alternative<T>(v_); }
    const Status& status() const {
        static const Status kOkStatus;
        return is_ok() ? kOkStatus : std::get<Status>(v_);
    }
    T& value() & { return std::get<T>(v_); }
    const T& value() const& { return std::get<T>(v_); }
    T&& value() && { return std::get<T>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

private:
    std::variant<T, Status> v_;
};

}  // namespace dsa

#define DSA_CONCAT_INNER(a, b) a##b
#define DSA_CONCAT(a, b) DSA_CONCAT_INNER(a, b)

// Returns from the current function when `expr` (a Status) is not ok.
#define DSA_RETURN_IF_ERROR(expr)                 \
    do {                                          \
        ::dsa::Status _dsa_st = (expr);           \
        if (!_dsa_st.is_ok()) return _dsa_st;     \
    } while (0)

// `DSA_ASSIGN_OR_RETURN(auto x, f());` binds the value of a StatusOr or returns its Status.
#define DSA_ASSIGN_OR_RETURN(lhs, expr) DSA_ASSIGN_OR_RETURN_IMPL(DSA_CONCAT(_dsa_so_, __LINE__), lhs, expr)
#define DSA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
    auto tmp = (expr);                            \
    if (!tmp.is_ok()) return tmp.status();        \
    lhs = std::move(tmp).value()
