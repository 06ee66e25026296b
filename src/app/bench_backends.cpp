// bench-serving's request bodies, response parsing and per-request timing (see bench_backends.h).
#include "app/bench_backends.h"

namespace dsa::app {
namespace {

using Clock = RequestTimer::Clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

Json prompt_json(const DatasetRow& row) { return row.prompt_ids.empty() ? Json(row.prompt) : Json(row.prompt_ids); }

// {"usage": {"completion_tokens": N}} -> N, else -1.
int64_t usage_tokens(const Json& j) {
    auto u = j.find("usage");
    if (u == j.end() || !u->is_object()) return -1;
    auto c = u->find("completion_tokens");
    return c != u->end() && c->is_number_integer() ? c->get<int64_t>() : -1;
}

std::string string_at(const Json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The event of one response JSON object (a stream chunk, or the whole body when `whole`).
StreamEvent event_of(BackendKind kind, const Json& j, bool whole) {
    StreamEvent ev;
    if (kind == BackendKind::kGenerate) {
        ev.text = string_at(j, "text");
        auto m = j.find("meta_info");
        if (m != j.end() && m->is_object() && m->contains("completion_tokens") &&
            (*m)["completion_tokens"].is_number_integer())
            ev.completion_tokens = (*m)["completion_tokens"].get<int64_t>();
        return ev;
    }
    ev.completion_tokens = usage_tokens(j);
    auto choices = j.find("choices");
    if (choices == j.end() || !choices->is_array() || choices->empty() || !(*choices)[0].is_object()) return ev;
    const Json& c = (*choices)[0];
    if (kind == BackendKind::kCompletions) {
        ev.text = string_at(c, "text");
    } else {
        auto part = c.find(whole ? "message" : "delta");
        if (part != c.end() && part->is_object()) ev.text = string_at(*part, "content");
    }
    return ev;
}

}  // namespace

StatusOr<BackendKind> parse_backend(const std::string& name) {
    if (name == "sglang" || name == "sglang-native") return BackendKind::kGenerate;
    if (name == "sglang-oai" || name == "vllm" || name == "lmdeploy") return BackendKind::kCompletions;
    if (name == "sglang-oai-chat" || name == "vllm-chat" || name == "lmdeploy-chat") return BackendKind::kChat;
    return invalid_argument(
        "--backend {}: not supported (sglang, sglang-native, sglang-oai, sglang-oai-chat, vllm, vllm-chat, lmdeploy, "
        "lmdeploy-chat)",
        name);
}

const char* backend_path(BackendKind kind) {
    switch (kind) {
        case BackendKind::kGenerate:
            return "/generate";
        case BackendKind::kCompletions:
            return "/v1/completions";
        case BackendKind::kChat:
            return "/v1/chat/completions";
    }
    return "/generate";
}

Json request_body(BackendKind kind, const DatasetRow& row, const BodyOptions& opt) {
    Json body;
    if (kind == BackendKind::kGenerate) {
        body[row.prompt_ids.empty() ? "text" : "input_ids"] = prompt_json(row);
        body["sampling_params"] = {
            {"temperature", 0.0}, {"max_new_tokens", row.output_len}, {"ignore_eos", opt.ignore_eos}};
    } else {
        body["model"] = opt.model;
        if (kind == BackendKind::kCompletions)
            body["prompt"] = prompt_json(row);
        else
            body["messages"] = Json::array({{{"role", "user"}, {"content", row.prompt}}});
        body["temperature"] = 0.0;
        body["max_tokens"] = row.output_len;
        body["ignore_eos"] = opt.ignore_eos;
        if (opt.stream) body["stream_options"] = {{"include_usage", true}};
    }
    body["stream"] = opt.stream;
    if (opt.extra.is_object())
        for (auto& [k, v] : opt.extra.items()) body[k] = v;
    return body;
}

std::optional<StreamEvent> parse_stream_line(BackendKind kind, const std::string& line) {
    if (line.rfind("data:", 0) != 0) return std::nullopt;
    std::string payload = line.substr(5);
    payload.erase(0, payload.find_first_not_of(' '));
    if (payload == "[DONE]") {
        StreamEvent done;
        done.done = true;
        return done;
    }
    Json j = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return std::nullopt;
    StreamEvent ev = event_of(kind, j, /*whole=*/false);
    if (j.contains("error")) ev.error = j["error"].dump();
    return ev;
}

std::optional<StreamEvent> parse_full_response(BackendKind kind, const std::string& body) {
    Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return std::nullopt;
    return event_of(kind, j, /*whole=*/true);
}

RequestTimer::RequestTimer(BackendKind kind, RequestResult* result, int requested_output_len, Clock::time_point start)
    : kind_(kind), r_(result), start_(start), last_(start) {
    r_->output_len = requested_output_len;
}

void RequestTimer::on_event(const StreamEvent& ev, Clock::time_point now) {
    if (ev.completion_tokens >= 0) r_->output_len = static_cast<int>(ev.completion_tokens);
    if (ev.text.empty()) return;
    if (kind_ == BackendKind::kGenerate) {
        int64_t now_tokens = ev.completion_tokens >= 0 ? ev.completion_tokens : tokens_ + 1;
        r_->generated_text = ev.text;
        if (!first_) {
            int64_t n = now_tokens - tokens_;
            if (n <= 0) return;
            for (int64_t i = 0; i < n; ++i) r_->itl.push_back(seconds(now - last_) / static_cast<double>(n));
        }
        tokens_ = now_tokens;
        r_->output_len = static_cast<int>(now_tokens);
    } else {
        r_->generated_text += ev.text;
        if (!first_) r_->itl.push_back(seconds(now - last_));
    }
    if (first_) r_->ttft = seconds(now - start_);
    first_ = false;
    last_ = now;
}

void RequestTimer::finish(Clock::time_point now) { r_->e2e = seconds(now - start_); }

RequestResult send_request(const Endpoint& ep, BackendKind kind, const DatasetRow& row, const BodyOptions& opt) {
    RequestResult r;
    r.input_len = row.prompt_len;
    const Clock::time_point start = Clock::now();
    RequestTimer timer(kind, &r, row.output_len, start);
    std::string whole, stream_error;
    bool saw_done = false;
    auto on_line = [&](const std::string& line) {
        if (!opt.stream) {
            whole += line + "\n";
            return true;
        }
        auto ev = parse_stream_line(kind, line);
        if (!ev) return true;
        if (!ev->error.empty()) stream_error = "stream error: " + ev->error;
        saw_done = saw_done || ev->done;
        if (ev->done || !stream_error.empty()) return false;
        timer.on_event(*ev, Clock::now());
        return true;
    };
    StatusOr<HttpResponse> resp = http_post(ep, backend_path(kind), request_body(kind, row, opt).dump(), on_line);
    timer.finish(Clock::now());
    if (!resp.is_ok()) {
        r.error = resp.status().message();
    } else if (resp->status != 200) {
        r.error = "HTTP " + std::to_string(resp->status) + ": " + resp->body.substr(0, 300);
    } else if (!stream_error.empty()) {
        r.error = stream_error.substr(0, 300);
    } else if (opt.stream && !saw_done) {
        r.error = "the stream ended without data: [DONE]";
    } else if (!opt.stream) {
        auto ev = parse_full_response(kind, whole + resp->body);
        if (ev)
            timer.on_event(*ev,
                           start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(r.e2e)));
        if (!ev) r.error = "unparsable response: " + (whole + resp->body).substr(0, 300);
    }
    // As in SGLang a clean exchange is a success even when the output decodes to no text (possible with random
    // weights); its first token then cannot be timed, so TTFT is taken as the whole latency.
    r.success = r.error.empty();
    if (r.success && !timer.saw_text()) r.ttft = r.e2e;
    return r;
}

}  // namespace dsa::app
