// The real HTTP server on an ephemeral loopback port with a FakeEngine and the fake text services: every
// route, errors and their bodies, the API key, keep-alive, SSE streaming, abort on client disconnect, stop
// strings, 64 concurrent streaming clients, and /metrics parsed by python3-prometheus-client.
#include "server/http_server.h"

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "fake_engine.h"
#include "fake_text_services.h"
#include "test_http_client.h"

namespace dsa::server {
namespace {

using testing::FakeEngine;
using testing::http_call;
using testing::HttpResponse;

OrderedJson J(const std::string& s) { return OrderedJson::parse(s); }

// Concatenated delta.content of a chat SSE body; also checks the [DONE] terminator.
std::string chat_stream_content(const std::string& body, bool* done = nullptr) {
    std::string content;
    size_t pos = 0;
    while ((pos = body.find("data: ", pos)) != std::string::npos) {
        size_t end = body.find("\n\n", pos);
        std::string payload = body.substr(pos + 6, end - pos - 6);
        pos = end + 2;
        if (payload == "[DONE]") {
            if (done) *done = true;
            continue;
        }
        OrderedJson j = J(payload);
        if (j["choices"].empty()) continue;
        const auto& d = j["choices"][0]["delta"];
        if (d.contains("content") && d["content"].is_string()) content += d["content"].get<std::string>();
    }
    return content;
}

class ServerTest : public ::testing::Test {
protected:
    void start(std::chrono::milliseconds step = std::chrono::milliseconds(1), const std::string& api_key = "") {
        engine_ = std::make_unique<FakeEngine>("Hello world", step);
        ctx_ = std::make_unique<ServerContext>();
        ctx_->config.host = "127.0.0.1";
        ctx_->config.port = 0;
        ctx_->config.num_io_threads = 4;
        ctx_->config.max_body_bytes = 4096;
        ctx_->config.api_key = api_key;
        ctx_->config.health_timeout = std::chrono::milliseconds(2000);
        ctx_->api = api::testing::fake_context();
        ctx_->engine = engine_.get();
        server_ = std::make_unique<HttpServer>(*ctx_);
        auto port = server_->start();
        ASSERT_TRUE(port.is_ok()) << port.status().message();
        port_ = *port;
    }
    void TearDown() override {
        if (server_) {
            // Let in-flight engine requests finish before the I/O threads go away.
            for (int i = 0; i < 500 && engine_->num_running() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            server_->stop();
        }
        server_.reset();
        engine_.reset();
    }
    HttpResponse post(const std::string& path, const std::string& body, std::map<std::string, std::string> h = {}) {
        return http_call(port_, "POST", path, body, h);
    }

    std::unique_ptr<FakeEngine> engine_;
    std::unique_ptr<ServerContext> ctx_;
    std::unique_ptr<HttpServer> server_;
    int port_ = 0;
};

TEST_F(ServerTest, ChatNonStreaming) {
    start();
    HttpResponse r = post("/v1/chat/completions", R"({"model":"x","messages":[{"role":"user","content":"hi"}]})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.headers["content-type"], "application/json");
    OrderedJson j = J(r.body);
    EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello world");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(j["choices"][0]["matched_stop"], 256);
    EXPECT_EQ(j["usage"]["completion_tokens"], 12);  // 11 bytes + EOS
    EXPECT_EQ(j["model"], "x");
}

TEST_F(ServerTest, ChatStreaming) {
    start();
    HttpResponse r = post("/v1/chat/completions",
                          R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}})");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["content-type"], "text/event-stream");
    EXPECT_EQ(r.headers["transfer-encoding"], "chunked");
    bool done = false;
    EXPECT_EQ(chat_stream_content(r.body, &done), "Hello world");
    EXPECT_TRUE(done);
    EXPECT_NE(r.body.find(R"("choices":[],"usage":{"prompt_tokens":9,"total_tokens":21,"completion_tokens":12)"), std::string::npos)
        << r.body;
}

TEST_F(ServerTest, StopStringAbortsEngineRequest) {
    start(std::chrono::milliseconds(2));
    HttpResponse r = post("/v1/chat/completions",
                          R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"stop":["o w"]})");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(chat_stream_content(r.body), "Hell");
    EXPECT_NE(r.body.find(R"("finish_reason":"stop","matched_stop":"o w")"), std::string::npos) << r.body;
    auto aborts = engine_->aborts();
    ASSERT_EQ(aborts.size(), 1u);
    EXPECT_EQ(aborts[0].second, engine::AbortReason::kStopString);
}

TEST_F(ServerTest, CompletionsAndGenerate) {
    start();
    HttpResponse c = post("/v1/completions", R"({"prompt":"Say","max_tokens":5})");
    ASSERT_EQ(c.status, 200) << c.body;
    EXPECT_EQ(J(c.body)["choices"][0]["text"], "Hello");
    EXPECT_EQ(J(c.body)["choices"][0]["finish_reason"], "length");
    HttpResponse g = post("/generate", R"({"text":"Say","sampling_params":{"max_new_tokens":3}})");
    ASSERT_EQ(g.status, 200) << g.body;
    EXPECT_EQ(J(g.body)["text"], "Hel");
    EXPECT_EQ(J(g.body)["meta_info"]["finish_reason"].dump(), R"({"type":"length","length":3})");
    HttpResponse put = http_call(port_, "PUT", "/generate", R"({"input_ids":[1,2],"stream":true})");
    ASSERT_EQ(put.status, 200);
    EXPECT_NE(put.body.find(R"("text":"Hello world")"), std::string::npos) << put.body;  // cumulative
    EXPECT_NE(put.body.find("data: [DONE]\n\n"), std::string::npos);
}

TEST_F(ServerTest, ErrorsHaveOpenAiBodies) {
    start();
    HttpResponse empty = post("/v1/chat/completions", R"({"messages":[]})");
    EXPECT_EQ(empty.status, 400);
    EXPECT_EQ(empty.body, R"({"object":"error","message":"Messages cannot be empty.","type":"BadRequest","param":null,"code":400})");
    HttpResponse bad_json = post("/v1/chat/completions", R"({"messages":)");
    EXPECT_EQ(bad_json.status, 400);
    EXPECT_EQ(J(bad_json.body)["object"], "error");
    HttpResponse bad_utf8 = post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}");
    EXPECT_EQ(bad_utf8.status, 400);
    EXPECT_EQ(J(bad_utf8.body)["message"], "Request body is not valid UTF-8");
    HttpResponse bad_type = post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"temperature":"x"})");
    EXPECT_EQ(bad_type.status, 400);
    HttpResponse range = post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"top_p":5})");
    EXPECT_EQ(J(range.body)["message"], "top_p must be in (0, 1], got 5");
    HttpResponse media = post("/v1/chat/completions", "{}", {{"Content-Type", "text/plain"}});
    EXPECT_EQ(media.status, 400);
    EXPECT_NE(media.body.find("Unsupported Media Type: Only 'application/json' is allowed"), std::string::npos);
    HttpResponse native = post("/generate", R"({"sampling_params":{}})");
    EXPECT_EQ(native.status, 400);
    EXPECT_EQ(native.body, R"({"error":{"message":"Either text, input_ids or input_embeds should be provided."}})");
    HttpResponse big = post("/v1/chat/completions", std::string(5000, ' '));
    EXPECT_EQ(big.status, 413);
    std::string ids = "1";
    for (int i = 1; i < 1200; ++i) ids += ",1";
    HttpResponse engine_reject = post("/generate", R"({"input_ids":[)" + ids + "]}");  // the engine refuses it
    EXPECT_EQ(engine_reject.status, 400) << engine_reject.body;
}

