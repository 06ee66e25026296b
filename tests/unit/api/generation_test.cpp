// Generations driven by hand-made TokenEvents through the fake text services: chat / completions / generate
// response shapes, SSE chunk sequences, stop strings across tokens, reasoning and tool calls, usage, errors.
#include <gtest/gtest.h>

#include "api/generation.h"
#include "fake_text_services.h"

namespace dsa::api {
namespace {

using testing::bytes_to_ids;
using testing::kEos;
using testing::kThinkEnd;

OrderedJson J(const std::string& text) { return OrderedJson::parse(text); }

engine::TokenEvent event(const std::vector<int32_t>& ids, int32_t completion, bool finished = false,
                         engine::FinishKind kind = engine::FinishKind::kNone, std::optional<int32_t> matched = {}) {
    engine::TokenEvent e;
    e.token_ids = ids;
    e.prompt_tokens = 7;
    e.cached_tokens = 3;
    e.completion_tokens = completion;
    e.finished = finished;
    e.finish.kind = kind;
    e.finish.matched_token = matched;
    if (kind == engine::FinishKind::kLength) e.finish.length = completion;
    return e;
}

// Splits an SSE byte string into its data payloads.
std::vector<std::string> sse_payloads(const std::string& bytes) {
    std::vector<std::string> out;
    size_t pos = 0;
    while ((pos = bytes.find("data: ", pos)) != std::string::npos) {
        size_t end = bytes.find("\n\n", pos);
        out.push_back(bytes.substr(pos + 6, end - pos - 6));
        pos = end + 2;
    }
    return out;
}

class GenerationTest : public ::testing::Test {
protected:
    ApiContext ctx = testing::fake_context();
    std::unique_ptr<Generation> make(StatusOr<std::unique_ptr<Generation>> g) {
        EXPECT_TRUE(g.is_ok()) << g.status().message();
        return std::move(g).value();
    }
};

TEST_F(GenerationTest, ChatNonStreamingShape) {
    auto g = make(make_chat_generation(J(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})"), ctx));
    ASSERT_EQ(g->engine_requests().size(), 1u);
    EXPECT_EQ(g->engine_requests()[0].input_ids, bytes_to_ids("user: hi\n"));
    EXPECT_EQ(g->engine_requests()[0].rid, g->id());
    EXPECT_EQ(g->id().size(), 32u);
    EXPECT_EQ(g->on_event(0, event(bytes_to_ids("He"), 2)), "");
    EXPECT_FALSE(g->done());
    g->on_event(0, event({'y', kEos}, 4, true, engine::FinishKind::kStop, kEos));
    ASSERT_TRUE(g->done());
    HttpReply r = g->final_reply();
    EXPECT_EQ(r.status, 200);
    OrderedJson j = J(r.body);
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["created"], 1765432100);
    EXPECT_EQ(j["model"], "m");
    EXPECT_EQ(j["choices"][0]["message"].dump(),
              R"({"role":"assistant","content":"Hey","reasoning_content":null,"tool_calls":null})");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(j["choices"][0]["matched_stop"], kEos);
    EXPECT_EQ(j["usage"].dump(),
              R"({"prompt_tokens":7,"total_tokens":11,"completion_tokens":4,"prompt_tokens_details":null,"reasoning_tokens":0})");
    EXPECT_EQ(j["metadata"]["weight_version"], "default");
    std::vector<std::string> keys;
    for (auto& [k, v] : j.items()) keys.push_back(k);
    EXPECT_EQ(keys, (std::vector<std::string>{"id", "object", "created", "model", "choices", "usage", "metadata"}));
}

TEST_F(GenerationTest, ChatStreamingChunkSequence) {
    auto g = make(make_chat_generation(
        J(R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}})"), ctx));
    std::string all = g->on_event(0, event(bytes_to_ids("He"), 2));
    all += g->on_event(0, event({'y'}, 3, true, engine::FinishKind::kLength));
    all += g->final_reply().body;
    auto p = sse_payloads(all);
    ASSERT_EQ(p.size(), 6u) << all;
    std::string head = R"({"id":")" + g->id() + R"(","object":"chat.completion.chunk","created":1765432100,"model":"default",)";
    EXPECT_EQ(p[0], head + R"("choices":[{"index":0,"delta":{"reasoning_content":null,"role":"assistant","content":""},"logprobs":null,"finish_reason":null,"matched_stop":null}]})");
    EXPECT_EQ(p[1], head + R"("choices":[{"index":0,"delta":{"reasoning_content":null,"content":"He"},"logprobs":null,"finish_reason":null,"matched_stop":null}]})");
    EXPECT_EQ(p[2], head + R"("choices":[{"index":0,"delta":{"reasoning_content":null,"content":"y"},"logprobs":null,"finish_reason":null,"matched_stop":null}]})");
    EXPECT_EQ(p[3], head + R"("choices":[{"index":0,"delta":{"reasoning_content":null},"logprobs":null,"finish_reason":"length","matched_stop":null}]})");
    EXPECT_EQ(p[4], head + R"("choices":[],"usage":{"prompt_tokens":7,"total_tokens":10,"completion_tokens":3,"prompt_tokens_details":null,"reasoning_tokens":0}})");
    EXPECT_EQ(p[5], "[DONE]");
}

TEST_F(GenerationTest, StopStringAcrossTokensTrimsAndRequestsAbort) {
    auto g = make(make_chat_generation(
        J(R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"stop":["STOP"]})"), ctx));
    std::string all = g->on_event(0, event(bytes_to_ids("abS"), 3));
    EXPECT_TRUE(g->take_frontend_finished().empty());
    EXPECT_EQ(all.find("abS"), std::string::npos);  // "S" held back
    all += g->on_event(0, event(bytes_to_ids("TO"), 5));
    all += g->on_event(0, event(bytes_to_ids("Pxyz"), 9));  // completes at 'P' (token 6); xyz dropped
    EXPECT_TRUE(g->done());
    EXPECT_EQ(g->take_frontend_finished(), std::vector<std::string>{g->id()});
    EXPECT_TRUE(g->take_frontend_finished().empty());
    // A late engine event after the abort is ignored.
    EXPECT_EQ(g->on_event(0, event({}, 9, true, engine::FinishKind::kAbort)), "");
    std::string content;
    for (const auto& p : sse_payloads(all)) {
        if (p == "[DONE]") continue;
        OrderedJson j = J(p);
        auto& d = j["choices"][0]["delta"];
        if (d.contains("content")) content += d["content"].get<std::string>();
        if (!j["choices"][0]["finish_reason"].is_null()) {
            EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
            EXPECT_EQ(j["choices"][0]["matched_stop"], "STOP");
        }
    }
    EXPECT_EQ(content, "ab");
    EXPECT_EQ(g->choices()[0].completion_tokens(), 6);
}

TEST_F(GenerationTest, ReasoningSeparationStreamingAndNot) {
    const char* body = R"({"messages":[{"role":"user","content":"q"}],"chat_template_kwargs":{"thinking":true}%s})";
    char buf[256];
    snprintf(buf, sizeof buf, body, "");
    auto g = make(make_chat_generation(J(buf), ctx));
    std::vector<int32_t> ids = bytes_to_ids("think");
    ids.push_back(kThinkEnd);
    for (int32_t id : bytes_to_ids("answer")) ids.push_back(id);
    g->on_event(0, event(ids, static_cast<int32_t>(ids.size()), true, engine::FinishKind::kLength));
    OrderedJson j = J(g->final_reply().body);
    EXPECT_EQ(j["choices"][0]["message"]["reasoning_content"], "think");
    EXPECT_EQ(j["choices"][0]["message"]["content"], "answer");
    EXPECT_EQ(j["usage"]["reasoning_tokens"], 6);  // up to and including </think>

    snprintf(buf, sizeof buf, body, R"(,"stream":true)");
    auto s = make(make_chat_generation(J(buf), ctx));
    std::string all;
    for (size_t k = 0; k < ids.size(); ++k)
        all += s->on_event(0, event({ids[k]}, static_cast<int32_t>(k + 1), k + 1 == ids.size(),
                                    k + 1 == ids.size() ? engine::FinishKind::kLength : engine::FinishKind::kNone));
    std::string reasoning, content;
    for (const auto& p : sse_payloads(all)) {
        if (p == "[DONE]") continue;
        auto d = J(p)["choices"][0]["delta"];
        if (d["reasoning_content"].is_string()) reasoning += d["reasoning_content"].get<std::string>();
        if (d.contains("content") && d["content"].is_string()) content += d["content"].get<std::string>();
    }
    EXPECT_EQ(reasoning, "think");
    EXPECT_EQ(content, "answer");
}

TEST_F(GenerationTest, ToolCallsNonStreamingAndStreaming) {
    auto req = [](const std::string& extra) {
        return R"({"messages":[{"role":"user","content":"q"}],"tools":[{"type":"function","function":{"name":"get"}}])" +
               extra + "}";
    };
    std::string text = R"(ok<tool>get|{"a": 1}</tool>)";
    auto g = make(make_chat_generation(J(req("")), ctx));
    g->on_event(0, event(bytes_to_ids(text), 30, true, engine::FinishKind::kStop, kEos));
    OrderedJson j = J(g->final_reply().body);
    auto& c = j["choices"][0];
    EXPECT_EQ(c["finish_reason"], "tool_calls");
    EXPECT_TRUE(c["matched_stop"].is_null());
    EXPECT_EQ(c["message"]["content"], "ok");
    EXPECT_EQ(c["message"]["tool_calls"][0].dump(),
              R"({"id":"call_0","index":0,"type":"function","function":{"name":"get","arguments":"{\"a\": 1}"}})");

    auto s = make(make_chat_generation(J(req(R"(,"stream":true)")), ctx));
    std::string all = s->on_event(0, event(bytes_to_ids(text), 30, true, engine::FinishKind::kStop, kEos));
    auto p = sse_payloads(all);
    ASSERT_EQ(p.size(), 4u) << all;
    EXPECT_NE(p[1].find(R"("delta":{"role":null,"content":"ok","reasoning_content":null,"tool_calls":null})"), std::string::npos);
    EXPECT_NE(p[1].find(R"("usage":null)"), std::string::npos);
    EXPECT_NE(p[2].find(R"("tool_calls":[{"id":"call_0","index":0,"type":"function","function":{"name":"get","arguments":"{\"a\": 1}"}}])"),
              std::string::npos);
    EXPECT_NE(p[3].find(R"("finish_reason":"tool_calls","matched_stop":256)"), std::string::npos);
}

