// Backend::sample on the GPU against the CPU sampler (engine::sample_token) at vocab 129,280 (DeepSeek) and
// 154,880 (GLM), where each row is split over a cluster of CTAs: every parameter family (greedy, temperature,
// top-k, top-p, min-p and their mixes, penalties, min_new_tokens masking, logit_bias), rows with large groups of
// equal logits, edge rows (extreme temperatures, top_k = 1, tiny top_p, min_p = 1, all-equal logits, -inf / NaN
// entries, thousands of edits, an edited logit tying the maximum), small vocabularies, batch 1..256. Greedy must
// pick the same id on every row; a sampled row may differ only where the CPU's sequential double sums and the
// GPU's fixed-point ones round differently right at a cumulative or cut boundary (a measure ~1e-12 of the
// uniform), so >= 99.9% of sampled rows must agree. A perturbed reference (another uniform, a boosted logit) must
// disagree. Greedy rows run on 4096-id CTAs (split path) and, with DSA_SAMPLING_LEGACY=1, on the round-1 cluster
// kernels: both are checked, including the CTA boundaries at an odd vocab. Draw targets over whole flat rows check
// the tile-sum start of the sampled rows' id-order scan.
#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>

#include "engine/device_sampling.h"
#include "engine/sampler.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

constexpr int64_t kVocab = 129280;     // DeepSeek-V3.2
constexpr int64_t kGlmVocab = 154880;  // GLM-5
constexpr int kFamilies = 12;

struct RowCase {
    engine::SamplingParams sp;
    std::vector<int32_t> output_ids, stop_ids;
    uint64_t seed = 0;
    int64_t position = 0;
};

engine::SamplingParams family(int f) {
    engine::SamplingParams sp;
    const double t[kFamilies] = {0.0, 0.0, 0.7, 1.0, 1.3, 0.8, 1.0, 0.6, 1.0, 0.9, 1.0, 1.5};
    sp.temperature = t[f];
    if (f == 3) sp.top_k = 1;
    if (f == 4) sp.top_k = 50;
    if (f == 5) sp.top_p = 0.9;
    if (f == 6) sp.top_k = 1000, sp.top_p = 0.5;
    if (f == 7) sp.min_p = 0.1;
    if (f == 8) sp.top_k = 200, sp.top_p = 0.95, sp.min_p = 0.02;
    if (f == 10) sp.top_p = 0.95, sp.min_p = 0.05;
    if (f == 11) sp.top_k = 5;
    if (f == 1 || f == 9 || f == 11) {
        sp.frequency_penalty = 0.5, sp.presence_penalty = 0.3, sp.repetition_penalty = 1.3;
        sp.min_new_tokens = 4;
        sp.logit_bias = {{7, 2.5}, {100, -1.0}, {5000, 0.75}};
    }
    return sp;
}

// Random rows: N(0, s) logits with s in {1, 2.5, 6}; every 4th row rounded to the bf16 grid (large tie groups at
// every cut), every 5th with its maximum duplicated at a lower id.
Tensor random_logits(int64_t rows, std::mt19937& rng, int64_t vocab = kVocab) {
    Tensor t = Tensor::empty({rows, vocab}, DType::kF32);
    for (int64_t r = 0; r < rows; ++r) {
        const float scale[3] = {1.0f, 2.5f, 6.0f};
        std::normal_distribution<float> d(0.0f, scale[r % 3]);
        float* x = t.data<float>() + r * vocab;
        for (int64_t i = 0; i < vocab; ++i) x[i] = r % 4 == 1 ? round_bf16(d(rng)) : d(rng);
        if (r % 5 == 2) {
            const int64_t top = std::max_element(x, x + vocab) - x;
            x[std::uniform_int_distribution<int64_t>(0, std::max<int64_t>(top - 1, 0))(rng)] = x[top];
        }
    }
    return t;
}

