// The engine's side of sampling on the model's device: which rows the device sampler (Backend::sample) may
// take, and packing a SampleInput into a backend::SampleRow (penalties, min_new_tokens masking and logit_bias
// become sparse per-token edits; the draw's uniform is uniform_for(seed, position), the CPU sampler's). Rows
// with a grammar mask or top logprobs stay on the CPU sampler.
#pragma once

#include <cstdint>

#include "backend/sampling_params.h"
#include "engine/sampler.h"

namespace dsa::engine {

// True when the device sampler gives what sample_token would for `in`: no grammar constraint and no top
// logprobs (the chosen token's logprob alone is fine).
bool device_sampleable(bool has_constraint, const SampleInput& in, LogprobMode mode);

// The backend row of `in` (whose logits are row `logits_row` of a [R, vocab] tensor; in.logits is not read).
backend::SampleRow pack_sample_row(const SampleInput& in, int64_t logits_row, int64_t vocab);

// sample_token's result from a device result (not a fallback one).
SampleResult from_device(const backend::SampledToken& token, LogprobMode mode);

}  // namespace dsa::engine
