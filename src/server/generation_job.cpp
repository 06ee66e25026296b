// GenerationJob: engine <-> Generation <-> HTTP exchange plumbing (see generation_job.h).
#include "server/generation_job.h"

#include "base/logging.h"

namespace dsa::server {

void GenerationJob::start(ServerContext& ctx, std::unique_ptr<api::Generation> gen,
                          std::shared_ptr<HttpExchange> exchange, ErrorStyle style) {
    auto job = std::make_shared<GenerationJob>(ctx, std::move(gen), std::move(exchange), style);
    job->run();
}

GenerationJob::GenerationJob(ServerContext& ctx, std::unique_ptr<api::Generation> gen,
                             std::shared_ptr<HttpExchange> exchange, ErrorStyle style)
    : ctx_(ctx), gen_(std::move(gen)), exchange_(std::move(exchange)), style_(style) {}

void GenerationJob::reply_error(const api::ApiError& e) {
    DSA_LOG(kWarning) << "request failed (" << e.http_status << "): " << e.message;
    std::string body = style_ == ErrorStyle::kOpenAi ? api::openai_error_body(e) : api::native_error_body(e);
    exchange_->reply(e.http_status, "application/json", std::move(body));
}

void GenerationJob::run() {
    auto& requests = gen_->engine_requests();
    std::weak_ptr<GenerationJob> weak = shared_from_this();
    for (size_t i = 0; i < requests.size(); ++i) {
        auto stream = std::make_shared<engine::TokenStream>();
        stream->set_notifier([weak] {
            if (auto job = weak.lock()) job->notify();
        });
        Status st = ctx_.engine->submit(requests[i], stream);
        if (!st.is_ok()) {
            for (size_t k = 0; k < i; ++k) {
                ctx_.engine->abort(requests[k].rid, engine::AbortReason::kClientGone);
                ctx_.live.remove(requests[k].rid);
            }
            reply_error(api::ApiError::from_status(st, "BadRequestError"));
            return;
        }
        streams_.push_back(std::move(stream));
        ctx_.live.add(requests[i].rid);
    }
    timing_.resize(requests.size());
    self_ = shared_from_this();
    exchange_->on_disconnect([weak] {
        if (auto job = weak.lock()) job->on_disconnect();
    });
    if (gen_->streaming()) exchange_->begin_stream("text/event-stream");
    drain();  // events may have arrived before the notifier could post
}

void GenerationJob::notify() {
    if (drain_pending_.exchange(true)) return;
    std::weak_ptr<GenerationJob> weak = shared_from_this();
    exchange_->post([weak] {
        if (auto job = weak.lock()) job->drain();
    });
}

void GenerationJob::record_timing(size_t i, const engine::TokenEvent& event) {
    auto& t = timing_[i];
    auto now = Clock::now();
    if (event.token_ids.empty()) return;
    if (!t.first_seen) {
        t.first_seen = true;
        ctx_.metrics.time_to_first_token.observe(std::chrono::duration<double>(now - start_).count());
    } else {
        ctx_.metrics.record_inter_token(std::chrono::duration<double>(now - t.last).count(),
                                        static_cast<int64_t>(event.token_ids.size()));
    }
    t.last = now;
}

void GenerationJob::record_finished_choices(bool aborted) {
    double e2e = std::chrono::duration<double>(Clock::now() - start_).count();
    const auto& choices = gen_->choices();
    for (size_t i = 0; i < choices.size(); ++i) {
        if (timing_[i].recorded || (!choices[i].finished() && !aborted)) continue;
        timing_[i].recorded = true;
        ctx_.live.remove(gen_->engine_requests()[i].rid);
        bool was_abort = aborted || choices[i].finish().kind == engine::FinishKind::kAbort;
        ctx_.metrics.record_request(choices[i].prompt_tokens(), choices[i].completion_tokens(),
                                    choices[i].cached_tokens(), e2e, was_abort);
    }
}

void GenerationJob::drain() {
    drain_pending_.store(false);
    if (completed_) return;
    std::string out;
    for (size_t i = 0; i < streams_.size(); ++i) {
        for (auto& event : streams_[i]->drain()) {
            record_timing(i, event);
            out += gen_->on_event(i, event);
        }
    }
    for (const auto& rid : gen_->take_frontend_finished()) ctx_.engine->abort(rid, engine::AbortReason::kStopString);
    if (gen_->streaming() && !out.empty()) exchange_->write(std::move(out));
    record_finished_choices(/*aborted=*/false);
    if (gen_->done()) complete();
}

void GenerationJob::complete() {
    completed_ = true;
    api::HttpReply reply = gen_->final_reply();
    if (gen_->streaming()) {
        exchange_->write(std::move(reply.body));
        exchange_->end_stream();
    } else {
        if (reply.status >= 400) {
            DSA_LOG(kWarning) << "request " << gen_->id() << " failed with " << reply.status;
        }
        exchange_->reply(reply.status, reply.content_type, std::move(reply.body));
    }
    self_.reset();
}

void GenerationJob::on_disconnect() {
    if (completed_) return;
    completed_ = true;
    DSA_LOG(kInfo) << "client disconnected, aborting request " << gen_->id();
    const auto& choices = gen_->choices();
    for (size_t i = 0; i < choices.size(); ++i)
        if (!choices[i].finished()) ctx_.engine->abort(gen_->engine_requests()[i].rid, engine::AbortReason::kClientGone);
    record_finished_choices(/*aborted=*/true);
    self_.reset();
}

}  // namespace dsa::server
