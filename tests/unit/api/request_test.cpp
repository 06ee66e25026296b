// Request parsing and validation for chat, completions and /generate: SGLang's verbatim 400 messages, type
// errors, defaults, sampling ranges and the context-length checks.
#include <gtest/gtest.h>

#include "api/api_error.h"
#include "api/json_fields.h"
#include "api/request_types.h"

namespace dsa::api {
namespace {

OrderedJson J(const char* text) { return OrderedJson::parse(text); }

ApiConfig config() {
    ApiConfig c;
    c.context_length = 100;
    return c;
}

std::string chat_error(const char* body, const ApiConfig& c = config()) {
    auto r = parse_chat_request(J(body), c);
    return r.is_ok() ? "OK" : r.status().message();
}

TEST(SamplingValidate, DefaultsAreValid) {
    engine::SamplingParams sp;
    EXPECT_TRUE(sp.validate().is_ok());
    EXPECT_EQ(sp.top_k, -1);
    EXPECT_DOUBLE_EQ(sp.temperature, 1.0);
    EXPECT_FALSE(sp.is_greedy());
}

TEST(SamplingValidate, RangeMessages) {
    auto msg = [](auto mutate) {
        engine::SamplingParams sp;
        mutate(sp);
        return sp.validate().message();
    };
    EXPECT_EQ(msg([](auto& s) { s.temperature = -1; }), "temperature must be a non-negative finite number, got -1");
    EXPECT_EQ(msg([](auto& s) { s.top_p = 0; }), "top_p must be in (0, 1], got 0");
    EXPECT_EQ(msg([](auto& s) { s.top_p = 1.5; }), "top_p must be in (0, 1], got 1.5");
    EXPECT_EQ(msg([](auto& s) { s.top_k = 0; }), "top_k must be -1 (disable) or at least 1, got 0");
    EXPECT_EQ(msg([](auto& s) { s.min_p = 2; }), "min_p must be in [0, 1], got 2");
    EXPECT_EQ(msg([](auto& s) { s.frequency_penalty = 3; }), "frequency_penalty must be in [-2, 2], got 3");
    EXPECT_EQ(msg([](auto& s) { s.presence_penalty = -2.5; }), "presence_penalty must be in [-2, 2], got -2.5");
    EXPECT_EQ(msg([](auto& s) { s.repetition_penalty = 0; }),
              "repetition_penalty must be in (0, 2] (1.0 = no penalty), got 0");
    EXPECT_EQ(msg([](auto& s) {
                  s.max_new_tokens = 5;
                  s.min_new_tokens = 6;
              }),
              "min_new_tokens must be in [0, max_new_tokens(5)], got 6");
    engine::SamplingParams greedy;
    greedy.temperature = 0;
    EXPECT_TRUE(greedy.validate().is_ok());
    EXPECT_TRUE(greedy.is_greedy());
}

TEST(ChatRequestParse, VerbatimValidationMessages) {
    EXPECT_EQ(chat_error(R"({"messages":[]})"), "Messages cannot be empty.");
    EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"required"})"),
              "Tools cannot be empty if tool choice is set to required.");
    EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],
                             "tool_choice":{"type":"function","function":{"name":"f"}}})"),
              "Tools cannot be empty if tool choice is set to a specific tool.");
    EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],
                             "tools":[{"type":"function","function":{"name":"g"}}],
                             "tool_choice":{"type":"function","function":{"name":"f"}}})"),
              "Tool 'f' not found in tools list.");
    EXPECT_EQ(chat_error(R"({"messages":[{"role":"assistant","content":"","tool_calls":[
                              {"id":"1","type":"function","function":{"name":"f","arguments":"{bad"}}]},
                             {"role":"user","content":"x"}]})"),
              "Assistant tool call function.arguments must be valid JSON.");
    EXPECT_EQ(chat_error(R"({"messages":[{"role":"assistant","content":"","tool_calls":[
                              {"id":"1","type":"function","function":{"name":"f","arguments":"[1]"}}]},
                             {"role":"user","content":"x"}]})"),
              "Assistant tool call function.arguments must be a JSON object.");
    ApiConfig explicit_ctx = config();
    explicit_ctx.context_length_explicit = true;
    EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":500})", explicit_ctx),
              "max_completion_tokens is too large: 500.This model supports at most 100 completion tokens.");
}

