// Request sampling fields -> engine::SamplingParams (API_SPEC §8.1). Range checks are in
// SamplingParams::validate(); this file only reads and type-checks.
#include "api/sampling_fields.h"

#include <array>
#include <limits>
#include <string_view>

namespace dsa::api {
namespace {

Status read_logit_bias(const FieldReader& r, engine::SamplingParams& sp) {
    const OrderedJson* v = r.get("logit_bias");
    if (!v) return Status::ok();
    if (!v->is_object()) return r.type_error("logit_bias", "a valid dictionary");
    for (const auto& [key, value] : v->items()) {
        int64_t id = -1;
        try {
            size_t used = 0;
            id = std::stoll(key, &used);
            if (used != key.size()) id = -1;
        } catch (...) {
            id = -1;
        }
        if (id < 0 || id > std::numeric_limits<int32_t>::max())
            return invalid_argument("logit_bias keys must be token ids, got '{}'", key);
        if (!value.is_number()) return r.type_error("logit_bias", "a dictionary of numbers");
        sp.logit_bias[static_cast<int32_t>(id)] = value.get<double>();
    }
    return Status::ok();
}

// response_format / json_schema -> TextOptions::response_schema (API_SPEC §2.2); regex, ebnf and structural
// tags are not implemented (501).
Status read_response_format(const OrderedJson& rf, TextOptions& text) {
    if (!rf.is_object()) return invalid_argument("1 validation error: response_format: Input should be a valid dictionary");
    const OrderedJson type = rf.value("type", OrderedJson("text"));
    if (type == "text") return Status::ok();
    if (type == "json_object") {
        text.response_schema = OrderedJson{{"type", "object"}};
        return Status::ok();
    }
    if (type == "json_schema") {
        const OrderedJson* schema = nullptr;
        if (auto js = rf.find("json_schema"); js != rf.end() && js->is_object() && js->contains("schema"))
            schema = &(*js)["schema"];
        else if (auto top = rf.find("schema"); top != rf.end())
            schema = &*top;
        if (!schema) return invalid_argument("1 validation error: response_format.json_schema.schema: Field required");
        text.response_schema = *schema;
        return Status::ok();
    }
    if (type == "structural_tag") return unimplemented("response_format type 'structural_tag' is not supported yet");
    return invalid_argument("1 validation error: response_format.type: Input should be 'text', 'json_object', "
                            "'json_schema' or 'structural_tag', got {}", type.dump());
}

Status read_structured_output(const FieldReader& r, TextOptions& text) {
    for (std::string_view key : {"regex", "ebnf", "stop_regex", "structural_tag"})
        if (r.get(key)) return unimplemented("{} is not supported yet", key);
    if (const OrderedJson* js = r.get("json_schema")) {
        if (!js->is_string()) return r.type_error("json_schema", "a valid string");
        OrderedJson schema = OrderedJson::parse(js->get<std::string>(), nullptr, /*allow_exceptions=*/false);
        if (schema.is_discarded()) return invalid_argument("json_schema is not valid JSON");
        text.response_schema = std::move(schema);
    }
    if (const OrderedJson* rf = r.get("response_format")) {
        if (text.response_schema) return invalid_argument("Only one of regex, json_schema, or ebnf can be set.");
        DSA_RETURN_IF_ERROR(read_response_format(*rf, text));
    }
    return Status::ok();
}

Status read_seed(const FieldReader& r, std::string_view key, engine::SamplingParams& sp) {
    std::optional<int64_t> seed;
    DSA_RETURN_IF_ERROR(r.read(key, seed));
    if (seed) sp.seed = static_cast<uint64_t>(*seed);
    return Status::ok();
}

Status read_text_options(const FieldReader& r, TextOptions& text) {
    DSA_RETURN_IF_ERROR(r.read_strings("stop", text.stop));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("no_stop_trim", text.no_stop_trim));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("skip_special_tokens", text.skip_special_tokens));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("spaces_between_special_tokens", text.spaces_between_special_tokens));
    return Status::ok();
}

}  // namespace

Status read_tunable_sampling(const FieldReader& r, const ChatSamplingDefaults& d, engine::SamplingParams& sp) {
    if (d.temperature) sp.temperature = *d.temperature;
    if (d.top_p) sp.top_p = *d.top_p;
    if (d.top_k) sp.top_k = *d.top_k;
    if (d.min_p) sp.min_p = *d.min_p;
    if (d.repetition_penalty) sp.repetition_penalty = *d.repetition_penalty;
    DSA_RETURN_IF_ERROR(r.read_into<double>("temperature", sp.temperature));
    DSA_RETURN_IF_ERROR(r.read_into<double>("top_p", sp.top_p));
    DSA_RETURN_IF_ERROR(r.read_into<int64_t>("top_k", sp.top_k));
    DSA_RETURN_IF_ERROR(r.read_into<double>("min_p", sp.min_p));
    DSA_RETURN_IF_ERROR(r.read_into<double>("repetition_penalty", sp.repetition_penalty));
    return Status::ok();
}

