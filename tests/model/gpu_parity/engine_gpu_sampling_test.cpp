// Sampling on the GPU end to end: ModelEngine on the CUDA backend samples each step with Backend::sample; the same
// engine with DSA_CPU_SAMPLING=1 downloads every logits row for engine::sample_token. Each request runs alone
// (the same batches, so the same logits), so greedy, seeded temperature / top-k / top-p / min-p draws with
// penalties and logit_bias, and the top-logprob requests that stay on the CPU must give the same tokens, and the
// chosen-token logprobs agree to 1e-4 relative. Skips without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/device_memory.h"
#include "engine/model_engine.h"
#include "gpu_fixture.h"

namespace dsa::engine {
namespace {

using namespace std::chrono_literals;

struct Output {
    std::vector<int32_t> tokens;
    std::vector<double> logprobs;
};

std::vector<GenerateRequest> requests_for(const std::vector<model::gpu_testing::RefPrompt>& prompts) {
    std::vector<GenerateRequest> out;
    for (size_t i = 0; i < prompts.size(); ++i) {
        for (int kind = 0; kind < 5; ++kind) {
            GenerateRequest r;
            r.rid = "p" + std::to_string(i) + "k" + std::to_string(kind);
            r.input_ids = prompts[i].ids;
            SamplingParams& sp = r.sampling;
            sp.max_new_tokens = 16;
            sp.ignore_eos = true;
            sp.seed = 1000 + i * 10 + static_cast<uint64_t>(kind);
            r.return_logprob = kind != 2;
            if (kind == 0) sp.temperature = 0.0;
            if (kind == 1) sp.temperature = 0.8, sp.top_p = 0.9;
            if (kind == 2) {
                sp.temperature = 1.2, sp.top_k = 20, sp.min_p = 0.05;
                sp.frequency_penalty = 0.4, sp.presence_penalty = 0.2, sp.repetition_penalty = 1.2;
                sp.logit_bias = {{5, 1.0}, {7, -2.0}};
            }
            if (kind == 3) sp.temperature = 1.0;
            if (kind == 4) sp.temperature = 0.7, r.top_logprobs_num = 3;  // the CPU path inside the GPU engine
            out.push_back(std::move(r));
        }
    }
    return out;
}

Output run_alone(Engine& engine, const GenerateRequest& request) {
    auto stream = std::make_shared<TokenStream>();
    EXPECT_TRUE(engine.submit(request, stream).is_ok()) << request.rid;
    Output out;
    bool finished = false;
    const auto deadline = std::chrono::steady_clock::now() + 300s;
    while (!finished && std::chrono::steady_clock::now() < deadline) {
        for (const TokenEvent& e : stream->drain()) {
            out.tokens.insert(out.tokens.end(), e.token_ids.begin(), e.token_ids.end());
            for (const TokenLogprob& lp : e.logprobs) out.logprobs.push_back(lp.logprob);
            finished = finished || e.finished;
        }
        if (!finished) std::this_thread::sleep_for(2ms);
    }
    return out;
}

std::vector<Output> run_on_gpu(const std::string& dir, const std::vector<GenerateRequest>& requests,
                               bool cpu_sampling) {
    ModelEngineOptions o;
    o.model_path = dir;
    o.numerics = backend::Numerics::bf16();
    o.engine.context_length = 1024;
    o.engine.chunked_prefill_size = 256;
    o.engine.kv_budget_bytes = 64 << 20;
    o.backend.make = [](const backend::Numerics& n) -> StatusOr<std::unique_ptr<backend::Backend>> {
        return backend::make_cuda_backend(n, 0);
    };
    if (cpu_sampling) setenv("DSA_CPU_SAMPLING", "1", 1);
    auto me = ModelEngine::load(o);
    unsetenv("DSA_CPU_SAMPLING");
    EXPECT_TRUE(me.is_ok()) << me.status().to_string();
    if (!me.is_ok()) return {};
    EXPECT_EQ((*me)->device(), Device::kCUDA);
    (*me)->engine().start();
    std::vector<Output> out;
    for (const GenerateRequest& r : requests) out.push_back(run_alone((*me)->engine(), r));
    (*me)->engine().stop();
    return out;
}

class EngineGpuSampling : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        if (backend::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device present";
    }
};

TEST_P(EngineGpuSampling, DeviceSamplerGivesTheCpuSamplersTokens) {
    const std::string dir = model::gpu_testing::golden_dir(GetParam());
    auto cfg = model::load_model_config(dir);
    ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
    const std::vector<GenerateRequest> requests = requests_for(model::gpu_testing::load_ref_prompts(dir, *cfg));
    const std::vector<Output> gpu = run_on_gpu(dir, requests, false);
    const std::vector<Output> cpu = run_on_gpu(dir, requests, true);
    ASSERT_EQ(gpu.size(), requests.size());
    ASSERT_EQ(cpu.size(), requests.size());
    int64_t same = 0, total = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
        ASSERT_EQ(gpu[i].tokens.size(), 16u) << requests[i].rid << " did not finish";
        std::cout << "[ metric ] " << GetParam() << " " << requests[i].rid << " gpu-sampled "
                  << model::gpu_testing::ids_to_string(gpu[i].tokens) << " cpu-sampled "
                  << model::gpu_testing::ids_to_string(cpu[i].tokens) << "\n";
        EXPECT_EQ(gpu[i].tokens, cpu[i].tokens) << requests[i].rid;
        total += 1;
        same += gpu[i].tokens == cpu[i].tokens;
        if (gpu[i].tokens != cpu[i].tokens) continue;
        ASSERT_EQ(gpu[i].logprobs.size(), cpu[i].logprobs.size()) << requests[i].rid;
        for (size_t t = 0; t < gpu[i].logprobs.size(); ++t) {
            const double ref = cpu[i].logprobs[t];
            EXPECT_LE(std::fabs(gpu[i].logprobs[t] - ref), 1e-4 * std::fabs(ref) + 1e-9)
                << requests[i].rid << " token " << t;
        }
    }
    std::cout << "[ metric ] " << GetParam() << " requests with identical tokens " << same << "/" << total << "\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineGpuSampling, ::testing::Values("deepseek_v32_tiny", "glm5_indexcache_tiny"));

}  // namespace
}  // namespace dsa::engine
