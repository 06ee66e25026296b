// The batched sampler's inputs and outputs (Backend::sample): per logits row the API_SPEC §8.2 parameters
// that a device can apply (penalties, min_new_tokens masking and logit_bias as a sparse list of edited tokens,
// temperature, top-k, top-p, min-p, the draw's uniform). Grammar masks and top logprobs stay on the CPU
// sampler; this header knows nothing of requests (the engine packs it).
#pragma once

#include <cstdint>
#include <vector>

namespace dsa::backend {

// A token whose logit the penalties, min_new_tokens or logit_bias change (unique per row).
struct SampleEdit {
    int32_t token = 0;
    int32_t count = 0;    // times generated so far (frequency / presence / repetition penalties apply when > 0)
    bool masked = false;  // min_new_tokens not reached and the token is a stop id: -inf
    double bias = 0.0;    // logit_bias (0 when none)
};

struct SampleRow {
    int64_t logits_row = 0;  // row of the [R, V] logits
    bool greedy = false;     // argmax (lowest id on ties), logprob at temperature 1
    double temperature = 1.0;
    int32_t top_k = -1;  // <= 0: off
    double top_p = 1.0;  // >= 1: off
    double min_p = 0.0;  // <= 0: off
    double frequency_penalty = 0.0;
    double presence_penalty = 0.0;
    double repetition_penalty = 1.0;
    double uniform = 0.0;  // the draw's u in [0, 1) (engine::uniform_for(seed, position))
    std::vector<SampleEdit> edits;
};

struct SampledToken {
    int32_t token_id = 0;
    double logprob = 0.0;   // the chosen token's log-softmax after penalties and temperature, before filtering
    bool fallback = false;  // the row had no finite maximum logit: sample it on the CPU (token / logprob unset)
};

}  // namespace dsa::backend
