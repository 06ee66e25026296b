// bench-serving's backends: SGLang's backend names, each route's request body, SSE and whole-body parsing,
// the TTFT / ITL / output-length rules applied to synthetic event timings, and whole exchanges against a
// one-shot loopback server (success, no-text success, cut streams, HTTP and stream errors).
#include "app/bench_backends.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace dsa::app {
namespace {

using Clock = RequestTimer::Clock;
Clock::time_point at_ms(Clock::time_point t0, int ms) { return t0 + std::chrono::milliseconds(ms); }

TEST(BenchBackends, NamesAndRoutes) {
    EXPECT_EQ(*parse_backend("sglang"), BackendKind::kGenerate);
    EXPECT_EQ(*parse_backend("sglang-native"), BackendKind::kGenerate);
    EXPECT_EQ(*parse_backend("sglang-oai"), BackendKind::kCompletions);
    EXPECT_EQ(*parse_backend("vllm"), BackendKind::kCompletions);
    EXPECT_EQ(*parse_backend("sglang-oai-chat"), BackendKind::kChat);
    EXPECT_FALSE(parse_backend("trt").is_ok());
    EXPECT_STREQ(backend_path(BackendKind::kGenerate), "/generate");
    EXPECT_STREQ(backend_path(BackendKind::kCompletions), "/v1/completions");
    EXPECT_STREQ(backend_path(BackendKind::kChat), "/v1/chat/completions");
}

TEST(BenchBackends, RequestBodies) {
    DatasetRow ids_row{"", {5, 6, 7}, 3, 9};
    DatasetRow text_row{"hello", {}, 5, 4};
    BodyOptions opt;
    opt.model = "tiny";
    opt.extra = {{"top_p", 0.5}};
    Json g = request_body(BackendKind::kGenerate, ids_row, opt);
    EXPECT_EQ(g["input_ids"], Json({5, 6, 7}));
    EXPECT_EQ(g["sampling_params"]["max_new_tokens"], 9);
    EXPECT_EQ(g["sampling_params"]["ignore_eos"], true);
    EXPECT_EQ(g["stream"], true);
    EXPECT_EQ(g["top_p"], 0.5);
    EXPECT_EQ(request_body(BackendKind::kGenerate, text_row, opt)["text"], "hello");
    Json c = request_body(BackendKind::kCompletions, ids_row, opt);
    EXPECT_EQ(c["model"], "tiny");
    EXPECT_EQ(c["prompt"], Json({5, 6, 7}));
    EXPECT_EQ(c["max_tokens"], 9);
    EXPECT_EQ(c["stream_options"]["include_usage"], true);
    opt.stream = false;
    opt.ignore_eos = false;
    Json chat = request_body(BackendKind::kChat, text_row, opt);
    EXPECT_EQ(chat["messages"][0]["role"], "user");
    EXPECT_EQ(chat["messages"][0]["content"], "hello");
    EXPECT_EQ(chat["stream"], false);
    EXPECT_EQ(chat["ignore_eos"], false);
    EXPECT_FALSE(chat.contains("stream_options"));
}

TEST(BenchBackends, ParsesStreamLines) {
    auto g = parse_stream_line(BackendKind::kGenerate, R"(data: {"text":"ab","meta_info":{"completion_tokens":3}})");
    ASSERT_TRUE(g);
    EXPECT_EQ(g->text, "ab");
    EXPECT_EQ(g->completion_tokens, 3);
    auto c = parse_stream_line(BackendKind::kCompletions, R"(data: {"choices":[{"index":0,"text":"x"}]})");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->text, "x");
    EXPECT_EQ(c->completion_tokens, -1);
    auto usage =
        parse_stream_line(BackendKind::kCompletions, R"(data: {"choices":[],"usage":{"completion_tokens":7}})");
    ASSERT_TRUE(usage);
    EXPECT_EQ(usage->text, "");
    EXPECT_EQ(usage->completion_tokens, 7);
    auto chat = parse_stream_line(BackendKind::kChat, R"(data: {"choices":[{"delta":{"content":"hi"}}]})");
    ASSERT_TRUE(chat);
    EXPECT_EQ(chat->text, "hi");
    auto role_only =
        parse_stream_line(BackendKind::kChat, R"(data: {"choices":[{"delta":{"role":"assistant","content":null}}]})");
    ASSERT_TRUE(role_only);
    EXPECT_EQ(role_only->text, "");
    auto err = parse_stream_line(BackendKind::kChat, R"(data: {"error":{"message":"boom"}})");
    ASSERT_TRUE(err);
    EXPECT_NE(err->error.find("boom"), std::string::npos);
    auto done = parse_stream_line(BackendKind::kGenerate, "data: [DONE]");
    ASSERT_TRUE(done);
    EXPECT_TRUE(done->done);
    EXPECT_FALSE(parse_stream_line(BackendKind::kGenerate, ""));
    EXPECT_FALSE(parse_stream_line(BackendKind::kGenerate, ": keep-alive"));
    EXPECT_FALSE(parse_stream_line(BackendKind::kGenerate, "data: {not json"));
}

