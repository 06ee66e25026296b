// POST /generate output side (API_SPEC §2.8): {"text","output_ids","meta_info"} per prompt and sample (a list for
// batch input or n > 1, ordered prompt-major); streaming events carry the cumulative text and ids unless
// --incremental-streaming-output, plus "index" (the position in that list) when there are several.
#include <chrono>

#include "api/generation.h"
#include "api/response_json.h"

namespace dsa::api {
namespace {

class NativeGeneration final : public Generation {
public:
    NativeGeneration(const ApiContext& ctx, NativeGenerateRequest req)
        : Generation(ctx, req.stream), req_(std::move(req)), start_(std::chrono::steady_clock::now()) {}

    Status init();
    std::string on_event(size_t i, const engine::TokenEvent& event) override;
    HttpReply final_reply() override;
    std::string stream_error(const ApiError& error) const override {
        return native_stream_error_event(error) + kSseDone;
    }

private:
    OrderedJson item_json(size_t i, const std::string& text, const std::vector<int32_t>& ids,
                          const std::vector<engine::TokenLogprob>& lps) const;
    OrderedJson meta_info(size_t i) const;
    OrderedJson finish_json(const ChoiceFinish& f) const;

    NativeGenerateRequest req_;
    std::chrono::steady_clock::time_point start_;
    bool errored_ = false;
};

// One engine request per (prompt i, sample j), in that order. Sample 0 of a prompt takes the prompt's rid (the
// request id for the first prompt); further samples get "<rid>-<j>".
Status NativeGeneration::init() {
    const TextCodec* codec = ctx_.services.codec.get();
    for (size_t i = 0; i < req_.items.size(); ++i) {
        auto& item = req_.items[i];
        if (item.prompt.text) {
            if (!codec) return make_error(StatusCode::kInternal, "no tokenizer configured");
            item.prompt.ids = codec->encode(*item.prompt.text);
        }
        if (item.prompt.ids.empty()) return invalid_argument("The input is empty.");
        DSA_RETURN_IF_ERROR(check_context(ctx_.config, item.prompt.ids, item.sampling));
        std::string rid = item.rid ? *item.rid : (i == 0 ? id_ : random_request_id());
        if (i == 0) id_ = rid;
        for (int32_t j = 0; j < req_.n; ++j) {
            std::string sample_rid = j == 0 ? rid : rid + "-" + std::to_string(j);
            requests_.push_back(engine::GenerateRequest{sample_rid, item.prompt.ids, item.sampling, req_.return_logprob,
                                                        req_.top_logprobs_num, nullptr});  // no constraint here
            choices_.emplace_back(sample_rid, ctx_.services.make_detokenizer(item.text.skip_special_tokens), item.text,
                                  std::nullopt, false);
        }
    }
    return Status::ok();
}

OrderedJson NativeGeneration::finish_json(const ChoiceFinish& f) const {
    OrderedJson j;
    switch (f.kind) {
        case engine::FinishKind::kNone: return nullptr;
        case engine::FinishKind::kStop:
            j["type"] = "stop";
            j["matched"] = matched_stop_json(f);
            return j;
        case engine::FinishKind::kLength:
            j["type"] = "length";
            j["length"] = f.length;
            return j;
        case engine::FinishKind::kAbort:
            j["type"] = "abort";
            j["message"] = f.message.empty() ? OrderedJson(nullptr) : OrderedJson(f.message);
            j["status_code"] = f.status_code ? OrderedJson(f.status_code) : OrderedJson(nullptr);
            j["err_type"] = nullptr;
            return j;
    }
    return nullptr;
}

OrderedJson NativeGeneration::meta_info(size_t i) const {
    const auto& c = choices_[i];
    OrderedJson m;
    m["id"] = c.rid();
    m["finish_reason"] = finish_json(c.finish());
    m["prompt_tokens"] = c.prompt_tokens();
    m["weight_version"] = ctx_.config.weight_version;
    m["num_retractions"] = 0;
    m["reasoning_tokens"] = c.reasoning_tokens();
    m["completion_tokens"] = c.completion_tokens();
    m["cached_tokens"] = c.cached_tokens();
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    m["e2e_latency"] = elapsed;
    m["response_sent_to_client_ts"] =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    return m;
}

OrderedJson NativeGeneration::item_json(size_t i, const std::string& text, const std::vector<int32_t>& ids,
                                        const std::vector<engine::TokenLogprob>& lps) const {
    OrderedJson j;
    j["text"] = text;
    j["output_ids"] = ids;
    j["meta_info"] = meta_info(i);
    if (req_.return_logprob) {
        const TextCodec* codec = ctx_.services.codec.get();
        auto& m = j["meta_info"];
        m["input_token_logprobs"] = OrderedJson::array();
        m["output_token_logprobs"] = native_token_logprobs(lps, codec, req_.return_text_in_logprobs);
        if (req_.top_logprobs_num > 0) {
            m["input_top_logprobs"] = OrderedJson::array();
            m["output_top_logprobs"] = native_top_logprobs(lps, codec, req_.return_text_in_logprobs);
        }
    }
    return j;
}

std::string NativeGeneration::on_event(size_t i, const engine::TokenEvent& event) {
    auto& choice = choices_[i];
    if (choice.finished() || errored_) return {};
    DecodedStep step = choice.feed(event);
    if (choice.finished() && choice.finish().kind == engine::FinishKind::kAbort && choice.finish().status_code >= 400) {
        errored_ = true;
        return native_stream_error_event(abort_error(choice.finish()));
    }
    if (!streaming_) return {};
    if (step.ids.empty() && step.text.empty() && !choice.finished()) return {};
    OrderedJson j = ctx_.config.incremental_streaming_output
                        ? item_json(i, step.text, step.ids, step.logprobs)
                        : item_json(i, choice.text(), choice.output_ids(), choice.logprobs());
    if (choices_.size() > 1) j["index"] = i;  // several prompts or samples share the stream
    return sse_event(dump_json(j));
}

HttpReply NativeGeneration::final_reply() {
    if (streaming_) return HttpReply{200, "text/event-stream", kSseDone};
    if (const ChoiceFinish* err = error_finish()) {
        ApiError e = abort_error(*err);
        return HttpReply{e.http_status, "application/json", native_error_body(e)};
    }
    if (choices_.size() == 1 && !req_.batch) {
        const auto& c = choices_[0];
        return HttpReply{200, "application/json", dump_json(item_json(0, c.text(), c.output_ids(), c.logprobs()))};
    }
    OrderedJson list = OrderedJson::array();
    for (size_t i = 0; i < choices_.size(); ++i)
        list.push_back(item_json(i, choices_[i].text(), choices_[i].output_ids(), choices_[i].logprobs()));
    return HttpReply{200, "application/json", dump_json(list)};
}

}  // namespace

StatusOr<std::unique_ptr<Generation>> make_native_generation(const OrderedJson& body, const ApiContext& ctx) {
    DSA_ASSIGN_OR_RETURN(NativeGenerateRequest req, parse_generate_request(body, ctx.config));
    auto gen = std::make_unique<NativeGeneration>(ctx, std::move(req));
    DSA_RETURN_IF_ERROR(gen->init());
    return std::unique_ptr<Generation>(std::move(gen));
}

}  // namespace dsa::api