TEST_F(ServerTest, RoutesMethodsAndAdmin) {
    start();
    EXPECT_EQ(http_call(port_, "GET", "/nope").status, 404);
    HttpResponse m405 = http_call(port_, "GET", "/v1/chat/completions");
    EXPECT_EQ(m405.status, 405);
    EXPECT_EQ(m405.body, R"({"detail":"Method Not Allowed"})");
    HttpResponse models = http_call(port_, "GET", "/v1/models");
    EXPECT_EQ(J(models.body)["data"][0]["id"], "test-model");
    EXPECT_EQ(J(models.body)["data"][0]["max_model_len"], 4096);
    EXPECT_EQ(J(http_call(port_, "GET", "/v1/models/test-model").body)["id"], "test-model");
    HttpResponse unknown = http_call(port_, "GET", "/v1/models/other");
    EXPECT_EQ(unknown.status, 404);
    EXPECT_EQ(J(unknown.body)["error"]["code"], "model_not_found");
    EXPECT_EQ(J(http_call(port_, "GET", "/get_model_info").body)["is_generation"], true);
    OrderedJson info = J(http_call(port_, "GET", "/get_server_info").body);
    EXPECT_EQ(info["internal_states"][0]["memory_usage"]["token_usage"], 0.25);
    HttpResponse flush = http_call(port_, "POST", "/flush_cache");
    EXPECT_EQ(flush.status, 200);
    EXPECT_EQ(flush.body.rfind("Cache flushed.", 0), 0u);
    EXPECT_EQ(http_call(port_, "GET", "/flush_cache").status, 200);
    EXPECT_EQ(engine_->flushes(), 2);
    HttpResponse health = http_call(port_, "GET", "/health");
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(health.body, "");
    EXPECT_EQ(http_call(port_, "GET", "/health_generate").status, 200);
    ctx_->ready = false;
    EXPECT_EQ(http_call(port_, "GET", "/health").status, 503);
}

