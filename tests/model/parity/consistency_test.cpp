// Self-consistency of the reference model (DESIGN §4): incremental decode equals a full prefill of the same
// tokens; chunked prefill equals one-shot prefill; the absorbed and expanded attention forms agree; the MTP
// layer matches the reference's own MTP computation. All in pure FP32, where only summation order differs,
// so the tolerance is tight (kTol, relative L2 over the compared logits).
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "golden_fixture.h"

namespace dsa::model::testing {
namespace {

constexpr double kTol = 1e-5;

GoldenFixture& fixture(const std::string& name) {
    static std::map<std::string, std::unique_ptr<GoldenFixture>> cache;
    auto& f = cache[name];
    if (!f) f = std::make_unique<GoldenFixture>(name);
    return *f;
}

// The longest prompt of a fixture (~600 tokens: well past index_topk, so sparse selection is exercised).
const GoldenPrompt& long_prompt(GoldenFixture& fx) {
    const GoldenPrompt* best = &fx.prompts()[0];
    for (const GoldenPrompt& g : fx.prompts()) {
        if (g.ids.size() > best->ids.size()) best = &g;
    }
    return *best;
}

class Consistency : public ::testing::TestWithParam<std::string> {};

TEST_P(Consistency, IncrementalDecodeEqualsFullPrefill) {
    GoldenFixture& fx = fixture(GetParam());
    const std::vector<int32_t>& ids = long_prompt(fx).ids;
    const int64_t n = static_cast<int64_t>(ids.size()), num_decode = 6;
    KvStores kv_full = fx.new_kv();
    SequenceRunner full(fx.model(), kv_full, 64);
    Tensor all = full.step(ids, /*all_logits=*/true).logits;

    KvStores kv_inc = fx.new_kv();
    SequenceRunner inc(fx.model(), kv_inc, 64);
    inc.step(std::span<const int32_t>(ids).first(n - num_decode), false);
    for (int64_t t = n - num_decode; t < n; ++t) {
        Tensor one = inc.step(std::span<const int32_t>(ids).subspan(t, 1), false).logits;
        EXPECT_LT(relative_l2(one, rows_of(all, t, t + 1)), kTol) << "position " << t;
    }
}

TEST_P(Consistency, ChunkedPrefillEqualsOneShot) {
    GoldenFixture& fx = fixture(GetParam());
    const std::vector<int32_t>& ids = long_prompt(fx).ids;
    KvStores kv_a = fx.new_kv(), kv_b = fx.new_kv();
    SequenceRunner one_shot(fx.model(), kv_a, 64), chunked(fx.model(), kv_b, 64);
    Tensor a = one_shot.step(ids, false).logits;
    // 100-token chunks: not page aligned, so chunks start mid-page and the indexer sees cached + new keys.
    Tensor b = chunked.prefill(ids, /*chunk=*/100, false).logits;
    EXPECT_LT(relative_l2(b, a), kTol);
}

TEST_P(Consistency, AbsorbedAndExpandedFormsAgree) {
    GoldenFixture& fx = fixture(GetParam());
    const std::vector<int32_t>& ids = long_prompt(fx).ids;
    KvStores kv_a = fx.new_kv(), kv_b = fx.new_kv();
    SequenceRunner ra(fx.model(), kv_a, 64), rb(fx.model(), kv_b, 64);
    ForwardOptions absorbed, expanded;
    absorbed.attention_form = AttentionForm::kAbsorbed;
    expanded.attention_form = AttentionForm::kExpanded;
    Tensor a = ra.step(ids, true, absorbed).logits;
    Tensor b = rb.step(ids, true, expanded).logits;
    EXPECT_LT(relative_l2(a, b), kTol);
}

// kAuto takes the expanded form for a prefill only while the sequence has at most dense_prefill_max_kv keys:
// with the default (2048) a ~600-token prompt gives exactly the expanded form's logits, with a threshold of 16
// exactly the absorbed form's (the two forms differ in summation order, so equality tells them apart).
TEST_P(Consistency, AutoFormFollowsTheDensePrefillThreshold) {
    GoldenFixture& fx = fixture(GetParam());
    const std::vector<int32_t>& ids = long_prompt(fx).ids;
    DsaModel short_dense(fx.config(), fx.weights(), fx.backend(),
                         ModelOptions{.max_positions = 2048, .dense_prefill_max_kv = 16});
    auto logits = [&](DsaModel& m, AttentionForm form) {
        KvStores kv = fx.new_kv();
        SequenceRunner run(m, kv, 64);
        ForwardOptions opt;
        opt.attention_form = form;
        return run.step(ids, true, opt).logits;
    };
    const Tensor expanded = logits(fx.model(), AttentionForm::kExpanded);
    const Tensor absorbed = logits(fx.model(), AttentionForm::kAbsorbed);
    ASSERT_GT(relative_l2(absorbed, expanded), 0.0) << "the forms must be distinguishable";
    EXPECT_EQ(relative_l2(logits(fx.model(), AttentionForm::kAuto), expanded), 0.0);
    EXPECT_EQ(relative_l2(logits(short_dense, AttentionForm::kAuto), absorbed), 0.0);
}

TEST_P(Consistency, MtpLogitsMatchReference) {
    GoldenFixture& fx = fixture(GetParam());
    ASSERT_TRUE(fx.model().has_mtp());
    for (const GoldenPrompt& g : fx.prompts()) {
        const int64_t n = static_cast<int64_t>(g.ids.size());
        if (n < 2) continue;
        KvStores kv = fx.new_kv();
        SequenceRunner main(fx.model(), kv, 64);
        ForwardOutput mo = main.step(g.ids, /*all_logits=*/true);
        // MTP position t: embedding of token t+1 and the main hidden state at t (MODEL_SPEC §6).
        std::vector<int32_t> next(g.ids.begin() + 1, g.ids.end());
        std::vector<int32_t> pages;
        for (int32_t p = 1; p < 24; ++p) pages.push_back(p);
        SequenceStep s{next, 0, pages, /*all_logits=*/true};
        ForwardBatch batch = build_forward_batch(std::span<const SequenceStep>(&s, 1), 64);
        ForwardOptions opt;
        opt.capture_topk = true;
        ForwardOutput out = fx.model().forward_mtp(batch, mo.hidden.slice(0, n - 1), kv, opt);
        const int64_t m = g.mtp_logits.dim(0);
        double err = relative_l2(rows_of(out.logits, g.mtp_logits_pos0, g.mtp_logits_pos0 + m), g.mtp_logits);
        EXPECT_LT(err, 1e-4) << "prompt of " << n << " tokens";
        const Tensor& ours = out.topk.at(fx.config().num_hidden_layers);
        ASSERT_TRUE(ours.defined());
        for (int64_t t = 0; t < g.mtp_topk.dim(0); ++t) {
            if (g.mtp_topk_gap.data<float>()[t] <= 1e-4f) continue;
            std::set<int32_t> a, b;
            for (int64_t j = 0; j < 64; ++j) {
                if (int32_t v = ours.data<int32_t>()[t * ours.dim(1) + j]; v >= 0) a.insert(v);
                if (int32_t v = g.mtp_topk.data<int32_t>()[t * 64 + j]; v >= 0) b.insert(v);
            }
            ASSERT_EQ(a, b) << "MTP top-k row " << t;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Consistency,
                         ::testing::Values("deepseek_v32_tiny", "glm5_tiny", "glm5_indexcache_tiny"));

}  // namespace
}  // namespace dsa::model::testing
