// The CPU side of device sampling: which rows go to the device, how a SampleInput is packed (penalty counts,
// min_new_tokens masks, logit_bias, the uniform), and the engine's split between device rows and CPU fallbacks
// with a fake "device" runner (every request must still produce its greedy continuation, in order).
#include "engine/device_sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "backend/backend.h"
#include "engine/engine_core.h"
#include "fake_runner.h"

namespace dsa::engine {
namespace {

constexpr int64_t kVocab = 64;

SampleInput input_for(const SamplingParams& sp, const std::vector<int32_t>& out, const std::vector<int32_t>& stop) {
    SampleInput in;
    in.params = &sp;
    in.output_ids = out;
    in.stop_ids = stop;
    in.seed = 42;
    in.position = static_cast<int64_t>(out.size());
    return in;
}

TEST(DeviceSamplingTest, PacksPenaltiesMasksAndBiasAsOneEditPerToken) {
    SamplingParams sp;
    sp.temperature = 0.7, sp.top_k = 20, sp.top_p = 0.9, sp.min_p = 0.05;
    sp.frequency_penalty = 0.5, sp.presence_penalty = -0.25, sp.repetition_penalty = 1.1;
    sp.min_new_tokens = 10;
    sp.logit_bias = {{9, 1.5}, {kVocab + 1, 2.0}, {3, -4.0}};
    const std::vector<int32_t> out = {5, 9, 5, -1, static_cast<int32_t>(kVocab) + 3}, stop = {2, 9, -7};
    backend::SampleRow row = pack_sample_row(input_for(sp, out, stop), 6, kVocab);
    EXPECT_EQ(row.logits_row, 6);
    EXPECT_FALSE(row.greedy);
    EXPECT_EQ(row.top_k, 20);
    EXPECT_DOUBLE_EQ(row.top_p, 0.9);
    EXPECT_DOUBLE_EQ(row.min_p, 0.05);
    EXPECT_DOUBLE_EQ(row.repetition_penalty, 1.1);
    EXPECT_EQ(row.uniform, uniform_for(42, 5));
    ASSERT_EQ(row.edits.size(), 4u);  // tokens 2, 3, 5, 9 in id order; out-of-vocab ids dropped
    EXPECT_EQ(row.edits[0].token, 2);
    EXPECT_TRUE(row.edits[0].masked);
    EXPECT_EQ(row.edits[0].count, 0);
    EXPECT_EQ(row.edits[1].token, 3);
    EXPECT_DOUBLE_EQ(row.edits[1].bias, -4.0);
    EXPECT_FALSE(row.edits[1].masked);
    EXPECT_EQ(row.edits[2].token, 5);
    EXPECT_EQ(row.edits[2].count, 2);
    EXPECT_EQ(row.edits[3].token, 9);
    EXPECT_EQ(row.edits[3].count, 1);
    EXPECT_TRUE(row.edits[3].masked);
    EXPECT_DOUBLE_EQ(row.edits[3].bias, 1.5);
}

TEST(DeviceSamplingTest, NoCountsWithoutPenaltiesNoMasksOnceMinNewTokensIsReached) {
    SamplingParams sp;
    sp.temperature = 0.0;
    sp.min_new_tokens = 2;
    const std::vector<int32_t> out = {4, 4, 8}, stop = {4};
    backend::SampleRow row = pack_sample_row(input_for(sp, out, stop), 0, kVocab);
    EXPECT_TRUE(row.greedy);
    EXPECT_EQ(row.uniform, 0.0);
    EXPECT_TRUE(row.edits.empty());
}

TEST(DeviceSamplingTest, GrammarAndTopLogprobsStayOnTheCpu) {
    SamplingParams sp;
    SampleInput in = input_for(sp, {}, {});
    EXPECT_TRUE(device_sampleable(false, in, LogprobMode::kNone));
    EXPECT_TRUE(device_sampleable(false, in, LogprobMode::kChosenAndTop));
    EXPECT_FALSE(device_sampleable(true, in, LogprobMode::kNone));
    in.num_top_logprobs = 3;
    EXPECT_FALSE(device_sampleable(false, in, LogprobMode::kChosenAndTop));
    std::vector<uint64_t> mask = {1};
    in.num_top_logprobs = 0;
    in.allowed = mask;
    EXPECT_FALSE(device_sampleable(false, in, LogprobMode::kNone));
}

TEST(DeviceSamplingTest, FromDeviceFillsTheChosenLogprobOnlyWhenAsked) {
    const backend::SampledToken t{17, -0.5, false};
    EXPECT_EQ(from_device(t, LogprobMode::kNone).token_id, 17);
    SampleResult r = from_device(t, LogprobMode::kChosenAndTop);
    EXPECT_EQ(r.logprob.token_id, 17);
    EXPECT_DOUBLE_EQ(r.logprob.logprob, -0.5);
    EXPECT_TRUE(r.logprob.top.empty());
}

TEST(DeviceSamplingTest, CpuBackendHasNoDeviceSampler) {
    auto cpu = backend::make_cpu_backend(backend::Numerics::fp32());
    Tensor logits = Tensor::zeros({1, kVocab}, DType::kF32);
    std::vector<backend::SampleRow> rows(1);
    StatusOr<std::vector<backend::SampledToken>> got = cpu->sample(logits, rows);
    ASSERT_FALSE(got.is_ok());
    EXPECT_EQ(got.status().code(), StatusCode::kUnimplemented);
}

// A runner whose "device" sampler is greedy argmax on the host and hands back every row whose logits row index
// is odd (a fallback): both engine paths run and every token must still be the oracle's.
class FakeDeviceRunner final : public ModelRunner {
  public:
    FakeDeviceRunner(int64_t num_pages, int64_t page_size) : inner_(num_pages, page_size, kVocab) {}
    int64_t vocab_size() const override { return kVocab; }
    int64_t num_pages() const override { return inner_.num_pages(); }
    int64_t page_size() const override { return inner_.page_size(); }
    Tensor forward(std::span<const model::SequenceStep> steps) override {
        ADD_FAILURE() << "device runner: forward() must not be used";
        return inner_.forward(steps);
    }
    bool device_sampling() const override { return true; }
    Tensor forward_on_device(std::span<const model::SequenceStep> steps) override { return inner_.forward(steps); }
    StatusOr<std::vector<backend::SampledToken>> sample_on_device(const Tensor& logits,
                                                                  std::span<const backend::SampleRow> rows) override {
        std::vector<backend::SampledToken> out;
        for (const backend::SampleRow& r : rows) {
            EXPECT_TRUE(r.greedy);
            const float* x = logits.data<float>() + r.logits_row * kVocab;
            const int32_t best = static_cast<int32_t>(std::max_element(x, x + kVocab) - x);
            out.push_back(backend::SampledToken{best, 0.0, r.logits_row % 2 == 1});
            ++device_rows;
        }
        return out;
    }
    Tensor logits_row_to_host(const Tensor& logits, int64_t row) override {
        ++host_rows;
        return logits.select(row);
    }