// Output ids drawn from the row's best tokens (so the penalties change the outcome) and stop ids that include the
// row's argmax.
RowCase random_case(int64_t row, const float* x, std::mt19937& rng, int64_t vocab = kVocab) {
    RowCase c;
    c.sp = family(static_cast<int>(row % kFamilies));
    c.seed = rng();
    c.position = std::uniform_int_distribution<int64_t>(0, 1000)(rng);
    std::vector<int32_t> best(static_cast<size_t>(vocab));
    for (int32_t i = 0; i < vocab; ++i) best[i] = i;
    const int num_best = static_cast<int>(std::min<int64_t>(20, vocab));
    std::partial_sort(best.begin(), best.begin() + num_best, best.end(),
                      [&](int32_t a, int32_t b) { return x[a] > x[b]; });
    const int n = std::uniform_int_distribution<int>(0, 12)(rng);
    for (int i = 0; i < n; ++i) c.output_ids.push_back(best[std::uniform_int_distribution<int>(0, num_best - 1)(rng)]);
    c.stop_ids = {1, best[0]};
    return c;
}

engine::SampleInput input_of(const RowCase& c, const float* row, int64_t vocab) {
    engine::SampleInput in;
    in.logits = std::span<const float>(row, static_cast<size_t>(vocab));
    in.params = &c.sp;
    in.output_ids = c.output_ids;
    in.stop_ids = c.stop_ids;
    in.seed = c.seed;
    in.position = c.position;
    return in;
}

// The CPU sampler over every row (threads: the reference is the slow side).
std::vector<engine::SampleResult> cpu_sample(const Tensor& logits, const std::vector<RowCase>& cases) {
    std::vector<engine::SampleResult> out(cases.size());
    const int64_t vocab = logits.dim(1);
    const size_t workers = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    for (size_t w = 0; w < workers; ++w) {
        pool.emplace_back([&, w] {
            for (size_t i = w; i < cases.size(); i += workers) {
                const float* row = logits.data<float>() + static_cast<int64_t>(i) * vocab;
                out[i] = engine::sample_token(input_of(cases[i], row, vocab), engine::LogprobMode::kChosenAndTop);
            }
        });
    }
    for (std::thread& t : pool) t.join();
    return out;
}

class SamplingOpsTest : public CudaVsCpuTest {
  public:
    std::vector<SampledToken> gpu_sample(const Tensor& logits, const std::vector<RowCase>& cases) {
        const int64_t vocab = logits.dim(1);
        std::vector<SampleRow> rows;
        for (size_t i = 0; i < cases.size(); ++i) {
            const float* row = logits.data<float>() + static_cast<int64_t>(i) * vocab;
            rows.push_back(engine::pack_sample_row(input_of(cases[i], row, vocab), static_cast<int64_t>(i), vocab));
        }
        StatusOr<std::vector<SampledToken>> got = gpu_->sample(gpu_->to_device(logits), rows);
        EXPECT_TRUE(got.is_ok()) << got.status().message();
        return got.is_ok() ? *got : std::vector<SampledToken>(cases.size());
    }
};

struct Tally {
    int64_t greedy = 0, greedy_same = 0, sampled = 0, sampled_same = 0, logprob_bad = 0;
};

void tally(Tally& t, const std::vector<RowCase>& cases, const std::vector<engine::SampleResult>& cpu,
           const std::vector<SampledToken>& gpu) {
    for (size_t i = 0; i < cases.size(); ++i) {
        EXPECT_FALSE(gpu[i].fallback) << "row " << i;
        const bool same = gpu[i].token_id == cpu[i].token_id;
        if (cases[i].sp.is_greedy()) {
            ++t.greedy;
            t.greedy_same += same;
            EXPECT_TRUE(same) << "greedy row " << i << ": gpu " << gpu[i].token_id << " cpu " << cpu[i].token_id;
        } else {
            ++t.sampled;
            t.sampled_same += same;
        }
        const double ref = cpu[i].logprob.logprob;
        if (same && !(std::fabs(gpu[i].logprob - ref) <= 1e-4 * std::fabs(ref) + 1e-9)) {
            ++t.logprob_bad;
            ADD_FAILURE() << "row " << i << " logprob gpu " << gpu[i].logprob << " cpu " << ref;
        }
    }
}

