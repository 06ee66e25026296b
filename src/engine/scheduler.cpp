// plan_step: prefill-first token-budget scheduling (SGLang PrefillAdder arithmetic, RUNTIME_NOTES §1.2-1.8)
// expressed as tokens per sequence. Reservations are counted in pages: a running request reserves
// new_token_ratio x its clipped remaining output; an admitted one its whole remaining prompt + clipped output
// + one page of headroom. Pages a waiting request would reuse from the cache are charged too (they may be the
// evictable pages the budget counts), so the estimate errs on the side of admitting less.
#include "engine/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dsa::engine {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t floor_to(int64_t a, int64_t b) { return a / b * b; }

int64_t clipped_remaining_output(const SeqView& s, const SchedulerConfig& c) {
    return std::clamp<int64_t>(s.max_new_tokens - s.num_output, 0, c.clip_max_new_tokens_estimation);
}

// Pages still to be reserved for the running set and the chunked request.
int64_t reserved_pages(const SchedulerInput& in, const SchedulerConfig& c) {
    int64_t reserved = 0;
    for (const SeqView& r : in.running) {
        double tokens = static_cast<double>(clipped_remaining_output(r, c)) * in.new_token_ratio;
        reserved += ceil_div(static_cast<int64_t>(std::ceil(tokens)), c.page_size);
    }
    if (in.chunked) {
        const SeqView& s = *in.chunked;
        reserved += pages_to_grow(s, s.num_tokens + clipped_remaining_output(s, c), c.page_size) + 1;
    }
    return reserved;
}

struct Budget {
    int64_t avail_pages = 0;      // free + evictable now
    int64_t rem_total_pages = 0;  // after the future-growth reservations
    int64_t rem_chunk_tokens = 0;
    int64_t rem_input_tokens = 0;
    int64_t num_free_slots = 0;
};

// Frees room for `need` pages by retracting running requests from the newest; false when it cannot.
bool retract_until_fits(std::vector<SeqView>& running, int64_t need, Budget& b, StepPlan& plan) {
    while (need > b.avail_pages && !running.empty()) {
        const SeqView victim = running.back();
        running.pop_back();
        plan.retract.push_back(victim.key);
        b.avail_pages += victim.num_owned_pages;
        b.rem_total_pages += victim.num_owned_pages;
    }
    return need <= b.avail_pages;
}

void schedule_chunked(const SchedulerInput& in, const SchedulerConfig& c, std::vector<SeqView>& running, Budget& b,
                      StepPlan& plan) {
    const SeqView& s = *in.chunked;
    const int64_t remaining = s.num_tokens - s.num_computed;
    int64_t n = std::min(remaining, b.rem_chunk_tokens);
    if (n < remaining) n = std::max(floor_to(s.num_computed + n, c.page_size) - s.num_computed, c.page_size);
    n = std::min(n, remaining);
    const int64_t need = pages_to_grow(s, s.num_computed + n, c.page_size);
    if (!retract_until_fits(running, need, b, plan)) {
        plan.out_of_memory.push_back(s.key);
        return;
    }
    plan.seqs.push_back(
        {.key = s.key, .source = SeqSource::kChunked, .num_cached = s.num_computed, .num_new_tokens = n});
    if (n < remaining) plan.next_chunked = s.key;
    b.avail_pages -= need;
    b.rem_chunk_tokens -= n;
    b.rem_input_tokens -= n;
}

