// POST /v1/chat/completions request parsing and validation (API_SPEC §2.2, §2.3 steps 1-4, §2.1 messages).
#include <algorithm>
#include <cctype>
#include <limits>

#include "api/json_fields.h"
#include "api/request_types.h"
#include "api/sampling_fields.h"

namespace dsa::api {
namespace {

constexpr std::string_view kRoles[] = {"system", "user", "assistant", "tool", "developer", "function",
                                       "latest_reminder"};

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

Status normalize_tool_calls(OrderedJson& msg) {
    auto it = msg.find("tool_calls");
    if (it == msg.end() || it->is_null()) return Status::ok();
    if (!it->is_array()) return invalid_argument("1 validation error: messages.tool_calls: Input should be a valid list");
    for (auto& call : *it) {
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object())
            return invalid_argument("1 validation error: messages.tool_calls.function: Field required");
        auto& args = call["function"]["arguments"];
        if (args.is_string()) {
            OrderedJson parsed = OrderedJson::parse(args.get<std::string>(), nullptr, /*allow_exceptions=*/false);
            if (parsed.is_discarded()) return invalid_argument("Assistant tool call function.arguments must be valid JSON.");
            args = std::move(parsed);
        }
        if (!args.is_null() && !args.is_object())
            return invalid_argument("Assistant tool call function.arguments must be a JSON object.");
    }
    return Status::ok();
}

// Tool messages whose content is an array of text parts become one string joined with single spaces.
void flatten_tool_content(OrderedJson& msg) {
    auto it = msg.find("content");
    if (it == msg.end() || !it->is_array()) return;
    std::string joined;
    for (const auto& part : *it) {
        if (!part.is_object() || !part.contains("text") || !part["text"].is_string()) continue;
        if (!joined.empty()) joined += ' ';
        joined += part["text"].get<std::string>();
    }
    *it = joined;
}

Status normalize_message(OrderedJson& msg, size_t i) {
    if (!msg.is_object()) return invalid_argument("1 validation error: messages.{}: Input should be a valid dictionary", i);
    auto role_it = msg.find("role");
    if (role_it == msg.end() || !role_it->is_string())
        return invalid_argument("1 validation error: messages.{}.role: Field required", i);
    std::string role = lower(role_it->get<std::string>());
    if (std::find(std::begin(kRoles), std::end(kRoles), role) == std::end(kRoles))
        return invalid_argument("1 validation error: messages.{}.role: Input tag '{}' does not match any of the expected tags", i, role);
    *role_it = role;
    auto content = msg.find("content");
    if (content != msg.end() && !content->is_null() && !content->is_string() && !content->is_array())
        return invalid_argument("1 validation error: messages.{}.content: Input should be a valid string or list", i);
    if (role == "assistant") DSA_RETURN_IF_ERROR(normalize_tool_calls(msg));
    if (role == "tool") flatten_tool_content(msg);
    return Status::ok();
}

Status read_messages(const OrderedJson& body, bool continue_final, OrderedJson& out) {
    auto it = body.find("messages");
    if (it == body.end() || it->is_null()) return invalid_argument("1 validation error: messages: Field required");
    if (!it->is_array()) return invalid_argument("1 validation error: messages: Input should be a valid list");
    if (it->empty()) return invalid_argument("Messages cannot be empty.");
    out = *it;
    for (size_t i = 0; i < out.size(); ++i) DSA_RETURN_IF_ERROR(normalize_message(out[i], i));
    auto& last = out.back();
    if (!continue_final && last["role"] == "assistant" && last.contains("content") && last["content"].is_string())
        last["role"] = "user";
    return Status::ok();
}

Status read_tools(const FieldReader& r, OrderedJson& tools) {
    tools = OrderedJson::array();
    const OrderedJson* v = r.get("tools");
    if (!v) return Status::ok();
    if (!v->is_array()) return r.type_error("tools", "a valid list");
    for (size_t i = 0; i < v->size(); ++i) {
        const auto& t = (*v)[i];
        if (!t.is_object() || !t.contains("function") || !t["function"].is_object() ||
            !t["function"].contains("name") || !t["function"]["name"].is_string())
            return invalid_argument("1 validation error: tools.{}.function.name: Field required", i);
        const auto& fn = t["function"];
        if (fn.contains("parameters") && !fn["parameters"].is_null() && !fn["parameters"].is_object() &&
            !fn["parameters"].is_boolean())
            return invalid_argument("Tool {} function has invalid 'parameters' schema: {} is not of type 'object', 'boolean'",
                                    i, fn["parameters"].dump());
        tools.push_back(t);
    }
    return Status::ok();
}

bool has_tool(const OrderedJson& tools, const std::string& name) {
    for (const auto& t : tools)
        if (t["function"]["name"] == name) return true;
    return false;
}

Status read_tool_choice(const FieldReader& r, ChatPromptInput& p) {
    const OrderedJson* v = r.get("tool_choice");
    p.tool_choice = p.tools.empty() ? "none" : "auto";
    if (v && v->is_string()) {
        p.tool_choice = v->get<std::string>();
        if (p.tool_choice != "none" && p.tool_choice != "auto" && p.tool_choice != "required")
            return invalid_argument("1 validation error: tool_choice: Input should be 'none', 'auto' or 'required'");
        if (p.tool_choice == "required" && p.tools.empty())
            return invalid_argument("Tools cannot be empty if tool choice is set to required.");
        return Status::ok();
    }
    if (!v) return Status::ok();
    if (!v->is_object() || !v->contains("function") || !(*v)["function"].is_object() ||
        !(*v)["function"].contains("name") || !(*v)["function"]["name"].is_string())
        return r.type_error("tool_choice", "'none', 'auto', 'required' or a named function");
    if (p.tools.empty()) return invalid_argument("Tools cannot be empty if tool choice is set to a specific tool.");
    p.tool_choice = "function";
    p.named_tool = (*v)["function"]["name"].get<std::string>();
    if (!has_tool(p.tools, p.named_tool)) return invalid_argument("Tool '{}' not found in tools list.", p.named_tool);
    return Status::ok();
}

// chat_template_kwargs with server defaults merged under, and the reasoning_effort coupling (§2.2).
Status read_template_kwargs(const FieldReader& r, const ApiConfig& config, ChatPromptInput& p) {
    p.chat_template_kwargs = config.default_chat_template_kwargs.is_object() ? config.default_chat_template_kwargs
                                                                             : OrderedJson::object();
    if (const OrderedJson* v = r.get("chat_template_kwargs")) {
        if (!v->is_object()) return r.type_error("chat_template_kwargs", "a valid dictionary");
        for (const auto& [k, val] : v->items()) p.chat_template_kwargs[k] = val;
    }
    auto& kw = p.chat_template_kwargs;
    if (kw.contains("reasoning_effort") && kw["reasoning_effort"].is_string()) {
        p.reasoning_effort = kw["reasoning_effort"].get<std::string>();
        kw.erase("reasoning_effort");
    }
    std::optional<std::string> effort;
    DSA_RETURN_IF_ERROR(r.read("reasoning_effort", effort));
    if (const OrderedJson* re = r.get("reasoning"); re && re->is_object() && re->contains("effort") &&
                                                    (*re)["effort"].is_string())
        effort = (*re)["effort"].get<std::string>();
    if (effort) p.reasoning_effort = effort;
    if (p.reasoning_effort) {
        bool on = *p.reasoning_effort != "none";
        if (!kw.contains("thinking")) kw["thinking"] = on;
        if (!kw.contains("enable_thinking")) kw["enable_thinking"] = on;
    }
    return Status::ok();
}

Status read_max_tokens(const FieldReader& r, const ApiConfig& config, engine::SamplingParams& sp) {
    std::optional<int64_t> max_tokens, max_completion;
    DSA_RETURN_IF_ERROR(r.read("max_tokens", max_tokens));
    DSA_RETURN_IF_ERROR(r.read("max_completion_tokens", max_completion));
    std::optional<int64_t> v = max_completion ? max_completion : max_tokens;
    if (!v) return Status::ok();
    if (*v < 0) return invalid_argument("max_tokens must be at least 0, got {}", *v);
    if (config.context_length_explicit && !config.allow_auto_truncate && *v > config.context_length)
        return invalid_argument("max_completion_tokens is too large: {}.This model supports at most {} completion tokens.",
                                *v, config.context_length);
    sp.max_new_tokens = static_cast<int32_t>(std::min<int64_t>(*v, std::numeric_limits<int32_t>::max()));
    return Status::ok();
}

Status read_logprob_fields(const FieldReader& r, ChatRequest& req) {
    DSA_RETURN_IF_ERROR(r.read_into<bool>("logprobs", req.logprobs));
    std::optional<int64_t> top;
    DSA_RETURN_IF_ERROR(r.read("top_logprobs", top));
    if (top && (*top < 0 || *top > 20)) return invalid_argument("top_logprobs must be between 0 and 20, got {}", *top);
    if (top && *top > 0 && !req.logprobs)
        return invalid_argument("when using `top_logprobs`, `logprobs` must be set to true.");
    req.top_logprobs = top ? static_cast<int32_t>(*top) : 0;
    return Status::ok();
}

Status read_reasoning_flags(const FieldReader& r, ChatRequest& req) {
    DSA_RETURN_IF_ERROR(r.read_into<bool>("separate_reasoning", req.separate_reasoning));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("stream_reasoning", req.stream_reasoning));
    const auto& kw = req.prompt.chat_template_kwargs;
    req.force_nonempty_content = kw.contains("force_nonempty_content") && kw["force_nonempty_content"] == true;
    if (kw.contains("spaces_between_special_tokens") && kw["spaces_between_special_tokens"].is_boolean())
        req.text.spaces_between_special_tokens = kw["spaces_between_special_tokens"].get<bool>();
    return Status::ok();
}

