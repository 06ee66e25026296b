// bench-serving's HTTP client: a small blocking HTTP/1.1 client over POSIX sockets (one connection per
// request, `Connection: close`), enough for GET of small JSON bodies and streaming POST of SSE responses
// (chunked or raw). Also parses `--base-url` into host, port and path prefix.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace dsa::app {

struct Endpoint {
    std::string host = "127.0.0.1";
    int port = 30000;
    std::string base_path;                                     // prefix before /generate etc., no trailing slash
    std::vector<std::pair<std::string, std::string>> headers;  // extra request headers (Authorization)
};

// "http://host:port/prefix" -> Endpoint. https is refused (no TLS client).
StatusOr<Endpoint> parse_base_url(const std::string& url);

struct HttpResponse {
    int status = 0;
    std::string body;  // for streaming posts: what was not handed out as lines (the tail, or an error body)
};

// Incremental decoder of an HTTP response: status line, headers, then chunked or raw body bytes handed on
// line by line (CR stripped).
class HttpStreamDecoder {
  public:
    using LineFn = std::function<void(const std::string&)>;
    void feed(const char* data, size_t n, const LineFn& on_line);
    int status() const { return status_; }
    bool headers_done() const { return headers_done_; }
    bool finished() const { return finished_; }  // the last chunk arrived
    const std::string& leftover() const { return body_; }

  private:
    bool parse_headers();
    void dechunk();
    void emit_lines(const LineFn& on_line);
    std::string raw_, body_;
    bool headers_done_ = false, chunked_ = false, finished_ = false;
    int status_ = 0;
    size_t chunk_left_ = 0;
};

// GET base_path + path; the whole body.
StatusOr<HttpResponse> http_get(const Endpoint& ep, const std::string& path);

// POST a JSON body to base_path + path. `on_line` sees each body line as it arrives when the status is 200;
// returning false from it stops reading (the caller saw the end of the stream).
StatusOr<HttpResponse> http_post(const Endpoint& ep, const std::string& path, const std::string& json_body,
                                 const std::function<bool(const std::string&)>& on_line);

}  // namespace dsa::app