TEST_F(ServerTest, ApiKey) {
    start(std::chrono::milliseconds(1), "sekret");
    HttpResponse no_key = http_call(port_, "GET", "/v1/models");
    EXPECT_EQ(no_key.status, 401);
    EXPECT_EQ(no_key.body, R"({"error":"Unauthorized"})");
    EXPECT_EQ(http_call(port_, "GET", "/v1/models", "", {{"Authorization", "Bearer wrong"}}).status, 401);
    EXPECT_EQ(post("/v1/chat/completions", "{}").status, 401);
    EXPECT_EQ(http_call(port_, "GET", "/v1/models", "", {{"Authorization", "Bearer sekret"}}).status, 200);
    EXPECT_EQ(http_call(port_, "GET", "/health").status, 200);
    EXPECT_EQ(http_call(port_, "GET", "/health_generate").status, 200);
}

TEST_F(ServerTest, KeepAliveServesSeveralRequests) {
    start();
    int fd = testing::connect_loopback(port_);
    ASSERT_GE(fd, 0);
    std::string buf;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(testing::send_all(fd, testing::format_request(
                                              "POST", "/v1/chat/completions",
                                              R"({"messages":[{"role":"user","content":"hi"}],"stream":)" +
                                                  std::string(i % 2 ? "true" : "false") + "}",
                                              {}, /*close=*/false)));
        HttpResponse r;
        ASSERT_TRUE(testing::read_response(fd, buf, r)) << i;
        EXPECT_EQ(r.status, 200);
        std::string content = i % 2 ? chat_stream_content(r.body) : J(r.body)["choices"][0]["message"]["content"].get<std::string>();
        EXPECT_EQ(content, "Hello world");
    }
    ::close(fd);
}

