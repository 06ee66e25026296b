// Boost.Beast transport: acceptor, connections, the HttpExchange implementation (see http_server.h).
// Invariants per connection: at most one exchange at a time; at most one async write in flight (later writes
// coalesce into `pending_`); at most one disconnect watch (async_wait on readability) in flight.
#include "server/http_server.h"

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <future>
#include <mutex>
#include <cerrno>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "api/api_error.h"
#include "base/logging.h"

namespace dsa::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(tcp::socket socket, ServerContext& ctx, Router& router)
        : stream_(std::move(socket)), ctx_(ctx), router_(router) {}

    void start() { read_request(); }
    asio::any_io_executor executor() { return stream_.get_executor(); }

    // HttpExchange operations (I/O thread).
    void reply(int status, const std::string& content_type, std::string body);
    void begin_stream(const std::string& content_type);
    void write_chunk(std::string data);
    void end_stream();
    void set_disconnect(std::function<void()> fn) { on_disconnect_ = std::move(fn); }
    bool closed() const { return closed_; }
    // Server shutdown: closes the socket; a pending exchange sees a disconnect (its requests are aborted).
    void shutdown() { disconnected(); }

private:
    void read_request();
    void on_header(beast::error_code ec);
    void on_read(beast::error_code ec);
    void reply_and_close(int status, std::string body);
    void flush();
    void on_flushed(beast::error_code ec);
    void exchange_done();
    void linger_close();
    void drain_until_eof(std::shared_ptr<std::array<char, 4096>> discard);
    void watch_disconnect();
    void disconnected();

    beast::tcp_stream stream_;
    ServerContext& ctx_;
    Router& router_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    bool keep_alive_ = true;
    bool in_exchange_ = false;
    bool ending_ = false;     // the exchange's last bytes are queued
    bool writing_ = false;
    bool watching_ = false;
    bool closed_ = false;
    std::string pending_;
    std::string inflight_;
    std::function<void()> on_disconnect_;
};

class BeastExchange : public HttpExchange {
public:
    explicit BeastExchange(std::shared_ptr<Connection> conn) : conn_(std::move(conn)) {}

    void post(std::function<void()> fn) override { asio::post(conn_->executor(), std::move(fn)); }
    void post_after(std::chrono::milliseconds delay, std::function<void()> fn) override {
        auto timer = std::make_shared<asio::steady_timer>(conn_->executor(), delay);
        timer->async_wait([timer, fn = std::move(fn)](beast::error_code) { fn(); });
    }
    void reply(int status, const std::string& ct, std::string body) override {
        if (finished_) return;
        finished_ = true;
        conn_->reply(status, ct, std::move(body));
    }
    void begin_stream(const std::string& ct) override {
        if (!finished_) conn_->begin_stream(ct);
    }
    void write(std::string data) override {
        if (!finished_) conn_->write_chunk(std::move(data));
    }
    void end_stream() override {
        if (finished_) return;
        finished_ = true;
        conn_->end_stream();
    }
    void on_disconnect(std::function<void()> fn) override { conn_->set_disconnect(std::move(fn)); }
    bool closed() const override { return conn_->closed(); }

private:
    std::shared_ptr<Connection> conn_;
    bool finished_ = false;
};

const char* reason_phrase(int status) {
    return http::obsolete_reason(static_cast<http::status>(status)).data();
}

