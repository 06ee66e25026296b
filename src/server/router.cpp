// Route table and the non-generation endpoints (see router.h).
#include "server/router.h"

#include <algorithm>
#include <cctype>

#include "api/json_fields.h"
#include "base/logging.h"
#include "server/generation_job.h"

namespace dsa::server {
namespace {

constexpr const char* kJson = "application/json";

std::string detail_body(const char* detail) { return std::string(R"({"detail":")") + detail + "\"}"; }

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

// Media type "application/json", parameters allowed.
bool is_json_content_type(const std::string& value) {
    std::string v = lower(value.substr(0, value.find(';')));
    v.erase(std::remove_if(v.begin(), v.end(), [](unsigned char c) { return std::isspace(c); }), v.end());
    return v == "application/json";
}

void reply_api_error(HttpExchange& ex, const api::ApiError& e, ErrorStyle style, const HttpRequest& req) {
    DSA_LOG(kWarning) << req.method << " " << req.path << " -> " << e.http_status << ": " << e.message;
    ex.reply(e.http_status, kJson, style == ErrorStyle::kOpenAi ? api::openai_error_body(e) : api::native_error_body(e));
}

// Content type (OpenAI routes only), UTF-8 and JSON syntax.
StatusOr<OrderedJson> parse_body(const HttpRequest& req, bool check_content_type) {
    if (check_content_type && !is_json_content_type(req.header("content-type")))
        return invalid_argument("Unsupported Media Type: Only 'application/json' is allowed");
    if (!api::is_valid_utf8(req.body)) return invalid_argument("Request body is not valid UTF-8");
    OrderedJson body = OrderedJson::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return invalid_argument("1 validation error: body: JSON decode error: the request body is not valid JSON");
    return body;
}

}  // namespace

bool Router::authorized(const HttpRequest& req) const {
    if (ctx_.config.api_key.empty()) return true;
    if (req.path == "/health" || req.path == "/health_generate" || req.path == "/metrics") return true;
    return req.header("authorization") == "Bearer " + ctx_.config.api_key;
}

void Router::handle(const HttpRequest& req, std::shared_ptr<HttpExchange> ex) {
    if (!authorized(req)) {
        DSA_LOG(kWarning) << req.method << " " << req.path << " -> 401 Unauthorized";
        ex->reply(401, kJson, R"({"error":"Unauthorized"})");
        return;
    }
    const std::string& p = req.path;
    const std::string& m = req.method;
    auto allow = [&](std::initializer_list<const char*> methods) {
        for (const char* x : methods)
            if (m == x) return true;
        ex->reply(405, kJson, detail_body("Method Not Allowed"));
        return false;
    };
    if (p == "/v1/chat/completions") {
        if (allow({"POST"})) generate(Kind::kChat, req, ex);
    } else if (p == "/v1/completions") {
        if (allow({"POST"})) generate(Kind::kCompletion, req, ex);
    } else if (p == "/generate") {
        if (allow({"POST", "PUT"})) generate(Kind::kGenerate, req, ex);
    } else if (p == "/v1/models") {
        if (allow({"GET"})) ex->reply(200, kJson, models_body());
    } else if (p.rfind("/v1/models/", 0) == 0) {
        if (allow({"GET"})) model_card(p.substr(11), ex);
    } else if (p == "/health" || p == "/health_generate") {
        if (allow({"GET"})) {
            if (p == "/health" && !ctx_.config.health_generation && ctx_.ready.load())
                ex->reply(200, "text/plain", "");
            else
                health(ex);
        }
    } else if (p == "/get_model_info" || p == "/model_info") {
        if (allow({"GET"})) ex->reply(200, kJson, model_info_body());
    } else if (p == "/get_server_info" || p == "/server_info") {
        if (allow({"GET"})) ex->reply(200, kJson, server_info_body());
    } else if (p == "/abort_request") {
        if (allow({"POST"})) abort_request(req, ex);
    } else if (p == "/flush_cache") {
        if (allow({"GET", "POST"})) flush_cache(ex);
    } else if (p == "/metrics" && ctx_.config.enable_metrics) {
        if (allow({"GET"})) {
            std::string text = render_metrics(ctx_.metrics, ctx_.engine->stats(),
                                              MetricLabels{ctx_.api.config.served_model_name, "unified"},
                                              ctx_.api.config.context_length);
            ex->reply(200, "text/plain; version=0.0.4; charset=utf-8", std::move(text));
        }
    } else {
        ex->reply(404, kJson, detail_body("Not Found"));
    }
}

void Router::generate(Kind kind, const HttpRequest& req, const std::shared_ptr<HttpExchange>& ex) {
    ErrorStyle style = kind == Kind::kGenerate ? ErrorStyle::kNative : ErrorStyle::kOpenAi;
    auto body = parse_body(req, kind != Kind::kGenerate);
    if (!body.is_ok()) return reply_api_error(*ex, api::ApiError::from_status(body.status(), "Bad Request"), style, req);
    StatusOr<std::unique_ptr<api::Generation>> gen =
        kind == Kind::kChat         ? api::make_chat_generation(*body, ctx_.api)
        : kind == Kind::kCompletion ? api::make_completion_generation(*body, ctx_.api)
                                    : api::make_native_generation(*body, ctx_.api);
    if (!gen.is_ok()) return reply_api_error(*ex, api::ApiError::from_status(gen.status()), style, req);
    GenerationJob::start(ctx_, std::move(gen).value(), ex, style);
}

void Router::model_card(const std::string& id, const std::shared_ptr<HttpExchange>& ex) {
    if (id != ctx_.api.config.served_model_name) {
        DSA_LOG(kWarning) << "GET /v1/models/" << id << " -> 404";
        return ex->reply(404, kJson, api::model_not_found_body(id));
    }
    OrderedJson list = OrderedJson::parse(models_body());
    ex->reply(200, kJson, api::dump_json(list["data"][0]));
}

std::string Router::models_body() const {
    const auto& c = ctx_.api.config;
    OrderedJson card;
    card["id"] = c.served_model_name;
    card["object"] = "model";
    card["created"] = c.created_unix;
    card["owned_by"] = "sglang";
    card["root"] = c.served_model_name;
    card["parent"] = nullptr;
    card["max_model_len"] = c.context_length;
    OrderedJson j;
    j["object"] = "list";
    j["data"] = OrderedJson::array({card});
    return api::dump_json(j);
}

std::string Router::model_info_body() const {
    const auto& c = ctx_.api.config;
    OrderedJson j;
    j["model_path"] = c.model_path;
    j["tokenizer_path"] = c.tokenizer_path.empty() ? c.model_path : c.tokenizer_path;
    j["is_generation"] = true;
    j["preferred_sampling_params"] = nullptr;
    j["weight_version"] = c.weight_version;
    j["has_image_understanding"] = false;
    j["has_audio_understanding"] = false;
    j["model_type"] = c.model_type;
    j["architectures"] = c.architectures;
    return api::dump_json(j);
}

std::string Router::server_info_body() const {
    engine::EngineStats s = ctx_.engine->stats();
    OrderedJson state = ctx_.server_args.is_object() ? ctx_.server_args : OrderedJson::object();
    state["last_gen_throughput"] = s.gen_throughput;
    state["memory_usage"]["token_usage"] = s.token_usage;
    state["memory_usage"]["num_used_tokens"] = s.num_used_tokens;
    state["memory_usage"]["max_total_num_tokens"] = s.max_total_num_tokens;
    state["memory_usage"]["page_size"] = s.page_size;
    state["memory_usage"]["kv_pages_total"] = s.num_total_pages;
    state["memory_usage"]["kv_pages_free"] = s.num_free_pages;
    state["memory_usage"]["kv_pages_cached"] = s.num_evictable_pages;  // in the prefix cache, unreferenced
    state["memory_usage"]["kv_pages_used"] = s.num_held_pages;         // held by live requests
    state["num_running_reqs"] = s.num_running_reqs;
    state["num_queue_reqs"] = s.num_queue_reqs;
    state["num_retracted_reqs"] = s.num_retracted_reqs;
    state["cache_hit_rate"] = s.cache_hit_rate;
    OrderedJson j = ctx_.server_args.is_object() ? ctx_.server_args : OrderedJson::object();
    j["internal_states"] = OrderedJson::array({state});
    j["version"] = ctx_.config.version;
    return api::dump_json(j);
}

// {"rid": "...", "abort_all": false} -> 200 with an empty body; the aborted requests finish with "abort".
void Router::abort_request(const HttpRequest& req, const std::shared_ptr<HttpExchange>& ex) {
    auto body = parse_body(req, /*check_content_type=*/false);
    if (!body.is_ok() || !body->is_object())
        return reply_api_error(*ex, api::ApiError::bad_request("Invalid abort request body"), ErrorStyle::kNative, req);
    api::FieldReader r(*body);
    std::optional<std::string> rid;
    bool all = false;
    Status st = r.read("rid", rid);
    if (st.is_ok()) st = r.read_into<bool>("abort_all", all);
    if (!st.is_ok()) return reply_api_error(*ex, api::ApiError::from_status(st), ErrorStyle::kNative, req);
    for (const auto& id : ctx_.live.match(rid.value_or(""), all)) {
        DSA_LOG(kInfo) << "abort_request: aborting " << id;
        ctx_.engine->abort(id, engine::AbortReason::kUser);
    }
    ex->reply(200, kJson, "");
}

void Router::flush_cache(const std::shared_ptr<HttpExchange>& ex) {
    Status st = ctx_.engine->flush_cache();
    if (st.is_ok()) {
        return ex->reply(200, "text/plain",
                         "Cache flushed.\nPlease check backend logs for more details. (When there are running or "
                         "waiting requests, the operation will not be performed.)\n");
    }
    DSA_LOG(kWarning) << "flush_cache -> 400: " << st.message();
    ex->reply(400, "text/plain", st.message() + "\n");
}

}  // namespace dsa::server