TEST(ChatRequestParse, TypeErrorsAndRanges) {
    EXPECT_NE(chat_error(R"({"messages":"hi"})").find("messages"), std::string::npos);
    EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})").find("temperature"),
              std::string::npos);
    EXPECT_NE(chat_error(R"({"messages":[{"role":"wizard","content":"x"}]})").find("wizard"), std::string::npos);
    EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"top_p":0})"), "top_p must be in (0, 1], got 0");
    EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"top_k":0})"),
              "top_k must be -1 (disable) or at least 1, got 0");
    EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"n":0})").find("n must be"), std::string::npos);
    EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})").find("stream"),
              std::string::npos);
    EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":5}}]})")
                  .find("Tool 0 function has invalid 'parameters' schema"),
              std::string::npos);
}

TEST(ChatRequestParse, DefaultsAndMapping) {
    ApiConfig c = config();
    c.chat_defaults.temperature = 0.6;
    c.chat_defaults.top_p = 0.95;
    c.default_chat_template_kwargs = J(R"({"thinking":false,"x":1})");
    auto r = parse_chat_request(J(R"({"model":"m","messages":[{"role":"USER","content":"hi"},
        {"role":"assistant","content":"prefill"}],"max_tokens":10,"max_completion_tokens":7,"stop":"END",
        "stop_token_ids":[5],"min_tokens":2,"seed":3,"top_k":20,"chat_template_kwargs":{"thinking":true},
        "logprobs":true,"top_logprobs":2,"stream":true,"stream_options":{"include_usage":true},
        "tools":[{"type":"function","function":{"name":"f"}}]})"),
                                c);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->model, "m");
    EXPECT_DOUBLE_EQ(r->sampling.temperature, 0.6);
    EXPECT_DOUBLE_EQ(r->sampling.top_p, 0.95);
    EXPECT_EQ(r->sampling.top_k, 20);
    EXPECT_EQ(*r->sampling.max_new_tokens, 7);  // max_completion_tokens wins
    EXPECT_EQ(r->sampling.min_new_tokens, 2);
    EXPECT_EQ(*r->sampling.seed, 3u);
    EXPECT_EQ(r->sampling.stop_token_ids, std::vector<int32_t>{5});
    EXPECT_EQ(r->text.stop, std::vector<std::string>{"END"});
    EXPECT_EQ(r->prompt.messages[0]["role"], "user");
    EXPECT_EQ(r->prompt.messages[1]["role"], "user");  // trailing assistant string -> user
    EXPECT_EQ(r->prompt.chat_template_kwargs["thinking"], true);
    EXPECT_EQ(r->prompt.chat_template_kwargs["x"], 1);
    EXPECT_EQ(r->prompt.tool_choice, "auto");
    EXPECT_TRUE(r->tools_active);
    EXPECT_FALSE(r->text.skip_special_tokens);  // forced off with tools
    EXPECT_TRUE(r->stream_options.include_usage);
    EXPECT_EQ(r->top_logprobs, 2);
}

TEST(ChatRequestParse, ReasoningEffortDefaultsThinking) {
    auto r = parse_chat_request(J(R"({"messages":[{"role":"user","content":"x"}],"reasoning_effort":"high"})"), config());
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->prompt.chat_template_kwargs["thinking"], true);
    EXPECT_EQ(r->prompt.chat_template_kwargs["enable_thinking"], true);
    auto off = parse_chat_request(J(R"({"messages":[{"role":"user","content":"x"}],"reasoning_effort":"none",
        "chat_template_kwargs":{"thinking":true}})"), config());
    ASSERT_TRUE(off.is_ok());
    EXPECT_EQ(off->prompt.chat_template_kwargs["thinking"], true);  // explicit wins
    EXPECT_EQ(off->prompt.chat_template_kwargs["enable_thinking"], false);
}

TEST(ChatRequestParse, ToolMessagePartsFlattened) {
    auto r = parse_chat_request(J(R"({"messages":[{"role":"tool","tool_call_id":"1","content":[
        {"type":"text","text":"a"},{"type":"text","text":"b"}]}]})"), config());
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->prompt.messages[0]["content"], "a b");
}

