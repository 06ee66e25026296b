// FakeEngine: an EngineClient with one engine thread that streams a fixed reply (bytes of `reply`, then EOS
// 256) one token per step to every running request, with a configurable delay per step. Records aborts with
// their reasons, so tests can check that the server aborts on disconnect and on stop strings.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine_client.h"

namespace dsa::server::testing {

class FakeEngine : public engine::EngineClient {
public:
    explicit FakeEngine(std::string reply = "Hello world", std::chrono::milliseconds step = std::chrono::milliseconds(1))
        : reply_(std::move(reply)), step_(step), thread_([this] { loop(); }) {}
    ~FakeEngine() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

    Status submit(engine::GenerateRequest request, std::shared_ptr<engine::TokenStream> stream) override {
        if (request.input_ids.size() > 1000) return invalid_argument("The input ({} tokens) is too long.", request.input_ids.size());
        std::lock_guard<std::mutex> lock(mu_);
        submitted_.push_back(request);
        running_.push_back(Running{std::move(request), std::move(stream), 0, false});
        cv_.notify_all();
        return Status::ok();
    }
    void abort(const std::string& rid, engine::AbortReason reason) override {
        std::lock_guard<std::mutex> lock(mu_);
        aborts_.emplace_back(rid, reason);
        for (auto& r : running_)
            if (r.req.rid == rid) r.aborted = true;
    }
    engine::EngineStats stats() const override {
        std::lock_guard<std::mutex> lock(mu_);
        engine::EngineStats s;
        s.num_running_reqs = static_cast<int64_t>(running_.size());
        s.max_total_num_tokens = 1000;
        s.num_used_tokens = 250;
        s.token_usage = 0.25;
        s.cache_hit_rate = 0.5;
        return s;
    }
    Status flush_cache() override {
        std::lock_guard<std::mutex> lock(mu_);
        if (!running_.empty()) return Status(StatusCode::kFailedPrecondition, "Cache not flushed: requests are running");
        ++flushes_;
        return Status::ok();
    }

    std::vector<std::pair<std::string, engine::AbortReason>> aborts() const {
        std::lock_guard<std::mutex> lock(mu_);
        return aborts_;
    }
    std::vector<engine::GenerateRequest> submitted() const {
        std::lock_guard<std::mutex> lock(mu_);
        return submitted_;
    }
    size_t num_running() const {
        std::lock_guard<std::mutex> lock(mu_);
        return running_.size();
    }
    int flushes() const {
        std::lock_guard<std::mutex> lock(mu_);
        return flushes_;
    }

private:
    struct Running {
        engine::GenerateRequest req;
        std::shared_ptr<engine::TokenStream> stream;
        int32_t produced;
        bool aborted;
    };

    // One step for one request; returns true when it finished.
    bool step(Running& r) {
        engine::TokenEvent e;
        e.prompt_tokens = static_cast<int32_t>(r.req.input_ids.size());
        e.cached_tokens = 0;
        if (r.aborted) {
            e.finished = true;
            e.finish.kind = engine::FinishKind::kAbort;
            e.completion_tokens = r.produced;
            r.stream->push(std::move(e));
            return true;
        }
        int32_t max_new = r.req.sampling.max_new_tokens.value_or(1 << 30);
        int32_t id = r.produced < static_cast<int32_t>(reply_.size()) ? static_cast<unsigned char>(reply_[r.produced]) : 256;
        e.token_ids = {id};
        if (r.req.return_logprob) e.logprobs = {engine::TokenLogprob{id, -0.25, {}}};
        e.completion_tokens = ++r.produced;
        if (id == 256 && !r.req.sampling.ignore_eos) {
            e.finished = true;
            e.finish.kind = engine::FinishKind::kStop;
            e.finish.matched_token = 256;
        } else if (r.produced >= max_new) {
            e.finished = true;
            e.finish.kind = engine::FinishKind::kLength;
            e.finish.length = max_new;
        }
        bool done = e.finished;
        r.stream->push(std::move(e));
        return done;
    }

    void loop() {
        std::unique_lock<std::mutex> lock(mu_);
        while (!stop_) {
            if (running_.empty()) {
                cv_.wait(lock, [&] { return stop_ || !running_.empty(); });
                continue;
            }
            std::vector<Running> batch;
            batch.swap(running_);
            lock.unlock();
            std::vector<Running> keep;
            for (auto& r : batch) {
                bool aborted_now = false;
                {
                    std::lock_guard<std::mutex> l(mu_);
                    for (auto& [rid, reason] : aborts_) aborted_now = aborted_now || rid == r.req.rid;
                }
                r.aborted = r.aborted || aborted_now;
                if (!step(r)) keep.push_back(std::move(r));
            }
            std::this_thread::sleep_for(step_);
            lock.lock();
            for (auto& r : keep) running_.push_back(std::move(r));
        }
    }

    std::string reply_;
    std::chrono::milliseconds step_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::vector<Running> running_;
    std::vector<engine::GenerateRequest> submitted_;
    std::vector<std::pair<std::string, engine::AbortReason>> aborts_;
    int flushes_ = 0;
    std::thread thread_;
};

}  // namespace dsa::server::testing
