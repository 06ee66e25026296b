// POST /v1/completions and POST|PUT /generate request parsing (API_SPEC §2.6, §2.8), and the context-length
// checks shared by every generation route (§2.1).
#include <limits>

#include "api/json_fields.h"
#include "api/request_types.h"
#include "api/sampling_fields.h"

namespace dsa::api {
namespace {

constexpr int64_t kMaxParallelSamples = 128;

bool is_id_list(const OrderedJson& v) {
    return v.is_array() && !v.empty() && v[0].is_number_integer();
}

// prompt: string | string[] | int[] | int[][]
Status read_prompts(const OrderedJson& v, std::vector<PromptSpec>& out) {
    if (v.is_string()) {
        out.push_back(PromptSpec{v.get<std::string>(), {}});
    } else if (is_id_list(v)) {
        DSA_ASSIGN_OR_RETURN(auto ids, json_to_ids(v, "prompt"));
        out.push_back(PromptSpec{std::nullopt, std::move(ids)});
    } else if (v.is_array()) {
        for (const auto& e : v) {
            if (e.is_string()) {
                out.push_back(PromptSpec{e.get<std::string>(), {}});
            } else {
                DSA_ASSIGN_OR_RETURN(auto ids, json_to_ids(e, "prompt"));
                out.push_back(PromptSpec{std::nullopt, std::move(ids)});
            }
        }
    } else {
        return invalid_argument("1 validation error: prompt: Input should be a valid string or list");
    }
    for (const auto& p : out)
        if ((p.text && p.text->empty()) || (!p.text && p.ids.empty())) return invalid_argument("Prompt cannot be empty");
    if (out.empty()) return invalid_argument("Prompt cannot be empty");
    return Status::ok();
}

Status read_completion_max_tokens(const FieldReader& r, engine::SamplingParams& sp) {
    std::optional<int64_t> v;
    DSA_RETURN_IF_ERROR(r.read("max_tokens", v));
    int64_t max_tokens = v.value_or(16);
    if (max_tokens <= 0) return invalid_argument("max_tokens must be positive, got {}", max_tokens);
    sp.max_new_tokens = static_cast<int32_t>(std::min<int64_t>(max_tokens, std::numeric_limits<int32_t>::max()));
    return Status::ok();
}

// text | text[] | input_ids | input_ids[] -> prompts; sets `batch` for list forms.
Status read_native_prompts(const FieldReader& r, std::vector<PromptSpec>& prompts, bool& batch) {
    const OrderedJson* text = r.get("text");
    const OrderedJson* ids = r.get("input_ids");
    if (r.get("input_embeds")) return unimplemented("input_embeds is not supported yet");
    if (!text && !ids) return invalid_argument("Either text, input_ids or input_embeds should be provided.");
    if (text && ids) return invalid_argument("Either text or input_ids should be provided.");
    if (text) {
        batch = text->is_array();
        if (!text->is_string() && !text->is_array()) return r.type_error("text", "a valid string or list");
    } else {
        batch = ids->is_array() && !ids->empty() && ids->at(0).is_array();
    }
    DSA_RETURN_IF_ERROR(read_prompts(text ? *text : *ids, prompts));
    if (text && text->is_array())
        for (const auto& p : prompts)
            if (!p.text) return r.type_error("text", "a list of strings");
    return Status::ok();
}

Status read_native_rids(const FieldReader& r, std::vector<GenerateItem>& items) {
    const OrderedJson* rid = r.get("rid");
    if (!rid) return Status::ok();
    if (rid->is_string() && items.size() == 1) {
        items[0].rid = rid->get<std::string>();
        return Status::ok();
    }
    if (!rid->is_array() || rid->size() != items.size()) return invalid_argument("The rid should be a list for batch requests.");
    for (size_t i = 0; i < items.size(); ++i) {
        if (!(*rid)[i].is_string()) return r.type_error("rid", "a list of strings");
        items[i].rid = (*rid)[i].get<std::string>();
    }
    return Status::ok();
}

Status read_native_logprob_fields(const FieldReader& r, NativeGenerateRequest& req) {
    DSA_RETURN_IF_ERROR(r.read_into<bool>("return_logprob", req.return_logprob));
    DSA_RETURN_IF_ERROR(r.read_into<int64_t>("top_logprobs_num", req.top_logprobs_num));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("return_text_in_logprobs", req.return_text_in_logprobs));
    std::optional<int64_t> start;
    DSA_RETURN_IF_ERROR(r.read("logprob_start_len", start));
    if (req.return_logprob && start && *start >= 0) return unimplemented("input token logprobs (logprob_start_len >= 0) are not supported yet");
    if (req.top_logprobs_num < 0) return invalid_argument("top_logprobs_num must be non-negative, got {}", req.top_logprobs_num);
    if (r.get("token_ids_logprob")) return unimplemented("token_ids_logprob is not supported yet");
    return Status::ok();
}

// sampling_params: one object for every prompt or a list of one per prompt; `n` must agree across the list.
Status read_native_sampling_list(const FieldReader& r, NativeGenerateRequest& req) {
    std::vector<GenerateItem>& items = req.items;
    const OrderedJson* sp = r.get("sampling_params");
    static const OrderedJson kEmpty = OrderedJson::object();
    if (sp && sp->is_array() && sp->size() != items.size())
        return invalid_argument("The number of sampling_params must match the number of prompts.");
    for (size_t i = 0; i < items.size(); ++i) {
        const OrderedJson& obj = !sp ? kEmpty : sp->is_array() ? (*sp)[i] : *sp;
        int64_t n = 1;
        DSA_RETURN_IF_ERROR(read_native_sampling(obj.is_null() ? kEmpty : obj, items[i].sampling, items[i].text, n));
        if (n < 1 || n > kMaxParallelSamples)
            return invalid_argument("sampling_params.n must be between 1 and {}, got {}", kMaxParallelSamples, n);
        if (i > 0 && n != req.n)
            return invalid_argument("The parallel_sample_num should be the same for all samples in sample params.");
        req.n = static_cast<int32_t>(n);
        DSA_RETURN_IF_ERROR(items[i].sampling.validate());
    }
    return Status::ok();
}

}  // namespace