// Random batches of `vocab`-wide rows, the rows cycling through the families (small batches from a random start).
Tally random_batches(SamplingOpsTest& test, std::mt19937& rng, int64_t vocab, std::initializer_list<int64_t> batches) {
    Tally t;
    for (int64_t batch : batches) {
        Tensor logits = random_logits(batch, rng, vocab);
        std::vector<RowCase> cases;
        for (int64_t i = 0; i < batch; ++i) {
            const int64_t row_family = batch < kFamilies ? std::uniform_int_distribution<int64_t>(0, 11)(rng) : i;
            cases.push_back(random_case(row_family, logits.data<float>() + i * vocab, rng, vocab));
        }
        tally(t, cases, cpu_sample(logits, cases), test.gpu_sample(logits, cases));
    }
    return t;
}

void expect_agreement(const Tally& t, const char* what) {
    std::cout << "[ metric ] " << what << ": greedy " << t.greedy_same << "/" << t.greedy << " sampled "
              << t.sampled_same << "/" << t.sampled << " logprob_bad " << t.logprob_bad << "\n";
    EXPECT_EQ(t.greedy_same, t.greedy) << what;
    EXPECT_GE(static_cast<double>(t.sampled_same), 0.999 * static_cast<double>(t.sampled)) << what;
}

TEST_F(SamplingOpsTest, MatchesCpuSamplerAcrossFamiliesAndBatches) {
    const Tally t = random_batches(*this, rng_, kVocab, {1, 3, 64, 256, 256, 256, 256, 256});
    EXPECT_GE(t.sampled, 1000);
    expect_agreement(t, "vocab 129280");
}

// GLM's vocab: 154,880 = 8 chunks of 19,360 ids.
TEST_F(SamplingOpsTest, MatchesCpuSamplerAtGlmVocab) {
    const Tally t = random_batches(*this, rng_, kGlmVocab, {5, 256, 256});
    EXPECT_GE(t.sampled, 300);
    expect_agreement(t, "vocab 154880");
}

// Vocabularies smaller than a cluster's chunks: most CTAs own no id at all.
TEST_F(SamplingOpsTest, MatchesCpuSamplerAtSmallVocabs) {
    Tally t;
    for (int64_t vocab : {5, 33, 1000, 4099}) {
        const Tally v = random_batches(*this, rng_, vocab, {24});
        t.greedy += v.greedy, t.greedy_same += v.greedy_same, t.sampled += v.sampled;
        t.sampled_same += v.sampled_same, t.logprob_bad += v.logprob_bad;
    }
    expect_agreement(t, "small vocabs");
}