TEST(ChatRequestParse, StructuredOutputAndToolChoice) {
    const std::string msgs = R"("messages":[{"role":"user","content":"x"}])";
    auto JS = [](const std::string& text) { return OrderedJson::parse(text); };
    auto obj = parse_chat_request(JS("{" + msgs + R"(,"response_format":{"type":"json_object"}})"), config());
    ASSERT_TRUE(obj.is_ok());
    EXPECT_EQ(*obj->text.response_schema, JS(R"({"type":"object"})"));
    auto schema = parse_chat_request(JS("{" + msgs + R"(,"response_format":{"type":"json_schema",
        "json_schema":{"name":"s","schema":{"type":"integer"}}}})"), config());
    ASSERT_TRUE(schema.is_ok());
    EXPECT_EQ(*schema->text.response_schema, JS(R"({"type":"integer"})"));
    auto text = parse_chat_request(JS("{" + msgs + R"(,"response_format":{"type":"text"}})"), config());
    ASSERT_TRUE(text.is_ok());
    EXPECT_FALSE(text->text.response_schema.has_value());
    auto missing = parse_chat_request(JS("{" + msgs + R"(,"response_format":{"type":"json_schema","json_schema":{}}})"), config());
    EXPECT_EQ(ApiError::from_status(missing.status()).http_status, 400);
    auto bad_type = parse_chat_request(JS("{" + msgs + R"(,"response_format":{"type":"yaml"}})"), config());
    EXPECT_EQ(ApiError::from_status(bad_type.status()).http_status, 400);
    for (const char* key : {R"("regex":"a+")", R"("ebnf":"root ::= x")"}) {
        auto r = parse_chat_request(JS("{" + msgs + "," + key + "}"), config());
        EXPECT_EQ(ApiError::from_status(r.status()).http_status, 501) << key;
    }
    const std::string tools = R"("tools":[{"type":"function","function":{"name":"f"}}])";
    auto required = parse_chat_request(JS("{" + msgs + "," + tools + R"(,"tool_choice":"required"})"), config());
    ASSERT_TRUE(required.is_ok()) << required.status().message();
    EXPECT_EQ(required->prompt.tool_choice, "required");
    auto named = parse_chat_request(
        JS("{" + msgs + "," + tools + R"(,"tool_choice":{"type":"function","function":{"name":"f"}}})"), config());
    ASSERT_TRUE(named.is_ok());
    EXPECT_EQ(named->prompt.tool_choice, "function");
    EXPECT_EQ(named->prompt.named_tool, "f");
}

TEST(CompletionRequestParse, PromptFormsAndDefaults) {
    auto r = parse_completion_request(J(R"({"prompt":"hi"})"), config());
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(*r->sampling.max_new_tokens, 16);
    ASSERT_EQ(r->prompts.size(), 1u);
    EXPECT_EQ(*r->prompts[0].text, "hi");
    auto ids = parse_completion_request(J(R"({"prompt":[1,2,3]})"), config());
    ASSERT_TRUE(ids.is_ok());
    EXPECT_EQ(ids->prompts[0].ids, (std::vector<int32_t>{1, 2, 3}));
    auto batch = parse_completion_request(J(R"({"prompt":[[1],[2,3]]})"), config());
    ASSERT_TRUE(batch.is_ok());
    EXPECT_EQ(batch->prompts.size(), 2u);
    auto texts = parse_completion_request(J(R"({"prompt":["a","b"],"logprobs":2,"echo":true})"), config());
    ASSERT_TRUE(texts.is_ok());
    EXPECT_EQ(texts->prompts.size(), 2u);
    EXPECT_EQ(*texts->logprobs, 2);
    EXPECT_EQ(parse_completion_request(J(R"({"prompt":""})"), config()).status().message(), "Prompt cannot be empty");
    EXPECT_EQ(parse_completion_request(J(R"({"prompt":[]})"), config()).status().message(), "Prompt cannot be empty");
    EXPECT_FALSE(parse_completion_request(J(R"({"prompt":"x","max_tokens":0})"), config()).is_ok());
    EXPECT_FALSE(parse_completion_request(J(R"({"prompt":[1,-2]})"), config()).is_ok());
    EXPECT_FALSE(parse_completion_request(J(R"({"max_tokens":3})"), config()).is_ok());
}

