// EngineCore with the FakeRunner, driven step by step on the test thread: after EVERY step the page partition
// holds (free / cached / owned by one live request), the step respects the token budgets and page-aligned
// chunk ends, and in the end every request produced exactly its solo greedy continuation (the fake model's
// logits depend on every KV entry read back, so a wrong page table or reused page shows up as a wrong token).
// Covers retraction under KV pressure, abort in every state, prefix reuse, finish reasons and fairness.
#include "engine/engine_core.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "fake_runner.h"

namespace dsa::engine {
namespace {

using testing::FakeRunner;

constexpr int64_t kVocab = 64;
constexpr int32_t kEos = 1;

EngineConfig small_config() {
    EngineConfig c;
    c.page_size = 4;
    c.max_running_requests = 8;
    c.chunked_prefill_size = 16;
    c.max_prefill_tokens = 32;
    c.context_length = 256;
    c.eos_token_ids = {kEos};
    c.invariant_checks = InvariantChecks::kEveryStep;
    return c;
}

struct Client {
    std::shared_ptr<TokenStream> stream = std::make_shared<TokenStream>();
    std::vector<int32_t> prompt;
    std::vector<int32_t> tokens;
    std::vector<TokenEvent> events;
    bool finished() const { return !events.empty() && events.back().finished; }
    void drain() {
        for (TokenEvent& e : stream->drain()) {
            tokens.insert(tokens.end(), e.token_ids.begin(), e.token_ids.end());
            events.push_back(std::move(e));
        }
    }
};

GenerateRequest greedy_request(const std::string& rid, std::vector<int32_t> prompt, int32_t max_new) {
    GenerateRequest r;
    r.rid = rid;
    r.input_ids = std::move(prompt);
    r.sampling.temperature = 0.0;
    r.sampling.max_new_tokens = max_new;
    r.sampling.ignore_eos = true;
    return r;
}

std::vector<int32_t> random_prompt(std::mt19937& rng, int64_t n) {
    std::uniform_int_distribution<int32_t> tok(2, kVocab - 1);
    std::vector<int32_t> p(static_cast<size_t>(n));
    for (int32_t& t : p) t = tok(rng);
    return p;
}

class EngineCoreTest : public ::testing::Test {
  protected:
    void make(EngineConfig config, int64_t num_pages) {
        config_ = config;
        runner_ = std::make_unique<FakeRunner>(num_pages, config.page_size, kVocab);
        core_ = std::make_unique<EngineCore>(config_, *runner_);
    }
    Client& submit(GenerateRequest r) {
        Client& c = clients_[r.rid];
        c.prompt = r.input_ids;
        EXPECT_TRUE(validate_request(r, config_, kVocab).is_ok());
        EXPECT_TRUE(core_->add_request(std::move(r), c.stream).is_ok());
        return c;
    }
    // One step plus the per-step checks; returns the plan's kind.
    StepKind step() {
        StepKind kind = core_->step();
        const StepPlan& plan = core_->last_plan();
        int64_t num_new = 0;
        for (const ScheduledSeq& s : plan.seqs) num_new += s.num_new_tokens;
        if (kind == StepKind::kPrefill) {
            EXPECT_LE(num_new, std::max(config_.chunked_prefill_size, config_.max_prefill_tokens));
            EXPECT_LE(num_new, config_.chunked_prefill_size);
            if (plan.next_chunked) {
                for (const ScheduledSeq& s : plan.seqs) {
                    if (s.key == *plan.next_chunked) {
                        EXPECT_EQ(s.end() % config_.page_size, 0);
                    }
                }
            }
        }
        EXPECT_LE(core_->num_running(), config_.max_running_requests);
        for (auto& [rid, c] : clients_) c.drain();
        return kind;
    }
    void run_until_done(int max_steps = 100000) {
        for (int i = 0; i < max_steps && core_->has_work(); ++i) step();
        ASSERT_FALSE(core_->has_work());
    }
    void expect_all_pages_released() {
        EXPECT_EQ(core_->check_invariants(), "");
        EXPECT_EQ(core_->allocator().num_free() + core_->cache().num_evictable_pages(), runner_->num_pages());
        EXPECT_EQ(core_->cache().num_protected_pages(), 0);
        EXPECT_TRUE(core_->flush_cache().is_ok());
        EXPECT_EQ(core_->allocator().num_free(), runner_->num_pages());
    }
    void expect_solo_outputs() {
        for (auto& [rid, c] : clients_) {
            ASSERT_TRUE(c.finished()) << rid;
            int64_t n = static_cast<int64_t>(c.tokens.size());
            EXPECT_EQ(c.tokens, FakeRunner::expected_greedy(c.prompt, n, kVocab)) << rid;
        }
        EXPECT_EQ(runner_->num_bad_reads(), 0);
    }