void Connection::read_request() {
    if (closed_) return;
    parser_.emplace();
    parser_->body_limit(ctx_.config.max_body_bytes);
    stream_.expires_after(ctx_.config.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

// "Expect: 100-continue" (curl sends it for large bodies): answer 100 before reading the body.
void Connection::on_header(beast::error_code ec) {
    if (ec) return on_read(ec);
    auto read_body = [self = shared_from_this()] {
        http::async_read(self->stream_, self->buffer_, *self->parser_,
                         [self](beast::error_code ec2, size_t) { self->on_read(ec2); });
    };
    if (!beast::iequals(parser_->get()[http::field::expect], "100-continue")) return read_body();
    auto msg = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
    asio::async_write(stream_, asio::buffer(*msg), [self = shared_from_this(), msg, read_body](beast::error_code ec2, size_t) {
        if (ec2) return self->on_read(ec2);
        read_body();
    });
}

void Connection::on_read(beast::error_code ec) {
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
        api::ApiError e{413, fmt::format("Request body too large (limit {} bytes)", ctx_.config.max_body_bytes),
                        "BadRequest"};
        DSA_LOG(kWarning) << "request rejected: " << e.message;
        return reply_and_close(413, api::openai_error_body(e));
    }
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted || ec == beast::error::timeout ||
        ec == asio::error::connection_reset || ec == asio::error::eof) {
        closed_ = true;
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        return stream_.close();
    }
    if (ec) {
        DSA_LOG(kWarning) << "malformed HTTP request: " << ec.message();
        return reply_and_close(400, api::openai_error_body(api::ApiError::bad_request("Malformed HTTP request", "Bad Request")));
    }
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    std::string target(msg.target());
    size_t q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    for (const auto& f : msg) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        req.headers[name] = std::string(f.value());
    }
    req.body = std::move(msg.body());
    in_exchange_ = true;
    ending_ = false;
    stream_.expires_never();
    watch_disconnect();
    router_.handle(req, std::make_shared<BeastExchange>(shared_from_this()));
}

void Connection::reply_and_close(int status, std::string body) {
    keep_alive_ = false;
    in_exchange_ = true;
    reply(status, "application/json", std::move(body));
}

void Connection::reply(int status, const std::string& content_type, std::string body) {
    if (closed_) return;
    pending_ += fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n", status,
                            reason_phrase(status), content_type, body.size(),
                            keep_alive_ ? "" : "Connection: close\r\n");
    pending_ += body;
    ending_ = true;
    flush();
}

void Connection::begin_stream(const std::string& content_type) {
    if (closed_) return;
    pending_ += fmt::format(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n{}\r\n",
        content_type, keep_alive_ ? "" : "Connection: close\r\n");
    flush();
}

void Connection::write_chunk(std::string data) {
    if (closed_ || data.empty()) return;
    pending_ += fmt::format("{:x}\r\n", data.size());
    pending_ += data;
    pending_ += "\r\n";
    if (pending_.size() > ctx_.config.max_pending_write_bytes) {
        DSA_LOG(kWarning) << "client too slow (" << pending_.size() << " bytes queued); dropping the connection";
        return disconnected();
    }
    flush();
}

void Connection::end_stream() {
    if (closed_) return;
    pending_ += "0\r\n\r\n";
    ending_ = true;
    flush();
}

void Connection::flush() {
    if (writing_ || closed_) return;
    if (pending_.empty()) {
        if (ending_) exchange_done();
        return;
    }
    writing_ = true;
    inflight_.swap(pending_);
    pending_.clear();
    stream_.expires_after(ctx_.config.idle_timeout);
    asio::async_write(stream_, asio::buffer(inflight_),
                      [self = shared_from_this()](beast::error_code ec, size_t) { self->on_flushed(ec); });
}

void Connection::on_flushed(beast::error_code ec) {
    writing_ = false;
    inflight_.clear();
    if (ec) return disconnected();
    flush();
}

void Connection::exchange_done() {
    in_exchange_ = false;
    ending_ = false;
    on_disconnect_ = nullptr;
    if (!keep_alive_) return linger_close();
    read_request();
}

// Half-close, then discard what the client still sends (e.g. the rest of an oversized body) until it closes,
// so that the kernel does not answer unread data with a reset that would destroy our response.
void Connection::linger_close() {
    closed_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    drain_until_eof(std::make_shared<std::array<char, 4096>>());
}

void Connection::drain_until_eof(std::shared_ptr<std::array<char, 4096>> discard) {
    stream_.async_read_some(asio::buffer(*discard), [self = shared_from_this(), discard](beast::error_code ec, size_t) {
        if (!ec) return self->drain_until_eof(discard);
        self->stream_.close();
    });
}

// While an exchange is pending, readability of the socket means EOF (client gone) or a pipelined request.
void Connection::watch_disconnect() {
    if (watching_ || closed_) return;
    watching_ = true;
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
        self->watching_ = false;
        if (ec || self->closed_ || !self->in_exchange_) return;
        char byte;
        ssize_t n = ::recv(self->stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return self->disconnected();
        if (n < 0) self->watch_disconnect();  // spurious wake-up (or the previous exchange's watch): re-arm
        // n > 0: a pipelined request is waiting; it is read after this exchange.
    });
}