TEST_F(GenerationTest, ChatNChoicesAndLogprobs) {
    auto g = make(make_chat_generation(
        J(R"({"messages":[{"role":"user","content":"q"}],"n":2,"logprobs":true,"top_logprobs":1})"), ctx));
    ASSERT_EQ(g->engine_requests().size(), 2u);
    EXPECT_EQ(g->engine_requests()[1].rid, g->id() + "-1");
    EXPECT_TRUE(g->engine_requests()[0].return_logprob);
    EXPECT_EQ(g->engine_requests()[0].top_logprobs_num, 1);
    for (size_t i = 0; i < 2; ++i) {
        auto e = event({'a'}, 1, true, engine::FinishKind::kLength);
        e.logprobs.push_back(engine::TokenLogprob{'a', -0.5, {{'a', -0.5}}});
        g->on_event(i, e);
    }
    OrderedJson j = J(g->final_reply().body);
    EXPECT_EQ(j["choices"].size(), 2u);
    EXPECT_EQ(j["choices"][1]["index"], 1);
    EXPECT_EQ(j["usage"]["prompt_tokens"], 7);      // once per prompt
    EXPECT_EQ(j["usage"]["completion_tokens"], 2);  // summed
    EXPECT_EQ(j["choices"][0]["logprobs"].dump(),
              R"({"content":[{"token":"a","bytes":[97],"logprob":-0.5,"top_logprobs":[{"token":"a","bytes":[97],"logprob":-0.5}]}]})");
}

