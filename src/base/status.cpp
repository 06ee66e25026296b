// Status names and formatting.
#include "base/status.h"

namespace dsa {

const char* status_code_name(StatusCode code) {
    switch (code) {
        case StatusCode::kOk: return "ok";
        case StatusCode::kInvalidArgument: return "invalid_argument";
        case StatusCode::kNotFound: return "not_found";
        case StatusCode::kOutOfRange: return "out_of_range";
        case StatusCode::kFailedPrecondition: return "failed_precondition";
        case StatusCode::kResourceExhausted: return "resource_exhausted";
        case StatusCode::kUnauthenticated: return "unauthenticated";
        case StatusCode::kUnimplemented: return "unimplemented";
        case StatusCode::kDataLoss: return "data_loss";
        case StatusCode::kUnavailable: return "unavailable";
        case StatusCode::kCancelled: return "cancelled";
        case StatusCode::kInternal: return "internal";
    }
    return "unknown";
}

std::string Status::to_string() const {
    if (is_ok()) return "ok";
    return fmt::format("{}: {}", status_code_name(code_), message_);
}

}  // namespace dsa
