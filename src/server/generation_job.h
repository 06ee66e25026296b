// GenerationJob: runs one api::Generation against the engine for one HTTP exchange. It submits one engine
// request per choice, each with its own TokenStream whose notifier only posts a drain to the connection's
// I/O thread (never blocks the engine), feeds drained events to the Generation, writes SSE bytes or the final
// reply, aborts engine requests on stop strings and on client disconnect, and records metrics.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "api/generation.h"
#include "server/http_exchange.h"
#include "server/server_context.h"

namespace dsa::server {

enum class ErrorStyle { kOpenAi, kNative };

class GenerationJob : public std::enable_shared_from_this<GenerationJob> {
public:
    // Starts the job (on the exchange's I/O thread). The job keeps itself alive until it completes.
    static void start(ServerContext& ctx, std::unique_ptr<api::Generation> gen, std::shared_ptr<HttpExchange> exchange,
                      ErrorStyle style);

    GenerationJob(ServerContext& ctx, std::unique_ptr<api::Generation> gen, std::shared_ptr<HttpExchange> exchange,
                  ErrorStyle style);

private:
    using Clock = std::chrono::steady_clock;
    struct ChoiceTiming {
        bool first_seen = false;
        bool recorded = false;
        Clock::time_point last;
    };

    void run();
    void notify();  // engine thread
    void drain();   // I/O thread
    void on_disconnect();
    void complete();
    void record_timing(size_t i, const engine::TokenEvent& event);
    void record_finished_choices(bool aborted);
    void reply_error(const api::ApiError& error);

    ServerContext& ctx_;
    std::unique_ptr<api::Generation> gen_;
    std::shared_ptr<HttpExchange> exchange_;
    ErrorStyle style_;
    std::shared_ptr<GenerationJob> self_;  // set while running
    std::vector<std::shared_ptr<engine::TokenStream>> streams_;
    std::vector<ChoiceTiming> timing_;
    std::atomic<bool> drain_pending_{false};
    bool completed_ = false;
    Clock::time_point start_ = Clock::now();
};

}  // namespace dsa::server
