// Engine loop: drain the inbox, step the core while it has work, publish stats, sleep when idle.
#include "engine/engine.h"

#include "base/check.h"
#include "base/logging.h"

namespace dsa::engine {

StatusOr<std::unique_ptr<Engine>> Engine::create(const EngineConfig& config, std::unique_ptr<ModelRunner> runner) {
    if (Status st = config.validate(); !st.is_ok()) return st;
    if (!runner) return invalid_argument("engine: no model runner");
    if (runner->page_size() != config.page_size) {
        return invalid_argument("engine: page size {} differs from the KV pool's {}", config.page_size,
                                runner->page_size());
    }
    if (runner->num_pages() < 1) return invalid_argument("engine: the KV pool has no pages");
    return std::unique_ptr<Engine>(new Engine(config, std::move(runner)));
}

Engine::Engine(const EngineConfig& config, std::unique_ptr<ModelRunner> runner)
    : config_(config), runner_(std::move(runner)), core_(std::make_unique<EngineCore>(config_, *runner_)) {
    publish_stats();
}

Engine::~Engine() { stop(); }

void Engine::start() {
    DSA_CHECK(!thread_.joinable()) << "engine already started";
    thread_ = std::thread([this] { loop(); });
}

void Engine::stop() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    drain_inbox();  // requests that arrived after the loop ended still get their terminal event
    core_->abort_all("server shutting down", 503);
    publish_stats();
}

Status Engine::submit(GenerateRequest request, std::shared_ptr<TokenStream> stream) {
    if (!stream) return invalid_argument("submit: no output stream");
    if (Status st = validate_request(request, config_, runner_->vocab_size()); !st.is_ok()) return st;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return make_error(StatusCode::kUnavailable, "the engine is shutting down");
        inbox_.submissions.push_back(Submission{std::move(request), std::move(stream)});
    }
    wake_.notify_one();
    return Status::ok();
}

void Engine::abort(const std::string& rid, AbortReason reason) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        inbox_.aborts.push_back(Abort{rid, reason});
    }
    wake_.notify_one();
}

EngineStats Engine::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
}

Engine::PoolState Engine::pool_state() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pool_state_;
}

Status Engine::flush_cache() {
    std::future<Status> done;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stats_.num_running_reqs > 0 || stats_.num_queue_reqs > 0 || !inbox_.submissions.empty()) {
            return make_error(StatusCode::kFailedPrecondition,
                              "Cache not flushed because there are pending requests. #queue-req: {}, "
                              "#running-req: {}",
                              stats_.num_queue_reqs, stats_.num_running_reqs);
        }
        if (stopping_ || !thread_.joinable()) return make_error(StatusCode::kUnavailable, "the engine is not running");
        inbox_.flushes.emplace_back();
        done = inbox_.flushes.back().get_future();
    }
    wake_.notify_one();
    return done.get();
}

void Engine::drain_inbox() {
    Inbox inbox;
    {
        std::lock_guard<std::mutex> lock(mu_);
        std::swap(inbox, inbox_);
    }
    for (Submission& s : inbox.submissions) {
        std::shared_ptr<TokenStream> stream = s.stream;
        Status st = core_->add_request(std::move(s.request), std::move(s.stream));
        if (!st.is_ok()) {  // a duplicate rid: the only check that needs the live set
            TokenEvent ev;
            ev.finished = true;
            ev.finish.kind = FinishKind::kAbort;
            ev.finish.message = st.message();
            ev.finish.status_code = 400;
            stream->push(std::move(ev));
        }
    }
    for (const Abort& a : inbox.aborts) core_->abort(a.rid, a.reason);
    if (inbox.flushes.empty()) return;
    Status flushed = core_->flush_cache();
    publish_stats();  // a caller that sees the flush done also sees its effect
    for (std::promise<Status>& p : inbox.flushes) p.set_value(flushed);
}

void Engine::publish_stats() {
    EngineStats s = core_->stats();
    PoolState p{.num_pages = core_->allocator().num_pages(),
                .num_free_pages = core_->allocator().num_free(),
                .num_evictable_pages = core_->cache().num_evictable_pages()};
    std::lock_guard<std::mutex> lock(mu_);
    stats_ = s;
    pool_state_ = p;
}

void Engine::loop() {
    while (true) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (stopping_) break;
        }
        drain_inbox();
        if (core_->has_work()) {
            core_->step();
            publish_stats();
            continue;
        }
        publish_stats();
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [this] { return stopping_ || !inbox_.empty(); });
        if (stopping_) break;
    }
}

}  // namespace dsa::engine
