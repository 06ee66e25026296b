// Blocking HTTP/1.1 client for bench-serving (see bench_http.h).
#include "app/bench_http.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>

namespace dsa::app {
namespace {

// A connected socket, closed on scope exit.
class Socket {
  public:
    explicit Socket(int fd) : fd_(fd) {}
    ~Socket() {
        if (fd_ >= 0) close(fd_);
    }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    int fd() const { return fd_; }

  private:
    int fd_;
};

int connect_to(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
    int fd = -1;
    for (addrinfo* a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

bool send_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

std::string request_head(const Endpoint& ep, const char* method, const std::string& path) {
    std::ostringstream req;
    req << method << " " << ep.base_path << path << " HTTP/1.1\r\nHost: " << ep.host << ":" << ep.port
        << "\r\nConnection: close\r\n";
    for (const auto& [k, v] : ep.headers) req << k << ": " << v << "\r\n";
    return req.str();
}

// Sends `request` and decodes the response; `on_line` may stop the read early by returning false.
StatusOr<HttpResponse> exchange(const Endpoint& ep, const std::string& request,
                                const std::function<bool(const std::string&)>& on_line) {
    Socket sock(connect_to(ep.host, ep.port));
    if (sock.fd() < 0) return make_error(StatusCode::kUnavailable, "cannot connect to {}:{}", ep.host, ep.port);
    if (!send_all(sock.fd(), request))
        return make_error(StatusCode::kUnavailable, "sending to {}:{} failed", ep.host, ep.port);
    HttpStreamDecoder dec;
    bool stop = false;
    std::string error_body;
    auto line_fn = [&](const std::string& line) {
        if (stop) return;
        if (dec.status() != 200 || !on_line) {
            error_body += line + "\n";
            return;
        }
        stop = !on_line(line);
    };
    char buf[16384];
    ssize_t n;
    while (!stop && !dec.finished() && (n = recv(sock.fd(), buf, sizeof(buf), 0)) > 0)
        dec.feed(buf, static_cast<size_t>(n), line_fn);
    if (!dec.headers_done()) return make_error(StatusCode::kUnavailable, "connection closed before a response");
    return HttpResponse{dec.status(), error_body + dec.leftover()};
}

}  // namespace

StatusOr<Endpoint> parse_base_url(const std::string& url) {
    std::string rest = url;
    size_t scheme = rest.find("://");
    if (scheme != std::string::npos) {
        std::string s = rest.substr(0, scheme);
        if (s != "http") return invalid_argument("--base-url {}: only http:// is supported", url);
        rest = rest.substr(scheme + 3);
    }
    Endpoint ep;
    size_t slash = rest.find('/');
    if (slash != std::string::npos) {
        ep.base_path = rest.substr(slash);
        rest = rest.substr(0, slash);
    }
    while (!ep.base_path.empty() && ep.base_path.back() == '/') ep.base_path.pop_back();
    size_t colon = rest.rfind(':');
    ep.host = rest.substr(0, colon);
    ep.port = 80;
    if (colon != std::string::npos) {
        char* end = nullptr;
        long port = std::strtol(rest.c_str() + colon + 1, &end, 10);
        if (*end != '\0' || port <= 0 || port > 65535) return invalid_argument("--base-url {}: bad port", url);
        ep.port = static_cast<int>(port);
    }
    if (ep.host.empty()) return invalid_argument("--base-url {}: no host", url);
    return ep;
}

void HttpStreamDecoder::feed(const char* data, size_t n, const LineFn& on_line) {
    raw_.append(data, n);
    if (!headers_done_ && !parse_headers()) return;
    if (chunked_) {
        dechunk();
    } else {
        body_ += raw_;
        raw_.clear();
    }
    emit_lines(on_line);
}

bool HttpStreamDecoder::parse_headers() {
    size_t end = raw_.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::string head = raw_.substr(0, end);
    raw_.erase(0, end + 4);
    headers_done_ = true;
    if (head.size() > 12) status_ = std::atoi(head.c_str() + 9);
    std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
    chunked_ = head.find("transfer-encoding: chunked") != std::string::npos;
    return true;
}

void HttpStreamDecoder::dechunk() {
    while (!finished_) {
        if (chunk_left_ == 0) {
            size_t eol = raw_.find("\r\n");
            if (eol == std::string::npos) return;
            std::string size_line = raw_.substr(0, eol);
            raw_.erase(0, eol + 2);
            if (size_line.empty()) continue;  // the CRLF after a chunk's data
            chunk_left_ = std::strtoul(size_line.c_str(), nullptr, 16);
            if (chunk_left_ == 0) finished_ = true;
            continue;
        }
        size_t take = std::min(chunk_left_, raw_.size());
        if (take == 0) return;
        body_.append(raw_, 0, take);
        raw_.erase(0, take);
        chunk_left_ -= take;
    }
}

void HttpStreamDecoder::emit_lines(const LineFn& on_line) {
    size_t eol;
    while ((eol = body_.find('\n')) != std::string::npos) {
        std::string line = body_.substr(0, eol);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        body_.erase(0, eol + 1);
        on_line(line);
    }
}

StatusOr<HttpResponse> http_get(const Endpoint& ep, const std::string& path) {
    return exchange(ep, request_head(ep, "GET", path) + "\r\n", nullptr);
}

StatusOr<HttpResponse> http_post(const Endpoint& ep, const std::string& path, const std::string& json_body,
                                 const std::function<bool(const std::string&)>& on_line) {
    std::string req = request_head(ep, "POST", path) +
                      "Content-Type: application/json\r\nContent-Length: " + std::to_string(json_body.size()) +
                      "\r\n\r\n" + json_body;
    return exchange(ep, req, on_line);
}

}  // namespace dsa::app