// Edge rows, each with its own logits: extreme temperatures, top_k = 1, tiny top_p, min_p = 1, all-equal logits
// (greedy, plain, top-k and top-p cuts inside the tie group across chunk boundaries), -inf / NaN entries, the
// maximum at the last id, thousands of edits, an edited logit tying the maximum at a lower id, +0 / -0 ties.
TEST_F(SamplingOpsTest, EdgeRowsMatchCpuSampler) {
    constexpr int kRows = 22;
    Tensor logits = random_logits(kRows, rng_);
    std::vector<RowCase> cases(kRows);
    auto row = [&](int i) { return logits.data<float>() + static_cast<int64_t>(i) * kVocab; };
    auto fill = [&](int i, float v) { std::fill(row(i), row(i) + kVocab, v); };
    auto argmax = [&](int i) { return static_cast<int32_t>(std::max_element(row(i), row(i) + kVocab) - row(i)); };
    for (int i = 0; i < kRows; ++i) cases[i].seed = rng_(), cases[i].position = i;
    cases[0].sp.temperature = 0.02;
    cases[1].sp.temperature = 1e-4;
    cases[2].sp.temperature = 50.0;
    cases[3].sp.temperature = 1e-5, cases[3].sp.top_p = 0.9;
    cases[4].sp.top_k = 1;
    cases[5].sp.top_p = 1e-9;
    cases[6].sp.min_p = 1.0;
    cases[7].sp.temperature = 2.0, cases[7].sp.min_p = 0.5;
    for (int i : {8, 9, 10, 11}) fill(i, 1.5f);
    cases[8].sp.temperature = 0.0;
    cases[10].sp.top_k = 20000;    // the cut splits the tie group inside the second chunk
    cases[11].sp.top_p = 0.30001;  // ... by mass, inside the third chunk (top_p x vocab is not near an integer)
    for (int i : {12, 13}) {
        for (int64_t t = 0; t < kVocab; t += 2) row(i)[t] = t % 6 == 0 ? std::nanf("") : -INFINITY;
    }
    cases[12].sp.temperature = 0.9, cases[12].sp.top_p = 0.95;
    cases[13].sp.temperature = 0.0;
    for (int i : {14, 15}) row(i)[kVocab - 1] = 100.0f;
    cases[14].sp.temperature = 0.0;
    cases[15].sp.top_k = 50;
    for (int i : {16, 17}) {
        for (int k = 0; k < 3000; ++k)
            cases[i].output_ids.push_back(std::uniform_int_distribution<int32_t>(0, kVocab - 1)(rng_));
        cases[i].sp.frequency_penalty = 0.5, cases[i].sp.presence_penalty = 0.3, cases[i].sp.repetition_penalty = 1.3;
    }
    cases[16].sp.temperature = 0.8, cases[16].sp.top_p = 0.9;
    cases[17].sp.temperature = 0.0;
    std::vector<int32_t> tie_token(kRows, -1);
    for (int i : {18, 19}) {  // logit_bias lifts a lower id exactly onto the maximum
        const int32_t top = argmax(i), t = top / 2;
        cases[i].sp.logit_bias = {{t, static_cast<double>(row(i)[top]) - static_cast<double>(row(i)[t])}};
        tie_token[i] = t;
    }
    cases[18].sp.temperature = 0.0;
    cases[19].sp.top_k = 1;
    for (int i : {20, 21}) {
        for (int64_t t = 0; t < kVocab; ++t)
            row(i)[t] = t % 3 == 0 ? (t % 2 == 0 ? 0.0f : -0.0f) : -std::fabs(row(i)[t]);
    }
    cases[20].sp.temperature = 0.0;
    cases[21].sp.top_k = 10;

    std::vector<SampledToken> gpu = gpu_sample(logits, cases);
    std::vector<engine::SampleResult> cpu = cpu_sample(logits, cases);
    Tally t;
    tally(t, cases, cpu, gpu);
    expect_agreement(t, "edge rows");
    // Known answers, independent of the reference.
    EXPECT_EQ(gpu[8].token_id, 0);
    EXPECT_LT(gpu[10].token_id, 20000);
    EXPECT_LT(gpu[11].token_id, static_cast<int32_t>(0.30001 * kVocab) + 1);
    EXPECT_EQ(gpu[13].token_id % 2, 1);
    EXPECT_EQ(gpu[14].token_id, kVocab - 1);
    EXPECT_EQ(gpu[15].token_id, kVocab - 1);
    for (int i : {4, 5, 6}) EXPECT_EQ(gpu[i].token_id, argmax(i)) << "row " << i;
    EXPECT_EQ(gpu[18].token_id, tie_token[18]);
    EXPECT_EQ(gpu[19].token_id, tie_token[19]);
    EXPECT_EQ(gpu[20].token_id, 0);
    EXPECT_EQ(gpu[21].token_id % 3, 0);
}

