// Text-side adapters for the api layer.
#include "app/text_services.h"

#include <optional>

#include "base/json.h"
#include "base/mapped_file.h"
#include "constrain/formats.h"
#include "constrain/token_masker.h"
#include "parsers/factory.h"
#include "text/chat_template.h"
#include "text/detokenizer.h"
#include "text/dsv32_encoding.h"

namespace dsa::app {
namespace {

// "thinking" (DeepSeek) or "enable_thinking" (GLM, default true) from the request's template kwargs.
bool wants_thinking(const OrderedJson& kwargs, bool default_on) {
    if (kwargs.is_object()) {
        for (const char* key : {"thinking", "enable_thinking"}) {
            auto it = kwargs.find(key);
            if (it != kwargs.end() && it->is_boolean()) return it->get<bool>();
        }
    }
    return default_on;
}

// The prompt leaves the model inside a reasoning block when its last <think> is not closed.
bool opens_reasoning(const std::string& prompt) {
    size_t open = prompt.rfind("<think>");
    if (open == std::string::npos) return false;
    size_t close = prompt.rfind("</think>");
    return close == std::string::npos || close < open;
}

class TokenizerCodec final : public api::TextCodec {
public:
    explicit TokenizerCodec(std::shared_ptr<const text::Tokenizer> tok) : tok_(std::move(tok)) {}
    std::vector<int32_t> encode(std::string_view text) const override { return tok_->encode(text); }
    std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
        return tok_->decode(ids, skip_special ? text::SpecialTokens::kSkip : text::SpecialTokens::kKeep);
    }
    std::string token_text(int32_t id) const override {
        const int32_t one[1] = {id};
        return tok_->decode(one, text::SpecialTokens::kKeep);
    }

private:
    std::shared_ptr<const text::Tokenizer> tok_;
};

class Dsv32PromptBuilder final : public api::PromptBuilder {
public:
    explicit Dsv32PromptBuilder(std::shared_ptr<const text::Tokenizer> tok) : tok_(std::move(tok)) {}
    StatusOr<api::PromptResult> build(const api::ChatPromptInput& in) const override {
        const bool thinking = wants_thinking(in.chat_template_kwargs, /*default_on=*/false);
        text::Dsv32Options opt = text::Dsv32Options::sglang(thinking ? text::Dsv32ThinkingMode::kThinking
                                                                     : text::Dsv32ThinkingMode::kChat);
        DSA_ASSIGN_OR_RETURN(std::string prompt, text::encode_dsv32(in.messages, in.tools, opt));
        return api::PromptResult{tok_->encode(prompt), opens_reasoning(prompt)};
    }

private:
    std::shared_ptr<const text::Tokenizer> tok_;
};

class JinjaPromptBuilder final : public api::PromptBuilder {
public:
    JinjaPromptBuilder(std::shared_ptr<const text::Tokenizer> tok, text::ChatTemplate tmpl, OrderedJson specials)
        : tok_(std::move(tok)), tmpl_(std::move(tmpl)), specials_(std::move(specials)) {}
    StatusOr<api::PromptResult> build(const api::ChatPromptInput& in) const override {
        OrderedJson kwargs = specials_;
        if (in.chat_template_kwargs.is_object()) {
            for (auto& [k, v] : in.chat_template_kwargs.items()) kwargs[k] = v;
        }
        const bool add_generation_prompt = !in.continue_final_message;
        // tool_choice "none" hides the tools from a Jinja template (the dsv32 encoder keeps them), as SGLang.
        const bool pass_tools = in.tools.is_array() && !in.tools.empty() && in.tool_choice != "none";
        OrderedJson tools = pass_tools ? in.tools : OrderedJson();
        DSA_ASSIGN_OR_RETURN(std::string prompt, tmpl_.render(in.messages, tools, add_generation_prompt, kwargs));
        return api::PromptResult{tok_->encode(prompt), opens_reasoning(prompt)};
    }

private:
    std::shared_ptr<const text::Tokenizer> tok_;
    text::ChatTemplate tmpl_;
    OrderedJson specials_;  // bos_token / eos_token strings the templates use
};

class DetokenizerAdapter final : public api::Detokenizer {
public:
    DetokenizerAdapter(std::shared_ptr<const text::Tokenizer> tok, bool skip)
        : d_(std::move(tok), skip ? text::SpecialTokens::kSkip : text::SpecialTokens::kKeep) {}
    std::string add(int32_t id) override { return d_.add(id); }
    std::string flush() override { return d_.flush(); }

private:
    text::IncrementalDetokenizer d_;
};

class ReasoningAdapter final : public api::ReasoningSplitter {
public:
    explicit ReasoningAdapter(std::unique_ptr<parsers::ReasoningParser> p) : p_(std::move(p)) {}
    api::ReasoningSplit feed(std::string_view d) override { return conv(p_->feed(d)); }
    api::ReasoningSplit finish() override { return conv(p_->finish()); }
    api::ReasoningSplit parse(std::string_view t) override { return conv(p_->parse(t)); }

private:
    static api::ReasoningSplit conv(parsers::ReasoningDelta d) { return {std::move(d.reasoning), std::move(d.content)}; }
    std::unique_ptr<parsers::ReasoningParser> p_;
};

class ToolAdapter final : public api::ToolCallExtractor {
public:
    explicit ToolAdapter(std::unique_ptr<parsers::ToolCallParser> p) : p_(std::move(p)) {}
    api::ToolStreamDelta feed(std::string_view d) override { return conv(p_->feed(d)); }
    api::ToolStreamDelta finish() override { return conv(p_->finish()); }
    api::ToolParseOutput parse(std::string_view text) override {
        parsers::ToolParseResult r = p_->parse(text);
        api::ToolParseOutput out{std::move(r.content), {}};
        for (parsers::ToolCall& c : r.calls) {
            out.calls.push_back({c.tool_index, std::move(c.id), std::move(c.name), std::move(c.arguments)});
        }
        return out;
    }

private:
    static api::ToolStreamDelta conv(parsers::ToolParseDelta d) {
        api::ToolStreamDelta out{std::move(d.normal_text), {}};
        for (parsers::ToolCallDelta& c : d.calls) {
            out.calls.push_back({c.index, std::move(c.id), std::move(c.name), std::move(c.arguments)});
        }
        return out;
    }
    std::unique_ptr<parsers::ToolCallParser> p_;
};

// A constrain::TokenMasker behind the engine's opaque constraint interface (engine thread only).
class ConstraintAdapter final : public engine::TokenConstraint {
public:
    ConstraintAdapter(std::shared_ptr<const constrain::Grammar> g, std::shared_ptr<const constrain::TokenTrie> trie)
        : masker_(std::move(g), std::move(trie)) {}
    bool fill_next_mask(std::span<const int32_t> ids, std::span<uint64_t> mask) override {
        return masker_.fill_next(ids, mask);
    }

private:
    constrain::TokenMasker masker_;
};

// Grammars by request (the tool-call format is the --tool-call-parser's); the vocabulary trie is built once.
std::function<StatusOr<std::shared_ptr<engine::TokenConstraint>>(const api::ConstraintSpec&)> make_constraint_factory(
    std::shared_ptr<const text::Tokenizer> tok, const std::string& tool_call_parser) {
    auto trie = constrain::TokenTrie::from_tokenizer(*tok);
    return [trie, tool_call_parser](
               const api::ConstraintSpec& spec) -> StatusOr<std::shared_ptr<engine::TokenConstraint>> {
        std::shared_ptr<const constrain::Grammar> g;
        if (spec.kind == api::ConstraintSpec::Kind::kJson) {
            DSA_ASSIGN_OR_RETURN(g, constrain::json_grammar(spec.schema, spec.after_think));
        } else {
            StatusOr<constrain::ToolFormat> format = constrain::tool_format_for_parser(tool_call_parser);
            if (!format.is_ok())
                return invalid_argument("tool_choice \"required\" / a named tool is not supported with --tool-call-parser '{}'",
                                        tool_call_parser);
            DSA_ASSIGN_OR_RETURN(g, constrain::tool_call_grammar(
                                        constrain::ToolCallSpec{*format, spec.tools, spec.named, spec.single_call, spec.after_think}));
        }
        return std::shared_ptr<engine::TokenConstraint>(std::make_shared<ConstraintAdapter>(std::move(g), trie));
    };
}

// tokenizer_config.json: the chat template and the bos/eos strings (either plain strings or AddedToken dicts).
struct TokenizerConfig {
    std::optional<std::string> chat_template;
    OrderedJson specials = OrderedJson::object();
};

StatusOr<TokenizerConfig> read_tokenizer_config(const std::string& dir) {
    TokenizerConfig tc;
    const std::string path = join_path(dir, "tokenizer_config.json");
    if (!file_exists(path)) return tc;
    DSA_ASSIGN_OR_RETURN(std::string text, read_file(path));
    OrderedJson j = OrderedJson::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return data_loss("{}: not a JSON object", path);
    if (auto it = j.find("chat_template"); it != j.end() && it->is_string()) tc.chat_template = it->get<std::string>();
    for (const char* key : {"bos_token", "eos_token"}) {
        auto it = j.find(key);
        if (it == j.end()) continue;
        if (it->is_string()) tc.specials[key] = *it;
        else if (it->is_object() && it->contains("content")) tc.specials[key] = (*it)["content"];
    }
    return tc;
}

StatusOr<std::shared_ptr<const api::PromptBuilder>> make_prompt_builder(const TextSetup& s, const model::ModelConfig& c,
                                                                        std::shared_ptr<const text::Tokenizer> tok,
                                                                        std::string* format) {
    DSA_ASSIGN_OR_RETURN(TokenizerConfig tc, read_tokenizer_config(s.tokenizer_dir));
    const bool deepseek_arch = c.family == model::ModelFamily::kDeepSeekV32;
    if (s.tool_call_parser == "deepseekv32" || (deepseek_arch && s.chat_template.empty() && !tc.chat_template)) {
        *format = "dsv32";
        return std::shared_ptr<const api::PromptBuilder>(std::make_shared<Dsv32PromptBuilder>(tok));
    }
    *format = "jinja";
    StatusOr<text::ChatTemplate> tmpl = s.chat_template.empty()
                                            ? (tc.chat_template ? text::ChatTemplate::from_string(*tc.chat_template)
                                                                : StatusOr<text::ChatTemplate>(not_found(
                                                                      "no chat template: {} has none and no "
                                                                      "--chat-template was given",
                                                                      s.tokenizer_dir)))
                                            : text::ChatTemplate::from_file(s.chat_template);
    if (!tmpl.is_ok()) return tmpl.status();
    return std::shared_ptr<const api::PromptBuilder>(
        std::make_shared<JinjaPromptBuilder>(tok, std::move(tmpl).value(), tc.specials));
}

}  // namespace

