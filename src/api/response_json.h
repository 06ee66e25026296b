// JSON shapes of responses and SSE chunks, key order as SGLang serialises them (API_SPEC §2.4-§2.8). Pure
// functions of their inputs so that tests can pin every shape.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/text_services.h"
#include "base/json.h"
#include "engine/engine_client.h"

namespace dsa::api {

struct ChunkHeader {
    std::string id;
    std::string object;  // "chat.completion.chunk", "text_completion", …
    int64_t created = 0;
    std::string model;
};

struct UsageCounts {
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    int64_t cached_tokens = 0;
    int64_t reasoning_tokens = 0;
    bool cache_report = false;  // --enable-cache-report
};

OrderedJson header_json(const ChunkHeader& h);
// {"prompt_tokens","total_tokens","completion_tokens","prompt_tokens_details","reasoning_tokens"}
OrderedJson usage_json(const UsageCounts& u);

// Compact chat chunk choice: {"index","delta","logprobs","finish_reason","matched_stop"}.
OrderedJson chat_choice_json(int index, OrderedJson delta, OrderedJson logprobs, OrderedJson finish_reason,
                             OrderedJson matched_stop);
OrderedJson chat_chunk(const ChunkHeader& h, OrderedJson choice);
OrderedJson role_delta();                              // {"reasoning_content":null,"role":"assistant","content":""}
OrderedJson reasoning_delta(const std::string& text);  // {"reasoning_content":text}
OrderedJson content_delta(const std::string& text);    // {"reasoning_content":null,"content":text}
OrderedJson empty_delta();                             // {"reasoning_content":null}
// Full-shape delta used with tool parsing: {"role":null,"content":…,"reasoning_content":null,"tool_calls":…}
OrderedJson tool_mode_delta(const std::optional<std::string>& content, OrderedJson tool_calls);
OrderedJson tool_call_fragment_json(const ToolCallFragment& f);

// OpenAI chat logprobs {"content":[{"token","bytes","logprob","top_logprobs":[…]}]}.
OrderedJson chat_logprobs_json(const std::vector<engine::TokenLogprob>& lps, const TextCodec* codec);
// Legacy completions logprobs {"text_offset","token_logprobs","tokens","top_logprobs"}.
OrderedJson completion_logprobs_json(const std::vector<engine::TokenLogprob>& lps, const TextCodec* codec,
                                     bool with_top);
// Native triples [logprob, token_id, text_or_null] and per-position top lists.
OrderedJson native_token_logprobs(const std::vector<engine::TokenLogprob>& lps, const TextCodec* codec, bool text);
OrderedJson native_top_logprobs(const std::vector<engine::TokenLogprob>& lps, const TextCodec* codec, bool text);

// UTF-8 bytes of a string as a JSON array of ints.
OrderedJson bytes_json(const std::string& s);

}  // namespace dsa::api