// Tries to admit one waiting request; false stops admission (head-of-line: no skipping).
bool admit_waiting(const SeqView& s, const SchedulerConfig& c, Budget& b, StepPlan& plan) {
    if (b.num_free_slots <= 0 || b.rem_input_tokens <= 0 || b.rem_chunk_tokens <= 0) return false;
    const int64_t extend = s.num_tokens - s.num_cached_hint;
    const int64_t total_pages = ceil_div(s.num_tokens + clipped_remaining_output(s, c), c.page_size);
    const int64_t cost = total_pages + 1;  // the hint pages are charged as if newly allocated
    if (cost > b.rem_total_pages) return false;
    int64_t n = extend;
    const int64_t budget = std::min(b.rem_chunk_tokens, b.rem_input_tokens);
    const bool first_unchunked = plan.seqs.empty() && c.chunked_prefill_size <= 0;
    if (extend > budget && !first_unchunked) {
        if (plan.next_chunked) return false;  // one chunked request at a time
        n = floor_to(budget, c.page_size);    // the hint is page aligned, so the chunk ends on a page boundary
        if (n <= 0) return false;
        plan.next_chunked = s.key;
    }
    const int64_t need_now = ceil_div(s.num_cached_hint + n, c.page_size);  // hint pages included, as above
    if (need_now > b.avail_pages) {
        if (plan.next_chunked == s.key) plan.next_chunked.reset();
        return false;
    }
    plan.seqs.push_back(
        {.key = s.key, .source = SeqSource::kWaiting, .num_cached = s.num_cached_hint, .num_new_tokens = n});
    b.num_free_slots -= 1;
    b.rem_input_tokens -= n;
    b.rem_chunk_tokens -= n;
    b.rem_total_pages -= cost;
    b.avail_pages -= need_now;
    return true;
}

void plan_decode(std::vector<SeqView> running, const SchedulerConfig& c, Budget& b, StepPlan& plan) {
    int64_t need = 0;
    for (const SeqView& r : running) need += pages_to_grow(r, r.num_computed + 1, c.page_size);
    while (need > b.avail_pages && running.size() > 1) {
        const SeqView victim = running.back();
        running.pop_back();
        plan.retract.push_back(victim.key);
        need -= pages_to_grow(victim, victim.num_computed + 1, c.page_size);
        b.avail_pages += victim.num_owned_pages;
    }
    if (need > b.avail_pages) {
        plan.out_of_memory.push_back(running.front().key);
        running.clear();
    }
    for (const SeqView& r : running) {
        plan.seqs.push_back(
            {.key = r.key, .source = SeqSource::kRunning, .num_cached = r.num_computed, .num_new_tokens = 1});
    }
    if (!plan.seqs.empty()) plan.kind = StepKind::kDecode;
}

}  // namespace

int64_t pages_to_grow(const SeqView& seq, int64_t end, int64_t page_size) {
    return std::max<int64_t>(ceil_div(end, page_size) - seq.num_pages, 0);
}

StepPlan plan_step(const SchedulerInput& in, const SchedulerConfig& c) {
    StepPlan plan;
    Budget b;
    b.avail_pages = in.num_free_pages + in.num_evictable_pages;
    b.rem_total_pages = b.avail_pages - reserved_pages(in, c);
    b.rem_chunk_tokens = c.chunked_prefill_size > 0 ? c.chunked_prefill_size : std::numeric_limits<int64_t>::max();
    b.rem_input_tokens = c.max_prefill_tokens;
    b.num_free_slots = c.max_running_requests - static_cast<int64_t>(in.running.size()) - (in.chunked ? 1 : 0);
    std::vector<SeqView> running = in.running;

    if (in.chunked) schedule_chunked(in, c, running, b, plan);
    if (plan.retract.empty() && plan.out_of_memory.empty()) {
        for (const SeqView& w : in.waiting) {
            if (!admit_waiting(w, c, b, plan)) break;
        }
    }
    if (!plan.seqs.empty()) {
        plan.kind = StepKind::kPrefill;
        return plan;
    }
    if (!plan.out_of_memory.empty() || !plan.retract.empty()) return plan;
    if (running.empty() && !in.chunked && !in.waiting.empty()) {
        plan.out_of_memory.push_back(in.waiting.front().key);  // does not fit even in an empty pool
        return plan;
    }
    plan_decode(std::move(running), c, b, plan);
    return plan;
}

NewTokenRatio NewTokenRatio::from_conservativeness(double schedule_conservativeness) {
    NewTokenRatio r;
    r.init = std::min(0.7 * schedule_conservativeness, 1.0);
    r.floor = r.init * 0.14;
    r.value = r.init;
    return r;
}

void NewTokenRatio::on_decode_step() {
    value = std::max(value - (init - floor) / static_cast<double>(decay_steps), floor);
}

void NewTokenRatio::on_retract(int64_t sum_generated, int64_t sum_max_new, int64_t num_running) {
    double v =
        static_cast<double>(sum_generated + retract_decode_steps * num_running) / static_cast<double>(sum_max_new + 1);
    value = std::min(1.0, v);
}

}  // namespace dsa::engine
