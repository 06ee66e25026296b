// ApiError: a user-facing failure with its HTTP status and the OpenAI-style (or native) error body of
// API_SPEC §2.1. Status codes from base/ map onto HTTP statuses here; the server only writes the result.
#pragma once

#include <string>

#include "base/json.h"
#include "base/status.h"

namespace dsa::api {

struct ApiError {
    int http_status = 400;
    std::string message;
    std::string type = "BadRequest";  // "BadRequest", "BadRequestError", "Bad Request", "InternalServerError"...

    static ApiError bad_request(std::string message, std::string type = "BadRequest") {
        return ApiError{400, std::move(message), std::move(type)};
    }
    // Maps a Status onto an HTTP status: InvalidArgument/OutOfRange 400, NotFound 404, Unauthenticated 401,
    // ResourceExhausted 413, Unimplemented 501, Unavailable 503, everything else 500.
    static ApiError from_status(const Status& status, std::string type = "BadRequest");
};

// {"object":"error","message":…,"type":…,"param":null,"code":<http status>}
OrderedJson openai_error_object(const ApiError& error);
std::string openai_error_body(const ApiError& error);
// data: {"error": {…openai error object…}}\n\n  (the caller appends data: [DONE])
std::string openai_stream_error_event(const ApiError& error);
// {"error": {"message": …}}  (native routes)
std::string native_error_body(const ApiError& error);
// data: {"error": {"message","type":"invalid_request_error","code","retryable":false}}\n\n
std::string native_stream_error_event(const ApiError& error);
// /v1/models/{id} for an unknown id (404, API_SPEC §2.1).
std::string model_not_found_body(const std::string& model);

// One SSE event: "data: <payload>\n\n".
std::string sse_event(const std::string& payload);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// JSON text as SGLang sends it: UTF-8 kept, invalid UTF-8 replaced (never throws).
std::string dump_json(const OrderedJson& value);

}  // namespace dsa::api