StatusOr<LoadedText> load_text_services(const TextSetup& s, const model::ModelConfig& config) {
    LoadedText out;
    DSA_ASSIGN_OR_RETURN(out.tokenizer, text::Tokenizer::from_file(join_path(s.tokenizer_dir, "tokenizer.json")));
    DSA_ASSIGN_OR_RETURN(out.services.prompt_builder,
                         make_prompt_builder(s, config, out.tokenizer, &out.prompt_format));
    out.services.codec = std::make_shared<TokenizerCodec>(out.tokenizer);
    auto tok = out.tokenizer;
    out.services.make_detokenizer = [tok](bool skip) -> std::unique_ptr<api::Detokenizer> {
        return std::make_unique<DetokenizerAdapter>(tok, skip);
    };
    out.services.make_constraint = make_constraint_factory(tok, s.tool_call_parser);
    if (!s.reasoning_parser.empty()) {
        DSA_RETURN_IF_ERROR(parsers::make_reasoning_parser(s.reasoning_parser, {}).status());
        const std::string name = s.reasoning_parser;
        out.services.make_reasoning_parser =
            [name](const api::ReasoningConfig& rc) -> StatusOr<std::unique_ptr<api::ReasoningSplitter>> {
            DSA_ASSIGN_OR_RETURN(auto p, parsers::make_reasoning_parser(
                                             name, {rc.thinking, rc.separate_reasoning, rc.stream_reasoning}));
            return std::unique_ptr<api::ReasoningSplitter>(std::make_unique<ReasoningAdapter>(std::move(p)));
        };
    }
    if (!s.tool_call_parser.empty()) {
        DSA_RETURN_IF_ERROR(parsers::make_tool_call_parser(s.tool_call_parser, OrderedJson::array()).status());
        const std::string name = s.tool_call_parser;
        out.services.make_tool_parser =
            [name](const OrderedJson& tools) -> StatusOr<std::unique_ptr<api::ToolCallExtractor>> {
            DSA_ASSIGN_OR_RETURN(auto p, parsers::make_tool_call_parser(name, tools));
            return std::unique_ptr<api::ToolCallExtractor>(std::make_unique<ToolAdapter>(std::move(p)));
        };
    }
    return out;
}

}  // namespace dsa::app
