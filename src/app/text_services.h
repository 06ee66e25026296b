// Adapts the text side (tokenizer, chat template or the dsv32 encoder, detokenizer) and the parsers onto the
// api layer's small interfaces (api/text_services.h). The prompt builder follows SGLang's choice (API_SPEC §1):
// --tool-call-parser deepseekv32, or a DeepSeek-V3 architecture without a chat template, selects the native
// dsv32 encoder; otherwise the --chat-template file or the tokenizer_config.json template is rendered.
#pragma once

#include <memory>
#include <string>

#include "api/text_services.h"
#include "base/status.h"
#include "model/config.h"
#include "text/tokenizer.h"

namespace dsa::app {

struct TextSetup {
    std::string tokenizer_dir;     // holds tokenizer.json (+ tokenizer_config.json)
    std::string chat_template;     // --chat-template file; empty = tokenizer_config.json's
    std::string tool_call_parser;  // SGLang names; empty = none
    std::string reasoning_parser;
};

struct LoadedText {
    std::shared_ptr<const text::Tokenizer> tokenizer;
    api::TextServices services;
    std::string prompt_format;  // "dsv32" or "jinja", for the startup log
};

// Reads the tokenizer and the template and checks the parser names. `config` decides the dsv32 fallback.
StatusOr<LoadedText> load_text_services(const TextSetup& setup, const model::ModelConfig& config);

}  // namespace dsa::app
