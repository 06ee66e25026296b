// The dsv32 chat encoder: a port of DeepSeek's encoding_dsv32.py (render_message / encode_messages) plus
// SGLang's message preparation. Every literal below is part of the prompt the model was trained on; change
// none of them without a byte-exact test.
#include "text/dsv32_encoding.h"

#include <cctype>
#include <string_view>
#include <vector>

namespace dsa::text {
namespace {

constexpr std::string_view kBos = "<｜begin▁of▁sentence｜>";
constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
constexpr std::string_view kUser = "<｜User｜>";
constexpr std::string_view kAssistant = "<｜Assistant｜>";
constexpr std::string_view kThinkStart = "<think>";
constexpr std::string_view kThinkEnd = "</think>";

// The tools preamble; `sep` is the paragraph break: "\n\n" in the official text, "\n" in SGLang's copy.
std::string render_tools_preamble(std::string_view sep, const std::string& tool_lines) {
    std::string s;
    s += "## Tools";
    s += sep;
    s += "You have access to a set of tools you can use to answer the user's question.\n"
         "You can invoke functions by writing a \"<｜DSML｜function_calls>\" block like the following as part of "
         "your reply to the user:\n"
         "<｜DSML｜function_calls>\n"
         "<｜DSML｜invoke name=\"$FUNCTION_NAME\">\n"
         "<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</｜DSML｜parameter>\n"
         "...\n"
         "</｜DSML｜invoke>\n"
         "<｜DSML｜invoke name=\"$FUNCTION_NAME2\">\n"
         "...\n"
         "</｜DSML｜invoke>\n"
         "</｜DSML｜function_calls>";
    s += sep;
    s += "String and scalar parameters should be specified as is without any escaping or quotes, while lists and "
         "objects should use JSON format. The \"string\" attribute should be set to \"true\" for string type "
         "parameters and \"false\" for other types (numbers, booleans, arrays, objects).";
    s += sep;
    s += "If the thinking_mode is enabled, then after function results you should strongly consider outputting a "
         "thinking block. Here is an example:";
    s += sep;
    s += "<｜DSML｜function_calls>\n...\n</｜DSML｜function_calls>";
    s += sep;
    s += "<function_results>\n...\n</function_results>";
    s += sep;
    s += "<think>...thinking about results</think>";
    s += sep;
    s += "Here are the functions available in JSONSchema format:\n<functions>\n";
    s += tool_lines;
    s += "\n</functions>\n";
    return s;
}

OrderedJson sglang_tool_line(const OrderedJson& fn) {
    OrderedJson line = OrderedJson::object();
    line["description"] = fn.contains("description") ? fn["description"] : OrderedJson();
    line["name"] = fn.contains("name") ? fn["name"] : OrderedJson();
    line["parameters"] = fn.contains("parameters") ? fn["parameters"] : OrderedJson();
    line["strict"] = fn.contains("strict") && !fn["strict"].is_null() ? fn["strict"] : OrderedJson(false);
    return line;
}

StatusOr<std::string> render_tools(const OrderedJson& tools, const Dsv32Options& options) {
    std::string lines;
    for (const auto& tool : tools) {
        const OrderedJson* fn = &tool;
        if (tool.is_object() && tool.contains("function")) fn = &tool["function"];
        if (!fn->is_object()) return invalid_argument("dsv32: a tool must be an object with a 'function' object");
        if (!lines.empty()) lines += "\n";
        lines += python_json_dumps(options.tool_line == Dsv32ToolLine::kSglang ? sglang_tool_line(*fn) : *fn);
    }
    return render_tools_preamble(options.preamble == Dsv32ToolsPreamble::kOfficial ? "\n\n" : "\n", lines);
}

std::string render_response_format(const OrderedJson& format) {
    return "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n" +
           python_json_dumps(format);
}

std::string role_type(const OrderedJson& part) {
    return part.contains("type") && part["type"].is_string() ? part["type"].get<std::string>() : "";
}

// Content as a string: null -> "", text parts of an array joined with one space, other parts dropped.
std::string flatten_content(const OrderedJson& content) {
    if (content.is_string()) return content.get<std::string>();
    if (!content.is_array()) return content.is_null() ? "" : python_json_dumps(content);
    std::string out;
    bool first = true;
    for (const auto& part : content) {
        if (!part.is_object() || !part.contains("text") || role_type(part) != "text") continue;
        if (!first) out += " ";
        out += part["text"].is_string() ? part["text"].get<std::string>() : "";
        first = false;
    }
    return out;
}

std::string get_string(const OrderedJson& msg, const char* key) {
    if (!msg.contains(key)) return "";
    return flatten_content(msg[key]);
}

// Roles are case-insensitive in the request schema. `latest_reminder` and `function`, accepted there, are
// not rendered by this encoder (DeepSeek's encoder rejects them as unknown roles too).
std::string role_of(const OrderedJson& msg) {
    std::string role = msg.contains("role") && msg["role"].is_string() ? msg["role"].get<std::string>() : "";
    for (char& c : role) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return role;
}

int find_last_user_index(const OrderedJson& messages) {
    for (int i = static_cast<int>(messages.size()) - 1; i >= 0; --i) {
        const std::string role = role_of(messages[i]);
        if (role == "user" || role == "developer") return i;
    }
    return -1;
}

// The arguments object of one OpenAI tool call; SGLang hands them over already parsed, clients send strings.
StatusOr<OrderedJson> tool_call_arguments(const OrderedJson& call) {
    const OrderedJson fn = call.contains("function") ? call["function"] : call;
    OrderedJson args = fn.contains("arguments") ? fn["arguments"] : OrderedJson::object();
    if (args.is_string()) {
        args = OrderedJson::parse(args.get<std::string>(), nullptr, /*allow_exceptions=*/false);
        if (args.is_discarded()) return invalid_argument("dsv32: tool call arguments are not valid JSON");
    }
    if (args.is_null()) args = OrderedJson::object();
    if (!args.is_object()) return invalid_argument("dsv32: tool call arguments must be a JSON object");
    return args;
}

StatusOr<std::string> render_tool_call(const OrderedJson& call) {
    DSA_ASSIGN_OR_RETURN(OrderedJson args, tool_call_arguments(call));
    const OrderedJson fn = call.contains("function") ? call["function"] : call;
    std::string name = fn.contains("name") && fn["name"].is_string() ? fn["name"].get<std::string>() : "";
    std::vector<std::string> params;
    for (const auto& [key, value] : args.items()) {
        const bool is_str = value.is_string();
        params.push_back("<｜DSML｜parameter name=\"" + key + "\" string=\"" + (is_str ? "true" : "false") + "\">" +
                         (is_str ? value.get<std::string>() : python_json_dumps(value)) + "</｜DSML｜parameter>");
    }
    std::string joined;
    for (size_t i = 0; i < params.size(); ++i) joined += (i ? "\n" : "") + params[i];
    return "<｜DSML｜invoke name=\"" + name + "\">\n" + joined + "\n</｜DSML｜invoke>";
}

StatusOr<std::string> render_tool_calls(const OrderedJson& calls) {
    std::string joined;
    for (size_t i = 0; i < calls.size(); ++i) {
        DSA_ASSIGN_OR_RETURN(std::string one, render_tool_call(calls[i]));
        joined += (i ? "\n" : "") + one;
    }
    return "\n\n<｜DSML｜function_calls>\n" + joined + "\n</｜DSML｜function_calls>";
}

struct RenderContext {
    const OrderedJson& messages;
    int last_user_idx;
    bool thinking;
    const Dsv32Options& options;
};

// The optional "\n\n" + tools block and "\n\n" + response-format block carried by a system/developer message.
StatusOr<std::string> render_attachments(const OrderedJson& msg, const Dsv32Options& options) {
    std::string out;
    if (msg.contains("tools") && msg["tools"].is_array() && !msg["tools"].empty()) {
        DSA_ASSIGN_OR_RETURN(std::string block, render_tools(msg["tools"], options));
        out += "\n\n" + block;
    }
    if (msg.contains("response_format") && !msg["response_format"].is_null()) {
        out += "\n\n" + render_response_format(msg["response_format"]);
    }
    return out;
}

std::string user_turn(const std::string& content, int index, const RenderContext& ctx) {
    const bool open_thinking = index == ctx.last_user_idx && ctx.thinking;
    return std::string(kUser) + content + std::string(kAssistant) +
           std::string(open_thinking ? kThinkStart : kThinkEnd);
}

StatusOr<std::string> render_tool_result(int index, const RenderContext& ctx) {
    int prev = index - 1;
    while (prev >= 0 && role_of(ctx.messages[prev]) == "tool") --prev;
    const int order = index - prev;
    const OrderedJson* calls = nullptr;
    if (prev >= 0 && role_of(ctx.messages[prev]) == "assistant" && ctx.messages[prev].contains("tool_calls")) {
        calls = &ctx.messages[prev]["tool_calls"];
    }
    if (calls == nullptr || !calls->is_array() || static_cast<int>(calls->size()) < order) {
        return invalid_argument("dsv32: No tool calls but found tool output (message {})", index);
    }
    std::string out;
    if (order == 1) out += "\n\n<function_results>";
    out += "\n<result>" + get_string(ctx.messages[index], "content") + "</result>";
    if (order == static_cast<int>(calls->size())) {
        out += "\n</function_results>";
        const bool open_thinking = index >= ctx.last_user_idx && ctx.thinking;
        out += "\n\n" + std::string(open_thinking ? kThinkStart : kThinkEnd);
    }
    return out;
}

StatusOr<std::string> render_assistant(int index, const RenderContext& ctx) {
    const OrderedJson& msg = ctx.messages[index];
    const bool has_calls = msg.contains("tool_calls") && msg["tool_calls"].is_array() && !msg["tool_calls"].empty();
    std::string calls;
    if (has_calls) {
        DSA_ASSIGN_OR_RETURN(calls, render_tool_calls(msg["tool_calls"]));
    }
    std::string reasoning = get_string(msg, "reasoning");
    if (reasoning.empty()) reasoning = get_string(msg, "reasoning_content");
    std::string thinking_part;
    if (ctx.thinking && index > ctx.last_user_idx) {
        if (reasoning.empty() && !has_calls) {
            return invalid_argument(
                "dsv32: in thinking mode an assistant message after the last user message needs "
                "reasoning_content or tool_calls (message {})",
                index);
        }
        thinking_part = reasoning + std::string(kThinkEnd);
    }
    return thinking_part + get_string(msg, "content") + calls + std::string(kEos);
}

StatusOr<std::string> render_message(int index, const RenderContext& ctx) {
    const OrderedJson& msg = ctx.messages[index];
    const std::string role = role_of(msg);
    if (role == "system") {
        DSA_ASSIGN_OR_RETURN(std::string attachments, render_attachments(msg, ctx.options));
        return get_string(msg, "content") + attachments;
    }
    if (role == "developer") {
        const std::string content = get_string(msg, "content");
        if (content.empty()) return invalid_argument("dsv32: a developer message needs content (message {})", index);
        DSA_ASSIGN_OR_RETURN(std::string attachments, render_attachments(msg, ctx.options));
        return user_turn(attachments + "\n\n# The user's message is: " + content, index, ctx);
    }
    if (role == "user") return user_turn(get_string(msg, "content"), index, ctx);
    if (role == "tool") return render_tool_result(index, ctx);
    if (role == "assistant") return render_assistant(index, ctx);
    return invalid_argument("dsv32: unknown message role '{}' (message {})", role, index);
}

// SGLang's preparation: system message first (inserted empty if absent), tools attached to it.
StatusOr<OrderedJson> prepare_messages(const OrderedJson& messages, const OrderedJson& tools) {
    if (!messages.is_array()) return invalid_argument("dsv32: messages must be an array");
    OrderedJson prepared = OrderedJson::array();
    for (const auto& msg : messages) {
        if (!msg.is_object()) return invalid_argument("dsv32: every message must be an object");
        prepared.push_back(msg);
    }
    if (prepared.empty() || role_of(prepared[0]) != "system") {
        prepared.insert(prepared.begin(), OrderedJson{{"role", "system"}, {"content", ""}});
    }
    if (tools.is_array() && !tools.empty()) prepared[0]["tools"] = tools;
    return prepared;
}

// Removes reasoning from assistant messages before the last user/developer message.
void drop_thinking_messages(OrderedJson& messages, int last_user_idx) {
    for (int i = 0; i < last_user_idx; ++i) {
        if (role_of(messages[i]) != "assistant") continue;
        messages[i].erase("reasoning_content");
        messages[i].erase("reasoning");
    }
}

void append_escaped_key(std::string& out, const std::string& key) { out += python_json_dumps(OrderedJson(key)); }

}  // namespace

std::string python_json_dumps(const OrderedJson& value) {
    if (value.is_object()) {
        std::string out = "{";
        bool first = true;
        for (const auto& [key, item] : value.items()) {
            if (!first) out += ", ";
            append_escaped_key(out, key);
            out += ": " + python_json_dumps(item);
            first = false;
        }
        return out + "}";
    }
    if (value.is_array()) {
        std::string out = "[";
        for (size_t i = 0; i < value.size(); ++i) out += (i ? ", " : "") + python_json_dumps(value[i]);
        return out + "]";
    }
    return value.dump(-1, ' ', /*ensure_ascii=*/false, OrderedJson::error_handler_t::replace);
}

StatusOr<std::string> encode_dsv32(const OrderedJson& messages, const OrderedJson& tools, const Dsv32Options& options) {
    DSA_ASSIGN_OR_RETURN(OrderedJson prepared, prepare_messages(messages, tools));
    const bool thinking = options.thinking_mode == Dsv32ThinkingMode::kThinking;
    const int last_user_idx = find_last_user_index(prepared);
    if (thinking && options.drop_thinking) drop_thinking_messages(prepared, last_user_idx);
    const RenderContext ctx{prepared, last_user_idx, thinking, options};
    std::string prompt = options.add_bos ? std::string(kBos) : "";
    for (int i = 0; i < static_cast<int>(prepared.size()); ++i) {
        DSA_ASSIGN_OR_RETURN(std::string part, render_message(i, ctx));
        prompt += part;
    }
    return prompt;
}

}  // namespace dsa::text
