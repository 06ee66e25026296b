// /v1/completions output side (API_SPEC §2.6): prompts encoded without a chat template, no reasoning or tool
// parsing; choices indexed prompt * n + sample; legacy logprobs; optional echo of the prompt text.
#include "api/generation.h"
#include "api/response_json.h"

namespace dsa::api {
namespace {

class CompletionGeneration final : public Generation {
public:
    CompletionGeneration(const ApiContext& ctx, CompletionRequest req)
        : Generation(ctx, req.stream), req_(std::move(req)) {}

    Status init();
    std::string on_event(size_t i, const engine::TokenEvent& event) override;
    HttpReply final_reply() override;

private:
    ChunkHeader header() const {
        return ChunkHeader{id_, "text_completion", ctx_.now_unix ? ctx_.now_unix() : unix_now(), req_.model};
    }
    UsageCounts usage() const;
    OrderedJson logprobs_of(const std::vector<engine::TokenLogprob>& lps) const;
    std::string echo_prefix(size_t i) const;

    CompletionRequest req_;
    std::vector<std::string> prompt_texts_;  // for echo
    std::vector<size_t> prompt_of_choice_;
    std::vector<bool> echoed_;
    bool errored_ = false;
};

Status CompletionGeneration::init() {
    if (req_.rid) id_ = *req_.rid;
    const TextCodec* codec = ctx_.services.codec.get();
    for (size_t p = 0; p < req_.prompts.size(); ++p) {
        auto& prompt = req_.prompts[p];
        if (prompt.text) {
            if (!codec) return make_error(StatusCode::kInternal, "no tokenizer configured");
            prompt.ids = codec->encode(*prompt.text);
            if (prompt.ids.empty()) return invalid_argument("Prompt cannot be empty");
        }
        engine::SamplingParams sp = req_.sampling;
        DSA_RETURN_IF_ERROR(check_context(ctx_.config, prompt.ids, sp));
        std::string text = prompt.text ? *prompt.text : (req_.echo && codec ? codec->decode(prompt.ids, true) : "");
        prompt_texts_.push_back(std::move(text));
        for (int32_t k = 0; k < req_.n; ++k) {
            size_t idx = requests_.size();
            bool single = req_.prompts.size() == 1 && req_.n == 1;
            std::string rid = single ? id_ : id_ + "-" + std::to_string(idx);
            bool want_lp = req_.logprobs.has_value();
            requests_.push_back(engine::GenerateRequest{rid, prompt.ids, sp, want_lp, req_.logprobs.value_or(0), nullptr});
            if (req_.text.response_schema) {
                ConstraintSpec spec;
                spec.schema = *req_.text.response_schema;
                DSA_ASSIGN_OR_RETURN(requests_.back().constraint, make_request_constraint(ctx_, spec));
            }
            choices_.emplace_back(rid, ctx_.services.make_detokenizer(req_.text.skip_special_tokens), req_.text,
                                  std::nullopt, false);
            prompt_of_choice_.push_back(p);
            echoed_.push_back(false);
        }
    }
    return Status::ok();
}

UsageCounts CompletionGeneration::usage() const {
    UsageCounts u;
    u.cache_report = ctx_.config.enable_cache_report;
    for (size_t i = 0; i < choices_.size(); ++i) {
        if (i % req_.n == 0) {
            u.prompt_tokens += choices_[i].prompt_tokens();
            u.cached_tokens += choices_[i].cached_tokens();
        }
        u.completion_tokens += choices_[i].completion_tokens();
    }
    return u;
}

OrderedJson CompletionGeneration::logprobs_of(const std::vector<engine::TokenLogprob>& lps) const {
    if (!req_.logprobs) return nullptr;
    return completion_logprobs_json(lps, ctx_.services.codec.get(), *req_.logprobs > 0);
}

std::string CompletionGeneration::echo_prefix(size_t i) const {
    return req_.echo ? prompt_texts_[prompt_of_choice_[i]] : std::string();
}

std::string CompletionGeneration::on_event(size_t i, const engine::TokenEvent& event) {
    auto& choice = choices_[i];
    if (choice.finished() || errored_) return {};
    DecodedStep step = choice.feed(event);
    if (choice.finished() && choice.finish().kind == engine::FinishKind::kAbort && choice.finish().status_code >= 400) {
        errored_ = true;
        return openai_stream_error_event(abort_error(choice.finish()));
    }
    std::string text = step.text;
    if (!echoed_[i]) {
        echoed_[i] = true;
        text = echo_prefix(i) + text;
    }
    if (text.empty() && step.logprobs.empty() && !choice.finished()) return {};
    OrderedJson c;
    c["index"] = static_cast<int>(i);
    c["text"] = text;
    c["logprobs"] = logprobs_of(step.logprobs);
    c["finish_reason"] = choice.finished() ? OrderedJson(finish_reason_name(choice.finish())) : OrderedJson(nullptr);
    c["matched_stop"] = matched_stop_json(choice.finish());
    OrderedJson j = header_json(header());
    j["choices"] = OrderedJson::array({std::move(c)});
    j["usage"] = req_.stream_options.continuous_usage_stats ? usage_json(usage()) : OrderedJson(nullptr);
    return sse_event(dump_json(j));
}

HttpReply CompletionGeneration::final_reply() {
    if (streaming_) {
        std::string body;
        if (!errored_ && req_.stream_options.include_usage) {
            OrderedJson j = header_json(header());
            j["choices"] = OrderedJson::array();
            OrderedJson u = usage_json(usage());
            if (u["prompt_tokens_details"].is_null()) u.erase("prompt_tokens_details");
            j["usage"] = std::move(u);
            body += sse_event(dump_json(j));
        }
        return HttpReply{200, "text/event-stream", body + kSseDone};
    }
    if (const ChoiceFinish* err = error_finish()) {
        ApiError e = abort_error(*err);
        return HttpReply{e.http_status, "application/json", openai_error_body(e)};
    }
    OrderedJson j = header_json(ChunkHeader{id_, "text_completion", header().created, req_.model});
    j["choices"] = OrderedJson::array();
    for (size_t i = 0; i < choices_.size(); ++i) {
        OrderedJson c;
        c["index"] = static_cast<int>(i);
        c["text"] = echo_prefix(i) + choices_[i].text();
        c["logprobs"] = logprobs_of(choices_[i].logprobs());
        c["finish_reason"] = finish_reason_name(choices_[i].finish());
        c["matched_stop"] = matched_stop_json(choices_[i].finish());
        j["choices"].push_back(std::move(c));
    }
    j["usage"] = usage_json(usage());
    j["metadata"]["weight_version"] = ctx_.config.weight_version;
    return HttpReply{200, "application/json", dump_json(j)};
}

}  // namespace

StatusOr<std::unique_ptr<Generation>> make_completion_generation(const OrderedJson& body, const ApiContext& ctx) {
    DSA_ASSIGN_OR_RETURN(CompletionRequest req, parse_completion_request(body, ctx.config));
    auto gen = std::make_unique<CompletionGeneration>(ctx, std::move(req));
    DSA_RETURN_IF_ERROR(gen->init());
    return std::unique_ptr<Generation>(std::move(gen));
}

}  // namespace dsa::api
