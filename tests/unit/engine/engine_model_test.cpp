// End to end on the real tiny DeepSeek-V3.2 golden checkpoint (CPU backend, FP32 numerics): 16 concurrent
// greedy requests with mixed prompt lengths, some sharing a prefix already in the cache, each produce exactly
// the tokens the same prompt produces alone through SequenceRunner + argmax; the prefix-cache hit rate moves;
// every KV page is free once the requests are done and the cache is flushed.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <thread>

#include "backend/backend.h"
#include "engine/engine.h"
#include "engine/model_engine.h"
#include "engine/model_runner.h"
#include "golden_model.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/sequence_runner.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace dsa::engine {
namespace {

using namespace std::chrono_literals;

constexpr int kPage = 64;
constexpr int64_t kMaxPositions = 1024;

struct TinyModel : test_models::GoldenModel {
    TinyModel() : GoldenModel(kMaxPositions) {}

    // The oracle: the prompt alone through SequenceRunner, greedy argmax.
    std::vector<int32_t> solo_greedy(const std::vector<int32_t>& prompt, int64_t num_tokens) {
        int64_t num_pages = (static_cast<int64_t>(prompt.size()) + num_tokens) / kPage + 2;
        model::KvStores kv = model::allocate_kv_stores(config, numerics.mla_kv_format(), numerics.indexer_key_format(),
                                                       num_pages, kPage, 0);
        model::SequenceRunner runner(*model, kv, kPage);
        Tensor logits = runner.step(prompt, /*all_logits=*/false).logits;
        std::vector<int32_t> out;
        for (int64_t i = 0; i < num_tokens; ++i) {
            int32_t next = model::argmax_row(logits, 0);
            out.push_back(next);
            if (i + 1 < num_tokens) logits = runner.step(std::span<const int32_t>(&next, 1), false).logits;
        }
        return out;
    }
};

TinyModel& tiny() {
    static TinyModel m;
    return m;
}

std::vector<int32_t> random_ids(std::mt19937& rng, int64_t n, int64_t vocab) {
    std::uniform_int_distribution<int32_t> tok(2, static_cast<int32_t>(vocab - 1));
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int32_t& t : ids) t = tok(rng);
    return ids;
}

GenerateRequest greedy(const std::string& rid, std::vector<int32_t> prompt, int32_t max_new) {
    GenerateRequest r;
    r.rid = rid;
    r.input_ids = std::move(prompt);
    r.sampling.temperature = 0.0;
    r.sampling.max_new_tokens = max_new;
    r.sampling.ignore_eos = true;
    return r;
}

std::vector<int32_t> collect(TokenStream& stream, bool* finished) {
    std::vector<int32_t> tokens;
    auto deadline = std::chrono::steady_clock::now() + 300s;
    *finished = false;
    while (!*finished && std::chrono::steady_clock::now() < deadline) {
        for (const TokenEvent& e : stream.drain()) {
            tokens.insert(tokens.end(), e.token_ids.begin(), e.token_ids.end());
            *finished = *finished || e.finished;
        }
        if (!*finished) std::this_thread::sleep_for(2ms);
    }
    return tokens;
}

