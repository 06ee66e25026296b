// bench-serving's backends, named as in SGLang's bench_serving: `sglang` / `sglang-native` (POST /generate),
// `sglang-oai` / `vllm` / `lmdeploy` (POST /v1/completions) and `sglang-oai-chat` / `vllm-chat` /
// `lmdeploy-chat` (POST /v1/chat/completions). Builds each request body, parses the streamed (SSE) or whole
// response, and times one request with SGLang's rules for TTFT, ITL and latency.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "app/bench_datasets.h"
#include "app/bench_http.h"
#include "app/bench_metrics.h"
#include "base/json.h"
#include "base/status.h"

namespace dsa::app {

enum class BackendKind { kGenerate, kCompletions, kChat };

StatusOr<BackendKind> parse_backend(const std::string& name);
const char* backend_path(BackendKind kind);  // "/generate", "/v1/completions", "/v1/chat/completions"

struct BodyOptions {
    std::string model;            // OpenAI "model" field
    bool stream = true;           // false: --disable-stream
    bool ignore_eos = true;       // false: --disable-ignore-eos
    Json extra = Json::object();  // --extra-request-body, merged last
};

// The request body for `row`. The chat backend needs a text prompt (callers decode id prompts first).
Json request_body(BackendKind kind, const DatasetRow& row, const BodyOptions& opt);

// One response event: text (cumulative for /generate, a delta for the OpenAI routes) and the completion token
// count when the server gave one.
struct StreamEvent {
    bool done = false;  // `data: [DONE]`
    std::string text;
    int64_t completion_tokens = -1;
    std::string error;  // the server's error object, dumped, when the event is one
};
// One SSE line; nullopt for lines that carry no event (blank, comments, malformed JSON).
std::optional<StreamEvent> parse_stream_line(BackendKind kind, const std::string& line);
// A whole (non-streamed) response body.
std::optional<StreamEvent> parse_full_response(BackendKind kind, const std::string& body);

// Folds a request's events into its RequestResult as SGLang does: TTFT at the first event with text; for
// /generate each later event's gap is split evenly over its new tokens; for the OpenAI routes one ITL per
// event with text. Output length: the server's count, else the requested length. A request with no text at
// all gets TTFT = its latency (send_request).
class RequestTimer {
  public:
    using Clock = std::chrono::steady_clock;
    RequestTimer(BackendKind kind, RequestResult* result, int requested_output_len, Clock::time_point start);
    void on_event(const StreamEvent& ev, Clock::time_point now);
    // Ends the request at `now` (the last byte seen).
    void finish(Clock::time_point now);
    bool saw_text() const { return !first_; }

  private:
    BackendKind kind_;
    RequestResult* r_;
    Clock::time_point start_, last_;
    int64_t tokens_ = 0;
    bool first_ = true;
};

// Sends one request and measures it. Never throws; failures come back as success=false with the error.
RequestResult send_request(const Endpoint& ep, BackendKind kind, const DatasetRow& row, const BodyOptions& opt);

}  // namespace dsa::app