TEST_F(GenerationTest, CacheReportAndErrors) {
    ctx.config.enable_cache_report = true;
    auto g = make(make_chat_generation(J(R"({"messages":[{"role":"user","content":"q"}]})"), ctx));
    g->on_event(0, event({'a'}, 1, true, engine::FinishKind::kLength));
    EXPECT_EQ(J(g->final_reply().body)["usage"]["prompt_tokens_details"].dump(), R"({"cached_tokens":3})");

    auto failing = make_chat_generation(J(R"({"messages":[{"role":"user","content":"FAIL_TEMPLATE"}]})"), ctx);
    ASSERT_FALSE(failing.is_ok());
    EXPECT_EQ(failing.status().message(), "Invalid message for role `developer`");
    ctx.config.context_length = 5;
    auto too_long = make_chat_generation(J(R"({"messages":[{"role":"user","content":"long prompt"}]})"), ctx);
    EXPECT_EQ(too_long.status().message(), "The input (18 tokens) is longer than the model's context length (5 tokens).");
}

TEST_F(GenerationTest, AbortWithStatusBecomesErrorReply) {
    auto g = make(make_chat_generation(J(R"({"messages":[{"role":"user","content":"q"}]})"), ctx));
    auto e = event({}, 0, true, engine::FinishKind::kAbort);
    e.finish.status_code = 503;
    e.finish.message = "engine overloaded";
    g->on_event(0, e);
    HttpReply r = g->final_reply();
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(J(r.body)["message"], "engine overloaded");

    auto s = make(make_chat_generation(J(R"({"messages":[{"role":"user","content":"q"}],"stream":true})"), ctx));
    std::string all = s->on_event(0, e) + s->final_reply().body;
    EXPECT_NE(all.find(R"(data: {"error":{"object":"error","message":"engine overloaded")"), std::string::npos);
    EXPECT_NE(all.find("data: [DONE]"), std::string::npos);
}