TEST(EngineTinyModel, ConcurrentGreedyRequestsMatchTheirSoloRuns) {
    TinyModel& m = tiny();
    const int64_t vocab = m.config.vocab_size;
    EngineConfig cfg;
    cfg.page_size = kPage;
    cfg.context_length = kMaxPositions;
    cfg.max_running_requests = 16;
    cfg.chunked_prefill_size = 128;  // long prompts are chunked
    cfg.max_prefill_tokens = 256;
    cfg.kv_budget_bytes = 8 << 20;
    for (int64_t id : m.config.eos_token_ids) cfg.eos_token_ids.push_back(static_cast<int32_t>(id));
    cfg.invariant_checks = InvariantChecks::kEveryStep;
    auto runner = DsaModelRunner::create(*m.model, m.numerics, cfg.kv_budget_bytes, kPage);
    ASSERT_TRUE(runner.is_ok()) << runner.status().to_string();
    // Both stores are counted: 3 layers x (2304 B latent + 512 B indexer key) per token in FP32.
    EXPECT_EQ((*runner)->pool().config().bytes_per_token(), 3 * (2304 + 512));
    auto created = Engine::create(cfg, std::move(runner).value());
    ASSERT_TRUE(created.is_ok()) << created.status().to_string();
    std::unique_ptr<Engine> engine = std::move(created).value();
    engine->start();

    std::mt19937 rng(2024);
    const std::vector<int32_t> shared = random_ids(rng, 140, vocab);  // two whole pages + a partial one
    {                                                                 // Warm the cache with the shared prefix.
        auto stream = std::make_shared<TokenStream>();
        ASSERT_TRUE(engine->submit(greedy("warm", shared, 2), stream).is_ok());
        bool finished = false;
        collect(*stream, &finished);
        ASSERT_TRUE(finished);
    }
    const double hit_rate_before = engine->stats().cache_hit_rate;

    std::vector<GenerateRequest> requests;
    for (int i = 0; i < 16; ++i) {
        std::vector<int32_t> prompt;
        if (i % 3 == 0) prompt = shared;
        std::vector<int32_t> tail = random_ids(rng, 1 + static_cast<int64_t>(rng() % (i % 4 == 1 ? 200 : 40)), vocab);
        prompt.insert(prompt.end(), tail.begin(), tail.end());
        requests.push_back(greedy("r" + std::to_string(i), prompt, 2 + static_cast<int32_t>(rng() % 4)));
    }
    std::vector<std::shared_ptr<TokenStream>> streams;
    for (const GenerateRequest& r : requests) {
        streams.push_back(std::make_shared<TokenStream>());
        ASSERT_TRUE(engine->submit(r, streams.back()).is_ok());
    }
    for (size_t i = 0; i < requests.size(); ++i) {
        bool finished = false;
        std::vector<int32_t> tokens = collect(*streams[i], &finished);
        ASSERT_TRUE(finished) << requests[i].rid;
        EXPECT_EQ(tokens, m.solo_greedy(requests[i].input_ids, *requests[i].sampling.max_new_tokens))
            << requests[i].rid << " (prompt " << requests[i].input_ids.size() << " tokens)";
    }

    EngineStats stats = engine->stats();
    EXPECT_GT(stats.cache_hit_rate, hit_rate_before);
    EXPECT_EQ(stats.num_running_reqs + stats.num_queue_reqs, 0);
    EXPECT_EQ(stats.num_used_tokens, 0);  // nothing held by a request or a locked cache node
    ASSERT_TRUE(engine->flush_cache().is_ok());
    Engine::PoolState pool = engine->pool_state();
    EXPECT_EQ(pool.num_free_pages, pool.num_pages);
    engine->stop();
}

TEST(EngineTinyModel, KvBudgetCountsBothStores) {
    TinyModel& m = tiny();
    kvcache::KvCacheConfig fp32 = kv_cache_config_for(m.config, backend::Numerics::fp32(), kPage);
    kvcache::KvCacheConfig fp8 = kv_cache_config_for(m.config, backend::Numerics::deepseek_fp8(), kPage);
    EXPECT_EQ(fp32.bytes_per_page(), 3 * (2304 * 64 + 32768));  // backend: F32 latent rows, F32 indexer pages
    EXPECT_EQ(fp8.bytes_per_page(), 3 * (656 * 64 + 8448));     // backend: FP8 latent rows, FP8 indexer pages
    auto none = DsaModelRunner::create(*m.model, m.numerics, fp32.bytes_per_page(), kPage);  // page 0 only
    EXPECT_FALSE(none.is_ok());
    auto wrong_page = DsaModelRunner::create(*m.model, m.numerics, 1 << 20, 16);
    EXPECT_FALSE(wrong_page.is_ok());
}

}  // namespace
}  // namespace dsa::engine

namespace dsa::engine {
namespace {

TEST(ModelEngine, LoadsTheCheckpointAndServes) {
    ModelEngineOptions options;
    options.model_path = std::string(DSA_SOURCE_DIR) + "/tests/golden/deepseek_v32_tiny";
    options.engine.context_length = 512;
    options.engine.kv_budget_bytes = 4 << 20;
    auto loaded = ModelEngine::load(options);
    ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
    ModelEngine& me = **loaded;
    EXPECT_EQ(me.engine().config().eos_token_ids, std::vector<int32_t>{1});  // from config.json
    me.engine().start();
    auto stream = std::make_shared<TokenStream>();
    std::vector<int32_t> prompt{5, 6, 7, 8, 9};
    ASSERT_TRUE(me.engine().submit(greedy("one", prompt, 3), stream).is_ok());
    bool finished = false;
    std::vector<int32_t> tokens = collect(*stream, &finished);
    ASSERT_TRUE(finished);
    EXPECT_EQ(tokens, tiny().solo_greedy(prompt, 3));

    options.model_path += "/no_such_dir";
    EXPECT_FALSE(ModelEngine::load(options).is_ok());
}

}  // namespace
}  // namespace dsa::engine
