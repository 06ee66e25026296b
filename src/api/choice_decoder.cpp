// Per-choice decoding: ids -> text with stop handling and token accounting (see choice_decoder.h).
#include "api/choice_decoder.h"

namespace dsa::api {

ChoiceDecoder::ChoiceDecoder(std::string rid, std::unique_ptr<Detokenizer> detok, TextOptions options,
                             std::optional<int32_t> think_end_token, bool thinking)
    : rid_(std::move(rid)),
      detok_(std::move(detok)),
      options_(std::move(options)),
      stop_(options_.stop, options_.no_stop_trim),
      think_end_token_(think_end_token),
      in_reasoning_(thinking) {}

bool ChoiceDecoder::take_stop_abort() {
    bool v = stop_abort_pending_;
    stop_abort_pending_ = false;
    return v;
}

void ChoiceDecoder::count_reasoning(int32_t id) {
    if (!in_reasoning_) return;
    ++reasoning_tokens_;
    if (think_end_token_ && id == *think_end_token_) in_reasoning_ = false;
}

bool ChoiceDecoder::accept_token(int32_t id, bool trim, DecodedStep& step) {
    count_reasoning(id);
    if (trim) return true;
    step.ids.push_back(id);
    output_ids_.push_back(id);
    std::string out = stop_.feed(detok_->add(id));
    step.text += out;
    text_ += out;
    if (!stop_.matched()) return true;
    finish_.kind = engine::FinishKind::kStop;
    finish_.matched_string = stop_.matched_stop();
    stop_abort_pending_ = true;
    return false;
}

void ChoiceDecoder::finish_from_engine(const engine::TokenEvent& event, DecodedStep& step) {
    std::string tail = stop_.feed(detok_->flush());
    if (stop_.matched()) {
        finish_.kind = engine::FinishKind::kStop;
        finish_.matched_string = stop_.matched_stop();
    } else {
        tail += stop_.flush();
        const auto& f = event.finish;
        finish_.kind = f.kind == engine::FinishKind::kNone ? engine::FinishKind::kAbort : f.kind;
        finish_.matched_token = f.matched_token;
        finish_.length = f.length;
        finish_.message = f.message;
        finish_.status_code = f.status_code;
    }
    step.text += tail;
    text_ += tail;
    completion_tokens_ = event.completion_tokens;
}

DecodedStep ChoiceDecoder::feed(const engine::TokenEvent& event) {
    DecodedStep step;
    if (finished()) return step;
    started_ = true;
    prompt_tokens_ = event.prompt_tokens;
    cached_tokens_ = event.cached_tokens;
    int32_t before = event.completion_tokens - static_cast<int32_t>(event.token_ids.size());
    const auto& f = event.finish;
    for (size_t i = 0; i < event.token_ids.size(); ++i) {
        int32_t id = event.token_ids[i];
        bool last = i + 1 == event.token_ids.size();
        bool trim = event.finished && last && f.kind == engine::FinishKind::kStop && f.matched_token == id &&
                    !options_.no_stop_trim;
        completion_tokens_ = before + static_cast<int32_t>(i) + 1;
        if (i < event.logprobs.size()) {
            step.logprobs.push_back(event.logprobs[i]);
            logprobs_.push_back(event.logprobs[i]);
        }
        if (!accept_token(id, trim, step)) return step;
    }
    if (event.finished) finish_from_engine(event, step);
    return step;
}

}  // namespace dsa::api
