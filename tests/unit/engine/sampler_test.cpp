// Sampler: greedy argmax and its tie rule, top-k / top-p / min-p masks against hand-computed values, the
// penalty formulas (frequency, presence, repetition, min_new_tokens masking) and logit_bias, seeded
// reproducibility, the empirical distribution of draws, and logprob normalisation.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>

namespace dsa::engine {
namespace {

SamplingParams greedy() {
    SamplingParams p;
    p.temperature = 0.0;
    return p;
}

SampleInput input(const std::vector<float>& logits, const SamplingParams& p) {
    SampleInput in;
    in.logits = logits;
    in.params = &p;
    return in;
}

TEST(Sampler, GreedyTakesArgmaxLowestIdOnTies) {
    std::vector<float> logits{0.1f, 2.0f, -1.0f, 2.0f};
    SamplingParams p = greedy();
    EXPECT_EQ(sample_token(input(logits, p), LogprobMode::kNone).token_id, 1);
}

TEST(Sampler, GreedyIgnoresTheSeed) {
    std::vector<float> logits{0.1f, 0.3f, 0.2f};
    SamplingParams p = greedy();
    SampleInput in = input(logits, p);
    for (uint64_t seed = 0; seed < 20; ++seed) {
        in.seed = seed;
        EXPECT_EQ(sample_token(in, LogprobMode::kNone).token_id, 1);
    }
}

TEST(Sampler, TopKKeepsTheKLargest) {
    SamplingParams p;
    p.top_k = 2;
    std::vector<double> probs = filtered_probs({0.1, 0.4, 0.2, 0.3}, p);
    EXPECT_NEAR(probs[0], 0.0, 1e-12);
    EXPECT_NEAR(probs[1], 0.4 / 0.7, 1e-12);
    EXPECT_NEAR(probs[2], 0.0, 1e-12);
    EXPECT_NEAR(probs[3], 0.3 / 0.7, 1e-12);
}

TEST(Sampler, TopPKeepsTokensWhosePrecedingMassIsWithinP) {
    SamplingParams p;
    p.top_p = 0.7;  // 0.5 (before 0), 0.3 (before 0.5) kept; 0.15 (before 0.8) dropped
    std::vector<double> probs = filtered_probs({0.15, 0.5, 0.05, 0.3}, p);
    EXPECT_NEAR(probs[1], 0.5 / 0.8, 1e-12);
    EXPECT_NEAR(probs[3], 0.3 / 0.8, 1e-12);
    EXPECT_EQ(probs[0], 0.0);
    EXPECT_EQ(probs[2], 0.0);
    p.top_p = 0.1;  // the top token is always kept
    probs = filtered_probs({0.15, 0.5, 0.05, 0.3}, p);
    EXPECT_NEAR(probs[1], 1.0, 1e-12);
}

TEST(Sampler, MinPDropsTokensBelowAFractionOfTheMax) {
    SamplingParams p;
    p.min_p = 0.2;  // threshold 0.1: 0.05 dropped
    std::vector<double> probs = filtered_probs({0.5, 0.3, 0.15, 0.05}, p);
    EXPECT_NEAR(probs[0], 0.5 / 0.95, 1e-12);
    EXPECT_NEAR(probs[2], 0.15 / 0.95, 1e-12);
    EXPECT_EQ(probs[3], 0.0);
}

TEST(Sampler, MinPAppliesAfterRenormalisedTopK) {
    SamplingParams p;
    p.top_k = 2;
    p.min_p = 0.7;  // after top-k: 0.625, 0.375; threshold 0.4375 drops the second
    std::vector<double> probs = filtered_probs({0.5, 0.3, 0.15, 0.05}, p);
    EXPECT_NEAR(probs[0], 1.0, 1e-12);
    EXPECT_EQ(probs[1], 0.0);
}

TEST(Sampler, PenaltiesFollowTheSpecFormulas) {
    SamplingParams p;
    p.frequency_penalty = 0.5;
    p.presence_penalty = 0.25;
    p.repetition_penalty = 2.0;
    std::vector<int32_t> output{0, 1, 1};
    std::vector<float> raw{1.0f, -1.0f, 2.0f, 0.5f};
    SampleInput in = input(raw, p);
    in.output_ids = output;
    std::vector<double> logits(raw.begin(), raw.end());
    apply_penalties(logits, in);
    EXPECT_DOUBLE_EQ(logits[0], (1.0 - 0.5 * 1 - 0.25) / 2.0);   // positive: divided
    EXPECT_DOUBLE_EQ(logits[1], (-1.0 - 0.5 * 2 - 0.25) * 2.0);  // negative: multiplied
    EXPECT_DOUBLE_EQ(logits[2], 2.0);                            // never generated: untouched
    EXPECT_DOUBLE_EQ(logits[3], 0.5);
}

TEST(Sampler, PromptTokensAreNotPenalised) {
    SamplingParams p;
    p.presence_penalty = 1.0;
    std::vector<float> raw{1.0f, 1.0f};
    SampleInput in = input(raw, p);  // no output yet
    std::vector<double> logits(raw.begin(), raw.end());
    apply_penalties(logits, in);
    EXPECT_DOUBLE_EQ(logits[0], 1.0);
}

TEST(Sampler, MinNewTokensMasksStopIdsUntilReached) {
    SamplingParams p = greedy();
    p.min_new_tokens = 2;
    std::vector<float> logits{0.0f, 5.0f, 1.0f};  // EOS (1) is the argmax
    std::vector<int32_t> stop{1};
    std::vector<int32_t> output{2};
    SampleInput in = input(logits, p);
    in.stop_ids = stop;
    in.output_ids = output;
    EXPECT_EQ(sample_token(in, LogprobMode::kNone).token_id, 2);
    output.push_back(2);
    in.output_ids = output;
    EXPECT_EQ(sample_token(in, LogprobMode::kNone).token_id, 1);
}

TEST(Sampler, LogitBiasIsAdded) {
    SamplingParams p = greedy();
    p.logit_bias = {{0, 10.0}, {99, 1.0}};  // out-of-vocabulary keys are ignored
    std::vector<float> logits{0.0f, 5.0f};
    EXPECT_EQ(sample_token(input(logits, p), LogprobMode::kNone).token_id, 0);
}

TEST(Sampler, SameSeedAndPositionGiveTheSameToken) {
    SamplingParams p;
    std::vector<float> logits(50);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(std::sin(i * 1.7));
    SampleInput in = input(logits, p);
    in.seed = 1234;
    std::vector<int32_t> first, again, other;
    for (int64_t pos = 0; pos < 40; ++pos) {
        in.position = pos;
        in.seed = 1234;
        first.push_back(sample_token(in, LogprobMode::kNone).token_id);
        again.push_back(sample_token(in, LogprobMode::kNone).token_id);
        in.seed = 99;
        other.push_back(sample_token(in, LogprobMode::kNone).token_id);
    }
    EXPECT_EQ(first, again);
    EXPECT_NE(first, other);
}

TEST(Sampler, DrawsFollowTheFilteredDistribution) {
    SamplingParams p;
    p.temperature = 0.5;
    p.top_k = 3;
    std::vector<float> logits{0.0f, 0.5f, -0.5f, 0.2f, -3.0f};
    // After temperature: 0, 1, -1, 0.4, -6; top-3 keeps ids 1, 3, 0.
    std::vector<double> w{std::exp(0.0), std::exp(1.0), 0, std::exp(0.4), 0};
    double sum = std::accumulate(w.begin(), w.end(), 0.0);
    SampleInput in = input(logits, p);
    in.seed = 7;
    std::map<int32_t, int> counts;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
        in.position = i;
        ++counts[sample_token(in, LogprobMode::kNone).token_id];
    }
    EXPECT_EQ(counts.count(2), 0u);
    EXPECT_EQ(counts.count(4), 0u);
    for (int32_t id : {0, 1, 3}) EXPECT_NEAR(counts[id] / double(n), w[id] / sum, 0.015) << id;
}

TEST(Sampler, LogprobsArePostTemperatureAndNormalised) {
    SamplingParams p;
    p.temperature = 2.0;
    std::vector<float> logits{1.0f, 3.0f, 0.0f, 2.0f};
    SampleInput in = input(logits, p);
    in.num_top_logprobs = 4;
    SampleResult r = sample_token(in, LogprobMode::kChosenAndTop);
    ASSERT_EQ(r.logprob.top.size(), 4u);
    EXPECT_EQ(r.logprob.token_id, r.token_id);
    double total = 0;
    for (const auto& [id, lp] : r.logprob.top) total += std::exp(lp);
    EXPECT_NEAR(total, 1.0, 1e-9);
    EXPECT_EQ(r.logprob.top[0].first, 1);  // best first
    EXPECT_EQ(r.logprob.top[1].first, 3);
    double z = std::exp(0.5) + std::exp(1.5) + std::exp(0.0) + std::exp(1.0);
    EXPECT_NEAR(r.logprob.top[0].second, 1.5 - std::log(z), 1e-9);
    std::vector<double> lp = log_softmax({0.5, 1.5, 0.0, 1.0});
    EXPECT_NEAR(r.logprob.logprob, lp[r.token_id], 1e-9);
}

TEST(Sampler, GreedyLogprobsUseTheRawDistribution) {
    SamplingParams p = greedy();
    std::vector<float> logits{1.0f, 2.0f};
    SampleInput in = input(logits, p);
    in.num_top_logprobs = 1;
    SampleResult r = sample_token(in, LogprobMode::kChosenAndTop);
    EXPECT_EQ(r.token_id, 1);
    EXPECT_NEAR(r.logprob.logprob, 2.0 - std::log(std::exp(1.0) + std::exp(2.0)), 1e-9);
    ASSERT_EQ(r.logprob.top.size(), 1u);
}

TEST(Sampler, UniformIsInUnitIntervalAndVaries) {
    double lo = 1, hi = 0;
    for (int64_t i = 0; i < 1000; ++i) {
        double u = uniform_for(42, i);
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
        lo = std::min(lo, u);
        hi = std::max(hi, u);
    }
    EXPECT_LT(lo, 0.01);
    EXPECT_GT(hi, 0.99);
}

}  // namespace
}  // namespace dsa::engine
