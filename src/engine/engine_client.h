// EngineClient: the only engine header the front end (api/, server/, app/) includes. The engine takes token
// ids and sampling parameters and streams token ids (+ logprobs) back; it never sees text. Header-only so that
// the front end does not link the scheduler. Threading and ownership rules are in docs/ENGINE_CONTRACT.md:
// TokenStream::push runs on the engine thread and never blocks; the front end drains it on its own thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace dsa::engine {

// Engine-level sampling parameters (API_SPEC §8.1) with SGLang's defaults. Text-side fields (stop strings,
// skip_special_tokens, n) live in the front end and are not here.
struct SamplingParams {
    double temperature = 1.0;  // 0 <= t < 1e-6 means greedy
    double top_p = 1.0;        // (0, 1]
    int32_t top_k = -1;        // -1 = whole vocabulary, else >= 1
    double min_p = 0.0;        // [0, 1]
    double frequency_penalty = 0.0;   // [-2, 2]
    double presence_penalty = 0.0;    // [-2, 2]
    double repetition_penalty = 1.0;  // (0, 2]
    int32_t min_new_tokens = 0;       // EOS / stop tokens masked until reached
    std::optional<int32_t> max_new_tokens;  // nullopt: bounded by the context only
    std::vector<int32_t> stop_token_ids;    // extra stop ids, on top of the model's EOS ids
    bool ignore_eos = false;                // EOS and stop_token_ids do not finish the request
    std::optional<uint64_t> seed;           // reproducible sampling when set
    std::map<int32_t, double> logit_bias;   // token id -> additive bias

    static constexpr double kGreedyTemperature = 1e-6;
    bool is_greedy() const { return temperature < kGreedyTemperature; }

    // OpenAI-style 400 messages, exactly SGLang's wording (API_SPEC §8.1).
    Status validate() const;
};

// Per-token logprob: the chosen token and, when requested, the top alternatives (best first).
struct TokenLogprob {
    int32_t token_id = 0;
    double logprob = 0.0;
    std::vector<std::pair<int32_t, double>> top;  // (token id, logprob)
};

// A per-request decoding constraint (tool-call grammar, JSON schema), built by the front end; opaque to the
// engine, which stays text-free. Called on the engine thread only, once per sampled token, before sampling.
class TokenConstraint {
public:
    virtual ~TokenConstraint() = default;
    // Given every output token accepted so far, sets bit t (word t / 64) of `mask` for each allowed next token
    // t (`mask` covers the model's vocabulary and arrives zeroed). Returns true when the output may end here:
    // the engine then also allows its EOS / stop ids. No bits and false means a dead end (the engine ends the
    // request with its stop ids).
    virtual bool fill_next_mask(std::span<const int32_t> output_ids, std::span<uint64_t> mask) = 0;
};

struct GenerateRequest {
    std::string rid;                  // unique among live requests; used by abort()
    std::vector<int32_t> input_ids;   // the prompt, never empty
    SamplingParams sampling;
    bool return_logprob = false;      // fill TokenEvent::logprobs for output tokens
    int32_t top_logprobs_num = 0;     // alternatives per position when return_logprob
    std::shared_ptr<TokenConstraint> constraint;  // optional; one object per request (it keeps state)
};

enum class FinishKind { kNone, kStop, kLength, kAbort };

// Why a request ended. A stop-token finish names the token (which is the last id the engine sent);
// kLength carries max_new_tokens; kAbort carries a message and an HTTP status (0 = user abort).
struct FinishReason {
    FinishKind kind = FinishKind::kNone;
    std::optional<int32_t> matched_token;
    int32_t length = 0;
    std::string message;
    int32_t status_code = 0;
};

// One engine output for one request: the tokens accepted since the previous event (possibly several with
// speculation, possibly none for a terminal abort) and the running counts.
struct TokenEvent {
    std::vector<int32_t> token_ids;
    std::vector<TokenLogprob> logprobs;  // one per token id when return_logprob, else empty
    bool finished = false;
    FinishReason finish;
    int32_t prompt_tokens = 0;
    int32_t cached_tokens = 0;      // prompt tokens served from the prefix cache
    int32_t completion_tokens = 0;  // cumulative, including the token that finished the request
};

// Per-request mailbox: written by the engine thread, drained by the front end. push() takes a short lock,
// appends and then calls the notifier outside the lock; the notifier must not block (it posts to an I/O
// executor). drain() returns every pending event at once. After a finished event nothing more is pushed.
class TokenStream {
public:
    using Notifier = std::function<void()>;