Status read_openai_sampling(const FieldReader& r, engine::SamplingParams& sp, TextOptions& text) {
    DSA_RETURN_IF_ERROR(r.read_into<double>("presence_penalty", sp.presence_penalty));
    DSA_RETURN_IF_ERROR(r.read_into<double>("frequency_penalty", sp.frequency_penalty));
    DSA_RETURN_IF_ERROR(r.read_into<int64_t>("min_tokens", sp.min_new_tokens));
    DSA_RETURN_IF_ERROR(r.read_ids("stop_token_ids", sp.stop_token_ids));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("ignore_eos", sp.ignore_eos));
    DSA_RETURN_IF_ERROR(read_seed(r, "seed", sp));
    DSA_RETURN_IF_ERROR(read_logit_bias(r, sp));
    DSA_RETURN_IF_ERROR(read_text_options(r, text));
    return read_structured_output(r, text);
}

Status read_native_sampling(const OrderedJson& obj, engine::SamplingParams& sp, TextOptions& text, int64_t& n) {
    static constexpr std::array<std::string_view, 27> kKnown = {
        "max_new_tokens", "min_new_tokens", "temperature", "top_p", "top_k", "min_p", "frequency_penalty",
        "presence_penalty", "repetition_penalty", "stop", "stop_token_ids", "stop_regex", "ignore_eos",
        "no_stop_trim", "skip_special_tokens", "spaces_between_special_tokens", "n", "json_schema", "regex",
        "ebnf", "structural_tag", "logit_bias", "sampling_seed", "custom_params", "stream_interval",
        "lora_path", "max_tokens"};
    if (!obj.is_object()) return invalid_argument("1 validation error: sampling_params: Input should be a valid dictionary");
    for (const auto& [key, value] : obj.items()) {
        bool known = false;
        for (auto k : kKnown) known = known || key == k;
        if (!known) return invalid_argument("Unknown sampling parameter: '{}'", key);
    }
    FieldReader r(obj, "sampling_params.");
    sp.max_new_tokens = 128;
    std::optional<int64_t> max_new;
    DSA_RETURN_IF_ERROR(r.read("max_new_tokens", max_new));
    if (max_new) sp.max_new_tokens = static_cast<int32_t>(std::min<int64_t>(*max_new, std::numeric_limits<int32_t>::max()));
    DSA_RETURN_IF_ERROR(r.read_into<int64_t>("min_new_tokens", sp.min_new_tokens));
    DSA_RETURN_IF_ERROR(r.read_into<double>("temperature", sp.temperature));
    DSA_RETURN_IF_ERROR(r.read_into<double>("top_p", sp.top_p));
    DSA_RETURN_IF_ERROR(r.read_into<int64_t>("top_k", sp.top_k));
    DSA_RETURN_IF_ERROR(r.read_into<double>("min_p", sp.min_p));
    DSA_RETURN_IF_ERROR(r.read_into<double>("frequency_penalty", sp.frequency_penalty));
    DSA_RETURN_IF_ERROR(r.read_into<double>("presence_penalty", sp.presence_penalty));
    DSA_RETURN_IF_ERROR(r.read_into<double>("repetition_penalty", sp.repetition_penalty));
    DSA_RETURN_IF_ERROR(r.read_ids("stop_token_ids", sp.stop_token_ids));
    DSA_RETURN_IF_ERROR(r.read_into<bool>("ignore_eos", sp.ignore_eos));
    DSA_RETURN_IF_ERROR(read_seed(r, "sampling_seed", sp));
    DSA_RETURN_IF_ERROR(read_logit_bias(r, sp));
    DSA_RETURN_IF_ERROR(r.read_into<int64_t>("n", n));
    DSA_RETURN_IF_ERROR(read_text_options(r, text));
    DSA_RETURN_IF_ERROR(read_structured_output(r, text));
    if (text.response_schema) return unimplemented("json_schema is not supported on /generate yet");
    return Status::ok();
}

Status read_stream_options(const FieldReader& r, bool server_default_usage, StreamOptions& out) {
    out.include_usage = server_default_usage;
    const OrderedJson* so = r.get("stream_options");
    if (!so) return Status::ok();
    if (!so->is_object()) return r.type_error("stream_options", "a valid dictionary");
    FieldReader sr(*so, "stream_options.");
    bool include = false;
    DSA_RETURN_IF_ERROR(sr.read_into<bool>("include_usage", include));
    out.include_usage = out.include_usage || include;
    return sr.read_into<bool>("continuous_usage_stats", out.continuous_usage_stats);
}

}  // namespace dsa::api
