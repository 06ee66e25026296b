// Engine: the EngineClient the front end talks to. One loop thread owns an EngineCore (all request state);
// submit / abort / flush_cache from any thread go through a locked inbox that the loop drains at the top of
// each step, and outputs reach each request's TokenStream from the loop thread (never blocking). stats() reads
// a snapshot the loop publishes once per step. Construction: build a ModelRunner (DsaModelRunner::create over
// a DsaModel, or a test runner), then Engine::create(config, runner) and start().
#pragma once

#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "engine/engine_client.h"
#include "engine/engine_config.h"
#include "engine/engine_core.h"
#include "engine/model_runner.h"

namespace dsa::engine {

class Engine final : public EngineClient {
  public:
    // Validates `config` against the runner (page size, pool); the loop is not started yet.
    static StatusOr<std::unique_ptr<Engine>> create(const EngineConfig& config, std::unique_ptr<ModelRunner> runner);
    ~Engine() override;  // stop()

    // Starts the loop thread. Requests submitted before start() wait in the inbox.
    void start();
    // Aborts every live request (503, "server shutting down") and joins the loop. Idempotent.
    void stop();

    Status submit(GenerateRequest request, std::shared_ptr<TokenStream> stream) override;
    void abort(const std::string& rid, AbortReason reason) override;
    EngineStats stats() const override;
    Status flush_cache() override;

    // KV pool page counts, from the same per-step snapshot as stats() (tests, /get_server_info).
    struct PoolState {
        int64_t num_pages = 0;
        int64_t num_free_pages = 0;
        int64_t num_evictable_pages = 0;
    };
    PoolState pool_state() const;

    const EngineConfig& config() const { return config_; }
    int64_t vocab_size() const { return runner_->vocab_size(); }

  private:
    struct Submission {
        GenerateRequest request;
        std::shared_ptr<TokenStream> stream;
    };
    struct Abort {
        std::string rid;
        AbortReason reason;
    };
    struct Inbox {
        std::vector<Submission> submissions;
        std::vector<Abort> aborts;
        std::vector<std::promise<Status>> flushes;
        bool empty() const { return submissions.empty() && aborts.empty() && flushes.empty(); }
    };

    Engine(const EngineConfig& config, std::unique_ptr<ModelRunner> runner);
    void loop();
    void drain_inbox();
    void publish_stats();

    EngineConfig config_;
    std::unique_ptr<ModelRunner> runner_;
    std::unique_ptr<EngineCore> core_;  // touched only by the loop thread once started

    mutable std::mutex mu_;  // guards inbox_, stopping_, stats_, pool_state_
    std::condition_variable wake_;
    Inbox inbox_;
    bool stopping_ = false;
    EngineStats stats_;
    PoolState pool_state_;
    std::thread thread_;
};

}  // namespace dsa::engine
