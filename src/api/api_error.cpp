// Error bodies and SSE framing shared by every route (API_SPEC §2.1, §2.5).
#include "api/api_error.h"

namespace dsa::api {

ApiError ApiError::from_status(const Status& status, std::string type) {
    int http = 500;
    switch (status.code()) {
        case StatusCode::kInvalidArgument:
        case StatusCode::kOutOfRange:
        case StatusCode::kFailedPrecondition: http = 400; break;
        case StatusCode::kNotFound: http = 404; break;
        case StatusCode::kUnauthenticated: http = 401; break;
        case StatusCode::kResourceExhausted: http = 413; break;
        case StatusCode::kUnimplemented: http = 501; break;
        case StatusCode::kUnavailable: http = 503; break;
        default: http = 500; break;
    }
    if (http == 500) return ApiError{500, "Internal server error: " + status.message(), "InternalServerError"};
    if (http == 501) type = "NotImplementedError";
    return ApiError{http, status.message(), std::move(type)};
}

std::string dump_json(const OrderedJson& value) {
    return value.dump(-1, ' ', /*ensure_ascii=*/false, OrderedJson::error_handler_t::replace);
}

OrderedJson openai_error_object(const ApiError& error) {
    OrderedJson j;
    j["object"] = "error";
    j["message"] = error.message;
    j["type"] = error.type;
    j["param"] = nullptr;
    j["code"] = error.http_status;
    return j;
}

std::string openai_error_body(const ApiError& error) { return dump_json(openai_error_object(error)); }

std::string sse_event(const std::string& payload) { return "data: " + payload + "\n\n"; }

std::string openai_stream_error_event(const ApiError& error) {
    OrderedJson j;
    j["error"] = openai_error_object(error);
    return sse_event(dump_json(j));
}

std::string native_error_body(const ApiError& error) {
    OrderedJson j;
    j["error"]["message"] = error.message;
    return dump_json(j);
}

std::string native_stream_error_event(const ApiError& error) {
    OrderedJson j;
    j["error"]["message"] = error.message;
    j["error"]["type"] = "invalid_request_error";
    j["error"]["code"] = error.http_status;
    j["error"]["retryable"] = false;
    return sse_event(dump_json(j));
}

std::string model_not_found_body(const std::string& model) {
    OrderedJson j;
    j["error"]["message"] = "The model '" + model + "' does not exist";
    j["error"]["type"] = "invalid_request_error";
    j["error"]["param"] = "model";
    j["error"]["code"] = "model_not_found";
    return dump_json(j);
}

}  // namespace dsa::api