StatusOr<CompletionRequest> parse_completion_request(const OrderedJson& body, const ApiConfig& config) {
    if (!body.is_object()) return invalid_argument("1 validation error: body: Input should be a valid dictionary");
    FieldReader r(body);
    CompletionRequest req;
    DSA_RETURN_IF_ERROR(read_model_and_rid(r, req.model, req.rid));
    const OrderedJson* prompt = r.get("prompt");
    if (!prompt) return invalid_argument("1 validation error: prompt: Field required");
    DSA_RETURN_IF_ERROR(read_prompts(*prompt, req.prompts));
    DSA_RETURN_IF_ERROR(read_tunable_sampling(r, ChatSamplingDefaults{}, req.sampling));
    DSA_RETURN_IF_ERROR(read_openai_sampling(r, req.sampling, req.text));
    DSA_RETURN_IF_ERROR(read_completion_max_tokens(r, req.sampling));
    std::optional<int64_t> logprobs, n;
    DSA_RETURN_IF_ERROR(r.read("logprobs", logprobs));
    if (logprobs && (*logprobs < 0 || *logprobs > 20)) return invalid_argument("logprobs must be between 0 and 20, got {}", *logprobs);
    if (logprobs) req.logprobs = static_cast<int32_t>(*logprobs);
    DSA_RETURN_IF_ERROR(r.read("n", n));
    if (n && (*n < 1 || *n > 128)) return invalid_argument("n must be between 1 and 128, got {}", *n);
    if (n) req.n = static_cast<int32_t>(*n);
    DSA_RETURN_IF_ERROR(r.read_into<bool>("echo", req.echo));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("stream", req.stream));
    DSA_RETURN_IF_ERROR(read_stream_options(r, config.stream_include_usage_default, req.stream_options));
    DSA_RETURN_IF_ERROR(req.sampling.validate());
    return req;
}

StatusOr<NativeGenerateRequest> parse_generate_request(const OrderedJson& body, const ApiConfig& config) {
    if (!body.is_object()) return invalid_argument("1 validation error: body: Input should be a valid dictionary");
    FieldReader r(body);
    NativeGenerateRequest req;
    std::vector<PromptSpec> prompts;
    DSA_RETURN_IF_ERROR(read_native_prompts(r, prompts, req.batch));
    for (auto& p : prompts) req.items.push_back(GenerateItem{std::move(p), {}, {}, std::nullopt});
    DSA_RETURN_IF_ERROR(read_native_sampling_list(r, req));
    DSA_RETURN_IF_ERROR(read_native_rids(r, req.items));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("stream", req.stream));
    DSA_RETURN_IF_ERROR(read_native_logprob_fields(r, req));
    return req;
}

Status check_context(const ApiConfig& config, std::vector<int32_t>& input_ids, engine::SamplingParams& sp) {
    if (config.context_length <= 0) return Status::ok();
    int64_t ctx = config.context_length;
    int64_t n = static_cast<int64_t>(input_ids.size());
    if (n >= ctx) {
        if (!config.allow_auto_truncate)
            return invalid_argument("The input ({} tokens) is longer than the model's context length ({} tokens).", n, ctx);
        input_ids.resize(static_cast<size_t>(ctx - 1));
        n = ctx - 1;
    }
    if (sp.max_new_tokens && n + *sp.max_new_tokens >= ctx) {
        if (config.allow_auto_truncate) {
            sp.max_new_tokens = static_cast<int32_t>(ctx - n - 1);
            return Status::ok();
        }
        return invalid_argument(
            "Requested token count exceeds the model's maximum context length of {} tokens. You requested a total of "
            "{} tokens: {} tokens from the input messages and {} tokens for the completion. Please reduce the number "
            "of tokens in the input messages or the completion to fit within the limit.",
            ctx, n + *sp.max_new_tokens, n, *sp.max_new_tokens);
    }
    return Status::ok();
}

}  // namespace dsa::api