void Connection::disconnected() {
    if (closed_) return;
    closed_ = true;
    pending_.clear();
    auto cb = std::move(on_disconnect_);
    on_disconnect_ = nullptr;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    if (cb && in_exchange_) cb();
    in_exchange_ = false;
}

}  // namespace

struct HttpServer::Impl {
    explicit Impl(ServerContext& c) : ctx(c), router(c) {}

    void accept_next() {
        auto& ioc = *iocs[next_ioc++ % iocs.size()];
        acceptor->async_accept(ioc, [this](beast::error_code ec, tcp::socket socket) {
            if (ec) {
                if (ec != asio::error::operation_aborted) accept_next();
                return;
            }
            beast::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            auto conn = std::make_shared<Connection>(std::move(socket), ctx, router);
            track(conn);
            conn->start();
            accept_next();
        });
    }

    void track(const std::shared_ptr<Connection>& conn) {
        std::lock_guard<std::mutex> lock(conns_mu);
        std::erase_if(conns, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
        conns.push_back(conn);
    }

    // Runs shutdown() on every live connection, on its own I/O thread, and waits until each has run.
    void close_connections() {
        std::vector<std::shared_ptr<Connection>> live;
        {
            std::lock_guard<std::mutex> lock(conns_mu);
            for (auto& w : conns)
                if (auto c = w.lock()) live.push_back(std::move(c));
            conns.clear();
        }
        std::vector<std::future<void>> done;
        for (auto& c : live) {
            auto p = std::make_shared<std::promise<void>>();
            done.push_back(p->get_future());
            asio::post(c->executor(), [c, p] {
                c->shutdown();
                p->set_value();
            });
        }
        for (auto& f : done) f.wait_for(std::chrono::seconds(2));
    }

    ServerContext& ctx;
    Router router;
    std::mutex conns_mu;
    std::vector<std::weak_ptr<Connection>> conns;
    std::vector<std::unique_ptr<asio::io_context>> iocs;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::vector<std::thread> threads;
    size_t next_ioc = 0;
    bool running = false;
};

HttpServer::HttpServer(ServerContext& ctx) : impl_(std::make_unique<Impl>(ctx)) {}

HttpServer::~HttpServer() { stop(); }

StatusOr<int> HttpServer::start() {
    auto& m = *impl_;
    int n = std::max(1, m.ctx.config.num_io_threads);
    for (int i = 0; i < n; ++i) {
        m.iocs.push_back(std::make_unique<asio::io_context>(1));
        m.guards.push_back(asio::make_work_guard(*m.iocs.back()));
    }
    beast::error_code ec;
    auto addr = asio::ip::make_address(m.ctx.config.host, ec);
    if (ec) return invalid_argument("invalid --host '{}': {}", m.ctx.config.host, ec.message());
    tcp::endpoint ep(addr, static_cast<unsigned short>(m.ctx.config.port));
    m.acceptor = std::make_unique<tcp::acceptor>(*m.iocs[0]);
    m.acceptor->open(ep.protocol(), ec);
    if (!ec) m.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) m.acceptor->bind(ep, ec);
    if (!ec) m.acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return make_error(StatusCode::kUnavailable, "cannot listen on {}:{}: {}", m.ctx.config.host,
                              m.ctx.config.port, ec.message());
    int port = m.acceptor->local_endpoint().port();
    m.accept_next();
    for (auto& ioc : m.iocs) m.threads.emplace_back([io = ioc.get()] { io->run(); });
    m.running = true;
    DSA_LOG(kInfo) << "listening on http://" << m.ctx.config.host << ":" << port;
    return port;
}

void HttpServer::stop() {
    auto& m = *impl_;
    if (!m.running) return;
    m.running = false;
    asio::post(*m.iocs[0], [&m] {
        beast::error_code ignored;
        m.acceptor->close(ignored);
    });
    m.close_connections();
    m.guards.clear();
    for (auto& ioc : m.iocs) ioc->stop();
    for (auto& t : m.threads) t.join();
    m.threads.clear();
}

}  // namespace dsa::server
