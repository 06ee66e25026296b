// HttpServer: HTTP/1.1 on Boost.Beast + Asio. A pool of single-threaded io_contexts (one thread each);
// each connection lives on one of them, so its handlers never run concurrently and a slow client only
// occupies its own connection. Keep-alive, TCP_NODELAY, body size limit (413), chunked SSE with one flush per
// queued write, client-disconnect detection while a response is pending. Beast stays inside http_server.cpp.
#pragma once

#include <memory>

#include "base/status.h"
#include "server/router.h"
#include "server/server_context.h"

namespace dsa::server {

class HttpServer {
public:
    explicit HttpServer(ServerContext& ctx);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds ctx.config.host:port (port 0 = ephemeral) and starts the I/O threads. Returns the bound port.
    StatusOr<int> start();
    // Stops accepting, closes every connection (pending exchanges see a disconnect, so their engine requests
    // are aborted) and joins the threads. Idempotent. The engine must outlive this call.
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace dsa::server
