// Router: every HTTP route of the server (API_SPEC §2), transport-neutral. Authentication (--api-key, Bearer,
// every route but /health, /health_generate and /metrics), method checks (405), unknown routes (404), body
// checks (content type, UTF-8, JSON) and the admin endpoints (incl. /abort_request); generation routes hand
// off to GenerationJob.
#pragma once

#include <memory>

#include "server/http_exchange.h"
#include "server/server_context.h"

namespace dsa::server {

class Router {
public:
    explicit Router(ServerContext& ctx) : ctx_(ctx) {}

    // Called on the connection's I/O thread; replies now or later through `exchange`.
    void handle(const HttpRequest& request, std::shared_ptr<HttpExchange> exchange);

    // Bodies of the informational routes (exposed for tests).
    std::string models_body() const;
    std::string model_info_body() const;
    std::string server_info_body() const;

private:
    enum class Kind { kChat, kCompletion, kGenerate };

    bool authorized(const HttpRequest& request) const;
    void generate(Kind kind, const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange);
    void health(const std::shared_ptr<HttpExchange>& exchange);
    void flush_cache(const std::shared_ptr<HttpExchange>& exchange);
    void abort_request(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange);
    void model_card(const std::string& id, const std::shared_ptr<HttpExchange>& exchange);

    ServerContext& ctx_;
};

}  // namespace dsa::server
