// Sampling fields shared by the OpenAI routes (top-level request keys) and the native /generate route
// (`sampling_params` object, unknown keys rejected), mapped onto engine::SamplingParams + TextOptions.
#pragma once

#include "api/json_fields.h"
#include "api/request_types.h"

namespace dsa::api {

// OpenAI-route fields except max tokens and the temperature/top_p/top_k/min_p/repetition_penalty defaults,
// which differ per route. Also rejects structured-output fields that are not implemented yet.
Status read_openai_sampling(const FieldReader& r, engine::SamplingParams& sp, TextOptions& text);
// The five fields that take model defaults on chat routes; `defaults` may be empty.
Status read_tunable_sampling(const FieldReader& r, const ChatSamplingDefaults& defaults, engine::SamplingParams& sp);
// /generate sampling_params; max_new_tokens defaults to 128. Also reads n into `n`.
Status read_native_sampling(const OrderedJson& obj, engine::SamplingParams& sp, TextOptions& text, int64_t& n);
// `model` (echoed back, never validated) and `rid`.
Status read_model_and_rid(const FieldReader& r, std::string& model, std::optional<std::string>& rid);
// stream_options {include_usage, continuous_usage_stats}.
Status read_stream_options(const FieldReader& r, bool server_default_usage, StreamOptions& out);

}  // namespace dsa::api
