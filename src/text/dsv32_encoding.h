// The DeepSeek-V3.2 / V3.2-Speciale native chat encoder ("dsv32"): OpenAI-style messages (+ tools) to one
// prompt string, byte-identical to DeepSeek's encoding_dsv32.py as vendored by SGLang. Thinking vs chat mode,
// reasoning of earlier turns dropped, the tools block, DSML tool calls in assistant turns, grouped tool
// results. Also the Python-style JSON serialiser (json.dumps, ensure_ascii=False) the prompt and the
// tool-call parsers need.
#pragma once

#include <string>

#include "base/json.h"
#include "base/status.h"

namespace dsa::text {

enum class Dsv32ThinkingMode { kChat, kThinking };

// Which text of the tools preamble: DeepSeek's official test vector (blank lines between paragraphs) or
// SGLang's vendored copy (single newlines). See the API spec's tools-block divergence note.
enum class Dsv32ToolsPreamble { kOfficial, kSglang };

// How one tool line is serialised: the client's `function` object verbatim (official encoder), or SGLang's
// pydantic dump {"description", "name", "parameters", "strict"} in that fixed order.
enum class Dsv32ToolLine { kVerbatim, kSglang };

struct Dsv32Options {
    Dsv32ThinkingMode thinking_mode = Dsv32ThinkingMode::kChat;
    bool drop_thinking = true;  // remove reasoning of assistant turns before the last user message
    Dsv32ToolsPreamble preamble = Dsv32ToolsPreamble::kOfficial;
    Dsv32ToolLine tool_line = Dsv32ToolLine::kVerbatim;
    bool add_bos = true;

    // The flavour that reproduces SGLang's prompts byte for byte.
    static Dsv32Options sglang(Dsv32ThinkingMode mode) {
        return {mode, /*drop_thinking=*/true, Dsv32ToolsPreamble::kSglang, Dsv32ToolLine::kSglang, true};
    }
};

// Encodes OpenAI-format `messages` with the request's `tools` (an array of {"type":"function","function":{..}},
// or null / empty). Content arrays are flattened (text parts joined with one space), a null content is "",
// an empty system message is inserted first when there is none, and the tools are attached to that first
// system message — SGLang's preparation steps. Errors are kInvalidArgument (bad roles, tool results without
// matching tool calls, arguments that are not a JSON object, ...).
StatusOr<std::string> encode_dsv32(const OrderedJson& messages, const OrderedJson& tools, const Dsv32Options& options);

// Python json.dumps(value, ensure_ascii=False): ", " and ": " separators, non-ASCII kept, object key order
// kept. Invalid UTF-8 in strings is replaced by U+FFFD rather than throwing.
std::string python_json_dumps(const OrderedJson& value);

}  // namespace dsa::text
