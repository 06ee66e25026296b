// /v1/chat/completions output side: prompt building, then per-choice reasoning split and tool-call parsing,
// streamed as SSE chunks (API_SPEC §2.5) or assembled into one response (§2.4).
#include "api/generation.h"
#include "api/response_json.h"

namespace dsa::api {
namespace {

struct ChatChoiceState {
    std::unique_ptr<ReasoningSplitter> reasoning;
    std::unique_ptr<ToolCallExtractor> tools;
    bool role_sent = false;
    bool any_tool_call = false;
};

class ChatGeneration final : public Generation {
public:
    ChatGeneration(const ApiContext& ctx, ChatRequest req) : Generation(ctx, req.stream), req_(std::move(req)) {}

    Status init(std::vector<int32_t> input_ids, bool thinking);
    std::string on_event(size_t i, const engine::TokenEvent& event) override;
    HttpReply final_reply() override;

private:
    StatusOr<ChatChoiceState> make_parsers() const;
    StatusOr<std::optional<ConstraintSpec>> constraint_spec() const;
    ChunkHeader header() const {
        return ChunkHeader{id_, "chat.completion.chunk", ctx_.now_unix ? ctx_.now_unix() : unix_now(), req_.model};
    }
    UsageCounts usage() const;
    // Streams one text delta of choice i through the reasoning and tool parsers into chunks.
    void stream_text(size_t i, const std::string& text, bool at_end, std::vector<OrderedJson>& chunks);
    void emit_content(size_t i, const ToolStreamDelta& td, std::vector<OrderedJson>& chunks);
    std::string render_chunks(size_t i, std::vector<OrderedJson>& chunks, const DecodedStep& step);
    OrderedJson logprobs_of(const std::vector<engine::TokenLogprob>& lps) const;
    OrderedJson message_json(size_t i, bool& has_tool_calls) const;

