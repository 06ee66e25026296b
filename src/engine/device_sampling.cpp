// Packing of device sampling rows. The edit list carries, per touched token, exactly the inputs
// apply_penalties / apply_logit_bias read (generation count, stop-id masking, bias), so the device applies the
// same double-precision operations in the same order.
#include "engine/device_sampling.h"

#include <map>

#include "base/check.h"

namespace dsa::engine {

bool device_sampleable(bool has_constraint, const SampleInput& in, LogprobMode mode) {
    if (has_constraint || !in.allowed.empty()) return false;
    return mode == LogprobMode::kNone || in.num_top_logprobs == 0;
}

backend::SampleRow pack_sample_row(const SampleInput& in, int64_t logits_row, int64_t vocab) {
    DSA_CHECK(in.params != nullptr);
    const SamplingParams& sp = *in.params;
    backend::SampleRow row;
    row.logits_row = logits_row;
    row.greedy = sp.is_greedy();
    row.temperature = sp.temperature;
    row.top_k = sp.top_k;
    row.top_p = sp.top_p;
    row.min_p = sp.min_p;
    row.frequency_penalty = sp.frequency_penalty;
    row.presence_penalty = sp.presence_penalty;
    row.repetition_penalty = sp.repetition_penalty;
    row.uniform = row.greedy ? 0.0 : uniform_for(in.seed, in.position);

    auto in_vocab = [vocab](int32_t t) { return t >= 0 && t < vocab; };
    std::map<int32_t, backend::SampleEdit> edits;  // ordered: the same input always packs the same way
    auto edit = [&edits](int32_t t) -> backend::SampleEdit& {
        backend::SampleEdit& e = edits[t];
        e.token = t;
        return e;
    };
    // Penalties of 0 / 1 leave a logit bit-identical, so counts are only sent when some penalty is active.
    const bool penalised = sp.frequency_penalty != 0.0 || sp.presence_penalty != 0.0 || sp.repetition_penalty != 1.0;
    if (penalised) {
        for (int32_t t : in.output_ids) {
            if (in_vocab(t)) ++edit(t).count;
        }
    }
    if (static_cast<int64_t>(in.output_ids.size()) < sp.min_new_tokens) {
        for (int32_t t : in.stop_ids) {
            if (in_vocab(t)) edit(t).masked = true;
        }
    }
    for (const auto& [t, bias] : sp.logit_bias) {
        if (in_vocab(t)) edit(t).bias = bias;
    }
    row.edits.reserve(edits.size());
    for (const auto& [t, e] : edits) row.edits.push_back(e);
    return row;
}

SampleResult from_device(const backend::SampledToken& token, LogprobMode mode) {
    SampleResult out;
    out.token_id = token.token_id;
    if (mode == LogprobMode::kChosenAndTop) {
        out.logprob.token_id = token.token_id;
        out.logprob.logprob = token.logprob;
    }
    return out;
}

}  // namespace dsa::engine