Status read_n_and_stream(const FieldReader& r, const ApiConfig& config, int32_t& n, bool& stream, StreamOptions& so) {
    std::optional<int64_t> nv;
    DSA_RETURN_IF_ERROR(r.read("n", nv));
    if (nv && (*nv < 1 || *nv > 128)) return invalid_argument("n must be between 1 and 128, got {}", *nv);
    if (nv) n = static_cast<int32_t>(*nv);
    DSA_RETURN_IF_ERROR(r.read_into<bool>("stream", stream));
    return read_stream_options(r, config.stream_include_usage_default, so);
}

}  // namespace

Status read_model_and_rid(const FieldReader& r, std::string& model, std::optional<std::string>& rid) {
    std::optional<std::string> m;
    DSA_RETURN_IF_ERROR(r.read("model", m));
    if (m) model = *m;
    return r.read("rid", rid);
}

StatusOr<ChatRequest> parse_chat_request(const OrderedJson& body, const ApiConfig& config) {
    if (!body.is_object()) return invalid_argument("1 validation error: body: Input should be a valid dictionary");
    FieldReader r(body);
    ChatRequest req;
    DSA_RETURN_IF_ERROR(read_model_and_rid(r, req.model, req.rid));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("continue_final_message", req.prompt.continue_final_message));
    DSA_RETURN_IF_ERROR(read_messages(body, req.prompt.continue_final_message, req.prompt.messages));
    DSA_RETURN_IF_ERROR(read_tools(r, req.prompt.tools));
    DSA_RETURN_IF_ERROR(read_tool_choice(r, req.prompt));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("parallel_tool_calls", req.parallel_tool_calls));
    DSA_RETURN_IF_ERROR(read_template_kwargs(r, config, req.prompt));
    DSA_RETURN_IF_ERROR(read_tunable_sampling(r, config.chat_defaults, req.sampling));
    DSA_RETURN_IF_ERROR(read_openai_sampling(r, req.sampling, req.text));
    DSA_RETURN_IF_ERROR(read_max_tokens(r, config, req.sampling));
    DSA_RETURN_IF_ERROR(read_logprob_fields(r, req));
    DSA_RETURN_IF_ERROR(read_reasoning_flags(r, req));
    DSA_RETURN_IF_ERROR(read_n_and_stream(r, config, req.n, req.stream, req.stream_options));
    req.tools_active = !req.prompt.tools.empty() && req.prompt.tool_choice != "none";
    if (req.tools_active) req.text.skip_special_tokens = false;
    if (const OrderedJson* ids = r.get("input_ids")) {
        DSA_ASSIGN_OR_RETURN(auto v, json_to_ids(*ids, "input_ids"));
        req.input_ids = std::move(v);
    }
    DSA_RETURN_IF_ERROR(req.sampling.validate());
    return req;
}

}  // namespace dsa::api
