// plan_step as a pure function: prefill first, page-aligned chunks, one chunked request at a time, token and
// request budgets, KV reservation and head-of-line admission, decode of every running request, retraction of
// the newest requests when the next decode step does not fit, out-of-memory, and the new-token ratio.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

namespace dsa::engine {
namespace {

constexpr int64_t kPage = 16;

SchedulerConfig config() {
    return SchedulerConfig{.max_running_requests = 8,
                           .chunked_prefill_size = 64,
                           .max_prefill_tokens = 128,
                           .page_size = kPage,
                           .clip_max_new_tokens_estimation = 4096};
}

SeqView waiting(uint64_t key, int64_t num_tokens, int64_t max_new = 8, int64_t hint = 0) {
    return SeqView{.key = key, .num_tokens = num_tokens, .num_cached_hint = hint, .max_new_tokens = max_new};
}

// A running request whose prefill is done: num_computed = num_tokens - 1, pages cover num_computed.
SeqView running(uint64_t key, int64_t num_computed, int64_t num_output = 1, int64_t max_new = 8) {
    int64_t pages = (num_computed + kPage - 1) / kPage;
    return SeqView{.key = key,
                   .num_tokens = num_computed + 1,
                   .num_computed = num_computed,
                   .num_pages = pages,
                   .num_owned_pages = pages,
                   .num_output = num_output,
                   .max_new_tokens = max_new};
}

int64_t total_new(const StepPlan& p) {
    int64_t n = 0;
    for (const ScheduledSeq& s : p.seqs) n += s.num_new_tokens;
    return n;
}

TEST(Scheduler, IdleWithoutRequests) {
    SchedulerInput in{.num_free_pages = 100};
    StepPlan p = plan_step(in, config());
    EXPECT_EQ(p.kind, StepKind::kIdle);
    EXPECT_TRUE(p.seqs.empty());
}

TEST(Scheduler, LongPromptIsChunkedOnPageBoundaries) {
    SchedulerInput in{.waiting = {waiting(1, 150)}, .num_free_pages = 100};
    StepPlan p = plan_step(in, config());
    ASSERT_EQ(p.kind, StepKind::kPrefill);
    ASSERT_EQ(p.seqs.size(), 1u);
    EXPECT_EQ(p.seqs[0].num_new_tokens, 64);
    EXPECT_EQ(p.seqs[0].end() % kPage, 0);
    EXPECT_EQ(p.next_chunked, std::optional<uint64_t>(1));

    // Next step: the chunked request continues first, 64 more tokens, then its 22-token tail.
    SeqView c = running(1, 64, 0);
    c.num_tokens = 150;
    c.num_pages = 4;
    in = SchedulerInput{.chunked = c, .num_free_pages = 96};
    p = plan_step(in, config());
    ASSERT_EQ(p.seqs.size(), 1u);
    EXPECT_EQ(p.seqs[0].source, SeqSource::kChunked);
    EXPECT_EQ(p.seqs[0].end(), 128);
    c.num_computed = 128;
    c.num_pages = 8;
    in.chunked = c;
    p = plan_step(in, config());
    EXPECT_EQ(p.seqs[0].num_new_tokens, 22);  // the last chunk need not be aligned
    EXPECT_FALSE(p.next_chunked.has_value());
}

TEST(Scheduler, ChunkedRequestGoesFirstAndOthersFillTheBudget) {
    SeqView c = running(1, 64, 0);
    c.num_tokens = 80;
    c.num_pages = 4;
    SchedulerInput in{.waiting = {waiting(2, 20), waiting(3, 30)}, .chunked = c, .num_free_pages = 100};
    StepPlan p = plan_step(in, config());
    ASSERT_EQ(p.seqs.size(), 3u);
    EXPECT_EQ(p.seqs[0].key, 1u);
    EXPECT_EQ(p.seqs[0].num_new_tokens, 16);
    EXPECT_EQ(p.seqs[1].num_new_tokens, 20);
    // 64 - 16 - 20 = 28 tokens of chunk budget left: request 3 (30) is chunked to a page multiple.
    EXPECT_EQ(p.seqs[2].num_new_tokens, 16);
    EXPECT_EQ(p.next_chunked, std::optional<uint64_t>(3));
}

TEST(Scheduler, OnlyOneChunkedRequestAtATime) {
    SchedulerConfig cfg = config();
    cfg.chunked_prefill_size = 48;
    SchedulerInput in{.waiting = {waiting(1, 20), waiting(2, 100), waiting(3, 100)}, .num_free_pages = 100};
    StepPlan p = plan_step(in, cfg);
    ASSERT_EQ(p.seqs.size(), 2u);  // 1 whole, 2 chunked; 3 must wait
    EXPECT_EQ(p.seqs[1].num_new_tokens, 16);
    EXPECT_EQ(p.next_chunked, std::optional<uint64_t>(2));
}

TEST(Scheduler, TokenAndRequestBudgetsAreRespected) {
    SchedulerConfig cfg = config();
    cfg.chunked_prefill_size = 4096;
    cfg.max_prefill_tokens = 100;
    cfg.max_running_requests = 5;
    SchedulerInput in{.num_free_pages = 1000};
    for (uint64_t k = 1; k <= 10; ++k) in.waiting.push_back(waiting(k, 12));
    in.running = {running(100, 20), running(101, 20)};
    StepPlan p = plan_step(in, cfg);
    ASSERT_EQ(p.kind, StepKind::kPrefill);
    EXPECT_EQ(p.seqs.size(), 3u);  // 5 slots - 2 running
    EXPECT_LE(total_new(p), 100);
    for (size_t i = 0; i < p.seqs.size(); ++i) EXPECT_EQ(p.seqs[i].key, i + 1);  // fcfs
}

TEST(Scheduler, PrefixHitSkipsCachedTokens) {
    SchedulerInput in{.waiting = {waiting(1, 40, 8, /*hint=*/32)}, .num_free_pages = 100};
    StepPlan p = plan_step(in, config());
    ASSERT_EQ(p.seqs.size(), 1u);
    EXPECT_EQ(p.seqs[0].num_cached, 32);
    EXPECT_EQ(p.seqs[0].num_new_tokens, 8);
}

TEST(Scheduler, AdmissionReservesOutputAndStopsAtHeadOfLine) {
    // 10 free pages. Request 1 needs ceil((40 + 100) / 16) + 1 = 10 pages: fits. Request 2 (small) must not
    // jump the queue once request 1 no longer fits.
    SchedulerInput in{.waiting = {waiting(1, 40, 100), waiting(2, 4, 1)}, .num_free_pages = 10};
    StepPlan p = plan_step(in, config());
    ASSERT_EQ(p.seqs.size(), 1u);
    EXPECT_EQ(p.seqs[0].key, 1u);

    in.waiting = {waiting(1, 40, 200), waiting(2, 4, 1)};
    in.running = {running(7, 10)};  // something is running, so request 1 waits
    p = plan_step(in, config());
    EXPECT_EQ(p.kind, StepKind::kDecode);
    ASSERT_EQ(p.seqs.size(), 1u);
    EXPECT_EQ(p.seqs[0].key, 7u);
}

TEST(Scheduler, RunningRequestsReserveTheirRemainingOutput) {
    SchedulerInput in{.waiting = {waiting(1, 10, 10)}, .num_free_pages = 10, .new_token_ratio = 1.0};
    in.running = {running(5, 15, 1, /*max_new=*/129)};  // 128 tokens left = 8 pages reserved
    StepPlan p = plan_step(in, config());
    EXPECT_EQ(p.kind, StepKind::kDecode);  // 2 pages left < the 3 request 1 needs
    in.new_token_ratio = 0.1;              // 13 tokens = 1 page reserved
    p = plan_step(in, config());
    EXPECT_EQ(p.kind, StepKind::kPrefill);
}

TEST(Scheduler, DecodeAdvancesEveryRunningRequestByOne) {
    SchedulerInput in{.running = {running(1, 10), running(2, 16), running(3, 31)}, .num_free_pages = 5};
    StepPlan p = plan_step(in, config());
    ASSERT_EQ(p.kind, StepKind::kDecode);
    ASSERT_EQ(p.seqs.size(), 3u);
    for (const ScheduledSeq& s : p.seqs) EXPECT_EQ(s.num_new_tokens, 1);
    EXPECT_TRUE(p.retract.empty());
}

TEST(Scheduler, RetractsNewestWhenDecodePagesRunOut) {
    // Each request sits on a page boundary, so each needs a new page; one page is free.
    SchedulerInput in{.running = {running(1, 16), running(2, 32), running(3, 48)}, .num_free_pages = 1};
    StepPlan p = plan_step(in, config());
    ASSERT_EQ(p.kind, StepKind::kDecode);
    // Retracting 3 frees its 3 pages: 4 available >= 2 needed.
    EXPECT_EQ(p.retract, std::vector<uint64_t>{3});
    ASSERT_EQ(p.seqs.size(), 2u);
    EXPECT_EQ(p.seqs[0].key, 1u);
    EXPECT_EQ(p.seqs[1].key, 2u);
}

TEST(Scheduler, EvictablePagesCountAsAvailable) {
    SchedulerInput in{.running = {running(1, 16), running(2, 32)}, .num_free_pages = 0, .num_evictable_pages = 2};
    StepPlan p = plan_step(in, config());
    EXPECT_TRUE(p.retract.empty());
    EXPECT_EQ(p.seqs.size(), 2u);
}

TEST(Scheduler, LastRequestThatCannotGrowIsOutOfMemory) {
    SchedulerInput in{.running = {running(1, 16)}, .num_free_pages = 0};
    StepPlan p = plan_step(in, config());
    EXPECT_EQ(p.out_of_memory, std::vector<uint64_t>{1});
    EXPECT_TRUE(p.seqs.empty());
}

TEST(Scheduler, RequestLargerThanThePoolIsRejectedNotStalled) {
    SchedulerInput in{.waiting = {waiting(1, 200, 8)}, .num_free_pages = 5};
    StepPlan p = plan_step(in, config());
    EXPECT_EQ(p.out_of_memory, std::vector<uint64_t>{1});
}

TEST(Scheduler, ChunkedRequestRetractsRunningWhenItsPagesDoNotFit) {
    SeqView c = running(1, 64, 0);
    c.num_tokens = 200;
    c.num_pages = 4;
    SchedulerInput in{.chunked = c, .running = {running(2, 30), running(3, 30)}, .num_free_pages = 1};
    StepPlan p = plan_step(in, config());
    ASSERT_EQ(p.kind, StepKind::kPrefill);
    EXPECT_EQ(p.retract, (std::vector<uint64_t>{3, 2}));  // 4 pages needed, 2 per victim: newest first
    EXPECT_EQ(p.seqs[0].key, 1u);
}

TEST(NewTokenRatio, DecaysToFloorAndJumpsAfterRetraction) {
    NewTokenRatio r = NewTokenRatio::from_conservativeness(1.0);
    EXPECT_DOUBLE_EQ(r.value, 0.7);
    r.on_decode_step();
    EXPECT_NEAR(r.value, 0.7 - (0.7 - 0.098) / 600, 1e-12);
    for (int i = 0; i < 1000; ++i) r.on_decode_step();
    EXPECT_NEAR(r.value, 0.098, 1e-12);
    r.on_retract(/*sum_generated=*/100, /*sum_max_new=*/399, /*num_running=*/5);
    EXPECT_NEAR(r.value, (100.0 + 20 * 5) / 400.0, 1e-12);
    r.reset();
    EXPECT_DOUBLE_EQ(r.value, 0.7);
    EXPECT_DOUBLE_EQ(NewTokenRatio::from_conservativeness(2.0).init, 1.0);
}

}  // namespace
}  // namespace dsa::engine
