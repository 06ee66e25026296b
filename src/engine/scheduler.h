// The scheduling decision as a pure function (DESIGN §6.4, RUNTIME_NOTES §1): from a snapshot of the waiting
// queue, the chunked request, the running set and the pool counters to a StepPlan that says how many tokens
// each sequence advances. Prefill first (the chunked request, then waiting requests in queue order under the
// token budgets and the KV reservation of §1.2), else decode of every running request, retracting the newest
// ones when the next decode step's pages do not fit. Chunks other than a prompt's last end on page boundaries.
// Nothing here touches a request, the allocator or the cache: the engine applies the plan at its commit point.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace dsa::engine {

// What the scheduler needs to know about one sequence. `key` identifies it in the plan.
struct SeqView {
    uint64_t key = 0;
    int64_t num_tokens = 0;       // prompt + generated
    int64_t num_computed = 0;     // KV positions present (running / chunked); 0 for a waiting request
    int64_t num_cached_hint = 0;  // waiting: page-aligned prefix the cache would serve now (< num_tokens)
    int64_t num_pages = 0;        // pages in its table
    int64_t num_owned_pages = 0;  // of which it owns (freed at once by a retraction)
    int64_t num_output = 0;       // generated tokens
    int64_t max_new_tokens = 0;   // clipped to the context
};

struct SchedulerConfig {
    int64_t max_running_requests = 256;
    int64_t chunked_prefill_size = 8192;  // <= 0: no chunking
    int64_t max_prefill_tokens = 16384;
    int64_t page_size = 64;
    int64_t clip_max_new_tokens_estimation = 4096;  // SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION
};

struct SchedulerInput {
    std::vector<SeqView> waiting{};    // queue order (head first)
    std::optional<SeqView> chunked{};  // the request in the middle of a chunked prefill
    std::vector<SeqView> running{};    // prefill complete, in admission order (oldest first)
    int64_t num_free_pages = 0;
    int64_t num_evictable_pages = 0;
    double new_token_ratio = 0.7;
};

enum class StepKind : uint8_t { kIdle, kPrefill, kDecode };
enum class SeqSource : uint8_t { kChunked, kWaiting, kRunning };

struct ScheduledSeq {
    uint64_t key = 0;
    SeqSource source = SeqSource::kRunning;
    int64_t num_cached = 0;      // waiting: the hint the plan assumed; else num_computed
    int64_t num_new_tokens = 0;  // tokens computed this step, from num_cached on
    int64_t end() const { return num_cached + num_new_tokens; }
};

struct StepPlan {
    StepKind kind = StepKind::kIdle;
    std::vector<ScheduledSeq> seqs;       // prefill: chunked first, then admitted waiting; decode: running order
    std::vector<uint64_t> retract;        // running (or chunked) requests to release and requeue, newest first
    std::vector<uint64_t> out_of_memory;  // requests that cannot run even alone: abort them
    // The sequence (at most one) whose prefill this plan leaves unfinished: the new chunked request.
    std::optional<uint64_t> next_chunked;
};

StepPlan plan_step(const SchedulerInput& input, const SchedulerConfig& config);

// Pages a sequence needs beyond its table to hold `end` positions.
int64_t pages_to_grow(const SeqView& seq, int64_t end, int64_t page_size);

// Admission optimism (RUNTIME_NOTES §1.8).
struct NewTokenRatio {
    double init = 0.7;
    double floor = 0.7 * 0.14;
    int64_t decay_steps = 600;
    int64_t retract_decode_steps = 20;
    double value = 0.7;

    static NewTokenRatio from_conservativeness(double schedule_conservativeness);
    void on_decode_step();  // value decays linearly towards floor over decay_steps
    // After a retraction, from the survivors' generated and max_new_tokens sums.
    void on_retract(int64_t sum_generated, int64_t sum_max_new, int64_t num_running);
    void reset() { value = init; }
};

}  // namespace dsa::engine