TEST_F(GenerationTest, UserAbortFinishesNormally) {
    auto g = make(make_chat_generation(J(R"({"messages":[{"role":"user","content":"q"}]})"), ctx));
    g->on_event(0, event({'a'}, 1, true, engine::FinishKind::kAbort));
    OrderedJson j = J(g->final_reply().body);
    EXPECT_EQ(j["choices"][0]["finish_reason"], "abort");
}

TEST_F(GenerationTest, CompletionsShapesEchoAndStreaming) {
    auto g = make(make_completion_generation(J(R"({"prompt":"Say","echo":true,"logprobs":0})"), ctx));
    EXPECT_EQ(*g->engine_requests()[0].sampling.max_new_tokens, 16);
    auto e = event({'!', kEos}, 2, true, engine::FinishKind::kStop, kEos);
    e.logprobs = {engine::TokenLogprob{'!', -0.1, {}}, engine::TokenLogprob{kEos, -0.2, {}}};
    g->on_event(0, e);
    OrderedJson j = J(g->final_reply().body);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["choices"][0]["text"], "Say!");
    EXPECT_EQ(j["choices"][0]["matched_stop"], kEos);
    EXPECT_EQ(j["choices"][0]["logprobs"]["tokens"].dump(), R"(["!","<eos>"])");
    EXPECT_EQ(j["choices"][0]["logprobs"]["top_logprobs"].dump(), "[null,null]");

    auto s = make(make_completion_generation(
        J(R"({"prompt":["a","b"],"n":2,"stream":true,"stream_options":{"include_usage":true}})"), ctx));
    ASSERT_EQ(s->engine_requests().size(), 4u);
    std::string all;
    for (size_t i = 0; i < 4; ++i) all += s->on_event(i, event({'x'}, 1, true, engine::FinishKind::kLength));
    all += s->final_reply().body;
    auto p = sse_payloads(all);
    ASSERT_EQ(p.size(), 6u) << all;
    EXPECT_NE(p[3].find(R"("choices":[{"index":3,"text":"x","logprobs":null,"finish_reason":"length","matched_stop":null}],"usage":null)"),
              std::string::npos);
    EXPECT_EQ(J(p[4])["usage"].dump(), R"({"prompt_tokens":14,"total_tokens":18,"completion_tokens":4,"reasoning_tokens":0})");
}

