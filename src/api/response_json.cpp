// Response and chunk JSON shapes (see response_json.h).
#include "api/response_json.h"

namespace dsa::api {
namespace {

std::string token_string(const TextCodec* codec, int32_t id) {
    return codec ? codec->token_text(id) : std::to_string(id);
}

}  // namespace

OrderedJson header_json(const ChunkHeader& h) {
    OrderedJson j;
    j["id"] = h.id;
    j["object"] = h.object;
    j["created"] = h.created;
    j["model"] = h.model;
    return j;
}

OrderedJson usage_json(const UsageCounts& u) {
    OrderedJson j;
    j["prompt_tokens"] = u.prompt_tokens;
    j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
    j["completion_tokens"] = u.completion_tokens;
    if (u.cache_report && u.cached_tokens > 0) {
        j["prompt_tokens_details"]["cached_tokens"] = u.cached_tokens;
    } else {
        j["prompt_tokens_details"] = nullptr;
    }
    j["reasoning_tokens"] = u.reasoning_tokens;
    return j;
}

OrderedJson chat_choice_json(int index, OrderedJson delta, OrderedJson logprobs, OrderedJson finish_reason,
                             OrderedJson matched_stop) {
    OrderedJson c;
    c["index"] = index;
    c["delta"] = std::move(delta);
    c["logprobs"] = std::move(logprobs);
    c["finish_reason"] = std::move(finish_reason);
    c["matched_stop"] = std::move(matched_stop);
    return c;
}

OrderedJson chat_chunk(const ChunkHeader& h, OrderedJson choice) {
    OrderedJson j = header_json(h);
    j["choices"] = OrderedJson::array({std::move(choice)});
    return j;
}

OrderedJson role_delta() {
    OrderedJson d;
    d["reasoning_content"] = nullptr;
    d["role"] = "assistant";
    d["content"] = "";
    return d;
}

OrderedJson reasoning_delta(const std::string& text) {
    OrderedJson d;
    d["reasoning_content"] = text;
    return d;
}

OrderedJson content_delta(const std::string& text) {
    OrderedJson d;
    d["reasoning_content"] = nullptr;
    d["content"] = text;
    return d;
}

OrderedJson empty_delta() {
    OrderedJson d;
    d["reasoning_content"] = nullptr;
    return d;
}

OrderedJson tool_mode_delta(const std::optional<std::string>& content, OrderedJson tool_calls) {
    OrderedJson d;
    d["role"] = nullptr;
    d["content"] = content ? OrderedJson(*content) : OrderedJson(nullptr);
    d["reasoning_content"] = nullptr;
    d["tool_calls"] = std::move(tool_calls);
    return d;
}

OrderedJson tool_call_fragment_json(const ToolCallFragment& f) {
    OrderedJson j;
    j["id"] = f.id ? OrderedJson(*f.id) : OrderedJson(nullptr);
    j["index"] = f.index;
    j["type"] = "function";
    j["function"]["name"] = f.name ? OrderedJson(*f.name) : OrderedJson(nullptr);
    j["function"]["arguments"] = f.arguments;
    return j;
}

OrderedJson bytes_json(const std::string& s) {
    OrderedJson a = OrderedJson::array();
    for (unsigned char c : s) a.push_back(static_cast<int>(c));
    return a;
}

OrderedJson chat_logprobs_json(const std::vector<engine::TokenLogprob>& lps, const TextCodec* codec) {
    OrderedJson content = OrderedJson::array();
    for (const auto& lp : lps) {
        OrderedJson e;
        std::string tok = token_string(codec, lp.token_id);
        e["token"] = tok;
        e["bytes"] = bytes_json(tok);
        e["logprob"] = lp.logprob;
        e["top_logprobs"] = OrderedJson::array();
        for (const auto& [id, v] : lp.top) {
            OrderedJson t;
            std::string ts = token_string(codec, id);
            t["token"] = ts;
            t["bytes"] = bytes_json(ts);
            t["logprob"] = v;
            e["top_logprobs"].push_back(std::move(t));
        }
        content.push_back(std::move(e));
    }
    OrderedJson j;
    j["content"] = std::move(content);
    return j;
}

OrderedJson completion_logprobs_json(const std::vector<engine::TokenLogprob>& lps, const TextCodec* codec,
                                     bool with_top) {
    OrderedJson j;
    j["text_offset"] = OrderedJson::array();
    j["token_logprobs"] = OrderedJson::array();
    j["tokens"] = OrderedJson::array();
    j["top_logprobs"] = OrderedJson::array();
    for (const auto& lp : lps) {
        j["text_offset"].push_back(-1);
        j["token_logprobs"].push_back(lp.logprob);
        j["tokens"].push_back(token_string(codec, lp.token_id));
        if (!with_top) {
            j["top_logprobs"].push_back(nullptr);
            continue;
        }
        OrderedJson top = OrderedJson::object();
        for (const auto& [id, v] : lp.top) top[token_string(codec, id)] = v;
        j["top_logprobs"].push_back(std::move(top));
    }
    return j;
}

OrderedJson native_token_logprobs(const std::vector<engine::TokenLogprob>& lps, const TextCodec* codec, bool text) {
    OrderedJson a = OrderedJson::array();
    for (const auto& lp : lps)
        a.push_back(OrderedJson::array(
            {lp.logprob, lp.token_id, text ? OrderedJson(token_string(codec, lp.token_id)) : OrderedJson(nullptr)}));
    return a;
}

OrderedJson native_top_logprobs(const std::vector<engine::TokenLogprob>& lps, const TextCodec* codec, bool text) {
    OrderedJson a = OrderedJson::array();
    for (const auto& lp : lps) {
        OrderedJson pos = OrderedJson::array();
        for (const auto& [id, v] : lp.top)
            pos.push_back(OrderedJson::array(
                {v, id, text ? OrderedJson(token_string(codec, id)) : OrderedJson(nullptr)}));
        a.push_back(std::move(pos));
    }
    return a;
}

}  // namespace dsa::api