    ChatRequest req_;
    bool thinking_ = false;
    bool errored_ = false;
    std::vector<ChatChoiceState> states_;
};

StatusOr<ChatChoiceState> ChatGeneration::make_parsers() const {
    ChatChoiceState st;
    const auto& svc = ctx_.services;
    if (svc.make_reasoning_parser && req_.separate_reasoning) {
        DSA_ASSIGN_OR_RETURN(st.reasoning, svc.make_reasoning_parser(
                                               ReasoningConfig{thinking_, req_.separate_reasoning, req_.stream_reasoning}));
    }
    if (svc.make_tool_parser && req_.tools_active) {
        DSA_ASSIGN_OR_RETURN(st.tools, svc.make_tool_parser(req_.prompt.tools));
    }
    return st;
}

// tool_choice "required" / named constrains to the --tool-call-parser format; otherwise response_format may
// constrain to JSON (it is ignored when a tool-call constraint is active, as SGLang does).
StatusOr<std::optional<ConstraintSpec>> ChatGeneration::constraint_spec() const {
    const std::string& choice = req_.prompt.tool_choice;
    ConstraintSpec spec;
    spec.after_think = thinking_;
    if (req_.tools_active && (choice == "required" || choice == "function")) {
        if (!ctx_.services.make_tool_parser)
            return invalid_argument("tool_choice \"{}\" needs a server started with --tool-call-parser", choice);
        spec.kind = ConstraintSpec::Kind::kToolCall;
        spec.tools = req_.prompt.tools;
        if (choice == "function") spec.named = req_.prompt.named_tool;
        spec.single_call = !req_.parallel_tool_calls;
        return std::optional<ConstraintSpec>(std::move(spec));
    }
    if (!req_.text.response_schema) return std::optional<ConstraintSpec>();
    spec.kind = ConstraintSpec::Kind::kJson;
    spec.schema = *req_.text.response_schema;
    return std::optional<ConstraintSpec>(std::move(spec));
}

Status ChatGeneration::init(std::vector<int32_t> input_ids, bool thinking) {
    thinking_ = thinking;
    if (req_.rid) id_ = *req_.rid;
    bool count_reasoning = thinking && static_cast<bool>(ctx_.services.make_reasoning_parser);
    DSA_ASSIGN_OR_RETURN(std::optional<ConstraintSpec> spec, constraint_spec());
    for (int32_t i = 0; i < req_.n; ++i) {
        std::string rid = req_.n == 1 ? id_ : id_ + "-" + std::to_string(i);
        requests_.push_back(
            engine::GenerateRequest{rid, input_ids, req_.sampling, req_.logprobs, req_.top_logprobs, nullptr});
        if (spec) {
            DSA_ASSIGN_OR_RETURN(requests_.back().constraint, make_request_constraint(ctx_, *spec));
        }
        choices_.emplace_back(rid, ctx_.services.make_detokenizer(req_.text.skip_special_tokens), req_.text,
                              ctx_.think_end_token, count_reasoning);
        DSA_ASSIGN_OR_RETURN(auto st, make_parsers());
        states_.push_back(std::move(st));
    }
    return Status::ok();
}

UsageCounts ChatGeneration::usage() const {
    UsageCounts u;
    u.cache_report = ctx_.config.enable_cache_report;
    if (!choices_.empty()) {
        u.prompt_tokens = choices_[0].prompt_tokens();
        u.cached_tokens = choices_[0].cached_tokens();
    }
    for (const auto& c : choices_) {
        u.completion_tokens += c.completion_tokens();
        u.reasoning_tokens += c.reasoning_tokens();
    }
    return u;
}

OrderedJson ChatGeneration::logprobs_of(const std::vector<engine::TokenLogprob>& lps) const {
    if (!req_.logprobs) return nullptr;
    return chat_logprobs_json(lps, ctx_.services.codec.get());
}

void ChatGeneration::emit_content(size_t i, const ToolStreamDelta& td, std::vector<OrderedJson>& chunks) {
    int idx = static_cast<int>(i);
    if (!td.normal_text.empty())
        chunks.push_back(chat_choice_json(idx, tool_mode_delta(td.normal_text, nullptr), nullptr, nullptr, nullptr));
    for (const auto& f : td.calls) {
        states_[i].any_tool_call = true;
        OrderedJson calls = OrderedJson::array({tool_call_fragment_json(f)});
        chunks.push_back(chat_choice_json(idx, tool_mode_delta(std::nullopt, std::move(calls)), nullptr, nullptr, nullptr));
    }
}

void ChatGeneration::stream_text(size_t i, const std::string& text, bool at_end, std::vector<OrderedJson>& chunks) {
    auto& st = states_[i];
    int idx = static_cast<int>(i);
    ReasoningSplit rs{"", text};
    if (st.reasoning) {
        rs = st.reasoning->feed(text);
        if (at_end) {
            ReasoningSplit tail = st.reasoning->finish();
            rs.reasoning += tail.reasoning;
            rs.content += tail.content;
        }
    }
    if (!rs.reasoning.empty())
        chunks.push_back(chat_choice_json(idx, reasoning_delta(rs.reasoning), nullptr, nullptr, nullptr));
    if (st.tools) {
        ToolStreamDelta td = st.tools->feed(rs.content);
        if (at_end) {
            ToolStreamDelta tail = st.tools->finish();
            td.normal_text += tail.normal_text;
            td.calls.insert(td.calls.end(), tail.calls.begin(), tail.calls.end());
        }
        emit_content(i, td, chunks);
    } else if (!rs.content.empty()) {
        chunks.push_back(chat_choice_json(idx, content_delta(rs.content), nullptr, nullptr, nullptr));
    }
}

std::string ChatGeneration::render_chunks(size_t i, std::vector<OrderedJson>& chunks, const DecodedStep& step) {
    if (req_.logprobs && !step.logprobs.empty()) {
        if (chunks.empty()) chunks.push_back(chat_choice_json(static_cast<int>(i), empty_delta(), nullptr, nullptr, nullptr));
        chunks.front()["logprobs"] = logprobs_of(step.logprobs);
    }
    std::string out;
    ChunkHeader h = header();
    for (auto& c : chunks) {
        OrderedJson chunk = chat_chunk(h, std::move(c));
        bool full_shape = chunk["choices"][0]["delta"].contains("tool_calls");
        if (full_shape) chunk["usage"] = nullptr;
        if (req_.stream_options.continuous_usage_stats) chunk["usage"] = usage_json(usage());
        out += sse_event(dump_json(chunk));
    }
    return out;
}

std::string ChatGeneration::on_event(size_t i, const engine::TokenEvent& event) {
    auto& choice = choices_[i];
    if (choice.finished() || errored_) return {};
    DecodedStep step = choice.feed(event);
    if (!streaming_) return {};
    std::vector<OrderedJson> chunks;
    auto& st = states_[i];
    if (!st.role_sent) {
        st.role_sent = true;
        chunks.push_back(chat_choice_json(static_cast<int>(i), role_delta(), nullptr, nullptr, nullptr));
    }
    if (choice.finished() && choice.finish().kind == engine::FinishKind::kAbort && choice.finish().status_code >= 400) {
        errored_ = true;
        return render_chunks(i, chunks, step) + openai_stream_error_event(abort_error(choice.finish()));
    }
    stream_text(i, step.text, choice.finished(), chunks);
    if (choice.finished()) {
        std::string reason = finish_reason_name(choice.finish());
        if (reason == "stop" && st.any_tool_call) reason = "tool_calls";
        chunks.push_back(chat_choice_json(static_cast<int>(i), empty_delta(), nullptr, reason,
                                          matched_stop_json(choice.finish())));
    }
    return render_chunks(i, chunks, step);
}

OrderedJson ChatGeneration::message_json(size_t i, bool& has_tool_calls) const {
    ReasoningSplit rs{"", choices_[i].text()};
    auto st = make_parsers();
    if (st.is_ok() && st->reasoning) rs = st->reasoning->parse(choices_[i].text());
    OrderedJson tool_calls = nullptr;
    if (st.is_ok() && st->tools) {
        ToolParseOutput parsed = st->tools->parse(rs.content);
        rs.content = parsed.content;
        if (!parsed.calls.empty()) tool_calls = OrderedJson::array();
        for (const auto& c : parsed.calls) {
            OrderedJson t;
            t["id"] = c.id;
            t["index"] = c.tool_index;
            t["type"] = "function";
            t["function"]["name"] = c.name;
            t["function"]["arguments"] = c.arguments;
            tool_calls.push_back(std::move(t));
        }
    }
    if (req_.force_nonempty_content && rs.content.empty()) std::swap(rs.content, rs.reasoning);
    has_tool_calls = !tool_calls.is_null();
    OrderedJson m;
    m["role"] = "assistant";
    m["content"] = rs.content;
    m["reasoning_content"] = rs.reasoning.empty() ? OrderedJson(nullptr) : OrderedJson(rs.reasoning);
    m["tool_calls"] = std::move(tool_calls);
    return m;
}

HttpReply ChatGeneration::final_reply() {
    if (streaming_) {
        std::string body;
        if (!errored_ && req_.stream_options.include_usage) {
            OrderedJson j = header_json(header());
            j["choices"] = OrderedJson::array();
            j["usage"] = usage_json(usage());
            body += sse_event(dump_json(j));
        }
        return HttpReply{200, "text/event-stream", body + kSseDone};
    }
    if (const ChoiceFinish* err = error_finish()) {
        ApiError e = abort_error(*err);
        return HttpReply{e.http_status, "application/json", openai_error_body(e)};
    }
    OrderedJson j = header_json(ChunkHeader{id_, "chat.completion", header().created, req_.model});
    j["choices"] = OrderedJson::array();
    for (size_t i = 0; i < choices_.size(); ++i) {
        bool has_calls = false;
        OrderedJson c;
        c["index"] = static_cast<int>(i);
        c["message"] = message_json(i, has_calls);
        c["logprobs"] = logprobs_of(choices_[i].logprobs());
        std::string reason = finish_reason_name(choices_[i].finish());
        bool to_tools = reason == "stop" && has_calls;
        c["finish_reason"] = to_tools ? "tool_calls" : reason;
        c["matched_stop"] = to_tools ? OrderedJson(nullptr) : matched_stop_json(choices_[i].finish());
        j["choices"].push_back(std::move(c));
    }
    j["usage"] = usage_json(usage());
    j["metadata"]["weight_version"] = ctx_.config.weight_version;
    return HttpReply{200, "application/json", dump_json(j)};
}

bool thinking_from_kwargs(const OrderedJson& kw) {
    auto on = [&](const char* k) { return kw.contains(k) && kw[k] == true; };
    return on("thinking") || on("enable_thinking");
}

}  // namespace

StatusOr<std::unique_ptr<Generation>> make_chat_generation(const OrderedJson& body, const ApiContext& ctx) {
    DSA_ASSIGN_OR_RETURN(ChatRequest req, parse_chat_request(body, ctx.config));
    PromptResult prompt;
    if (req.input_ids) {
        prompt.input_ids = *req.input_ids;
        prompt.thinking = thinking_from_kwargs(req.prompt.chat_template_kwargs);
    } else {
        if (!ctx.services.prompt_builder) return make_error(StatusCode::kInternal, "no prompt builder configured");
        DSA_ASSIGN_OR_RETURN(prompt, ctx.services.prompt_builder->build(req.prompt));
    }
    if (prompt.input_ids.empty()) return invalid_argument("The input is empty.");
    DSA_RETURN_IF_ERROR(check_context(ctx.config, prompt.input_ids, req.sampling));
    auto gen = std::make_unique<ChatGeneration>(ctx, std::move(req));
    DSA_RETURN_IF_ERROR(gen->init(std::move(prompt.input_ids), prompt.thinking));
    return std::unique_ptr<Generation>(std::move(gen));
}

}  // namespace dsa::api
