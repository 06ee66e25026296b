// Randomised schedules on the FakeRunner (RUNTIME_NOTES §12, invariants 1, 6, 7, 11): random arrivals, prompt
// lengths with shared prefixes, max_new_tokens, EOS hits, min_new_tokens, seeded sampling, aborts in any state,
// small pools and both cache modes. After every step the page partition and request placement hold (checked
// inside the core) and no allocation fails (the core aborts on one); at the end every request got exactly one
// terminal event, greedy ones equal their solo continuation up to their finish, and every page is free.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "engine/engine_core.h"
#include "fake_runner.h"

namespace dsa::engine {
namespace {

using testing::FakeRunner;

constexpr int64_t kVocab = 48;

struct Tracked {
    std::shared_ptr<TokenStream> stream = std::make_shared<TokenStream>();
    GenerateRequest request;
    std::vector<int32_t> tokens;
    int num_terminal = 0;
    FinishReason finish;
};

void drain(Tracked& t) {
    for (TokenEvent& e : t.stream->drain()) {
        EXPECT_EQ(t.num_terminal, 0) << t.request.rid << ": event after the terminal one";
        t.tokens.insert(t.tokens.end(), e.token_ids.begin(), e.token_ids.end());
        if (e.finished) {
            ++t.num_terminal;
            t.finish = e.finish;
        }
    }
}

struct Coverage {
    std::map<FinishKind, int> finishes;
    int64_t num_retracted = 0;
    int64_t num_cached_tokens = 0;
};

void run_schedule(uint32_t seed, kvcache::PrefixCacheMode mode, Coverage& coverage) {
    std::mt19937 rng(seed);
    EngineConfig cfg;
    cfg.page_size = 4;
    cfg.max_running_requests = 2 + rng() % 8;
    cfg.chunked_prefill_size = 4 * (1 + rng() % 8);
    cfg.max_prefill_tokens = cfg.chunked_prefill_size + 4 * (rng() % 8);
    cfg.context_length = 200;
    cfg.eos_token_ids = {1};
    cfg.radix_cache = mode;
    cfg.schedule_conservativeness = 0.05 + 0.2 * (rng() % 6);
    cfg.invariant_checks = InvariantChecks::kEveryStep;
    const int64_t num_pages = 30 + rng() % 40;
    FakeRunner runner(num_pages, cfg.page_size, kVocab);
    EngineCore core(cfg, runner);

    std::uniform_int_distribution<int32_t> tok(2, kVocab - 1);
    std::vector<std::vector<int32_t>> prefixes(3);
    for (auto& p : prefixes) {
        p.resize(4 + rng() % 24);
        for (int32_t& t : p) t = tok(rng);
    }
    std::map<std::string, Tracked> reqs;
    const int num_requests = 40;
    int num_submitted = 0;
    for (int step = 0; step < 20000 && (num_submitted < num_requests || core.has_work()); ++step) {
        if (num_submitted < num_requests && rng() % 3 == 0) {
            Tracked& t = reqs["q" + std::to_string(num_submitted)];
            t.request.rid = "q" + std::to_string(num_submitted++);
            if (rng() % 2) t.request.input_ids = prefixes[rng() % prefixes.size()];
            int64_t tail = 1 + rng() % 30;
            for (int64_t i = 0; i < tail; ++i) t.request.input_ids.push_back(tok(rng));
            SamplingParams& sp = t.request.sampling;
            sp.max_new_tokens = static_cast<int32_t>(rng() % 24);
            sp.temperature = rng() % 2 ? 0.0 : 0.8;
            sp.ignore_eos = rng() % 3 == 0;
            sp.min_new_tokens = std::min<int32_t>(*sp.max_new_tokens, static_cast<int32_t>(rng() % 3));
            sp.seed = rng();
            ASSERT_TRUE(validate_request(t.request, cfg, kVocab).is_ok());
            ASSERT_TRUE(core.add_request(t.request, t.stream).is_ok());
        }
        if (!reqs.empty() && rng() % 25 == 0) {  // abort a random request, live or not
            auto it = reqs.begin();
            std::advance(it, rng() % reqs.size());
            core.abort(it->first, AbortReason::kClientGone);
        }
        if (core.has_work()) core.step();
        for (auto& [rid, t] : reqs) drain(t);
    }
    ASSERT_FALSE(core.has_work());
    ASSERT_EQ(static_cast<int>(reqs.size()), num_requests);
    coverage.num_retracted += core.counters().num_retracted_reqs;
    coverage.num_cached_tokens += core.counters().num_cached_tokens;
    for (auto& [rid, t] : reqs) {
        ASSERT_EQ(t.num_terminal, 1) << rid;
        ++coverage.finishes[t.finish.kind];
        if (t.finish.kind == FinishKind::kAbort) continue;
        const SamplingParams& sp = t.request.sampling;
        EXPECT_LE(static_cast<int64_t>(t.tokens.size()), *sp.max_new_tokens) << rid;
        if (t.finish.kind == FinishKind::kStop) {
            EXPECT_EQ(t.finish.matched_token, std::optional<int32_t>(1)) << rid;
            EXPECT_GE(static_cast<int32_t>(t.tokens.size()), std::max(sp.min_new_tokens, 1)) << rid;
        }
        if (sp.is_greedy() && sp.min_new_tokens == 0) {
            EXPECT_EQ(t.tokens,
                      FakeRunner::expected_greedy(t.request.input_ids, static_cast<int64_t>(t.tokens.size()), kVocab))
                << rid;
        }
    }
    EXPECT_EQ(runner.num_bad_reads(), 0);
    EXPECT_EQ(core.check_invariants(), "");
    EXPECT_EQ(core.cache().num_protected_pages(), 0);
    EXPECT_TRUE(core.flush_cache().is_ok());
    EXPECT_EQ(core.allocator().num_free(), num_pages);
}

// The schedules must actually reach every path they claim to cover.
void expect_covered(const Coverage& c, bool expect_hits) {
    EXPECT_GT(c.finishes.at(FinishKind::kStop), 0);
    EXPECT_GT(c.finishes.at(FinishKind::kLength), 0);
    EXPECT_GT(c.finishes.at(FinishKind::kAbort), 0);
    EXPECT_GT(c.num_retracted, 0);
    EXPECT_EQ(c.num_cached_tokens > 0, expect_hits);
}

TEST(EngineFuzz, RandomSchedulesWithRadixCache) {
    Coverage coverage;
    for (uint32_t seed = 1; seed <= 30; ++seed) {
        SCOPED_TRACE(seed);
        run_schedule(seed, kvcache::PrefixCacheMode::kRadix, coverage);
    }
    expect_covered(coverage, /*expect_hits=*/true);
}

TEST(EngineFuzz, RandomSchedulesWithoutRadixCache) {
    Coverage coverage;
    for (uint32_t seed = 100; seed <= 115; ++seed) {
        SCOPED_TRACE(seed);
        run_schedule(seed, kvcache::PrefixCacheMode::kDisabled, coverage);
    }
    expect_covered(coverage, /*expect_hits=*/false);
}

}  // namespace
}  // namespace dsa::engine