TEST(BenchBackends, ParsesWholeResponses) {
    auto chat = parse_full_response(BackendKind::kChat,
                                    R"({"choices":[{"message":{"content":"abc"}}],"usage":{"completion_tokens":4}})");
    ASSERT_TRUE(chat);
    EXPECT_EQ(chat->text, "abc");
    EXPECT_EQ(chat->completion_tokens, 4);
    auto gen = parse_full_response(BackendKind::kGenerate, R"({"text":"zz","meta_info":{"completion_tokens":2}})");
    ASSERT_TRUE(gen);
    EXPECT_EQ(gen->completion_tokens, 2);
    EXPECT_FALSE(parse_full_response(BackendKind::kCompletions, "oops"));
}

TEST(BenchBackends, GenerateTimingSplitsGapsOverNewTokens) {
    RequestResult r;
    auto t0 = Clock::now();
    RequestTimer timer(BackendKind::kGenerate, &r, 16, t0);
    timer.on_event({false, "a", 1, ""}, at_ms(t0, 50));
    timer.on_event({false, "abc", 3, ""}, at_ms(t0, 90));  // two tokens in one event: 20 ms each
    timer.on_event({false, "abc", 3, ""}, at_ms(t0, 95));  // no new token: ignored
    timer.on_event({false, "abcd", 4, ""}, at_ms(t0, 125));
    timer.finish(at_ms(t0, 130));
    EXPECT_NEAR(r.ttft, 0.050, 1e-9);
    ASSERT_EQ(r.itl.size(), 3u);
    EXPECT_NEAR(r.itl[0], 0.020, 1e-9);
    EXPECT_NEAR(r.itl[1], 0.020, 1e-9);
    EXPECT_NEAR(r.itl[2], 0.035, 1e-9);
    EXPECT_EQ(r.output_len, 4);
    EXPECT_EQ(r.generated_text, "abcd");
    EXPECT_NEAR(r.e2e, 0.130, 1e-9);
}

TEST(BenchBackends, OpenAiTimingOneGapPerChunkAndUsageCount) {
    RequestResult r;
    auto t0 = Clock::now();
    RequestTimer timer(BackendKind::kChat, &r, 16, t0);
    EXPECT_FALSE(timer.saw_text());
    timer.on_event({false, "", -1, ""}, at_ms(t0, 10));  // role-only chunk: no token yet
    timer.on_event({false, "he", -1, ""}, at_ms(t0, 40));
    timer.on_event({false, "llo", -1, ""}, at_ms(t0, 70));
    EXPECT_EQ(r.output_len, 16);  // the requested length until the server counts
    timer.on_event({false, "", 5, ""}, at_ms(t0, 75));
    timer.finish(at_ms(t0, 80));
    EXPECT_TRUE(timer.saw_text());
    EXPECT_NEAR(r.ttft, 0.040, 1e-9);
    ASSERT_EQ(r.itl.size(), 1u);
    EXPECT_NEAR(r.itl[0], 0.030, 1e-9);
    EXPECT_EQ(r.generated_text, "hello");
    EXPECT_EQ(r.output_len, 5);
}

TEST(BenchBackends, UnreachableServerIsAFailedRequest) {
    Endpoint ep;
    ep.port = 1;  // nothing listens on port 1
    RequestResult r = send_request(ep, BackendKind::kGenerate, DatasetRow{"", {1, 2}, 2, 2}, BodyOptions{});
    EXPECT_FALSE(r.success);
    EXPECT_NE(r.error.find("cannot connect"), std::string::npos) << r.error;
}

TEST(BenchBackends, ParsesBaseUrl) {
    auto ep = parse_base_url("http://example.test:8080/prefix/");
    ASSERT_TRUE(ep.is_ok());
    EXPECT_EQ(ep->host, "example.test");
    EXPECT_EQ(ep->port, 8080);
    EXPECT_EQ(ep->base_path, "/prefix");
    EXPECT_EQ(parse_base_url("localhost")->port, 80);
    EXPECT_FALSE(parse_base_url("https://x:1").is_ok());
    EXPECT_FALSE(parse_base_url("http://x:notaport").is_ok());
}