    testing::FakeRunner inner_;
    int64_t device_rows = 0, host_rows = 0;
};

TEST(DeviceSamplingTest, EngineSamplesOnTheDeviceAndFallsBackPerRow) {
    EngineConfig config;
    config.page_size = 4;
    config.max_running_requests = 8;
    config.chunked_prefill_size = 16;
    config.max_prefill_tokens = 64;
    config.context_length = 128;
    config.eos_token_ids = {1};
    FakeDeviceRunner runner(256, config.page_size);
    EngineCore core(config, runner);
    std::vector<std::vector<int32_t>> prompts = {{3, 4, 5}, {9, 8, 7, 6}, {11, 12}, {20, 21, 22, 23, 24}};
    std::vector<std::shared_ptr<TokenStream>> streams;
    for (size_t i = 0; i < prompts.size(); ++i) {
        GenerateRequest r;
        r.rid = "r" + std::to_string(i);
        r.input_ids = prompts[i];
        r.sampling.temperature = 0.0;
        r.sampling.max_new_tokens = 6;
        r.sampling.ignore_eos = true;
        if (i == 3) {  // top logprobs: always the CPU sampler
            r.return_logprob = true;
            r.top_logprobs_num = 2;
        }
        streams.push_back(std::make_shared<TokenStream>());
        ASSERT_TRUE(core.add_request(std::move(r), streams.back()).is_ok());
    }
    for (int step = 0; step < 100 && core.has_work(); ++step) core.step();
    ASSERT_FALSE(core.has_work());
    for (size_t i = 0; i < prompts.size(); ++i) {
        std::vector<int32_t> got;
        for (TokenEvent& e : streams[i]->drain()) got.insert(got.end(), e.token_ids.begin(), e.token_ids.end());
        EXPECT_EQ(got, testing::FakeRunner::expected_greedy(prompts[i], 6, kVocab)) << "request " << i;
    }
    EXPECT_EQ(runner.device_rows, 18);  // requests 0..2, 6 tokens each
    EXPECT_GT(runner.host_rows, 6);     // request 3's rows, plus the odd-row fallbacks
}

}  // namespace
}  // namespace dsa::engine
