// Test doubles for api::TextServices: a byte-level codec (ids 0-255 are bytes; 256 "<eos>" is special,
// 257 "<think>", 258 "</think>"), a detokenizer that holds incomplete UTF-8, a prompt builder that joins
// messages, and small reasoning / tool-call parsers ("<tool>name|{args}</tool>"). Shared by api and server tests.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/generation.h"
#include "api/text_services.h"

namespace dsa::api::testing {

inline constexpr int32_t kEos = 256;
inline constexpr int32_t kThink = 257;
inline constexpr int32_t kThinkEnd = 258;

inline std::string fake_token_text(int32_t id) {
    if (id < 256) return std::string(1, static_cast<char>(id));
    if (id == kEos) return "<eos>";
    if (id == kThink) return "<think>";
    if (id == kThinkEnd) return "</think>";
    return "<unk>";
}

inline std::vector<int32_t> bytes_to_ids(std::string_view text) {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
}

class FakeCodec : public TextCodec {
public:
    std::vector<int32_t> encode(std::string_view text) const override { return bytes_to_ids(text); }
    std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
        std::string s;
        for (int32_t id : ids)
            if (!(skip_special && id == kEos)) s += fake_token_text(id);
        return s;
    }
    std::string token_text(int32_t id) const override { return fake_token_text(id); }
};

class FakeDetokenizer : public Detokenizer {
public:
    explicit FakeDetokenizer(bool skip_special) : skip_special_(skip_special) {}
    std::string add(int32_t id) override {
        if (skip_special_ && id == kEos) return {};
        pending_ += fake_token_text(id);
        size_t complete = complete_prefix(pending_);
        std::string out = pending_.substr(0, complete);
        pending_.erase(0, complete);
        return out;
    }
    std::string flush() override {
        std::string out;
        out.swap(pending_);
        return out;
    }

private:
    // Length of the longest prefix that does not end inside a UTF-8 sequence.
    static size_t complete_prefix(const std::string& s) {
        size_t n = s.size();
        for (size_t back = 1; back <= 3 && back <= n; ++back) {
            unsigned char c = static_cast<unsigned char>(s[n - back]);
            if ((c & 0xC0) == 0x80) continue;
            int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
            return len > static_cast<int>(back) ? n - back : n;
        }
        return n;
    }
    bool skip_special_;
    std::string pending_;
};

class FakePromptBuilder : public PromptBuilder {
public:
    StatusOr<PromptResult> build(const ChatPromptInput& in) const override {
        std::string text;
        for (const auto& m : in.messages) {
            std::string content = m.contains("content") && m["content"].is_string() ? m["content"].get<std::string>() : "";
            if (content == "FAIL_TEMPLATE") return invalid_argument("Invalid message for role `developer`");
            text += m["role"].get<std::string>() + ": " + content + "\n";
        }
        PromptResult r;
        r.input_ids = bytes_to_ids(text);
        r.thinking = in.chat_template_kwargs.contains("thinking") && in.chat_template_kwargs["thinking"] == true;
        return r;
    }
};

// Splits at "</think>" (the decoded text of kThinkEnd); holds a partial end tag.
class FakeReasoning : public ReasoningSplitter {
public:
    explicit FakeReasoning(bool thinking) : in_reasoning_(thinking) {}
    ReasoningSplit feed(std::string_view delta) override {
        ReasoningSplit out;
        if (!in_reasoning_) {
            out.content = std::string(delta);
            return out;
        }
        buf_ += delta;
        static const std::string kEnd = "</think>";
        size_t pos = buf_.find(kEnd);
        if (pos != std::string::npos) {
            out.reasoning = buf_.substr(0, pos);
            out.content = buf_.substr(pos + kEnd.size());
            buf_.clear();
            in_reasoning_ = false;
            return out;
        }
        size_t hold = 0;
        for (size_t len = std::min(kEnd.size() - 1, buf_.size()); len > 0; --len)
            if (buf_.compare(buf_.size() - len, len, kEnd, 0, len) == 0) {
                hold = len;
                break;
            }
        out.reasoning = buf_.substr(0, buf_.size() - hold);
        buf_.erase(0, buf_.size() - hold);
        return out;
    }
    ReasoningSplit finish() override {
        ReasoningSplit out;
        out.reasoning.swap(buf_);
        return out;
    }
    ReasoningSplit parse(std::string_view text) override {
        ReasoningSplit a = feed(text), b = finish();
        return ReasoningSplit{a.reasoning + b.reasoning, a.content + b.content};
    }

private:
    bool in_reasoning_;
    std::string buf_;
};

// "<tool>name|{args}</tool>" blocks become calls; the rest is normal text. Streams a call when its block closes.
class FakeTools : public ToolCallExtractor {
public:
    ToolStreamDelta feed(std::string_view delta) override {
        buf_ += delta;
        ToolStreamDelta out;
        for (;;) {
            size_t start = buf_.find("<tool>");
            if (start == std::string::npos) {
                size_t keep = buf_.rfind('<');
                if (keep == std::string::npos || buf_.size() - keep >= 6) keep = buf_.size();
                out.normal_text += buf_.substr(0, keep);
                buf_.erase(0, keep);
                return out;
            }
            out.normal_text += buf_.substr(0, start);
            size_t end = buf_.find("</tool>", start);
            if (end == std::string::npos) {
                buf_.erase(0, start);
                return out;
            }
            std::string body = buf_.substr(start + 6, end - start - 6);
            size_t bar = body.find('|');
            ToolCallFragment f;
            f.index = num_calls_++;
            f.id = "call_" + std::to_string(f.index);
            f.name = body.substr(0, bar);
            f.arguments = bar == std::string::npos ? "{}" : body.substr(bar + 1);
            out.calls.push_back(f);
            buf_.erase(0, end + 7);
        }
    }
    ToolStreamDelta finish() override {
        ToolStreamDelta out;
        out.normal_text.swap(buf_);
        return out;
    }
    ToolParseOutput parse(std::string_view text) override {
        ToolStreamDelta a = feed(text), b = finish();
        ToolParseOutput r;
        r.content = a.normal_text + b.normal_text;
        for (const auto& f : a.calls) r.calls.push_back(ParsedToolCall{0, *f.id, *f.name, f.arguments});
        return r;
    }

private:
    std::string buf_;
    int num_calls_ = 0;
};

inline TextServices fake_text_services(bool with_parsers) {
    TextServices s;
    s.prompt_builder = std::make_shared<FakePromptBuilder>();
    s.codec = std::make_shared<FakeCodec>();
    s.make_detokenizer = [](bool skip) { return std::make_unique<FakeDetokenizer>(skip); };
    if (with_parsers) {
        s.make_reasoning_parser = [](const ReasoningConfig& c) -> StatusOr<std::unique_ptr<ReasoningSplitter>> {
            return std::unique_ptr<ReasoningSplitter>(std::make_unique<FakeReasoning>(c.thinking));
        };
        s.make_tool_parser = [](const OrderedJson&) -> StatusOr<std::unique_ptr<ToolCallExtractor>> {
            return std::unique_ptr<ToolCallExtractor>(std::make_unique<FakeTools>());
        };
    }
    return s;
}

inline ApiContext fake_context(bool with_parsers = true) {
    ApiContext ctx;
    ctx.config.served_model_name = "test-model";
    ctx.config.context_length = 4096;
    ctx.services = fake_text_services(with_parsers);
    ctx.think_end_token = kThinkEnd;
    ctx.now_unix = [] { return int64_t{1765432100}; };
    return ctx;
}

}  // namespace dsa::api::testing
