// The whole model on the CUDA backend against the CPU backend with the SAME Numerics, on the three golden
// fixtures (skips without a GPU). Both backends round at the same points (bf16 activations, and for
// deepseek_fp8 the FP8 activation / indexer / KV quantization); what differs is FP32 summation order and the
// math library, ~1e-6 relative before rounding. That flips a bf16 rounding (one ulp, 2^-8) for a small
// fraction of elements, so the logits differ by ~1e-3 relative L2; an FP8 flip (one e4m3 step, 2^-3 relative)
// is rarer but larger. Bounds:
//   bf16 2e-2: 10x the expected noise, 5x below the bf16-vs-FP32 distance of the CPU reference itself (0.11 to
//     0.13, tests/model/parity/numerics_modes_test.cpp), so a missing rounding, a wrong scale or a wrong
//     layout (>= 0.1; garbage ~1) fails.
//   deepseek_fp8 5e-2: 4x below the CPU's FP8-vs-FP32 distance (0.19 to 0.24).
// The reference top-k is injected so the only discrete choice left is MoE routing (no near-ties at 1e-6 in
// these fixtures: the CPU bf16 and FP32 runs route alike where measured). The indexer's own selection is
// compared as sets, and the greedy continuations against the reference wherever the CPU bf16 run matches it.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "backend/cuda/cuda_backend.h"
#include "gpu_fixture.h"
#include "model/forward_batch.h"

