// The serving engine (ModelEngine, what `dsaserve serve` loads) on the CUDA backend: KV pool planned from device
// memory with --mem-fraction-static through kvcache::plan_kv_memory, several concurrent greedy requests (one
// sharing a cached prefix) batched on the GPU. Oracle: the golden reference continuation, for every request
// whose CPU bf16 engine run reproduces it (bf16 can legitimately drift from the FP32 reference). Skips
// without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/device_memory.h"
#include "engine/model_engine.h"
#include "gpu_fixture.h"

namespace dsa::engine {
namespace {

using namespace std::chrono_literals;

GenerateRequest greedy(const std::string& rid, std::vector<int32_t> prompt, int32_t max_new) {
    GenerateRequest r;
    r.rid = rid;
    r.input_ids = std::move(prompt);
    r.sampling.temperature = 0.0;
    r.sampling.max_new_tokens = max_new;
    r.sampling.ignore_eos = true;
    return r;
}

BackendProvider cuda_provider() {
    BackendProvider p;
    p.make = [](const backend::Numerics& n) -> StatusOr<std::unique_ptr<backend::Backend>> {
        return backend::make_cuda_backend(n, 0);
    };
    p.memory = []() -> StatusOr<DeviceMemoryInfo> {
        DSA_ASSIGN_OR_RETURN(backend::CudaMemoryInfo m, backend::cuda_memory_info(0));
        return DeviceMemoryInfo{m.free_bytes, m.total_bytes};
    };
    return p;
}

// Runs `requests` concurrently through a started engine; the tokens of each (empty when it did not finish).
std::vector<std::vector<int32_t>> run_batch(Engine& engine, const std::vector<GenerateRequest>& requests) {
    std::vector<std::shared_ptr<TokenStream>> streams;
    for (const GenerateRequest& r : requests) {
        streams.push_back(std::make_shared<TokenStream>());
        EXPECT_TRUE(engine.submit(r, streams.back()).is_ok()) << r.rid;
    }
    std::vector<std::vector<int32_t>> out;
    for (auto& stream : streams) {
        std::vector<int32_t> tokens;
        bool finished = false;
        const auto deadline = std::chrono::steady_clock::now() + 300s;
        while (!finished && std::chrono::steady_clock::now() < deadline) {
            for (const TokenEvent& e : stream->drain()) {
                tokens.insert(tokens.end(), e.token_ids.begin(), e.token_ids.end());
                finished = finished || e.finished;
            }
            if (!finished) std::this_thread::sleep_for(2ms);
        }
        out.push_back(finished ? tokens : std::vector<int32_t>{});
    }
    return out;
}

// All but the last request concurrently, then the last one alone (it repeats an earlier prompt: a cache hit).
std::vector<std::vector<int32_t>> run_all(Engine& engine, const std::vector<GenerateRequest>& requests) {
    std::vector<GenerateRequest> first(requests.begin(), requests.end() - 1);
    std::vector<std::vector<int32_t>> out = run_batch(engine, first);
    out.push_back(run_batch(engine, {requests.back()}).at(0));
    return out;
}

ModelEngineOptions options_for(const std::string& dir) {
    ModelEngineOptions o;
    o.model_path = dir;
    o.numerics = backend::Numerics::bf16();
    o.engine.context_length = 1024;
    o.engine.chunked_prefill_size = 256;  // the 600-token prompt is prefilled in chunks
    return o;
}

class EngineOnGpu : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        if (backend::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device present";
    }
};

TEST_P(EngineOnGpu, ConcurrentGreedyRequestsMatchReference) {
    const std::string dir = model::gpu_testing::golden_dir(GetParam());
    auto cfg = model::load_model_config(dir);
    ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
    const std::vector<model::gpu_testing::RefPrompt> prompts = model::gpu_testing::load_ref_prompts(dir, *cfg);
    std::vector<GenerateRequest> requests;
    std::vector<std::vector<int32_t>> refs;
    for (size_t i = 0; i < prompts.size(); ++i) {
        requests.push_back(greedy("p" + std::to_string(i), prompts[i].ids, 8));
        refs.push_back(prompts[i].greedy);
    }
    requests.push_back(greedy("p2-again", prompts.at(2).ids, 8));  // a prefix-cache hit on its second run
    refs.push_back(prompts.at(2).greedy);

    ModelEngineOptions cpu_opts = options_for(dir);
    cpu_opts.engine.kv_budget_bytes = 64 << 20;
    auto cpu = ModelEngine::load(cpu_opts);
    ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
    (*cpu)->engine().start();
    const std::vector<std::vector<int32_t>> cpu_out = run_all((*cpu)->engine(), requests);
    (*cpu)->engine().stop();

    ModelEngineOptions gpu_opts = options_for(dir);
    gpu_opts.engine.kv_budget_bytes = 0;  // planned from device memory
    gpu_opts.backend = cuda_provider();
    gpu_opts.mem_fraction_static = 0.02;  // a few GiB of an H200: the plan, not the default whole-GPU pool
    auto gpu = ModelEngine::load(gpu_opts);
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    ASSERT_EQ((*gpu)->device(), Device::kCUDA);
    (*gpu)->engine().start();
    const std::vector<std::vector<int32_t>> gpu_out = run_all((*gpu)->engine(), requests);

    int compared = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
        const std::vector<int32_t>& ref = refs[i];
        ASSERT_EQ(gpu_out[i].size(), 8u) << requests[i].rid << " did not finish on the GPU";
        std::cout << "[ metric ] " << GetParam() << " " << requests[i].rid << " reference "
                  << model::gpu_testing::ids_to_string(ref) << " cpu " << model::gpu_testing::ids_to_string(cpu_out[i])
                  << " gpu " << model::gpu_testing::ids_to_string(gpu_out[i]) << "\n";
        if (cpu_out[i] != ref) continue;
        ++compared;
        EXPECT_EQ(gpu_out[i], ref) << requests[i].rid;
    }
    EXPECT_GT(compared, 0) << "the CPU bf16 engine matches no reference continuation";
    EXPECT_GT((*gpu)->engine().stats().cache_hit_rate, 0.0);
    ASSERT_TRUE((*gpu)->engine().flush_cache().is_ok());
    Engine::PoolState pool = (*gpu)->engine().pool_state();
    EXPECT_EQ(pool.num_free_pages, pool.num_pages);
    (*gpu)->engine().stop();
}

// A fraction too small for the weights is a user error naming the viable range, not a crash.
TEST_P(EngineOnGpu, TooSmallMemFractionIsAnError) {
    ModelEngineOptions o = options_for(model::gpu_testing::golden_dir(GetParam()));
    o.engine.kv_budget_bytes = 0;
    o.backend = cuda_provider();
    o.mem_fraction_static = 1e-9;
    auto me = ModelEngine::load(o);
    ASSERT_FALSE(me.is_ok());
    EXPECT_NE(me.status().message().find("--mem-fraction-static"), std::string::npos) << me.status().to_string();
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineOnGpu, ::testing::Values("deepseek_v32_tiny", "glm5_indexcache_tiny"));

}  // namespace
}  // namespace dsa::engine
