// ChoiceDecoder: the text side of one engine request (one choice). It turns TokenEvents into emitted text:
// stop-token trimming, incremental detokenization, stop-string holdback and trimming (API_SPEC §8.4), and the
// token accounting (completion tokens up to the token that finished the choice, reasoning tokens). Events
// after the choice finished (e.g. tokens the engine produced before a stop-string abort arrived) are ignored.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/request_types.h"
#include "api/stop_matcher.h"
#include "api/text_services.h"
#include "engine/engine_client.h"

namespace dsa::api {

struct ChoiceFinish {
    engine::FinishKind kind = engine::FinishKind::kNone;
    std::optional<int32_t> matched_token;
    std::optional<std::string> matched_string;
    int32_t length = 0;
    std::string message;      // abort
    int32_t status_code = 0;  // abort with an error status (0 = user abort)
};

struct DecodedStep {
    std::string text;                            // newly emitted text
    std::vector<int32_t> ids;                    // newly accepted output ids (trimmed stop token excluded)
    std::vector<engine::TokenLogprob> logprobs;  // logprobs of the accepted tokens
};

class ChoiceDecoder {
public:
    // `think_end_token`: the id that closes reasoning, for reasoning_tokens; `thinking`: count reasoning tokens.
    ChoiceDecoder(std::string rid, std::unique_ptr<Detokenizer> detok, TextOptions options,
                  std::optional<int32_t> think_end_token, bool thinking);

    DecodedStep feed(const engine::TokenEvent& event);

    const std::string& rid() const { return rid_; }
    bool started() const { return started_; }
    bool finished() const { return finish_.kind != engine::FinishKind::kNone; }
    const ChoiceFinish& finish() const { return finish_; }
    // True once, after the front end ended this choice on a stop string: the engine request must be aborted.
    bool take_stop_abort();

    int32_t prompt_tokens() const { return prompt_tokens_; }
    int32_t cached_tokens() const { return cached_tokens_; }
    int32_t completion_tokens() const { return completion_tokens_; }
    int32_t reasoning_tokens() const { return reasoning_tokens_; }
    const std::string& text() const { return text_; }
    const std::vector<int32_t>& output_ids() const { return output_ids_; }
    const std::vector<engine::TokenLogprob>& logprobs() const { return logprobs_; }

private:
    // Returns false when a stop string ended the choice at this token.
    bool accept_token(int32_t id, bool trim, DecodedStep& step);
    void finish_from_engine(const engine::TokenEvent& event, DecodedStep& step);
    void count_reasoning(int32_t id);

    std::string rid_;
    std::unique_ptr<Detokenizer> detok_;
    TextOptions options_;
    StopStringMatcher stop_;
    std::optional<int32_t> think_end_token_;
    bool in_reasoning_ = false;
    bool started_ = false;
    bool stop_abort_pending_ = false;
    ChoiceFinish finish_;
    int32_t prompt_tokens_ = 0;
    int32_t cached_tokens_ = 0;
    int32_t completion_tokens_ = 0;
    int32_t reasoning_tokens_ = 0;
    std::string text_;
    std::vector<int32_t> output_ids_;
    std::vector<engine::TokenLogprob> logprobs_;
};

}  // namespace dsa::api