namespace dsa::model::gpu_testing {
namespace {

struct Mode {
    const char* name;
    backend::Numerics numerics;
    double max_rel_l2;
};

const Mode kModes[] = {
    {"bf16", backend::Numerics::bf16(), 2e-2},
    {"deepseek_fp8", backend::Numerics::deepseek_fp8(), 5e-2},
};

const std::string kFixtures[] = {"deepseek_v32_tiny", "glm5_tiny", "glm5_indexcache_tiny"};

TwoBackendFixture& fixture(const std::string& name, int mode) {
    static std::map<std::string, std::unique_ptr<TwoBackendFixture>> cache;
    auto& f = cache[name + "/" + kModes[mode].name];
    if (!f) f = std::make_unique<TwoBackendFixture>(name, kModes[mode].numerics);
    return *f;
}

bool have_gpu() { return backend::cuda_device_count() > 0; }

std::set<int32_t> row_set(const Tensor& t, int64_t row) {
    std::set<int32_t> s;
    for (int64_t j = 0; j < t.dim(1); ++j) {
        if (int32_t v = t.data<int32_t>()[row * t.dim(1) + j]; v >= 0) s.insert(v);
    }
    return s;
}

// The GPU and the CPU run the same BF16 (or FP8) numerics but round in different orders, and random tiny models
// amplify rounding differences along the sequence (CPU BF16 vs FP32 is allowed 0.3 in numerics_modes_test). So
// each run is measured by its distance from the FP32 run of the same weights: the GPU may be at most
// kNoiseFactor times as far as the CPU, plus the mode's floor. A wrong kernel is off by O(1).
constexpr double kNoiseFactor = 2.0;

struct Distances {
    double gpu_ref, cpu_ref, gpu_cpu;
};

Distances distances(const Tensor& gpu, const Tensor& cpu, const Tensor& ref) {
    return {relative_l2(gpu, ref), relative_l2(cpu, ref), relative_l2(gpu, cpu)};
}

void expect_as_close(const Distances& d, int mode, const std::string& what) {
    std::cout << "[ metric ] " << what << " rel_l2 gpu-fp32=" << d.gpu_ref << " cpu-fp32=" << d.cpu_ref
              << " gpu-cpu=" << d.gpu_cpu << "\n";
    EXPECT_LE(d.gpu_ref, kNoiseFactor * d.cpu_ref + kModes[mode].max_rel_l2) << what;
}

// Logits of every prompt token with the reference top-k injected, on one model.
Tensor injected_logits(TwoBackendFixture& fx, DsaModel& m, const RefPrompt& g, AttentionForm form) {
    KvStores kv = fx.new_kv(m);
    SequenceRunner run(m, kv, 64);
    ForwardOptions opt;
    opt.attention_form = form;
    opt.injected_topk = &g.topk;
    return run.step(g.ids, /*all_logits=*/true, opt).logits;
}

class GpuLogits : public ::testing::TestWithParam<std::tuple<std::string, int, AttentionForm>> {
  protected:
    void SetUp() override {
        if (!have_gpu()) GTEST_SKIP() << "no CUDA device present";
    }
};

TEST_P(GpuLogits, MatchCpuWithInjectedTopk) {
    const auto& [name, mode, form] = GetParam();
    TwoBackendFixture& fx = fixture(name, mode);
    for (size_t pi = 0; pi < fx.prompts().size(); ++pi) {
        const RefPrompt& g = fx.prompts()[pi];
        const Distances d = distances(injected_logits(fx, fx.gpu(), g, form), injected_logits(fx, fx.cpu(), g, form),
                                      injected_logits(fx, fx.ref(), g, form));
        expect_as_close(d, mode, name + " " + kModes[mode].name + " form " + std::to_string(static_cast<int>(form)) +
                                     " prompt " + std::to_string(pi) + " (" + std::to_string(g.ids.size()) +
                                     " tokens)");
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuLogits,
                         ::testing::Combine(::testing::ValuesIn(kFixtures), ::testing::Values(0, 1),
                                            ::testing::Values(AttentionForm::kAuto, AttentionForm::kAbsorbed)));

class GpuModel : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        if (!have_gpu()) GTEST_SKIP() << "no CUDA device present";
    }
};

// The indexer's own top-k (bf16 numerics) on each backend, against the FP32 run's selection: the GPU's sets agree
// with FP32's nearly as often as the CPU BF16 run's do (the hidden states feeding the indexer carry the rounding
// noise above, and random weights give near-tied scores). Rows with at most index_topk visible keys select every
// key on both devices. The indexer op itself is checked for exact set equality in tests/backend/ops.
TEST_P(GpuModel, OwnIndexerSelectsLikeCpu) {
    TwoBackendFixture& fx = fixture(GetParam(), 0);
    int64_t rows = 0, same_gpu = 0, same_cpu = 0;
    for (const RefPrompt& g : fx.prompts()) {
        ForwardOptions opt;
        opt.capture_topk = true;
        ForwardOutput out[3];
        DsaModel* models[3] = {&fx.gpu(), &fx.cpu(), &fx.ref()};
        for (int i = 0; i < 3; ++i) {
            KvStores kv = fx.new_kv(*models[i]);
            SequenceRunner run(*models[i], kv, 64);
            out[i] = run.step(g.ids, /*all_logits=*/true, opt);
        }
        for (int64_t l = 0; l < fx.config().num_hidden_layers; ++l) {
            if (!fx.config().layer_has_own_indexer(l)) continue;
            const Tensor &tg = out[0].topk[l], &tc = out[1].topk[l], &tr = out[2].topk[l];
            ASSERT_TRUE(tg.defined() && tc.defined() && tr.defined()) << "layer " << l;
            ASSERT_EQ(tg.shape(), tr.shape());
            for (int64_t t = 0; t < tg.dim(0); ++t) {
                if (t < fx.config().index_topk) {
                    ASSERT_EQ(row_set(tg, t), row_set(tr, t)) << "all visible keys, row " << t;
                    continue;
                }
                ++rows;
                same_gpu += row_set(tg, t) == row_set(tr, t);
                same_cpu += row_set(tc, t) == row_set(tr, t);
            }
        }
        expect_as_close(distances(out[0].logits, out[1].logits, out[2].logits), 0,
                        GetParam() + " own selection (" + std::to_string(g.ids.size()) + " tokens)");
    }
    ASSERT_GT(rows, 0) << "no prompt is longer than index_topk";
    const double gpu_agree = static_cast<double>(same_gpu) / static_cast<double>(rows);
    const double cpu_agree = static_cast<double>(same_cpu) / static_cast<double>(rows);
    std::cout << "[ metric ] " << GetParam() << " top-k sets equal to FP32's: gpu " << same_gpu << "/" << rows
              << ", cpu bf16 " << same_cpu << "/" << rows << "\n";
    RecordProperty("gpu_topk_set_agreement", std::to_string(gpu_agree));
    EXPECT_GE(gpu_agree, cpu_agree - 0.1);
}

// 8-token greedy continuations through prefill + incremental decode (expanded prefill, absorbed decode) equal
// the reference's wherever the CPU bf16 run reproduces them.
TEST_P(GpuModel, GreedyMatchesReferenceWhereCpuDoes) {
    TwoBackendFixture& fx = fixture(GetParam(), 0);
    int compared = 0;
    for (size_t pi = 0; pi < fx.prompts().size(); ++pi) {
        const RefPrompt& g = fx.prompts()[pi];
        const int64_t n = static_cast<int64_t>(g.greedy.size());
        KvStores kc = fx.new_kv(fx.cpu()), kg = fx.new_kv(fx.gpu());
        const std::vector<int32_t> cpu = greedy_decode(fx.cpu(), kc, g.ids, n);
        const std::vector<int32_t> gpu = greedy_decode(fx.gpu(), kg, g.ids, n);
        std::cout << "[ metric ] " << GetParam() << " prompt " << pi << " reference " << ids_to_string(g.greedy)
                  << " cpu " << ids_to_string(cpu) << " gpu " << ids_to_string(gpu) << "\n";
        if (cpu != g.greedy) continue;
        ++compared;
        EXPECT_EQ(gpu, g.greedy) << GetParam() << " prompt " << pi;
    }
    RecordProperty("prompts_compared", std::to_string(compared));
    EXPECT_GT(compared, 0) << "the CPU bf16 run matches no reference continuation";
}

// The MTP layer on the GPU (hidden state handed over on the device) against the CPU, reference top-k injected.
TEST_P(GpuModel, MtpLogitsMatchCpu) {
    TwoBackendFixture& fx = fixture(GetParam(), 0);
    const int64_t num_layers = fx.config().num_hidden_layers;
    for (const RefPrompt& g : fx.prompts()) {
        const int64_t n = static_cast<int64_t>(g.ids.size());
        if (n < 2) continue;
        std::vector<Tensor> mtp_inject(num_layers + 1);
        mtp_inject[num_layers] = g.mtp_topk;
        Tensor logits[3];
        DsaModel* models[3] = {&fx.gpu(), &fx.cpu(), &fx.ref()};
        for (int i = 0; i < 3; ++i) {
            KvStores kv = fx.new_kv(*models[i]);
            SequenceRunner main(*models[i], kv, 64);
            ForwardOptions main_opt;
            main_opt.injected_topk = &g.topk;
            ForwardOutput mo = main.step(g.ids, /*all_logits=*/true, main_opt);
            std::vector<int32_t> next(g.ids.begin() + 1, g.ids.end());
            std::vector<int32_t> pages;
            for (int32_t p = 1; p < 24; ++p) pages.push_back(p);
            SequenceStep s{next, 0, pages, /*all_logits=*/true};
            ForwardBatch batch = build_forward_batch(std::span<const SequenceStep>(&s, 1), 64);
            ForwardOptions opt;
            opt.injected_topk = &mtp_inject;
            logits[i] = models[i]->forward_mtp(batch, mo.hidden.slice(0, n - 1), kv, opt).logits;
        }
        expect_as_close(distances(logits[0], logits[1], logits[2]), 0,
                        GetParam() + " MTP (" + std::to_string(n) + " tokens)");
    }
}

// Two sequences of different lengths in one forward (per-sequence expanded attention joined on the device)
// give each sequence's logits as it gets alone.
TEST_P(GpuModel, BatchedSequencesMatchAlone) {
    TwoBackendFixture& fx = fixture(GetParam(), 0);
    const RefPrompt& a = fx.prompts().at(2);
    const RefPrompt& b = fx.prompts().at(1);
    KvStores kv = fx.new_kv(fx.gpu(), 40);
    std::vector<int32_t> pages_a, pages_b;
    for (int32_t p = 1; p < 20; ++p) pages_a.push_back(p);
    for (int32_t p = 20; p < 40; ++p) pages_b.push_back(p);
    SequenceStep steps[2] = {{a.ids, 0, pages_a, /*all_logits=*/true}, {b.ids, 0, pages_b, /*all_logits=*/true}};
    ForwardBatch batch = build_forward_batch(std::span<const SequenceStep>(steps, 2), 64);
    Tensor both = fx.gpu().forward(batch, kv).logits;
    const int64_t na = static_cast<int64_t>(a.ids.size()), nb = static_cast<int64_t>(b.ids.size());
    KvStores ka = fx.new_kv(fx.gpu()), kb = fx.new_kv(fx.gpu());
    SequenceRunner ra(fx.gpu(), ka, 64), rb(fx.gpu(), kb, 64);
    Tensor alone_a = ra.step(a.ids, /*all_logits=*/true).logits;
    Tensor alone_b = rb.step(b.ids, /*all_logits=*/true).logits;
    // Batch shapes change GEMM tilings, so bf16 noise (not bit equality) is the bound.
    EXPECT_LT(relative_l2(both.slice(0, na).clone(), alone_a), kModes[0].max_rel_l2);
    EXPECT_LT(relative_l2(both.slice(na, na + nb).clone(), alone_b), kModes[0].max_rel_l2);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuModel, ::testing::ValuesIn(kFixtures));

}  // namespace
}  // namespace dsa::model::gpu_testing
