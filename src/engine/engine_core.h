// EngineCore: every piece of request state, owned by ONE thread (the engine loop, or a test driving it
// directly). step() snapshots the state into a SchedulerInput, asks plan_step for a StepPlan, then applies it
// at one commit point: out-of-memory aborts, retractions (pages released, request requeued with its output to
// be recomputed), prefix attach + page allocation, one forward, cache inserts, sampling, finish checks and
// TokenStream pushes. A request is in exactly one of: waiting, chunked (mid-prefill), running; every page is
// free, cached, or owned by exactly one live request after every step (check_invariants()).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/engine_client.h"
#include "engine/engine_config.h"
#include "engine/model_runner.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "kvcache/page_allocator.h"
#include "kvcache/prefix_cache.h"
#include "kvcache/req_to_pages.h"

namespace dsa::engine {

// Checks a request against the engine's limits (sampling values, token ids, context length). Stateless, so the
// front-end thread can run it before queueing.
Status validate_request(const GenerateRequest& request, const EngineConfig& config, int64_t vocab_size);

struct Request {
    GenerateRequest params;
    std::shared_ptr<TokenStream> stream;
    uint64_t key = 0;               // arrival order
    uint64_t seed = 0;              // sampling stream
    std::vector<int32_t> tokens;    // prompt + output
    std::vector<int32_t> stop_ids;  // EOS ids (unless ignore_eos) + stop_token_ids, for min_new_tokens masking
    int64_t num_prompt = 0;
    int64_t num_computed = 0;       // KV positions written
    int64_t max_new_tokens = 0;     // clipped to the context
    int64_t num_cached_prompt = 0;  // prefix-cache hit at the first admission
    int64_t num_retractions = 0;
    kvcache::ReqToPages pages;

    explicit Request(int page_size) : pages(page_size) {}
    int64_t num_output() const { return static_cast<int64_t>(tokens.size()) - num_prompt; }
};

struct EngineCounters {
    int64_t num_prompt_tokens = 0;  // prompts admitted (first admission only)
    int64_t num_generated_tokens = 0;
    int64_t num_cached_tokens = 0;  // prefix-hit tokens at first admission
    int64_t num_retracted_reqs = 0;
    int64_t num_finished_reqs = 0;
    int64_t num_steps = 0;
};

class EngineCore {
  public:
    // `config` must be valid; `runner` outlives the core.
    EngineCore(const EngineConfig& config, ModelRunner& runner);
    ~EngineCore();

    // Queues a request (validate_request first). Duplicate live rids are rejected.
    Status add_request(GenerateRequest request, std::shared_ptr<TokenStream> stream);
    // Ends a live request wherever it is and frees its pages now; unknown rids are ignored.
    void abort(const std::string& rid, AbortReason reason);
    // Aborts every live request with `message` / `status_code` (shutdown).
    void abort_all(const std::string& message, int32_t status_code);
    bool has_work() const { return !live_.empty(); }
    // One scheduling step; returns what ran (kIdle when nothing could).
    StepKind step();
    // Empties the prefix cache; FailedPrecondition while any request is live.
    Status flush_cache();

    int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
    int64_t num_running() const { return static_cast<int64_t>(running_.size()) + (chunked_ ? 1 : 0); }
    const kvcache::PageAllocator& allocator() const { return allocator_; }
    const kvcache::PrefixCache& cache() const { return *cache_; }
    const EngineCounters& counters() const { return counters_; }
    double new_token_ratio() const { return ratio_.value; }
    EngineStats stats() const;
    // Empty when every page is free, cached or owned by one live request and the cache is consistent.
    std::string check_invariants() const;
    const StepPlan& last_plan() const { return last_plan_; }

  private:
    SchedulerInput snapshot();
    SeqView view_of(const Request& r, int64_t num_cached_hint) const;
    Request& get(uint64_t key);
    void apply_out_of_memory(const StepPlan& plan);
    void apply_retractions(const StepPlan& plan);
    void requeue(uint64_t key);
    std::vector<ScheduledSeq> admit_and_allocate(const StepPlan& plan);
    void run_and_commit(const StepPlan& plan, const std::vector<ScheduledSeq>& seqs);
    void sample_and_emit(Request& r, const float* logits);
    void sample_on_device(const std::vector<ScheduledSeq>& seqs, std::span<const int64_t> rows, const Tensor& logits);
    SampleInput sample_input(const Request& r) const;
    static LogprobMode logprob_mode(const Request& r);
    void emit(Request& r, const SampleResult& res);
    std::optional<FinishReason> finish_check(const Request& r) const;
    std::vector<uint64_t> constraint_mask(const Request& r, std::span<const int32_t> output_ids, int64_t vocab) const;
    void finish(uint64_t key, FinishReason reason);
    void remove_live(uint64_t key);
    void push_abort(Request& r, const std::string& message, int32_t status_code);
    void record_generated(int64_t num_tokens);

    EngineConfig config_;
    SchedulerConfig sched_config_;
    ModelRunner& runner_;
    kvcache::PageAllocator allocator_;
    std::unique_ptr<kvcache::PrefixCache> cache_;
    NewTokenRatio ratio_;
    std::mt19937_64 seed_rng_;

    uint64_t next_key_ = 1;
    std::unordered_map<uint64_t, std::unique_ptr<Request>> live_;
    std::unordered_map<std::string, uint64_t> key_of_rid_;
    std::deque<uint64_t> waiting_;  // arrival order (retracted requests go back to their place)
    std::optional<uint64_t> chunked_;
    std::vector<uint64_t> running_;  // admission order
    EngineCounters counters_;
    StepPlan last_plan_;
    std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> gen_window_;
    std::deque<std::pair<int64_t, int64_t>> hit_window_;  // (prompt tokens, cache-hit tokens) per admission
};

}  // namespace dsa::engine
