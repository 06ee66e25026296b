// The text-side pieces the api layer needs, behind small interfaces so that api/ can be built and tested
// with fakes: prompt building (chat template / dsv32 encoder + tokenizer), encoding of raw prompts,
// incremental detokenizers, and reasoning / tool-call parsers. app/ adapts text/ and parsers/ onto these.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/status.h"
#include "engine/engine_client.h"

namespace dsa::api {

// What a chat request gives the prompt builder (API_SPEC §2.3 steps 1-6 after field parsing).
struct ChatPromptInput {
    OrderedJson messages;              // normalised: arguments parsed into objects, roles lower-case
    OrderedJson tools;                 // array (possibly empty)
    std::string tool_choice;           // "none", "auto", "required" or "function"
    std::string named_tool;            // the name when tool_choice == "function"
    OrderedJson chat_template_kwargs;  // object, server defaults merged under the request's
    std::optional<std::string> reasoning_effort;
    bool continue_final_message = false;
};

struct PromptResult {
    std::vector<int32_t> input_ids;
    bool thinking = false;  // the prompt opened a reasoning block: the reasoning parser starts in reasoning
};

class PromptBuilder {
public:
    virtual ~PromptBuilder() = default;
    // Errors are user errors (template exception, invalid message order) and become HTTP 400.
    virtual StatusOr<PromptResult> build(const ChatPromptInput& input) const = 0;
};

// Raw text <-> ids for /v1/completions and /generate, and token strings for logprobs.
class TextCodec {
public:
    virtual ~TextCodec() = default;
    virtual std::vector<int32_t> encode(std::string_view text) const = 0;
    virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const = 0;
    virtual std::string token_text(int32_t id) const = 0;
};

// Incremental detokenizer, one per choice: add() returns the text that became final.
class Detokenizer {
public:
    virtual ~Detokenizer() = default;
    virtual std::string add(int32_t id) = 0;
    virtual std::string flush() = 0;
};

struct ReasoningSplit {
    std::string reasoning;
    std::string content;
};

// Streaming reasoning separator (API_SPEC §7.2); parse() is for a fresh parser and the whole text.
class ReasoningSplitter {
public:
    virtual ~ReasoningSplitter() = default;
    virtual ReasoningSplit feed(std::string_view delta) = 0;
    virtual ReasoningSplit finish() = 0;
    virtual ReasoningSplit parse(std::string_view text) = 0;
};

struct ToolCallFragment {
    int index = 0;                    // call ordinal in this choice
    std::optional<std::string> id;    // only on a call's first fragment
    std::optional<std::string> name;  // only on a call's first fragment
    std::string arguments;            // a fragment of the JSON arguments text
};

struct ToolStreamDelta {
    std::string normal_text;
    std::vector<ToolCallFragment> calls;
};

struct ParsedToolCall {
    int tool_index = 0;  // position of the function in the request's tools (non-streaming "index")
    std::string id;
    std::string name;
    std::string arguments;
};

struct ToolParseOutput {
    std::string content;
    std::vector<ParsedToolCall> calls;
};

// Streaming tool-call parser (API_SPEC §4-§6); parse() is for a fresh parser and the whole text.
class ToolCallExtractor {
public:
    virtual ~ToolCallExtractor() = default;
    virtual ToolStreamDelta feed(std::string_view delta) = 0;
    virtual ToolStreamDelta finish() = 0;
    virtual ToolParseOutput parse(std::string_view text) = 0;
};

// A constrained-decoding request (API_SPEC §2.3 step 3, §5.4, §6.4): a tool call in the --tool-call-parser
// format (tool_choice "required": one or more calls of any tool; named: exactly one call of `named`), or one
// JSON value matching `schema` (response_format). With `after_think` the constraint starts after "</think>".
struct ConstraintSpec {
    enum class Kind { kToolCall, kJson };
    Kind kind = Kind::kJson;
    OrderedJson tools;                 // kToolCall
    std::optional<std::string> named;  // kToolCall
    bool single_call = false;          // kToolCall: parallel_tool_calls false
    OrderedJson schema;                // kJson
    bool after_think = false;
};

struct ReasoningConfig {
    bool thinking = false;
    bool separate_reasoning = true;
    bool stream_reasoning = true;
};

// Everything the api layer needs from the text side. Parser factories are empty when the server runs
// without --reasoning-parser / --tool-call-parser.
struct TextServices {
    std::shared_ptr<const PromptBuilder> prompt_builder;
    std::shared_ptr<const TextCodec> codec;
    std::function<std::unique_ptr<Detokenizer>(bool skip_special_tokens)> make_detokenizer;
    std::function<StatusOr<std::unique_ptr<ReasoningSplitter>>(const ReasoningConfig&)> make_reasoning_parser;
    std::function<StatusOr<std::unique_ptr<ToolCallExtractor>>(const OrderedJson& tools)> make_tool_parser;
    // One stateful constraint per engine request; InvalidArgument for a bad schema. Empty: not available.
    std::function<StatusOr<std::shared_ptr<engine::TokenConstraint>>(const ConstraintSpec&)> make_constraint;
};

}  // namespace dsa::api
