// EngineCore: snapshot -> plan_step -> commit. The commit applies, in order: out-of-memory aborts,
// retractions, prefix attach (locks) for admitted requests, page allocation (never fails: the plan counted
// it), one forward, prefix-cache inserts of prefilled pages, sampling, finish checks and stream pushes.
#include "engine/engine_core.h"

#include <fmt/format.h>

#include <algorithm>
#include <span>

#include "base/check.h"
#include "base/logging.h"
#include "engine/device_sampling.h"
#include "engine/sampler.h"
#include "kvcache/invariants.h"

namespace dsa::engine {
namespace {

constexpr double kGenWindowSeconds = 10.0;
constexpr size_t kHitWindowRequests = 64;  // cache_hit_rate is over the most recent admissions

bool contains(std::span<const int32_t> ids, int32_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

FinishReason length_finish(int64_t max_new_tokens) {
    FinishReason f;
    f.kind = FinishKind::kLength;
    f.length = static_cast<int32_t>(max_new_tokens);
    return f;
}

FinishReason stop_finish(int32_t token) {
    FinishReason f;
    f.kind = FinishKind::kStop;
    f.matched_token = token;
    return f;
}

FinishReason abort_finish(const std::string& message, int32_t status_code) {
    FinishReason f;
    f.kind = FinishKind::kAbort;
    f.message = message;
    f.status_code = status_code;
    return f;
}

}  // namespace

Status validate_request(const GenerateRequest& request, const EngineConfig& config, int64_t vocab_size) {
    if (request.input_ids.empty()) return invalid_argument("the prompt must contain at least one token");
    for (int32_t id : request.input_ids) {
        if (id < 0 || id >= vocab_size)
            return invalid_argument("token id {} is out of the vocabulary (size {})", id, vocab_size);
    }
    const auto num_prompt = static_cast<int64_t>(request.input_ids.size());
    if (num_prompt >= config.context_length) {
        return make_error(StatusCode::kOutOfRange,
                          "The input ({} tokens) is longer than the model's context length ({} tokens).", num_prompt,
                          config.context_length);
    }
    for (const auto& [id, bias] : request.sampling.logit_bias) {
        if (id >= vocab_size)
            return invalid_argument("logit_bias key {} is out of the vocabulary (size {})", id, vocab_size);
    }
    if (request.top_logprobs_num < 0)
        return invalid_argument("top_logprobs_num must be non-negative, got {}", request.top_logprobs_num);
    return request.sampling.validate();
}

EngineCore::EngineCore(const EngineConfig& config, ModelRunner& runner)
    : config_(config),
      sched_config_(config.scheduler_config()),
      runner_(runner),
      allocator_(runner.num_pages()),
      ratio_(NewTokenRatio::from_conservativeness(config.schedule_conservativeness)),
      seed_rng_(std::random_device{}()) {
    Status st = config.validate();
    DSA_CHECK(st.is_ok()) << st.to_string();
    DSA_CHECK_EQ(runner.page_size(), config.page_size) << "the runner's pool and the engine disagree on page_size";
    cache_ = kvcache::make_prefix_cache(
        kvcache::PrefixCacheConfig{
            .page_size = config.page_size, .mode = config.radix_cache, .eviction_policy = config.eviction_policy},
        allocator_);
}

EngineCore::~EngineCore() = default;

Status EngineCore::add_request(GenerateRequest request, std::shared_ptr<TokenStream> stream) {
    if (key_of_rid_.count(request.rid))
        return invalid_argument("request id '{}' is already in use by a live request", request.rid);
    auto r = std::make_unique<Request>(config_.page_size);
    r->key = next_key_++;
    r->seed = request.sampling.seed ? *request.sampling.seed : seed_rng_();
    r->tokens = request.input_ids;
    r->num_prompt = static_cast<int64_t>(r->tokens.size());
    int64_t context_room = std::max<int64_t>(config_.context_length - r->num_prompt - 1, 0);
    r->max_new_tokens = std::min<int64_t>(request.sampling.max_new_tokens.value_or(INT32_MAX), context_room);
    if (!request.sampling.ignore_eos) r->stop_ids.assign(config_.eos_token_ids.begin(), config_.eos_token_ids.end());
    for (int32_t id : request.sampling.stop_token_ids) r->stop_ids.push_back(id);
    r->params = std::move(request);
    r->stream = std::move(stream);
    key_of_rid_[r->params.rid] = r->key;
    waiting_.push_back(r->key);
    live_[r->key] = std::move(r);
    return Status::ok();
}

Request& EngineCore::get(uint64_t key) {
    auto it = live_.find(key);
    DSA_CHECK(it != live_.end()) << "no live request with key " << key;
    return *it->second;
}

SeqView EngineCore::view_of(const Request& r, int64_t num_cached_hint) const {
    return SeqView{.key = r.key,
                   .num_tokens = static_cast<int64_t>(r.tokens.size()),
                   .num_computed = r.num_computed,
                   .num_cached_hint = num_cached_hint,
                   .num_pages = r.pages.num_pages(),
                   .num_owned_pages = static_cast<int64_t>(r.pages.owned_pages().size()),
                   .num_output = r.num_output(),
                   .max_new_tokens = r.max_new_tokens};
}

SchedulerInput EngineCore::snapshot() {
    SchedulerInput in;
    int64_t num_candidates = std::max<int64_t>(config_.max_running_requests - num_running(), 1);
    for (uint64_t key : waiting_) {
        if (static_cast<int64_t>(in.waiting.size()) >= num_candidates) break;
        Request& r = get(key);
        std::span<const int32_t> prompt(r.tokens);
        int64_t hint = cache_->match_prefix(prompt.first(prompt.size() - 1)).num_tokens;
        in.waiting.push_back(view_of(r, hint));
    }
    if (chunked_) in.chunked = view_of(get(*chunked_), 0);
    for (uint64_t key : running_) in.running.push_back(view_of(get(key), 0));
    in.num_free_pages = allocator_.num_free();
    in.num_evictable_pages = cache_->num_evictable_pages();
    in.new_token_ratio = ratio_.value;
    return in;
}

StepKind EngineCore::step() {
    StepPlan plan = plan_step(snapshot(), sched_config_);
    apply_out_of_memory(plan);
    apply_retractions(plan);
    if (!plan.seqs.empty()) {
        std::vector<ScheduledSeq> seqs = admit_and_allocate(plan);
        run_and_commit(plan, seqs);
    }
    if (plan.kind == StepKind::kDecode && plan.retract.empty()) ratio_.on_decode_step();
    if (!has_work()) ratio_.reset();
    ++counters_.num_steps;
    if (config_.invariant_checks == InvariantChecks::kEveryStep) {
        std::string problem = check_invariants();
        DSA_CHECK(problem.empty()) << problem;
    }
    last_plan_ = std::move(plan);
    return last_plan_.kind;
}

void EngineCore::apply_out_of_memory(const StepPlan& plan) {
    for (uint64_t key : plan.out_of_memory) {
        Request& r = get(key);
        const bool never_fits = std::find(waiting_.begin(), waiting_.end(), key) != waiting_.end();
        std::erase(waiting_, key);
        std::erase(running_, key);
        if (chunked_ == key) chunked_.reset();
        cache_->release_request(r.pages);
        if (never_fits) {
            push_abort(r, "The request needs more KV cache than the server holds (prompt + max_new_tokens).", 400);
        } else {
            push_abort(r, "Out of memory even after retracting all other requests; try a smaller request.", 500);
        }
        remove_live(key);
    }
}

void EngineCore::apply_retractions(const StepPlan& plan) {
    if (plan.retract.empty()) return;
    for (uint64_t key : plan.retract) {
        Request& r = get(key);
        cache_->release_request(r.pages);
        r.num_computed = 0;
        ++r.num_retractions;
        ++counters_.num_retracted_reqs;
        std::erase(running_, key);
        if (chunked_ == key) chunked_.reset();
        requeue(key);
    }
    int64_t sum_generated = 0, sum_max_new = 0;
    for (uint64_t key : running_) {
        sum_generated += get(key).num_output();
        sum_max_new += get(key).max_new_tokens;
    }
    double before = ratio_.value;
    ratio_.on_retract(sum_generated, sum_max_new, static_cast<int64_t>(running_.size()));
    DSA_LOG(kWarning) << "KV cache pool is full. Retract requests. #retracted_reqs: " << plan.retract.size()
                      << ", #new_token_ratio: " << before << " -> " << ratio_.value;
}

void EngineCore::requeue(uint64_t key) {
    auto pos = std::lower_bound(waiting_.begin(), waiting_.end(), key);
    waiting_.insert(pos, key);
}

std::vector<ScheduledSeq> EngineCore::admit_and_allocate(const StepPlan& plan) {
    std::vector<ScheduledSeq> seqs = plan.seqs;
    for (const ScheduledSeq& s : seqs) {  // lock every admitted prefix before anything is evicted
        if (s.source != SeqSource::kWaiting) continue;
        Request& r = get(s.key);
        std::erase(waiting_, s.key);
        const bool first = r.num_retractions == 0;
        auto accounting = first ? kvcache::HitAccounting::kCount : kvcache::HitAccounting::kSkip;
        int64_t cached = cache_->attach_prefix(r.tokens, r.pages, accounting);
        DSA_CHECK_EQ(cached, s.num_cached) << "prefix match changed between plan and commit";
        r.num_computed = cached;
        if (first) {
            r.num_cached_prompt = cached;
            counters_.num_prompt_tokens += r.num_prompt;
            counters_.num_cached_tokens += cached;
            hit_window_.emplace_back(r.num_prompt, cached);
            if (hit_window_.size() > kHitWindowRequests) hit_window_.pop_front();
        }
    }
    for (const ScheduledSeq& s : seqs) {
        Request& r = get(s.key);
        int64_t need = pages_to_grow(view_of(r, 0), s.end(), config_.page_size);
        DSA_CHECK(cache_->ensure_free(need)) << "admission overcommitted: " << need << " pages";
        DSA_CHECK(r.pages.extend(s.end(), allocator_));
    }
    for (const ScheduledSeq& s : seqs) {
        if (s.source == SeqSource::kRunning) continue;
        if (s.source == SeqSource::kChunked) chunked_.reset();
        if (plan.next_chunked == s.key) {
            chunked_ = s.key;
        } else {
            running_.push_back(s.key);
        }
    }
    return seqs;
}

void EngineCore::run_and_commit(const StepPlan& plan, const std::vector<ScheduledSeq>& seqs) {
    std::vector<model::SequenceStep> steps;
    for (const ScheduledSeq& s : seqs) {
        Request& r = get(s.key);
        DSA_CHECK_EQ(r.num_computed, s.num_cached) << "positions must advance contiguously";
        model::SequenceStep step;
        step.new_tokens = std::span<const int32_t>(r.tokens).subspan(s.num_cached, s.num_new_tokens);
        step.num_cached = s.num_cached;
        step.page_table = r.pages.pages();
        steps.push_back(step);
    }
    const bool on_device = runner_.device_sampling();
    Tensor logits = on_device ? runner_.forward_on_device(steps) : runner_.forward(steps);
    const int64_t vocab = runner_.vocab_size();
    DSA_CHECK_EQ(logits.dim(0), static_cast<int64_t>(seqs.size()));
    DSA_CHECK_EQ(logits.dim(1), vocab);
    const int64_t generated_before = counters_.num_generated_tokens;
    std::vector<int64_t> device_rows;  // rows sampled after the loop on the device
    for (size_t i = 0; i < seqs.size(); ++i) {
        Request& r = get(seqs[i].key);
        r.num_computed = seqs[i].end();
        if (plan.kind == StepKind::kPrefill) {
            cache_->cache_unfinished(std::span<const int32_t>(r.tokens).first(r.num_computed), r.pages);
        }
        if (r.num_computed != static_cast<int64_t>(r.tokens.size())) continue;  // a middle chunk
        if (r.num_output() >= r.max_new_tokens) {                               // max_new_tokens 0: prefill only
            TokenEvent ev;
            ev.finished = true;
            ev.finish = length_finish(r.max_new_tokens);
            ev.prompt_tokens = static_cast<int32_t>(r.num_prompt);
            ev.cached_tokens = static_cast<int32_t>(r.num_cached_prompt);
            r.stream->push(std::move(ev));
            finish(r.key, FinishReason{});
            continue;
        }
        if (on_device) {
            device_rows.push_back(static_cast<int64_t>(i));
        } else {
            sample_and_emit(r, logits.data<float>() + static_cast<int64_t>(i) * vocab);
        }
    }
    if (!device_rows.empty()) sample_on_device(seqs, device_rows, logits);
    record_generated(counters_.num_generated_tokens - generated_before);
}

// Rows without a grammar or top logprobs are sampled on the device in one call; the others, and rows the device
// hands back (no finite logit), download their one row for the CPU sampler. Emission keeps the row order.
void EngineCore::sample_on_device(const std::vector<ScheduledSeq>& seqs, std::span<const int64_t> rows,
                                  const Tensor& logits) {
    const int64_t vocab = runner_.vocab_size();
    std::vector<backend::SampleRow> packed;
    std::vector<int64_t> packed_index(rows.size(), -1);
    for (size_t k = 0; k < rows.size(); ++k) {
        const Request& r = get(seqs[static_cast<size_t>(rows[k])].key);
        const SampleInput in = sample_input(r);
        if (!device_sampleable(r.params.constraint != nullptr, in, logprob_mode(r))) continue;
        packed_index[k] = static_cast<int64_t>(packed.size());
        packed.push_back(pack_sample_row(in, rows[k], vocab));
    }
    StatusOr<std::vector<backend::SampledToken>> got = std::vector<backend::SampledToken>{};
    if (!packed.empty()) got = runner_.sample_on_device(logits, packed);
    if (!got.is_ok()) {
        DSA_LOG(kWarning) << "device sampling failed, sampling on the CPU: " << got.status().message();
    }
    for (size_t k = 0; k < rows.size(); ++k) {
        Request& r = get(seqs[static_cast<size_t>(rows[k])].key);
        const int64_t j = packed_index[k];
        if (got.is_ok() && j >= 0 && !(*got)[static_cast<size_t>(j)].fallback) {
            emit(r, from_device((*got)[static_cast<size_t>(j)], logprob_mode(r)));
        } else {
            Tensor row = runner_.logits_row_to_host(logits, rows[k]);
            sample_and_emit(r, row.data<float>());
        }
    }
}

SampleInput EngineCore::sample_input(const Request& r) const {
    SampleInput in;
    in.params = &r.params.sampling;
    in.output_ids = std::span<const int32_t>(r.tokens).subspan(static_cast<size_t>(r.num_prompt));
    in.stop_ids = r.stop_ids;
    in.seed = r.seed;
    in.position = r.num_output();
    in.num_top_logprobs = r.params.return_logprob ? r.params.top_logprobs_num : 0;
    return in;
}

LogprobMode EngineCore::logprob_mode(const Request& r) {
    return r.params.return_logprob ? LogprobMode::kChosenAndTop : LogprobMode::kNone;
}

void EngineCore::sample_and_emit(Request& r, const float* logits) {
    const int64_t vocab = runner_.vocab_size();
    SampleInput in = sample_input(r);
    in.logits = std::span<const float>(logits, static_cast<size_t>(vocab));
    std::vector<uint64_t> allowed;
    if (r.params.constraint) {
        allowed = constraint_mask(r, in.output_ids, vocab);
        in.allowed = allowed;
    }
    emit(r, sample_token(in, logprob_mode(r)));
}

void EngineCore::emit(Request& r, const SampleResult& res) {
    r.tokens.push_back(res.token_id);
    ++counters_.num_generated_tokens;

    TokenEvent ev;
    ev.token_ids = {res.token_id};
    if (r.params.return_logprob) ev.logprobs = {res.logprob};
    ev.prompt_tokens = static_cast<int32_t>(r.num_prompt);
    ev.cached_tokens = static_cast<int32_t>(r.num_cached_prompt);
    ev.completion_tokens = static_cast<int32_t>(r.num_output());
    std::optional<FinishReason> reason = finish_check(r);
    if (reason) {
        ev.finished = true;
        ev.finish = *reason;
    }
    r.stream->push(std::move(ev));
    if (reason) finish(r.key, *reason);
}

// The request's grammar mask; where the constraint allows ending (or reached a dead end) the EOS and stop ids
// are allowed too, so a constrained request ends through the normal stop-token path.
std::vector<uint64_t> EngineCore::constraint_mask(const Request& r, std::span<const int32_t> output_ids,
                                                  int64_t vocab) const {
    std::vector<uint64_t> mask(static_cast<size_t>((vocab + 63) / 64), 0);
    const bool can_end = r.params.constraint->fill_next_mask(output_ids, mask);
    const bool dead = !can_end && std::all_of(mask.begin(), mask.end(), [](uint64_t w) { return w == 0; });
    if (can_end || dead) {
        auto allow = [&](int32_t id) {
            if (id >= 0 && id < vocab) mask[static_cast<size_t>(id) / 64] |= uint64_t{1} << (id % 64);
        };
        for (int32_t id : config_.eos_token_ids) allow(id);
        for (int32_t id : r.params.sampling.stop_token_ids) allow(id);
    }
    return mask;
}

std::optional<FinishReason> EngineCore::finish_check(const Request& r) const {
    if (r.num_output() >= r.max_new_tokens) {
        return length_finish(r.max_new_tokens);
    }
    const int32_t last = r.tokens.back();
    const SamplingParams& sp = r.params.sampling;
    if (!sp.ignore_eos && (contains(config_.eos_token_ids, last) || contains(sp.stop_token_ids, last))) {
        return stop_finish(last);
    }
    return std::nullopt;
}

void EngineCore::finish(uint64_t key, FinishReason /*reason*/) {
    Request& r = get(key);
    cache_->cache_finished(std::span<const int32_t>(r.tokens).first(r.num_computed), r.pages);
    std::erase(running_, key);
    if (chunked_ == key) chunked_.reset();
    ++counters_.num_finished_reqs;
    remove_live(key);
}

void EngineCore::remove_live(uint64_t key) {
    auto it = live_.find(key);
    DSA_CHECK(it != live_.end());
    key_of_rid_.erase(it->second->params.rid);
    live_.erase(it);
}

void EngineCore::push_abort(Request& r, const std::string& message, int32_t status_code) {
    TokenEvent ev;
    ev.finished = true;
    ev.finish = abort_finish(message, status_code);
    ev.prompt_tokens = static_cast<int32_t>(r.num_prompt);
    ev.cached_tokens = static_cast<int32_t>(r.num_cached_prompt);
    ev.completion_tokens = static_cast<int32_t>(r.num_output());
    r.stream->push(std::move(ev));
}

void EngineCore::abort(const std::string& rid, AbortReason reason) {
    auto it = key_of_rid_.find(rid);
    if (it == key_of_rid_.end()) return;
    const uint64_t key = it->second;
    Request& r = get(key);
    std::erase(waiting_, key);
    std::erase(running_, key);
    if (chunked_ == key) chunked_.reset();
    cache_->release_request(r.pages);  // pages back now, whatever the state
    push_abort(r, reason == AbortReason::kClientGone ? "client disconnected" : "aborted", 0);
    remove_live(key);
}

void EngineCore::abort_all(const std::string& message, int32_t status_code) {
    std::vector<uint64_t> keys;
    for (const auto& [key, r] : live_) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    for (uint64_t key : keys) {
        Request& r = get(key);
        cache_->release_request(r.pages);
        push_abort(r, message, status_code);
        remove_live(key);
    }
    waiting_.clear();
    running_.clear();
    chunked_.reset();
}

Status EngineCore::flush_cache() {
    if (has_work()) {
        return make_error(StatusCode::kFailedPrecondition,
                          "Cache not flushed because there are pending requests. #queue-req: {}, #running-req: {}",
                          num_waiting(), num_running());
    }
    cache_->flush();
    cache_->reset_stats();
    hit_window_.clear();
    return Status::ok();
}

void EngineCore::record_generated(int64_t num_tokens) {
    auto now = std::chrono::steady_clock::now();
    gen_window_.emplace_back(now, num_tokens);
    while (!gen_window_.empty() &&
           std::chrono::duration<double>(now - gen_window_.front().first).count() > kGenWindowSeconds) {
        gen_window_.pop_front();
    }
}

EngineStats EngineCore::stats() const {
    EngineStats s;
    s.num_running_reqs = num_running();
    s.num_queue_reqs = num_waiting();
    const int64_t page = config_.page_size;
    s.num_used_tokens = (allocator_.num_used() - cache_->num_evictable_pages()) * page;
    s.max_total_num_tokens = allocator_.num_pages() * page;
    s.token_usage = s.max_total_num_tokens > 0
                        ? static_cast<double>(s.num_used_tokens) / static_cast<double>(s.max_total_num_tokens)
                        : 0.0;
    int64_t num_prompt = 0, num_hit = 0;
    for (const auto& [prompt, hit] : hit_window_) {
        num_prompt += prompt;
        num_hit += hit;
    }
    s.cache_hit_rate = num_prompt > 0 ? static_cast<double>(num_hit) / static_cast<double>(num_prompt) : 0.0;
    if (gen_window_.size() >= 2) {
        int64_t num_tokens = 0;
        for (size_t i = 1; i < gen_window_.size(); ++i) num_tokens += gen_window_[i].second;
        double seconds = std::chrono::duration<double>(gen_window_.back().first - gen_window_.front().first).count();
        if (seconds > 0) s.gen_throughput = static_cast<double>(num_tokens) / seconds;
    }
    s.num_retracted_reqs = counters_.num_retracted_reqs;
    s.page_size = page;
    s.num_total_pages = allocator_.num_pages();
    s.num_free_pages = allocator_.num_free();
    s.num_evictable_pages = cache_->num_evictable_pages();
    s.num_held_pages = allocator_.num_used() - s.num_evictable_pages;
    return s;
}

std::string EngineCore::check_invariants() const {
    std::vector<const kvcache::ReqToPages*> tables;
    for (const auto& [key, r] : live_) tables.push_back(&r->pages);
    std::string problem = kvcache::check_page_partition(allocator_, *cache_, tables);
    if (!problem.empty()) return problem;
    cache_->check_invariants();
    size_t num_placed = waiting_.size() + running_.size() + (chunked_ ? 1 : 0);
    if (num_placed != live_.size()) return fmt::format("{} live requests but {} placed", live_.size(), num_placed);
    for (uint64_t key : waiting_) {
        if (live_.at(key)->pages.num_pages() != 0) return fmt::format("waiting request {} holds pages", key);
    }
    for (uint64_t key : running_) {
        const Request& r = *live_.at(key);
        if (r.num_computed + 1 != static_cast<int64_t>(r.tokens.size()))
            return fmt::format("running request {} has {} computed of {} tokens", key, r.num_computed, r.tokens.size());
    }
    return {};
}

}  // namespace dsa::engine
