// Transport-neutral view of one HTTP request/response exchange, so that routes and generation jobs are
// written (and tested) without Boost.Beast. Every method is called on the connection's own I/O thread except
// post() / post_after(), which any thread may call. Writes never block: they are queued and coalesced.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>

namespace dsa::server {

struct HttpRequest {
    std::string method;  // "GET", "POST", ...
    std::string path;    // without the query string
    std::string query;   // after '?', possibly empty
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;

    std::string header(const std::string& lower_name) const {
        auto it = headers.find(lower_name);
        return it == headers.end() ? std::string() : it->second;
    }
};

class HttpExchange {
public:
    virtual ~HttpExchange() = default;

    // Runs `fn` on this connection's I/O thread. Thread-safe and non-blocking; dropped if the connection is gone.
    virtual void post(std::function<void()> fn) = 0;
    virtual void post_after(std::chrono::milliseconds delay, std::function<void()> fn) = 0;

    // A complete response; ends the exchange (the connection then reads the next request if keep-alive).
    virtual void reply(int status, const std::string& content_type, std::string body) = 0;
    // Streaming: a 200 with chunked transfer encoding, then write() per event (each flushed as soon as the
    // socket accepts it), then end_stream().
    virtual void begin_stream(const std::string& content_type) = 0;
    virtual void write(std::string data) = 0;
    virtual void end_stream() = 0;

    // `fn` runs once on the I/O thread if the client goes away before the exchange ended.
    virtual void on_disconnect(std::function<void()> fn) = 0;
    virtual bool closed() const = 0;
};

}  // namespace dsa::server