TEST_F(ServerTest, DisconnectMidStreamAbortsEngineRequest) {
    start(std::chrono::milliseconds(50));  // 12 tokens take ~600 ms
    for (bool stream : {true, false}) {
        int fd = testing::connect_loopback(port_);
        ASSERT_GE(fd, 0);
        std::string body = std::string(R"({"messages":[{"role":"user","content":"hi"}],"stream":)") + (stream ? "true" : "false") + "}";
        ASSERT_TRUE(testing::send_all(fd, testing::format_request("POST", "/v1/chat/completions", body, {}, false)));
        if (stream) {
            char tmp[256];
            ASSERT_GT(::recv(fd, tmp, sizeof tmp, 0), 0);  // headers / first chunk arrived
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        ::close(fd);
        bool aborted = false;
        for (int i = 0; i < 1000 && !aborted; ++i) {
            for (const auto& [rid, reason] : engine_->aborts()) aborted = aborted || reason == engine::AbortReason::kClientGone;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        EXPECT_TRUE(aborted) << (stream ? "streaming" : "non-streaming");
        for (int i = 0; i < 1000 && engine_->num_running() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        EXPECT_EQ(engine_->num_running(), 0u);
    }
    OrderedJson j = J(http_call(port_, "GET", "/v1/models").body);  // the server is still fine
    EXPECT_EQ(j["object"], "list");
}

TEST_F(ServerTest, AbortRequestFinishesWithAbort) {
    start(std::chrono::milliseconds(40));
    HttpResponse streamed;
    std::thread client([&] {
        streamed = post("/v1/chat/completions", R"({"rid":"myrid","messages":[{"role":"user","content":"hi"}],"stream":true})");
    });
    for (int i = 0; i < 1000 && engine_->submitted().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    HttpResponse a = post("/abort_request", R"({"rid":"myrid"})");
    client.join();
    EXPECT_EQ(a.status, 200);
    auto aborts = engine_->aborts();
    ASSERT_FALSE(aborts.empty());
    EXPECT_EQ(aborts[0], std::make_pair(std::string("myrid"), engine::AbortReason::kUser));
    EXPECT_NE(streamed.body.find(R"("finish_reason":"abort")"), std::string::npos) << streamed.body;
    EXPECT_NE(streamed.body.find("data: [DONE]"), std::string::npos);
    EXPECT_EQ(ctx_->live.size(), 0u);
}

TEST_F(ServerTest, StuckClientsDoNotBlockOthers) {
    start();
    int silent = testing::connect_loopback(port_);  // connects and sends nothing
    int partial = testing::connect_loopback(port_);  // sends half a request and stalls
    ASSERT_TRUE(testing::send_all(partial, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"));
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 8; ++i)
        EXPECT_EQ(post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"hi"}]})").status, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
    ::close(silent);
    ::close(partial);
}

TEST_F(ServerTest, StopAbortsInFlightRequests) {
    start(std::chrono::milliseconds(50));
    HttpResponse streamed;
    std::thread client([&] {
        streamed = post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"hi"}],"stream":true})");
    });
    for (int i = 0; i < 1000 && engine_->submitted().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    server_->stop();
    client.join();
    auto aborts = engine_->aborts();
    ASSERT_EQ(aborts.size(), 1u);
    EXPECT_EQ(aborts[0].second, engine::AbortReason::kClientGone);
    EXPECT_EQ(streamed.body.find("data: [DONE]"), std::string::npos);  // cut short
}