// Sets (or clears) DSA_SAMPLING_LEGACY (or another switch) for one scope: the round-1 kernels stay selectable and
// must stay correct.
class LegacyScope {
  public:
    explicit LegacyScope(bool on, const char* name = "DSA_SAMPLING_LEGACY") : name_(name) {
        if (const char* v = std::getenv(name_)) saved_ = v, had_ = true;
        if (on)
            setenv(name_, "1", 1);
        else
            unsetenv(name_);
    }
    ~LegacyScope() {
        if (had_)
            setenv(name_, saved_.c_str(), 1);
        else
            unsetenv(name_);
    }

  private:
    const char* name_;
    std::string saved_;
    bool had_ = false;
};

TEST_F(SamplingOpsTest, LegacyKernelsStillMatchCpuSampler) {
    LegacyScope legacy(true);
    const Tally t = random_batches(*this, rng_, kVocab, {7, 64, 256});
    expect_agreement(t, "legacy kernels, vocab 129280");
}

// Draw targets spread over whole rows (one flat N(0, 1) row repeated, 256 seeds): the id-order scan starts at the
// tile of 2048 ids holding the target, found from per-tile weight sums: temperature-only rows (the sum-exp pass's
// tile sums), top-p and min-p rows (the draw's own pass), half of them with edits in scattered tiles; and the
// legacy full scans. The picks must cover most of the row's 64 tiles.
TEST_F(SamplingOpsTest, DrawTargetsAcrossTheRowMatchCpuSampler) {
    constexpr int64_t kRows = 256;
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> row(static_cast<size_t>(kVocab));
    for (float& x : row) x = d(rng_);
    Tensor logits = Tensor::empty({kRows, kVocab}, DType::kF32);
    for (int64_t r = 0; r < kRows; ++r) std::copy(row.begin(), row.end(), logits.data<float>() + r * kVocab);
    std::vector<RowCase> cases(kRows);
    for (int64_t i = 0; i < kRows; ++i) {
        RowCase& c = cases[static_cast<size_t>(i)];
        c.sp.temperature = 1.0;
        if (i % 3 == 1) c.sp.top_p = 0.95;
        if (i % 3 == 2) c.sp.min_p = 0.001;
        if (i % 2 == 1) {
            c.sp.frequency_penalty = 0.4;
            c.sp.logit_bias = {{static_cast<int32_t>(i * 509 % kVocab), 1.5},
                               {static_cast<int32_t>(i * 7919 % kVocab), -2.0}};
            c.output_ids = {static_cast<int32_t>(i * 131 % kVocab), static_cast<int32_t>(i * 65537 % kVocab)};
        }
        c.seed = rng_();
        c.position = i;
    }
    const std::vector<engine::SampleResult> cpu = cpu_sample(logits, cases);
    for (bool on : {false, true}) {
        LegacyScope legacy(on);
        const std::vector<SampledToken> gpu = gpu_sample(logits, cases);
        Tally t;
        tally(t, cases, cpu, gpu);
        expect_agreement(t, on ? "draw targets across the row (legacy)" : "draw targets across the row");
        std::set<int32_t> tiles;
        for (const SampledToken& g : gpu) tiles.insert(g.token_id / 2048);
        EXPECT_GE(tiles.size(), 40u) << "legacy " << on;
    }
}

// DSA_SAMPLING_EXACT_EXP=1: the sampled rows' weights by the library's double exp (the table-driven exp's fallback).
TEST_F(SamplingOpsTest, ExactExpWeightsStillMatchCpuSampler) {
    LegacyScope exact(true, "DSA_SAMPLING_EXACT_EXP");
    const Tally t = random_batches(*this, rng_, kVocab, {9, 64, 256});
    expect_agreement(t, "double exp weights, vocab 129280");
}

