// Parity of the CPU reference (pure FP32 numerics) with the float32 transformers reference of the golden
// fixtures, per fixture and prompt.
//  - Logits: relative L2 error over the stored positions, tolerance kLogitTol. Both sides are FP32; what
//    remains is summation order (measured ~1e-6), so 1e-4 leaves margin without hiding a real bug (a wrong
//    RoPE layout, eps or routing rule moves logits by >1e-2).
//  - Top-k: the reference indexer is transformers' (no Hadamard, no FP8: our Numerics::fp32 runs the same
//    math). Selected sets must be equal on every row whose 64th/65th score gap exceeds kGapTol; rows closer
//    than that are near-ties where either choice is right. The logits tests then run twice: with our own
//    selection, and with the reference's selection injected, so a tie cannot hide an error elsewhere.
//  - Greedy: the 8-token greedy continuation through incremental decode equals the reference's.
#include <algorithm>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "golden_fixture.h"

namespace dsa::model::testing {
namespace {

constexpr double kLogitTol = 1e-4;
constexpr float kGapTol = 1e-4f;

class GoldenParity : public ::testing::TestWithParam<std::string> {
protected:
    static GoldenFixture& fixture(const std::string& name) {
        static std::map<std::string, std::unique_ptr<GoldenFixture>> cache;
        auto& f = cache[name];
        if (!f) f = std::make_unique<GoldenFixture>(name);
        return *f;
    }
};

std::set<int32_t> row_set(const Tensor& t, int64_t row) {
    std::set<int32_t> s;
    const int64_t w = t.dim(1);
    for (int64_t j = 0; j < w; ++j) {
        int32_t v = t.data<int32_t>()[row * w + j];
        if (v >= 0) s.insert(v);
    }
    return s;
}

TEST_P(GoldenParity, LogitsAndTopkMatchReference) {
    GoldenFixture& fx = fixture(GetParam());
    for (size_t pi = 0; pi < fx.prompts().size(); ++pi) {
        const GoldenPrompt& g = fx.prompts()[pi];
        for (bool inject : {false, true}) {
            KvStores kv = fx.new_kv();
            SequenceRunner run(fx.model(), kv, 64);
            ForwardOptions opt;
            opt.capture_topk = true;
            if (inject) opt.injected_topk = &g.topk;
            ForwardOutput out = run.step(g.ids, /*all_logits=*/true, opt);
            const int64_t m = g.logits.dim(0);
            Tensor ours = rows_of(out.logits, g.logits_pos0, g.logits_pos0 + m);
            double err = relative_l2(ours, g.logits);
            EXPECT_LT(err, kLogitTol) << GetParam() << " prompt " << pi << " inject=" << inject;
            RecordProperty("rel_l2_p" + std::to_string(pi) + (inject ? "_inj" : ""), std::to_string(err));
            if (inject) continue;
            for (int64_t l = 0; l < fx.config().num_hidden_layers; ++l) {
                if (!g.topk[l].defined()) {
                    EXPECT_FALSE(fx.config().layer_has_own_indexer(l)) << "layer " << l;
                    continue;
                }
                ASSERT_TRUE(out.topk[l].defined()) << "layer " << l << " ran no indexer";
                int64_t compared = 0;
                for (int64_t t = 0; t < g.topk[l].dim(0); ++t) {
                    if (g.topk_gap[l].data<float>()[t] <= kGapTol) continue;
                    ++compared;
                    ASSERT_EQ(row_set(out.topk[l], t), row_set(g.topk[l], t))
                        << GetParam() << " prompt " << pi << " layer " << l << " row " << t;
                }
                EXPECT_GT(compared, g.topk[l].dim(0) / 2) << "too few rows compared";
            }
        }
    }
}

TEST_P(GoldenParity, GreedyContinuationMatchesReference) {
    GoldenFixture& fx = fixture(GetParam());
    for (size_t pi = 0; pi < fx.prompts().size(); ++pi) {
        const GoldenPrompt& g = fx.prompts()[pi];
        KvStores kv = fx.new_kv();
        SequenceRunner run(fx.model(), kv, 64);
        ForwardOutput out = run.step(g.ids, /*all_logits=*/false);
        std::vector<int32_t> generated;
        for (size_t i = 0; i < g.greedy.size(); ++i) {
            int32_t next = argmax_row(out.logits, 0);
            generated.push_back(next);
            if (i + 1 < g.greedy.size()) out = run.step(std::span<const int32_t>(&next, 1), false);
        }
        EXPECT_EQ(generated, g.greedy) << GetParam() << " prompt " << pi;
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenParity,
                         ::testing::Values("deepseek_v32_tiny", "glm5_tiny", "glm5_indexcache_tiny"));

}  // namespace
}  // namespace dsa::model::testing