TEST(BenchBackends, DecodesChunkedStreams) {
    HttpStreamDecoder dec;
    std::vector<std::string> lines;
    auto on_line = [&](const std::string& l) { lines.push_back(l); };
    std::string resp =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "8\r\ndata: a\n\r\n"
        "6\r\ndata: \r\n"
        "3\r\nb\r\n\r\n"
        "0\r\n\r\n";
    for (char c : resp) dec.feed(&c, 1, on_line);  // byte by byte: every split point
    EXPECT_EQ(dec.status(), 200);
    EXPECT_TRUE(dec.finished());
    EXPECT_EQ(lines, (std::vector<std::string>{"data: a", "data: b"}));
}

// A one-shot loopback HTTP server: accepts one connection, reads the request, answers `response`, closes.
class CannedServer {
  public:
    explicit CannedServer(std::string response) : response_(std::move(response)) {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
        socklen_t len = sizeof(addr);
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        listen(fd_, 1);
        thread_ = std::thread([this] { serve(); });
    }
    ~CannedServer() {
        thread_.join();
        close(fd_);
    }
    int port() const { return port_; }
    const std::string& request() const { return request_; }

  private:
    void serve() {
        int c = accept(fd_, nullptr, nullptr);
        char buf[4096];
        while (request_.find("\r\n\r\n") == std::string::npos || !body_complete()) {
            ssize_t n = recv(c, buf, sizeof(buf), 0);
            if (n <= 0) break;
            request_.append(buf, static_cast<size_t>(n));
        }
        send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
        close(c);
    }
    bool body_complete() const {
        size_t cl = request_.find("Content-Length: ");
        size_t head_end = request_.find("\r\n\r\n");
        if (cl == std::string::npos) return true;
        return request_.size() - head_end - 4 >= std::stoul(request_.substr(cl + 16));
    }
    std::string response_, request_;
    int fd_ = -1, port_ = 0;
    std::thread thread_;
};

RequestResult against(const std::string& response, BackendKind kind, std::string* request = nullptr) {
    CannedServer server(response);
    Endpoint ep;
    ep.port = server.port();
    RequestResult r = send_request(ep, kind, DatasetRow{"hi", {}, 2, 3}, BodyOptions{});
    if (request) *request = server.request();
    return r;
}

const char* kSseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";

TEST(BenchBackends, StreamedRequestOverLoopback) {
    std::string req;
    RequestResult r = against(std::string(kSseHead) +
                                  "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"choices\":[{\"text\":\"b\"}]}\n\n"
                                  "data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\ndata: [DONE]\n\n",
                              BackendKind::kCompletions, &req);
    EXPECT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.generated_text, "ab");
    EXPECT_EQ(r.output_len, 3);
    EXPECT_EQ(r.itl.size(), 1u);
    EXPECT_LE(r.ttft, r.e2e);
    EXPECT_EQ(req.rfind("POST /v1/completions HTTP/1.1\r\n", 0), 0u) << req;
    EXPECT_NE(req.find("\"max_tokens\":3"), std::string::npos) << req;
}

TEST(BenchBackends, NoTextIsStillASuccessWithTtftEqualToLatency) {
    RequestResult r = against(
        std::string(kSseHead) + "data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\ndata: [DONE]\n\n",
        BackendKind::kChat);
    EXPECT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.output_len, 3);
    EXPECT_DOUBLE_EQ(r.ttft, r.e2e);
}

TEST(BenchBackends, BrokenExchangesAreFailures) {
    RequestResult cut = against(std::string(kSseHead) + "data: {\"text\":\"a\"}\n\n", BackendKind::kGenerate);
    EXPECT_FALSE(cut.success);
    EXPECT_NE(cut.error.find("[DONE]"), std::string::npos) << cut.error;
    RequestResult status = against("HTTP/1.1 400 Bad Request\r\n\r\n{\"message\":\"bad\"}", BackendKind::kChat);
    EXPECT_FALSE(status.success);
    EXPECT_NE(status.error.find("HTTP 400"), std::string::npos) << status.error;
    EXPECT_NE(status.error.find("bad"), std::string::npos) << status.error;
    RequestResult err = against(std::string(kSseHead) + "data: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n",
                                BackendKind::kChat);
    EXPECT_FALSE(err.success);
    EXPECT_NE(err.error.find("boom"), std::string::npos) << err.error;
}

}  // namespace
}  // namespace dsa::app