// Greedy rows at an odd vocab (10,001: rows 1.. are not 16-byte aligned, the last 4096-id CTA is partial) on both
// paths: the maximum and its ties at CTA boundaries (ids 4095 / 4096 / 8191 / 8192 / 10000), an edit lifting an id
// onto the maximum across CTAs, a masked maximum, all-equal logits.
TEST_F(SamplingOpsTest, GreedyCtaBoundariesMatchCpuSampler) {
    constexpr int64_t kOdd = 10001;
    constexpr int kRows = 8;
    for (bool on : {false, true}) {
        LegacyScope legacy(on);
        Tensor logits = random_logits(kRows, rng_, kOdd);
        std::vector<RowCase> cases(kRows);
        auto row = [&](int i) { return logits.data<float>() + static_cast<int64_t>(i) * kOdd; };
        for (int i = 0; i < kRows; ++i) cases[i].sp.temperature = 0.0, cases[i].position = i;
        row(0)[4095] = row(0)[8191] = 50.0f;  // tie across CTAs: the lower id
        row(1)[10000] = row(1)[4096] = 50.0f;
        row(2)[10000] = 50.0f;  // the last id, in the partial CTA
        row(3)[9000] = 50.0f;
        cases[3].sp.logit_bias = {{8192, 50.0 - static_cast<double>(row(3)[8192])}};  // exact tie at a lower id
        row(4)[4096] = 60.0f, row(4)[8191] = 55.0f;
        cases[4].sp.min_new_tokens = 2, cases[4].stop_ids = {4096};  // the maximum is masked: 8191
        std::fill(row(5), row(5) + kOdd, -2.0f);                     // all equal: id 0
        row(6)[0] = 50.0f, row(6)[kOdd - 1] = 50.0f;
        row(7)[4095] = -INFINITY, row(7)[4096] = std::nanf(""), row(7)[8192] = 50.0f;
        std::vector<SampledToken> gpu = gpu_sample(logits, cases);
        std::vector<engine::SampleResult> cpu = cpu_sample(logits, cases);
        Tally t;
        tally(t, cases, cpu, gpu);
        expect_agreement(t, on ? "greedy CTA boundaries (legacy)" : "greedy CTA boundaries");
        const int32_t want[kRows] = {4095, 4096, 10000, 8192, 8191, 0, 0, 8192};
        for (int i = 0; i < kRows; ++i) EXPECT_EQ(gpu[i].token_id, want[i]) << "row " << i << " legacy " << on;
    }
}

// One-id vocabulary: every row picks id 0 with logprob 0.
TEST_F(SamplingOpsTest, SingleIdVocab) {
    std::vector<RowCase> cases(3);
    cases[0].sp.temperature = 0.0;
    cases[1].sp.top_p = 0.5, cases[1].seed = 3;
    cases[2].sp.top_k = 1, cases[2].sp.min_p = 0.2, cases[2].seed = 4;
    Tensor logits = random_logits(3, rng_, 1);
    std::vector<SampledToken> gpu = gpu_sample(logits, cases);
    for (const SampledToken& g : gpu) {
        EXPECT_FALSE(g.fallback);
        EXPECT_EQ(g.token_id, 0);
        EXPECT_NEAR(g.logprob, 0.0, 1e-12);
    }
}

// The comparison can fail: a reference with another uniform (sampled rows) or with a boosted logit (greedy rows)
// must disagree with the GPU on most rows.
TEST_F(SamplingOpsTest, PerturbedReferenceDisagrees) {
    const int64_t batch = 64;
    Tensor logits = random_logits(batch, rng_);
    std::vector<RowCase> cases;
    for (int64_t i = 0; i < batch; ++i) {
        RowCase c = random_case(i, logits.data<float>() + i * kVocab, rng_);
        c.sp.temperature = i % 2 == 0 ? 0.0 : 1.0;  // half greedy, half plain temperature sampling
        c.sp.top_k = -1, c.sp.top_p = 1.0, c.sp.min_p = 0.0;
        cases.push_back(c);
    }
    std::vector<SampledToken> gpu = gpu_sample(logits, cases);
    std::vector<RowCase> moved = cases;
    Tensor boosted = logits.clone();
    for (int64_t i = 0; i < batch; ++i) {
        moved[i].position += 1;
        boosted.data<float>()[i * kVocab + (gpu[i].token_id + 1) % kVocab] += 1000.0f;
    }
    std::vector<engine::SampleResult> other_u = cpu_sample(logits, moved), other_x = cpu_sample(boosted, cases);
    int64_t same_sampled = 0, same_greedy = 0;
    for (int64_t i = 0; i < batch; ++i) {
        if (i % 2 == 0) same_greedy += gpu[i].token_id == other_x[i].token_id;
        if (i % 2 == 1) same_sampled += gpu[i].token_id == other_u[i].token_id;
    }
    std::cout << "[ metric ] perturbed: greedy same " << same_greedy << "/32, sampled same " << same_sampled << "/32\n";
    EXPECT_EQ(same_greedy, 0);
    EXPECT_LT(same_sampled, 16);
}