TEST(GenerateRequestParse, TextOrIdsAndSamplingParams) {
    auto r = parse_generate_request(J(R"({"text":"hi","sampling_params":{"temperature":0,"stop":["x"]},"stream":true})"),
                                    config());
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_FALSE(r->batch);
    EXPECT_EQ(*r->items[0].sampling.max_new_tokens, 128);
    EXPECT_TRUE(r->items[0].sampling.is_greedy());
    EXPECT_EQ(r->items[0].text.stop, std::vector<std::string>{"x"});
    auto ids = parse_generate_request(J(R"({"input_ids":[[1,2],[3]],"rid":["a","b"]})"), config());
    ASSERT_TRUE(ids.is_ok()) << ids.status().message();
    EXPECT_TRUE(ids->batch);
    EXPECT_EQ(*ids->items[1].rid, "b");
    EXPECT_EQ(parse_generate_request(J(R"({"sampling_params":{}})"), config()).status().message(),
              "Either text, input_ids or input_embeds should be provided.");
    EXPECT_EQ(parse_generate_request(J(R"({"text":"a","input_ids":[1]})"), config()).status().message(),
              "Either text or input_ids should be provided.");
    EXPECT_EQ(parse_generate_request(J(R"({"text":"a","sampling_params":{"bogus":1}})"), config()).status().message(),
              "Unknown sampling parameter: 'bogus'");
    EXPECT_EQ(parse_generate_request(J(R"({"text":"a","sampling_params":{"top_p":2}})"), config()).status().message(),
              "top_p must be in (0, 1], got 2");
    auto nulls = parse_generate_request(J(R"({"text":"a","sampling_params":{"temperature":null,"max_new_tokens":null}})"),
                                        config());
    ASSERT_TRUE(nulls.is_ok());
    EXPECT_DOUBLE_EQ(nulls->items[0].sampling.temperature, 1.0);
    auto n = parse_generate_request(J(R"({"text":["a","b"],"sampling_params":{"n":3}})"), config());
    ASSERT_TRUE(n.is_ok()) << n.status().message();
    EXPECT_EQ(n->n, 3);
    EXPECT_EQ(parse_generate_request(J(R"({"text":["a","b"],"sampling_params":[{"n":2},{"n":3}]})"), config())
                  .status()
                  .message(),
              "The parallel_sample_num should be the same for all samples in sample params.");
    EXPECT_FALSE(parse_generate_request(J(R"({"text":"a","sampling_params":{"n":0}})"), config()).is_ok());
}

TEST(ContextCheck, Messages) {
    ApiConfig c = config();
    std::vector<int32_t> ids(100, 1);
    engine::SamplingParams sp;
    EXPECT_EQ(check_context(c, ids, sp).message(),
              "The input (100 tokens) is longer than the model's context length (100 tokens).");
    ids.resize(60);
    sp.max_new_tokens = 40;
    EXPECT_EQ(check_context(c, ids, sp).message(),
              "Requested token count exceeds the model's maximum context length of 100 tokens. You requested a total "
              "of 100 tokens: 60 tokens from the input messages and 40 tokens for the completion. Please reduce the "
              "number of tokens in the input messages or the completion to fit within the limit.");
    sp.max_new_tokens = 39;
    EXPECT_TRUE(check_context(c, ids, sp).is_ok());
    c.allow_auto_truncate = true;
    sp.max_new_tokens = 90;
    EXPECT_TRUE(check_context(c, ids, sp).is_ok());
    EXPECT_EQ(*sp.max_new_tokens, 39);
    ids.assign(150, 1);
    EXPECT_TRUE(check_context(c, ids, sp).is_ok());
    EXPECT_EQ(ids.size(), 99u);
}

TEST(ApiErrors, BodiesAndStatusMapping) {
    ApiError e = ApiError::bad_request("Messages cannot be empty.");
    EXPECT_EQ(openai_error_body(e),
              R"({"object":"error","message":"Messages cannot be empty.","type":"BadRequest","param":null,"code":400})");
    EXPECT_EQ(native_error_body(e), R"({"error":{"message":"Messages cannot be empty."}})");
    EXPECT_EQ(openai_stream_error_event(e),
              "data: {\"error\":{\"object\":\"error\",\"message\":\"Messages cannot be empty.\",\"type\":\"BadRequest\","
              "\"param\":null,\"code\":400}}\n\n");
    EXPECT_EQ(model_not_found_body("x"),
              R"({"error":{"message":"The model 'x' does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}})");
    EXPECT_EQ(ApiError::from_status(not_found("x")).http_status, 404);
    EXPECT_EQ(ApiError::from_status(Status(StatusCode::kUnauthenticated, "x")).http_status, 401);
    EXPECT_EQ(ApiError::from_status(Status(StatusCode::kResourceExhausted, "x")).http_status, 413);
    ApiError internal = ApiError::from_status(Status(StatusCode::kInternal, "boom"));
    EXPECT_EQ(internal.http_status, 500);
    EXPECT_EQ(internal.message, "Internal server error: boom");
}

TEST(Utf8, Validation) {
    EXPECT_TRUE(is_valid_utf8("plain"));
    EXPECT_TRUE(is_valid_utf8("你好🙂"));
    EXPECT_FALSE(is_valid_utf8("\xC3"));          // truncated
    EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));      // overlong
    EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));  // surrogate
    EXPECT_FALSE(is_valid_utf8("\xFF"));
}

}  // namespace
}  // namespace dsa::api