    void set_notifier(Notifier notifier) {
        std::lock_guard<std::mutex> lock(mu_);
        notifier_ = std::move(notifier);
    }
    void push(TokenEvent event) {
        Notifier notify;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (closed_) return;
            closed_ = event.finished;
            pending_.push_back(std::move(event));
            notify = notifier_;
        }
        if (notify) notify();
    }
    std::vector<TokenEvent> drain() {
        std::lock_guard<std::mutex> lock(mu_);
        std::vector<TokenEvent> out(std::make_move_iterator(pending_.begin()),
                                    std::make_move_iterator(pending_.end()));
        pending_.clear();
        return out;
    }
    bool closed() const {
        std::lock_guard<std::mutex> lock(mu_);
        return closed_;
    }

private:
    mutable std::mutex mu_;
    std::deque<TokenEvent> pending_;
    Notifier notifier_;
    bool closed_ = false;
};

// A snapshot for /metrics and /get_server_info. Counts are instantaneous; rates are over the engine's
// recent window.
struct EngineStats {
    int64_t num_running_reqs = 0;
    int64_t num_queue_reqs = 0;
    int64_t num_used_tokens = 0;        // KV tokens held by running requests and locked cache nodes
    int64_t max_total_num_tokens = 0;   // KV pool capacity in tokens
    double token_usage = 0.0;           // num_used_tokens / max_total_num_tokens
    double cache_hit_rate = 0.0;        // prefix-hit tokens / (hit + computed), recent prefills
    double gen_throughput = 0.0;        // generated tokens / s, recent decode window
    int64_t num_retracted_reqs = 0;
    // KV pool pages: every page is free, cached and unreferenced (evictable), or held (by a live request or a
    // cache node a live request still uses). After all requests end: held == 0; after /flush_cache also
    // cached == 0, free == total.
    int64_t page_size = 0;
    int64_t num_total_pages = 0;
    int64_t num_free_pages = 0;
    int64_t num_evictable_pages = 0;
    int64_t num_held_pages = 0;
};

enum class AbortReason {
    kClientGone,   // the HTTP client disconnected or the request was cancelled
    kStopString,   // the front end matched a stop string; the engine drops later tokens
    kUser,         // POST /abort_request: finish normally with finish_reason "abort"
};

class EngineClient {
public:
    virtual ~EngineClient() = default;

    // Queues a request. Returns immediately; outputs arrive on `stream` (shared with the caller) from the
    // engine thread. An error Status (e.g. prompt longer than the context) means nothing will be pushed.
    virtual Status submit(GenerateRequest request, std::shared_ptr<TokenStream> stream) = 0;
    // Ends a request wherever it is (queued, prefilling, running). Idempotent; unknown ids are ignored.
    // The engine pushes one last event with finished = true and kind kAbort (or nothing if it already
    // finished). Never blocks.
    virtual void abort(const std::string& rid, AbortReason reason) = 0;
    virtual EngineStats stats() const = 0;
    // Empties the prefix cache when idle; FailedPrecondition while requests are running or waiting.
    virtual Status flush_cache() = 0;
};

inline Status SamplingParams::validate() const {
    if (!std::isfinite(temperature) || temperature < 0.0)
        return invalid_argument("temperature must be a non-negative finite number, got {}", temperature);
    if (!(top_p > 0.0 && top_p <= 1.0)) return invalid_argument("top_p must be in (0, 1], got {}", top_p);
    if (!(min_p >= 0.0 && min_p <= 1.0)) return invalid_argument("min_p must be in [0, 1], got {}", min_p);
    if (top_k != -1 && top_k < 1)
        return invalid_argument("top_k must be -1 (disable) or at least 1, got {}", top_k);
    if (!(frequency_penalty >= -2.0 && frequency_penalty <= 2.0))
        return invalid_argument("frequency_penalty must be in [-2, 2], got {}", frequency_penalty);
    if (!(presence_penalty >= -2.0 && presence_penalty <= 2.0))
        return invalid_argument("presence_penalty must be in [-2, 2], got {}", presence_penalty);
    if (!(repetition_penalty > 0.0 && repetition_penalty <= 2.0))
        return invalid_argument("repetition_penalty must be in (0, 2] (1.0 = no penalty), got {}",
                                repetition_penalty);
    if (max_new_tokens && *max_new_tokens < 0)
        return invalid_argument("max_new_tokens must be at least 0, got {}", *max_new_tokens);
    if (min_new_tokens < 0 || (max_new_tokens && min_new_tokens > *max_new_tokens)) {
        std::string max = max_new_tokens ? std::to_string(*max_new_tokens) : std::string("None");
        return invalid_argument("min_new_tokens must be in [0, max_new_tokens({})], got {}", max, min_new_tokens);
    }
    for (int32_t id : stop_token_ids)
        if (id < 0) return invalid_argument("stop_token_ids must be non-negative token ids, got {}", id);
    for (const auto& [id, bias] : logit_bias) {
        if (id < 0) return invalid_argument("logit_bias keys must be non-negative token ids, got {}", id);
        if (!std::isfinite(bias)) return invalid_argument("logit_bias values must be finite, got {}", bias);
    }
    return Status::ok();
}

}  // namespace dsa::engine
