// The engine's grammar hook: the sampler never picks a masked id (greedy or sampled, whatever the logits), and
// EngineCore asks a request's TokenConstraint before every token, passes it the output so far, allows EOS only
// where the constraint may end, and ends a dead-ended request through its stop ids.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "engine/engine_core.h"
#include "engine/sampler.h"
#include "fake_runner.h"

namespace dsa::engine {
namespace {

constexpr int64_t kVocab = 64;
constexpr int32_t kEos = 1;

void set_bit(std::span<uint64_t> mask, int32_t id) { mask[static_cast<size_t>(id) / 64] |= uint64_t{1} << (id % 64); }

TEST(GrammarMask, SamplerOnlyPicksAllowedIds) {
    std::vector<float> logits(kVocab, 0.0f);
    logits[5] = 50.0f;  // the unconstrained favourite
    std::vector<uint64_t> allowed(1, 0);
    set_bit(allowed, 9);
    set_bit(allowed, 40);
    for (double temperature : {0.0, 1.0, 5.0}) {
        SamplingParams sp;
        sp.temperature = temperature;
        for (int64_t pos = 0; pos < 50; ++pos) {
            SampleInput in;
            in.logits = logits;
            in.params = &sp;
            in.seed = 7;
            in.position = pos;
            in.allowed = allowed;
            const int32_t id = sample_token(in, LogprobMode::kNone).token_id;
            EXPECT_TRUE(id == 9 || id == 40) << id;
        }
    }
    std::vector<double> row(kVocab, 1.0);
    apply_grammar_mask(row, allowed);
    EXPECT_EQ(row[9], 1.0);
    EXPECT_TRUE(std::isinf(row[5]) && row[5] < 0);
}

// Allows the ids of `script` one after the other, then only the end; records what it was shown.
class ScriptConstraint final : public TokenConstraint {
  public:
    explicit ScriptConstraint(std::vector<int32_t> script) : script_(std::move(script)) {}
    bool fill_next_mask(std::span<const int32_t> output_ids, std::span<uint64_t> mask) override {
        seen_.emplace_back(output_ids.begin(), output_ids.end());
        if (output_ids.size() < script_.size()) {
            set_bit(mask, script_[output_ids.size()]);
            return false;
        }
        return true;
    }
    std::vector<int32_t> script_;
    std::vector<std::vector<int32_t>> seen_;
};

class DeadEndConstraint final : public TokenConstraint {
  public:
    bool fill_next_mask(std::span<const int32_t>, std::span<uint64_t>) override { return false; }
};

struct RunResult {
    std::vector<int32_t> tokens;
    FinishReason finish;
};

RunResult run(std::shared_ptr<TokenConstraint> constraint, double temperature) {
    EngineConfig c;
    c.page_size = 4;
    c.context_length = 256;
    c.eos_token_ids = {kEos};
    testing::FakeRunner runner(64, c.page_size, kVocab);
    EngineCore core(c, runner);
    GenerateRequest r;
    r.rid = "r";
    r.input_ids = {3, 4, 5, 6, 7};
    r.sampling.temperature = temperature;
    r.sampling.max_new_tokens = 20;
    r.constraint = std::move(constraint);
    auto stream = std::make_shared<TokenStream>();
    EXPECT_TRUE(core.add_request(std::move(r), stream).is_ok());
    RunResult out;
    for (int i = 0; i < 100 && core.has_work(); ++i) core.step();
    for (TokenEvent& e : stream->drain()) {
        out.tokens.insert(out.tokens.end(), e.token_ids.begin(), e.token_ids.end());
        if (e.finished) out.finish = e.finish;
    }
    return out;
}

TEST(GrammarMask, EngineFollowsTheConstraintAndEndsWithEos) {
    for (double temperature : {0.0, 1.0}) {
        auto c = std::make_shared<ScriptConstraint>(std::vector<int32_t>{12, 30, 12});
        RunResult r = run(c, temperature);
        EXPECT_EQ(r.tokens, (std::vector<int32_t>{12, 30, 12, kEos}));
        EXPECT_EQ(r.finish.kind, FinishKind::kStop);
        EXPECT_EQ(r.finish.matched_token, kEos);
        ASSERT_EQ(c->seen_.size(), 4u);  // asked before every token, with the output so far
        EXPECT_EQ(c->seen_[2], (std::vector<int32_t>{12, 30}));
    }
}

TEST(GrammarMask, DeadEndFinishesThroughStopIds) {
    RunResult r = run(std::make_shared<DeadEndConstraint>(), 1.0);
    EXPECT_EQ(r.tokens, (std::vector<int32_t>{kEos}));
    EXPECT_EQ(r.finish.kind, FinishKind::kStop);
}

}  // namespace
}  // namespace dsa::engine
