// The reduced-precision numerics of the CPU reference (bf16 activations; DeepSeek's deployed FP8 path with
// FP8 activations, FP8 indexer and FP8 KV cache) against the float32 transformers reference. These modes are
// SUPPOSED to differ from FP32; the test bounds how much (relative L2 of the logits, top-1 agreement) so that
// a broken path (NaN, a wrong scale, garbage: rel L2 >= ~1, agreement ~1/512) fails. The bounds are loose on
// purpose: the fixtures are random, untrained models whose MoE routing has near-ties, and a routing flip caused
// by rounding moves logits far more than the rounding itself. The indexer selection is injected (the
// reference's), so the other discrete choice cannot flip. Measured when written (worst prompt):
//   deepseek_v32_tiny: bf16 0.112 / agreement 0.875; deepseek-fp8 0.238 / 0.50
//   glm5_tiny:         bf16 0.131 / 1.0;            deepseek-fp8 0.191 / 0.50
// Op-level tests (tests/unit/backend) check the FP8 and bf16 arithmetic itself tightly.
#include <map>

#include <gtest/gtest.h>

#include "golden_fixture.h"

namespace dsa::model::testing {
namespace {

struct Mode {
    const char* name;
    backend::Numerics numerics;
    double max_rel_l2;
    double min_top1_agreement;
};

double top1_agreement(const Tensor& a, const Tensor& b) {
    int64_t same = 0;
    for (int64_t r = 0; r < a.dim(0); ++r) same += argmax_row(a, r) == argmax_row(b, r);
    return static_cast<double>(same) / static_cast<double>(a.dim(0));
}

class NumericsModes : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(NumericsModes, CloseToFp32Reference) {
    static const Mode kModes[] = {
        {"bf16", backend::Numerics::bf16(), 0.3, 0.5},
        {"deepseek_fp8", backend::Numerics::deepseek_fp8(), 0.5, 0.25},
    };
    const auto& [fixture_name, mode_index] = GetParam();
    const Mode& mode = kModes[mode_index];
    GoldenFixture fx(fixture_name, mode.numerics);
    double worst = 0, worst_agree = 1;
    for (const GoldenPrompt& g : fx.prompts()) {
        if (g.ids.size() < 8) continue;
        KvStores kv = fx.new_kv();
        SequenceRunner run(fx.model(), kv, 64);
        ForwardOptions opt;
        opt.injected_topk = &g.topk;  // the same token selection as the reference: top-k is discrete
        Tensor all = run.step(g.ids, /*all_logits=*/true, opt).logits;
        Tensor ours = rows_of(all, g.logits_pos0, g.logits_pos0 + g.logits.dim(0));
        worst = std::max(worst, relative_l2(ours, g.logits));
        worst_agree = std::min(worst_agree, top1_agreement(ours, g.logits));
    }
    RecordProperty("worst_rel_l2", std::to_string(worst));
    RecordProperty("worst_top1_agreement", std::to_string(worst_agree));
    EXPECT_LT(worst, mode.max_rel_l2) << mode.name;
    EXPECT_GE(worst_agree, mode.min_top1_agreement) << mode.name;
    EXPECT_GT(worst, 1e-6) << mode.name << " should not be bit-identical to FP32";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, NumericsModes,
                         ::testing::Combine(::testing::Values("deepseek_v32_tiny", "glm5_tiny"),
                                            ::testing::Values(0, 1)));

}  // namespace
}  // namespace dsa::model::testing
