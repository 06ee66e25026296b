// Engine (the threaded EngineClient) over the FakeRunner: submissions and aborts from several threads at once,
// exactly one terminal event per accepted request, nothing after it, stats published, flush_cache only when
// idle, and every page free once the cache is flushed. Also stop() with requests in flight.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "fake_runner.h"

namespace dsa::engine {
namespace {

using testing::FakeRunner;
using namespace std::chrono_literals;

constexpr int64_t kVocab = 64;

EngineConfig config() {
    EngineConfig c;
    c.page_size = 4;
    c.max_running_requests = 6;
    c.chunked_prefill_size = 16;
    c.max_prefill_tokens = 32;
    c.context_length = 512;
    c.eos_token_ids = {1};
    c.invariant_checks = InvariantChecks::kEveryStep;
    return c;
}

std::unique_ptr<Engine> make_engine(int64_t num_pages) {
    auto e = Engine::create(config(), std::make_unique<FakeRunner>(num_pages, 4, kVocab));
    EXPECT_TRUE(e.is_ok()) << e.status().to_string();
    return std::move(e).value();
}

GenerateRequest request(const std::string& rid, std::mt19937& rng, int32_t max_new) {
    GenerateRequest r;
    r.rid = rid;
    std::uniform_int_distribution<int32_t> tok(2, kVocab - 1);
    r.input_ids.resize(3 + rng() % 30);
    for (int32_t& t : r.input_ids) t = tok(rng);
    r.sampling.temperature = 0.0;
    r.sampling.max_new_tokens = max_new;
    r.sampling.ignore_eos = true;
    return r;
}

// Drains until the finished event (or the timeout); returns every event.
std::vector<TokenEvent> wait_finished(TokenStream& stream, std::chrono::seconds timeout = 30s) {
    std::vector<TokenEvent> events;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        for (TokenEvent& e : stream.drain()) events.push_back(std::move(e));
        if (!events.empty() && events.back().finished) break;
        std::this_thread::sleep_for(1ms);
    }
    return events;
}

TEST(Engine, ConcurrentSubmitAndAbortFromManyThreads) {
    std::unique_ptr<Engine> engine = make_engine(64);
    engine->start();
    constexpr int kThreads = 4, kPerThread = 12;
    std::vector<std::vector<std::pair<GenerateRequest, std::shared_ptr<TokenStream>>>> work(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937 rng(t);
            for (int i = 0; i < kPerThread; ++i) {
                GenerateRequest r = request("t" + std::to_string(t) + "-" + std::to_string(i), rng, 3 + i % 9);
                auto stream = std::make_shared<TokenStream>();
                ASSERT_TRUE(engine->submit(r, stream).is_ok());
                if (i % 4 == 3) engine->abort(r.rid, AbortReason::kClientGone);
                work[t].emplace_back(std::move(r), stream);
            }
        });
    }
    for (std::thread& th : threads) th.join();
    for (auto& per_thread : work) {
        for (auto& [req, stream] : per_thread) {
            std::vector<TokenEvent> events = wait_finished(*stream);
            ASSERT_FALSE(events.empty()) << req.rid;
            ASSERT_TRUE(events.back().finished) << req.rid;
            int num_terminal = 0;
            std::vector<int32_t> tokens;
            for (const TokenEvent& e : events) {
                num_terminal += e.finished ? 1 : 0;
                tokens.insert(tokens.end(), e.token_ids.begin(), e.token_ids.end());
            }
            EXPECT_EQ(num_terminal, 1) << req.rid;
            if (events.back().finish.kind == FinishKind::kLength) {
                EXPECT_EQ(tokens, FakeRunner::expected_greedy(req.input_ids, *req.sampling.max_new_tokens, kVocab));
            } else {
                EXPECT_EQ(events.back().finish.kind, FinishKind::kAbort) << req.rid;
            }
        }
    }
    EngineStats s = engine->stats();
    EXPECT_EQ(s.num_running_reqs + s.num_queue_reqs, 0);
    EXPECT_EQ(s.num_used_tokens, 0);
    EXPECT_TRUE(engine->flush_cache().is_ok());
    Engine::PoolState pool = engine->pool_state();
    EXPECT_EQ(pool.num_free_pages, pool.num_pages);
    EngineStats flushed = engine->stats();
    EXPECT_EQ(flushed.num_total_pages, pool.num_pages);
    EXPECT_EQ(flushed.num_free_pages, flushed.num_total_pages);
    EXPECT_EQ(flushed.num_held_pages, 0);
    EXPECT_EQ(flushed.num_evictable_pages, 0);
    engine->stop();
}

TEST(Engine, FlushCacheRefusedWhileRequestsAreLive) {
    std::unique_ptr<Engine> engine = make_engine(64);
    std::mt19937 rng(1);
    auto stream = std::make_shared<TokenStream>();
    ASSERT_TRUE(engine->submit(request("a", rng, 5), stream).is_ok());
    EXPECT_EQ(engine->flush_cache().code(), StatusCode::kFailedPrecondition);  // queued, loop not started
    engine->start();
    wait_finished(*stream);
    EXPECT_TRUE(engine->flush_cache().is_ok());
}

TEST(Engine, SubmitRejectsInvalidRequestsSynchronously) {
    std::unique_ptr<Engine> engine = make_engine(16);
    engine->start();
    auto stream = std::make_shared<TokenStream>();
    GenerateRequest r;
    r.rid = "empty";
    EXPECT_EQ(engine->submit(r, stream).code(), StatusCode::kInvalidArgument);
    r.input_ids = std::vector<int32_t>(600, 3);
    EXPECT_EQ(engine->submit(r, stream).code(), StatusCode::kOutOfRange);
    EXPECT_TRUE(stream->drain().empty());  // nothing is ever pushed for a rejected request
}

TEST(Engine, StopAbortsRequestsInFlight) {
    std::unique_ptr<Engine> engine = make_engine(64);
    std::mt19937 rng(2);
    auto stream = std::make_shared<TokenStream>();
    ASSERT_TRUE(engine->submit(request("long", rng, 400), stream).is_ok());
    engine->start();
    std::this_thread::sleep_for(5ms);
    engine->stop();
    std::vector<TokenEvent> events = wait_finished(*stream, 1s);
    ASSERT_FALSE(events.empty());
    EXPECT_TRUE(events.back().finished);
    auto again = std::make_shared<TokenStream>();
    EXPECT_EQ(engine->submit(request("late", rng, 2), again).code(), StatusCode::kUnavailable);
}

TEST(Engine, CreateValidatesTheConfig) {
    EngineConfig bad = config();
    bad.max_running_requests = 0;
    EXPECT_FALSE(Engine::create(bad, std::make_unique<FakeRunner>(8, 4, kVocab)).is_ok());
    EXPECT_FALSE(Engine::create(config(), std::make_unique<FakeRunner>(8, 64, kVocab)).is_ok());  // page size
    bad = config();
    bad.chunked_prefill_size = 2;  // below the page size
    EXPECT_FALSE(bad.validate().is_ok());
    bad.chunked_prefill_size = -1;  // chunking off is fine
    EXPECT_TRUE(bad.validate().is_ok());
}

}  // namespace
}  // namespace dsa::engine
