// Sampler (CPU): one logits row in, one token (+ logprobs) out, in API_SPEC §8.2 order: frequency penalty,
// min_new_tokens masking of EOS / stop ids, presence penalty, repetition penalty (generated tokens only),
// grammar mask (disallowed ids -> -inf), logit_bias, then greedy argmax or temperature -> softmax -> top-k ->
// top-p -> min-p -> draw. The draw uses a counter-based stream keyed by (request seed, output position), so a
// request's tokens never depend on its batch neighbours or on retraction (RUNTIME_NOTES §7.3). Logprobs come from the post-temperature
// distribution before filtering (greedy: temperature 1), as SGLang returns them by default (§7.4).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/engine_client.h"

namespace dsa::engine {

struct SampleInput {
    std::span<const float> logits;  // [vocab]
    const SamplingParams* params = nullptr;
    std::span<const int32_t> output_ids;  // tokens generated so far (penalties, min_new_tokens)
    std::span<const int32_t> stop_ids;    // EOS ids of the model + params->stop_token_ids
    uint64_t seed = 0;                    // the request's stream
    int64_t position = 0;                 // index of the token being sampled among the outputs
    int32_t num_top_logprobs = 0;         // alternatives to return (0 = only the chosen token)
    std::span<const uint64_t> allowed;    // grammar mask (bit per id); empty = unconstrained
};

enum class LogprobMode : uint8_t { kNone, kChosenAndTop };

struct SampleResult {
    int32_t token_id = 0;
    TokenLogprob logprob;  // filled when LogprobMode::kChosenAndTop
};

SampleResult sample_token(const SampleInput& in, LogprobMode mode);

// ---- The pipeline's pieces, exposed for tests. ----
// Penalties and min_new_tokens masking, in API_SPEC order, over `logits` in place (double precision).
void apply_penalties(std::vector<double>& logits, const SampleInput& in);
void apply_logit_bias(std::vector<double>& logits, const SamplingParams& params);
// Sets every id whose bit is clear in `allowed` to -inf (no-op for an empty mask).
void apply_grammar_mask(std::vector<double>& logits, std::span<const uint64_t> allowed);
// Probabilities after top-k, top-p and min-p (renormalised); zero where filtered out. `probs` sums to 1.
std::vector<double> filtered_probs(const std::vector<double>& probs, const SamplingParams& params);
// log_softmax of `logits`.
std::vector<double> log_softmax(const std::vector<double>& logits);
// A uniform number in [0, 1) from (seed, position): the same pair always gives the same number.
double uniform_for(uint64_t seed, int64_t position);

}  // namespace dsa::engine