TEST_F(ServerTest, ExpectContinue) {
    start();
    int fd = testing::connect_loopback(port_);
    ASSERT_GE(fd, 0);
    std::string body = R"({"messages":[{"role":"user","content":"hi"}]})";
    ASSERT_TRUE(testing::send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                      "Expect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
    std::string buf;
    testing::HttpResponse interim;
    ASSERT_TRUE(testing::read_response(fd, buf, interim));
    EXPECT_EQ(interim.status, 100);
    ASSERT_TRUE(testing::send_all(fd, body));
    testing::HttpResponse r;
    ASSERT_TRUE(testing::read_response(fd, buf, r));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(J(r.body)["choices"][0]["message"]["content"], "Hello world");
    ::close(fd);
}

TEST_F(ServerTest, SixtyFourConcurrentStreamingClients) {
    start(std::chrono::milliseconds(2));
    constexpr int kClients = 64;
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i) {
        threads.emplace_back([&, i] {
            std::string max = std::to_string(1 + i % 12);
            HttpResponse r = http_call(port_, "POST", "/v1/chat/completions",
                                       R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":)" + max + "}");
            bool done = false;
            std::string content = chat_stream_content(r.body, &done);
            if (r.status == 200 && done && content == std::string("Hello world").substr(0, 1 + i % 12)) ++ok;
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), kClients);
}

TEST_F(ServerTest, MetricsEndpointParsesWithPrometheusClient) {
    start();
    ASSERT_EQ(post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"hi"}]})").status, 200);
    HttpResponse m = http_call(port_, "GET", "/metrics");
    ASSERT_EQ(m.status, 200);
    EXPECT_EQ(m.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_NE(m.body.find("sglang:generation_tokens_total{model_name=\"test-model\",engine_type=\"unified\"} 12.0"),
              std::string::npos) << m.body;
    EXPECT_NE(m.body.find("sglang:time_to_first_token_seconds_count{model_name=\"test-model\",engine_type=\"unified\"} 1.0"),
              std::string::npos);
    if (std::system("/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null") != 0)
        GTEST_SKIP() << "python3-prometheus-client is not installed";
    std::string path = ::testing::TempDir() + "server_metrics.txt";
    std::ofstream(path) << m.body;
    std::string cmd = "/usr/bin/python3 -c \"import sys; from prometheus_client.parser import text_string_to_metric_families as p; "
                      "f = {x.name: x for x in p(open(sys.argv[1]).read())}; "
                      "assert f['sglang:generation_tokens'].samples[0].value == 12.0; "
                      "assert 'sglang:inter_token_latency_seconds' in f\" " + path;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
}

// The official openai npm client (pinned in package.json) against the server: non-streaming, streaming with
// usage, model list and an error status. Skipped where node or the package is not installed.
TEST_F(ServerTest, OfficialOpenAiNodeClient) {
    std::string src = DSA_SOURCE_DIR;
    if (std::system("node --version > /dev/null 2>&1") != 0 || !std::filesystem::exists(src + "/node_modules/openai"))
        GTEST_SKIP() << "node or the openai npm package is not installed";
    start();
    std::string script = ::testing::TempDir() + "openai_client.js";
    std::ofstream(script) << R"JS(
const req = require('module').createRequire(process.argv[2] + '/package.json');
const mod = req('openai');
const OpenAI = mod.OpenAI || mod.default || mod;
(async () => {
  const client = new OpenAI({ baseURL: 'http://127.0.0.1:' + process.argv[3] + '/v1', apiKey: 'k', maxRetries: 0 });
  const msgs = [{ role: 'user', content: 'hi' }];
  const r = await client.chat.completions.create({ model: 'test-model', messages: msgs });
  const stream = await client.chat.completions.create({ model: 'test-model', messages: msgs, stream: true,
                                                        stream_options: { include_usage: true } });
  let streamed = '', usage = null, finish = null;
  for await (const c of stream) {
    if (c.choices.length) { streamed += c.choices[0].delta.content || ''; finish = c.choices[0].finish_reason || finish; }
    if (c.usage) usage = c.usage;
  }
  const models = await client.models.list();
  let err = '';
  try { await client.chat.completions.create({ model: 'x', messages: [] }); } catch (e) { err = e.status + ' ' + e.message; }
  console.log(JSON.stringify({ content: r.choices[0].message.content, streamed, finish,
                               completion_tokens: usage && usage.completion_tokens, model: models.data[0].id, err }));
})().catch((e) => { console.error(e); process.exit(1); });
)JS";
    std::string cmd = "node " + script + " " + src + " " + std::to_string(port_) + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    while (fgets(buf, sizeof buf, p)) out += buf;
    ASSERT_EQ(pclose(p), 0) << out;
    OrderedJson j = J(out);
    EXPECT_EQ(j["content"], "Hello world");
    EXPECT_EQ(j["streamed"], "Hello world");
    EXPECT_EQ(j["finish"], "stop");
    EXPECT_EQ(j["completion_tokens"], 12);
    EXPECT_EQ(j["model"], "test-model");
    EXPECT_EQ(j["err"].get<std::string>().rfind("400", 0), 0u) << j["err"];
}

}  // namespace
}  // namespace dsa::server
