// Backend::sample on the GPU against the CPU sampler (engine::sample_token) at vocab 129,280: every parameter
// family (greedy, temperature, top-k, top-p, min-p and their mixes, penalties, min_new_tokens masking,
// logit_bias), rows with large groups of equal logits, batch 1..256. Greedy must pick the same id on every
// row; a sampled row may differ only where the CPU's sequential double sums and the GPU's blocked / fixed-point
// ones round differently right at a cumulative or cut boundary (a measure ~1e-12 of the uniform), so >= 99.9% of
// sampled rows must agree. A perturbed reference (another uniform, a boosted logit) must disagree.
#include <algorithm>
#include <thread>

#include "engine/device_sampling.h"
#include "engine/sampler.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

constexpr int64_t kVocab = 129280;
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
Tensor random_logits(int64_t rows, std::mt19937& rng) {
    Tensor t = Tensor::empty({rows, kVocab}, DType::kF32);
    for (int64_t r = 0; r < rows; ++r) {
        const float scale[3] = {1.0f, 2.5f, 6.0f};
        std::normal_distribution<float> d(0.0f, scale[r % 3]);
        float* x = t.data<float>() + r * kVocab;
        for (int64_t i = 0; i < kVocab; ++i) x[i] = r % 4 == 1 ? round_bf16(d(rng)) : d(rng);
        if (r % 5 == 2) {
            const int64_t top = std::max_element(x, x + kVocab) - x;
            x[std::uniform_int_distribution<int64_t>(0, std::max<int64_t>(top - 1, 0))(rng)] = x[top];
        }
    }
    return t;
}

// Output ids drawn from the row's best tokens (so the penalties change the outcome) and stop ids that include the
// row's argmax.
RowCase random_case(int64_t row, const float* x, std::mt19937& rng) {
    RowCase c;
    c.sp = family(static_cast<int>(row % kFamilies));
    c.seed = rng();
    c.position = std::uniform_int_distribution<int64_t>(0, 1000)(rng);
    std::vector<int32_t> best(kVocab);
    for (int32_t i = 0; i < kVocab; ++i) best[i] = i;
    std::partial_sort(best.begin(), best.begin() + 20, best.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
    const int n = std::uniform_int_distribution<int>(0, 12)(rng);
    for (int i = 0; i < n; ++i) c.output_ids.push_back(best[std::uniform_int_distribution<int>(0, 19)(rng)]);
    c.stop_ids = {1, best[0]};
    return c;
}

engine::SampleInput input_of(const RowCase& c, const float* row) {
    engine::SampleInput in;
    in.logits = std::span<const float>(row, static_cast<size_t>(kVocab));
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
    const size_t workers = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    for (size_t w = 0; w < workers; ++w) {
        pool.emplace_back([&, w] {
            for (size_t i = w; i < cases.size(); i += workers) {
                const float* row = logits.data<float>() + static_cast<int64_t>(i) * kVocab;
                out[i] = engine::sample_token(input_of(cases[i], row), engine::LogprobMode::kChosenAndTop);
            }
        });
    }
    for (std::thread& t : pool) t.join();
    return out;
}

class SamplingOpsTest : public CudaVsCpuTest {
  protected:
    std::vector<SampledToken> gpu_sample(const Tensor& logits, const std::vector<RowCase>& cases) {
        std::vector<SampleRow> rows;
        for (size_t i = 0; i < cases.size(); ++i) {
            const float* row = logits.data<float>() + static_cast<int64_t>(i) * kVocab;
            rows.push_back(engine::pack_sample_row(input_of(cases[i], row), static_cast<int64_t>(i), kVocab));
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

TEST_F(SamplingOpsTest, MatchesCpuSamplerAcrossFamiliesAndBatches) {
    Tally t;
    for (int64_t batch : {1, 3, 64, 256, 256, 256, 256, 256}) {
        Tensor logits = random_logits(batch, rng_);
        std::vector<RowCase> cases;
        for (int64_t i = 0; i < batch; ++i) {
            // Rows of a small batch cycle through the families from a random start.
            const int64_t row_family = batch < kFamilies ? std::uniform_int_distribution<int64_t>(0, 11)(rng_) : i;
            RowCase c = random_case(row_family, logits.data<float>() + i * kVocab, rng_);
            cases.push_back(c);
        }
        tally(t, cases, cpu_sample(logits, cases), gpu_sample(logits, cases));
    }
    std::cout << "[ metric ] greedy " << t.greedy_same << "/" << t.greedy << " sampled " << t.sampled_same << "/"
              << t.sampled << " logprob_bad " << t.logprob_bad << "\n";
    EXPECT_GE(t.sampled, 1000);
    EXPECT_EQ(t.greedy_same, t.greedy);
    EXPECT_GE(static_cast<double>(t.sampled_same), 0.999 * static_cast<double>(t.sampled));
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
