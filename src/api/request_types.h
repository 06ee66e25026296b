// Parsed and validated requests of the three generation routes, and the server-wide options that change
// protocol behaviour (API_SPEC §1 "server-wide options", §2.2, §2.6, §2.8).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/text_services.h"
#include "base/json.h"
#include "engine/engine_client.h"

namespace dsa::api {

// Model generation-config values used for chat requests that leave a field unset (--sampling-defaults model).
struct ChatSamplingDefaults {
    std::optional<double> temperature;
    std::optional<double> top_p;
    std::optional<int32_t> top_k;
    std::optional<double> min_p;
    std::optional<double> repetition_penalty;
};

struct ApiConfig {
    std::string served_model_name = "default";
    std::string model_path;
    std::string tokenizer_path;
    std::string model_type;            // config.json model_type
    OrderedJson architectures = OrderedJson::array();
    int32_t context_length = 0;        // tokens; 0 = unknown (no context checks)
    bool context_length_explicit = false;  // --context-length was given
    bool allow_auto_truncate = false;
    bool enable_cache_report = false;
    bool stream_include_usage_default = false;
    bool incremental_streaming_output = false;
    std::string weight_version = "default";
    OrderedJson default_chat_template_kwargs = OrderedJson::object();
    ChatSamplingDefaults chat_defaults;
    int64_t created_unix = 0;          // /v1/models "created"
};

// Text-side options of one choice (stop strings live in the front end, API_SPEC §8.4).
struct TextOptions {
    std::vector<std::string> stop;
    bool no_stop_trim = false;
    bool skip_special_tokens = true;
    bool spaces_between_special_tokens = true;
    std::optional<OrderedJson> response_schema;  // response_format json_object / json_schema: constrain output
};

struct StreamOptions {
    bool include_usage = false;
    bool continuous_usage_stats = false;
};

struct ChatRequest {
    std::string model = "default";
    std::optional<std::string> rid;
    engine::SamplingParams sampling;
    TextOptions text;
    int32_t n = 1;
    bool stream = false;
    StreamOptions stream_options;
    bool logprobs = false;
    int32_t top_logprobs = 0;
    ChatPromptInput prompt;
    std::optional<std::vector<int32_t>> input_ids;  // bypasses prompt rendering
    bool tools_active = false;                      // tools non-empty and tool_choice != "none"
    bool parallel_tool_calls = true;                // false: a constrained answer holds exactly one call
    bool separate_reasoning = true;
    bool stream_reasoning = true;
    bool force_nonempty_content = false;
};

// One prompt: raw text to encode, or ids.
struct PromptSpec {
    std::optional<std::string> text;
    std::vector<int32_t> ids;
};

struct CompletionRequest {
    std::string model = "default";
    std::optional<std::string> rid;
    engine::SamplingParams sampling;
    TextOptions text;
    int32_t n = 1;
    bool stream = false;
    StreamOptions stream_options;
    std::optional<int32_t> logprobs;  // number of top logprobs; set = logprobs requested
    bool echo = false;
    std::vector<PromptSpec> prompts;
};

struct GenerateItem {
    PromptSpec prompt;
    engine::SamplingParams sampling;
    TextOptions text;
    std::optional<std::string> rid;
};

struct NativeGenerateRequest {
    std::vector<GenerateItem> items;
    bool batch = false;  // text / input_ids was a list: the response is a list
    int32_t n = 1;       // sampling_params.n: samples per prompt (choice i*n + j is sample j of prompt i)
    bool stream = false;
    bool return_logprob = false;
    int32_t top_logprobs_num = 0;
    bool return_text_in_logprobs = false;
};

// Parsers: JSON body (already parsed) -> validated request. Errors are 400 user errors, except features that
// are not implemented yet (Unimplemented -> 501).
StatusOr<ChatRequest> parse_chat_request(const OrderedJson& body, const ApiConfig& config);
StatusOr<CompletionRequest> parse_completion_request(const OrderedJson& body, const ApiConfig& config);
StatusOr<NativeGenerateRequest> parse_generate_request(const OrderedJson& body, const ApiConfig& config);

// Context-length checks after the prompt is known (API_SPEC §2.1 messages). With --allow-auto-truncate the
// prompt (keeping its start) or max_new_tokens is clipped instead.
Status check_context(const ApiConfig& config, std::vector<int32_t>& input_ids, engine::SamplingParams& sampling);

}  // namespace dsa::api