TEST_F(GenerationTest, GenerateNativeCumulativeStreaming) {
    auto s = make(make_native_generation(J(R"({"text":"hi","stream":true,"rid":"r1"})"), ctx));
    EXPECT_EQ(s->engine_requests()[0].rid, "r1");
    auto p1 = sse_payloads(s->on_event(0, event({'a', 'b'}, 2)));
    auto p2 = sse_payloads(s->on_event(0, event({'c', kEos}, 4, true, engine::FinishKind::kStop, kEos)));
    ASSERT_EQ(p1.size(), 1u);
    ASSERT_EQ(p2.size(), 1u);
    OrderedJson a = J(p1[0]), b = J(p2[0]);
    EXPECT_EQ(a["text"], "ab");
    EXPECT_TRUE(a["meta_info"]["finish_reason"].is_null());
    EXPECT_EQ(b["text"], "abc");  // cumulative
    EXPECT_EQ(b["output_ids"].dump(), "[97,98,99]");
    EXPECT_EQ(b["meta_info"]["finish_reason"].dump(), R"({"type":"stop","matched":256})");
    EXPECT_EQ(b["meta_info"]["completion_tokens"], 4);
    EXPECT_EQ(b["meta_info"]["id"], "r1");
    EXPECT_EQ(s->final_reply().body, "data: [DONE]\n\n");
}

TEST_F(GenerationTest, GenerateNativeBatchAndLength) {
    auto g = make(make_native_generation(
        J(R"({"input_ids":[[1,2],[3]],"sampling_params":{"max_new_tokens":1},"return_logprob":true})"), ctx));
    ASSERT_EQ(g->engine_requests().size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
        auto e = event({'z'}, 1, true, engine::FinishKind::kLength);
        e.logprobs = {engine::TokenLogprob{'z', -1.0, {}}};
        g->on_event(i, e);
    }
    OrderedJson j = J(g->final_reply().body);
    ASSERT_TRUE(j.is_array());
    EXPECT_EQ(j[1]["meta_info"]["finish_reason"].dump(), R"({"type":"length","length":1})");
    EXPECT_EQ(j[0]["meta_info"]["output_token_logprobs"].dump(), "[[-1.0,122,null]]");
}

TEST_F(GenerationTest, GenerateNativeParallelSamplesAreAListInPromptMajorOrder) {
    auto g = make(make_native_generation(
        J(R"({"text":["p","q"],"rid":["a","b"],"sampling_params":{"n":2,"max_new_tokens":1}})"), ctx));
    ASSERT_EQ(g->engine_requests().size(), 4u);
    std::vector<std::string> rids;
    for (const auto& r : g->engine_requests()) rids.push_back(r.rid);
    EXPECT_EQ(rids, (std::vector<std::string>{"a", "a-1", "b", "b-1"}));
    EXPECT_EQ(g->engine_requests()[1].input_ids, bytes_to_ids("p"));
    EXPECT_EQ(g->engine_requests()[2].input_ids, bytes_to_ids("q"));
    for (size_t i = 0; i < 4; ++i) g->on_event(i, event({int32_t('w' + i)}, 1, true, engine::FinishKind::kLength));
    OrderedJson j = J(g->final_reply().body);
    ASSERT_TRUE(j.is_array());
    ASSERT_EQ(j.size(), 4u);
    EXPECT_EQ(j[3]["text"], "z");
    EXPECT_EQ(j[1]["meta_info"]["id"], "a-1");
}

TEST_F(GenerationTest, GenerateNativeSingleTextWithNStreamsIndexedEvents) {
    auto g = make(make_native_generation(J(R"({"text":"p","stream":true,"sampling_params":{"n":2}})"), ctx));
    ASSERT_EQ(g->engine_requests().size(), 2u);
    auto p = sse_payloads(g->on_event(1, event({'x'}, 1, true, engine::FinishKind::kLength)));
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(J(p[0])["index"], 1);
    EXPECT_EQ(J(p[0])["text"], "x");
    auto one = make(make_native_generation(J(R"({"text":"p","stream":true})"), ctx));
    auto q = sse_payloads(one->on_event(0, event({'x'}, 1, true, engine::FinishKind::kLength)));
    ASSERT_EQ(q.size(), 1u);
    EXPECT_FALSE(J(q[0]).contains("index"));
}

}  // namespace
}  // namespace dsa::api