    EngineConfig config_;
    std::unique_ptr<FakeRunner> runner_;
    std::unique_ptr<EngineCore> core_;
    std::map<std::string, Client> clients_;
};

TEST_F(EngineCoreTest, SingleRequestGeneratesItsGreedyContinuation) {
    make(small_config(), 64);
    std::mt19937 rng(1);
    Client& c = submit(greedy_request("a", random_prompt(rng, 10), 6));
    run_until_done();
    ASSERT_TRUE(c.finished());
    EXPECT_EQ(c.tokens.size(), 6u);
    EXPECT_EQ(c.events.back().finish.kind, FinishKind::kLength);
    EXPECT_EQ(c.events.back().finish.length, 6);
    EXPECT_EQ(c.events.back().completion_tokens, 6);
    EXPECT_EQ(c.events.back().prompt_tokens, 10);
    expect_solo_outputs();
    expect_all_pages_released();
}

TEST_F(EngineCoreTest, ManyConcurrentRequestsMatchTheirSoloOutputs) {
    make(small_config(), 200);
    std::mt19937 rng(2);
    std::vector<int32_t> shared = random_prompt(rng, 20);
    for (int i = 0; i < 24; ++i) {
        std::vector<int32_t> p = i % 3 == 0 ? shared : std::vector<int32_t>{};
        std::vector<int32_t> tail = random_prompt(rng, 1 + rng() % 40);
        p.insert(p.end(), tail.begin(), tail.end());
        submit(greedy_request("r" + std::to_string(i), p, 1 + static_cast<int32_t>(rng() % 12)));
    }
    run_until_done();
    expect_solo_outputs();
    EXPECT_GT(core_->counters().num_cached_tokens, 0);  // the shared prefix was reused
    EXPECT_GT(runner_->max_tokens_per_forward(), 1);
    expect_all_pages_released();
}

TEST_F(EngineCoreTest, RetractsUnderKvPressureAndEveryRequestCompletes) {
    EngineConfig cfg = small_config();
    cfg.schedule_conservativeness = 0.05;  // optimistic admission: running requests reserve little
    make(cfg, 24);                         // 96 token slots for 8 requests that each grow to 40 tokens
    std::mt19937 rng(3);
    for (int i = 0; i < 8; ++i) submit(greedy_request("r" + std::to_string(i), random_prompt(rng, 8), 32));
    run_until_done();
    EXPECT_GT(core_->counters().num_retracted_reqs, 0);
    for (auto& [rid, c] : clients_) EXPECT_EQ(c.tokens.size(), 32u) << rid;
    expect_solo_outputs();
    expect_all_pages_released();
}

TEST_F(EngineCoreTest, SeededSamplingSurvivesRetraction) {
    // The same seeded requests, once with room and once under KV pressure: identical tokens.
    std::map<std::string, std::vector<int32_t>> outputs[2];
    for (int pass = 0; pass < 2; ++pass) {
        clients_.clear();
        EngineConfig cfg = small_config();
        cfg.schedule_conservativeness = 0.05;
        make(cfg, pass == 0 ? 200 : 24);
        std::mt19937 rng(4);
        for (int i = 0; i < 8; ++i) {
            GenerateRequest r = greedy_request("s" + std::to_string(i), random_prompt(rng, 8), 32);
            r.sampling.temperature = 1.0;
            r.sampling.seed = 100 + i;
            submit(std::move(r));
        }
        run_until_done();
        if (pass == 1) {
            EXPECT_GT(core_->counters().num_retracted_reqs, 0);
        }
        for (auto& [rid, c] : clients_) outputs[pass][rid] = c.tokens;
    }
    EXPECT_EQ(outputs[0], outputs[1]);
}

TEST_F(EngineCoreTest, AbortFreesPagesInEveryState) {
    EngineConfig cfg = small_config();
    cfg.max_running_requests = 2;
    make(cfg, 64);
    std::mt19937 rng(5);
    Client& running = submit(greedy_request("running", random_prompt(rng, 6), 50));
    Client& chunked = submit(greedy_request("chunked", random_prompt(rng, 60), 50));
    Client& queued = submit(greedy_request("queued", random_prompt(rng, 6), 50));
    step();  // running: whole prompt; chunked: first chunk
    step();  // chunked continues
    ASSERT_EQ(core_->num_running(), 2);
    ASSERT_EQ(core_->num_waiting(), 1);

    core_->abort("queued", AbortReason::kClientGone);
    queued.drain();
    ASSERT_TRUE(queued.finished());
    EXPECT_EQ(queued.events.back().finish.kind, FinishKind::kAbort);
    EXPECT_EQ(queued.events.back().finish.status_code, 0);

    // Pages a live request holds: its own plus the cached pages it keeps locked (not evictable).
    auto held = [&] { return core_->allocator().num_used() - core_->cache().num_evictable_pages(); };
    for (const char* rid : {"chunked", "running"}) {
        int64_t held_before = held();
        core_->abort(rid, AbortReason::kClientGone);
        EXPECT_LT(held(), held_before) << rid;  // released at once, not at the next step
        EXPECT_EQ(core_->check_invariants(), "");
    }
    running.drain();
    chunked.drain();
    EXPECT_TRUE(running.finished());
    EXPECT_TRUE(chunked.finished());
    EXPECT_FALSE(core_->has_work());
    core_->abort("running", AbortReason::kClientGone);  // idempotent
    running.drain();
    EXPECT_EQ(running.events.size(), running.tokens.size() + 1);  // one event per token + the abort
    expect_all_pages_released();
}

TEST_F(EngineCoreTest, PrefixHitReusesPagesAndGivesTheSameTokens) {
    make(small_config(), 64);
    std::mt19937 rng(6);
    std::vector<int32_t> prompt = random_prompt(rng, 30);
    Client& first = submit(greedy_request("first", prompt, 5));
    run_until_done();
    Client& second = submit(greedy_request("second", prompt, 5));
    run_until_done();
    EXPECT_EQ(first.events.back().cached_tokens, 0);
    EXPECT_EQ(second.events.back().cached_tokens, 28);  // whole pages of the first 29 positions
    EXPECT_EQ(first.tokens, second.tokens);
    EXPECT_GT(core_->cache().stats().num_hit_tokens, 0);
    EXPECT_NEAR(core_->stats().cache_hit_rate, 28.0 / 60.0, 1e-12);  // over both admissions
    expect_solo_outputs();
    expect_all_pages_released();
}

TEST_F(EngineCoreTest, DisabledRadixCacheNeverHits) {
    EngineConfig cfg = small_config();
    cfg.radix_cache = kvcache::PrefixCacheMode::kDisabled;
    make(cfg, 64);
    std::mt19937 rng(7);
    std::vector<int32_t> prompt = random_prompt(rng, 30);
    submit(greedy_request("a", prompt, 3));
    run_until_done();
    Client& b = submit(greedy_request("b", prompt, 3));
    run_until_done();
    EXPECT_EQ(b.events.back().cached_tokens, 0);
    expect_solo_outputs();
    EXPECT_EQ(core_->allocator().num_free(), 64);
}

TEST_F(EngineCoreTest, FinishReasons) {
    std::mt19937 rng(8);
    std::vector<int32_t> prompt = random_prompt(rng, 5);
    std::vector<int32_t> solo = FakeRunner::expected_greedy(prompt, 8, kVocab);
    EngineConfig cfg = small_config();
    cfg.eos_token_ids = {0};
    while (std::find(solo.begin(), solo.end(), cfg.eos_token_ids[0]) != solo.end()) ++cfg.eos_token_ids[0];
    make(cfg, 128);

    GenerateRequest stop = greedy_request("stop_id", prompt, 8);  // stop on the 3rd generated token
    stop.sampling.stop_token_ids = {solo[2]};
    stop.sampling.ignore_eos = false;
    GenerateRequest ignored = greedy_request("ignore_eos", prompt, 8);
    ignored.sampling.stop_token_ids = {solo[2]};
    GenerateRequest zero = greedy_request("zero", prompt, 0);
    GenerateRequest unbounded = greedy_request("context", prompt, 0);
    unbounded.sampling.max_new_tokens.reset();
    unbounded.input_ids = random_prompt(rng, config_.context_length - 4);  // 3 tokens of room - 1
    Client& c_stop = submit(stop);
    Client& c_ignored = submit(ignored);
    Client& c_zero = submit(zero);
    Client& c_ctx = submit(unbounded);
    run_until_done();

    EXPECT_EQ(c_stop.events.back().finish.kind, FinishKind::kStop);
    EXPECT_EQ(c_stop.events.back().finish.matched_token, std::optional<int32_t>(solo[2]));
    EXPECT_EQ(c_stop.tokens.size(), 3u);  // the stop token is sent and counted
    EXPECT_EQ(c_stop.events.back().completion_tokens, 3);
    EXPECT_EQ(c_ignored.tokens.size(), 8u);
    EXPECT_EQ(c_zero.tokens.size(), 0u);
    EXPECT_EQ(c_zero.events.back().finish.kind, FinishKind::kLength);
    EXPECT_EQ(c_ctx.events.back().finish.kind, FinishKind::kLength);
    EXPECT_EQ(c_ctx.tokens.size(), 3u);
    expect_all_pages_released();
}

TEST_F(EngineCoreTest, EosFinishesUnlessIgnoredAndMinNewTokensDefersIt) {
    EngineConfig cfg = small_config();
    make(cfg, 64);
    std::mt19937 rng(9);
    std::vector<int32_t> prompt = random_prompt(rng, 5);
    std::vector<int32_t> solo = FakeRunner::expected_greedy(prompt, 1, kVocab);
    // Make the first greedy token an EOS id for this engine.
    cfg.eos_token_ids = {solo[0]};
    make(cfg, 64);
    GenerateRequest eos = greedy_request("eos", prompt, 8);
    eos.sampling.ignore_eos = false;
    GenerateRequest min_new = eos;
    min_new.rid = "min_new";
    min_new.sampling.min_new_tokens = 2;
    Client& c_eos = submit(eos);
    Client& c_min = submit(min_new);
    run_until_done();
    EXPECT_EQ(c_eos.tokens, std::vector<int32_t>{solo[0]});
    EXPECT_EQ(c_eos.events.back().finish.kind, FinishKind::kStop);
    EXPECT_NE(c_min.tokens[0], solo[0]);  // masked
    EXPECT_GE(c_min.tokens.size(), 2u);
}

TEST_F(EngineCoreTest, ContinuousArrivalsDoNotStarveAnyone) {
    EngineConfig cfg = small_config();
    cfg.max_running_requests = 4;
    make(cfg, 40);
    std::mt19937 rng(10);
    std::map<std::string, int> submitted_at, finished_at;
    int num_submitted = 0;
    for (int s = 0; s < 3000 && (num_submitted < 60 || core_->has_work()); ++s) {
        if (num_submitted < 60 && s % 2 == 0) {
            std::string rid = "r" + std::to_string(num_submitted++);
            submit(greedy_request(rid, random_prompt(rng, 4 + rng() % 20), 4 + static_cast<int32_t>(rng() % 16)));
            submitted_at[rid] = s;
        }
        if (core_->has_work()) step();
        for (auto& [rid, c] : clients_) {
            if (c.finished() && !finished_at.count(rid)) finished_at[rid] = s;
        }
    }
    ASSERT_EQ(finished_at.size(), 60u);
    // FCFS: a request never finishes more than a bounded number of steps after it arrived.
    int worst = 0;
    for (auto& [rid, t] : finished_at) worst = std::max(worst, t - submitted_at[rid]);
    EXPECT_LT(worst, 400);
    expect_solo_outputs();
    expect_all_pages_released();
}

TEST_F(EngineCoreTest, RejectsDuplicateRidsAndBadRequests) {
    make(small_config(), 16);
    std::mt19937 rng(11);
    submit(greedy_request("dup", random_prompt(rng, 4), 2));
    auto stream = std::make_shared<TokenStream>();
    EXPECT_FALSE(core_->add_request(greedy_request("dup", random_prompt(rng, 4), 2), stream).is_ok());
    EXPECT_EQ(validate_request(greedy_request("long", random_prompt(rng, 256), 2), config_, kVocab).code(),
              StatusCode::kOutOfRange);
    EXPECT_FALSE(validate_request(greedy_request("oov", {kVocab}, 2), config_, kVocab).is_ok());
    GenerateRequest bias = greedy_request("bias", {3}, 2);
    bias.sampling.logit_bias = {{kVocab, 1.0}};
    EXPECT_FALSE(validate_request(bias, config_, kVocab).is_ok());
    EXPECT_FALSE(validate_request(greedy_request("empty", {}, 2), config_, kVocab).is_ok());
    GenerateRequest bad = greedy_request("bad", {3}, 2);
    bad.sampling.top_k = 0;
    EXPECT_FALSE(validate_request(bad, config_, kVocab).is_ok());
    run_until_done();
}

TEST_F(EngineCoreTest, RequestLargerThanThePoolIsAbortedWith400) {
    make(small_config(), 4);  // 16 slots
    std::mt19937 rng(12);
    Client& big = submit(greedy_request("big", random_prompt(rng, 40), 4));
    Client& small = submit(greedy_request("small", random_prompt(rng, 3), 2));
    run_until_done();
    EXPECT_EQ(big.events.back().finish.kind, FinishKind::kAbort);
    EXPECT_EQ(big.events.back().finish.status_code, 400);
    EXPECT_EQ(small.tokens.size(), 2u);
    expect_all_pages_released();
}

TEST_F(EngineCoreTest, StatsReflectTheState) {
    make(small_config(), 32);
    std::mt19937 rng(13);
    submit(greedy_request("a", random_prompt(rng, 10), 20));
    submit(greedy_request("b", random_prompt(rng, 10), 20));
    step();
    EngineStats s = core_->stats();
    EXPECT_EQ(s.num_running_reqs, 2);
    EXPECT_EQ(s.num_queue_reqs, 0);
    EXPECT_EQ(s.max_total_num_tokens, 32 * 4);
    EXPECT_GT(s.num_used_tokens, 0);
    EXPECT_NEAR(s.token_usage, double(s.num_used_tokens) / s.max_total_num_tokens, 1e-12);
    run_until_done();
    EXPECT_EQ(core_->stats().num_used_tokens, 0);
    EXPECT_EQ(core_->stats().num_running_reqs, 0);
}

}  // namespace
}  // namespace dsa::engine