// The edits decide: a banned argmax (min_new_tokens), a repetition-penalised argmax and a logit_bias winner.
TEST_F(SamplingOpsTest, PenaltiesAndBiasChangeTheGreedyPick) {
    Tensor logits = random_logits(3, rng_);
    std::vector<RowCase> cases(3);
    std::vector<int32_t> argmax(3);
    for (int64_t i = 0; i < 3; ++i) {
        const float* x = logits.data<float>() + i * kVocab;
        argmax[i] = static_cast<int32_t>(std::max_element(x, x + kVocab) - x);
        cases[i].sp.temperature = 0.0;
    }
    cases[0].sp.min_new_tokens = 2, cases[0].stop_ids = {argmax[0]};
    cases[1].sp.repetition_penalty = 2.0, cases[1].sp.presence_penalty = 50.0, cases[1].output_ids = {argmax[1]};
    cases[2].sp.logit_bias = {{12345, 1000.0}};
    std::vector<SampledToken> gpu = gpu_sample(logits, cases);
    std::vector<engine::SampleResult> cpu = cpu_sample(logits, cases);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(gpu[i].token_id, cpu[i].token_id) << "row " << i;
    EXPECT_NE(gpu[0].token_id, argmax[0]);
    EXPECT_NE(gpu[1].token_id, argmax[1]);
    EXPECT_EQ(gpu[2].token_id, 12345);
}

TEST_F(SamplingOpsTest, NonFiniteRowFallsBackAndBadInputIsAnError) {
    Tensor logits = random_logits(2, rng_);
    for (int64_t i = 0; i < kVocab; ++i) logits.data<float>()[kVocab + i] = std::nanf("");
    Tensor dev = gpu_->to_device(logits);
    std::vector<SampleRow> rows(2);
    rows[0].temperature = 0.8, rows[0].top_p = 0.9, rows[0].uniform = 0.25;
    rows[1].logits_row = 1;
    StatusOr<std::vector<SampledToken>> got = gpu_->sample(dev, rows);
    ASSERT_TRUE(got.is_ok()) << got.status().message();
    EXPECT_FALSE((*got)[0].fallback);
    EXPECT_TRUE((*got)[1].fallback);

    rows[1].edits = {SampleEdit{static_cast<int32_t>(kVocab), 1, false, 0.0}};
    EXPECT_FALSE(gpu_->sample(dev, rows).is_ok());
    rows[1].edits = {SampleEdit{3, 1, false, 0.0}, SampleEdit{3, 2, false, 0.0}};
    EXPECT_FALSE(gpu_->sample(dev, rows).is_ok());
    rows[1].edits.clear();
    rows[1].logits_row = 2;
    EXPECT_FALSE(gpu_->sample(dev, rows).is_ok());
    rows[1].logits_row = 1;
    rows[0].uniform = 1.0;
    EXPECT_FALSE(gpu_->sample(dev, rows).is_ok());
    rows[0].uniform = 0.5;
    EXPECT_FALSE(gpu_->sample(logits, rows).is_ok());  // host logits
}

}  // namespace
}  // namespace dsa::backend::testing
