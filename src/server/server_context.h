// What the routes need: the server options, the api context (model facts, text services), the engine and the
// metrics. Owned by app/ (or a test) and outliving the HTTP server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>

#include "api/generation.h"
#include "base/json.h"
#include "engine/engine_client.h"
#include "server/live_requests.h"
#include "server/metrics.h"

namespace dsa::server {

struct ServerConfig {
    std::string host = "127.0.0.1";
    int port = 30000;                      // 0 = pick an ephemeral port
    int num_io_threads = 4;
    size_t max_body_bytes = 64u << 20;      // larger bodies get 413
    size_t max_pending_write_bytes = 64u << 20;  // a client this far behind is dropped (and its requests aborted)
    std::chrono::seconds idle_timeout{600};      // keep-alive connections idle this long are closed
    std::string api_key;                   // empty = no authentication
    bool enable_metrics = true;            // mounts /metrics
    bool health_generation = true;         // SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION
    std::chrono::milliseconds health_timeout{20000};  // SGLANG_HEALTH_CHECK_TIMEOUT
    std::string version = "0.1.0";
};

struct ServerContext {
    ServerConfig config;
    api::ApiContext api;
    engine::EngineClient* engine = nullptr;
    ServerMetrics metrics;
    LiveRequests live;                  // engine rids in flight, for /abort_request
    std::atomic<bool> ready{true};      // false while starting / shutting down: /health answers 503
    OrderedJson server_args = OrderedJson::object();  // for /get_server_info
};

}  // namespace dsa::server
