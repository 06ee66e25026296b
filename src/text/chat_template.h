// ChatTemplate: a Hugging Face style Jinja chat template (from tokenizer_config.json, or a file given with
// --chat-template) rendered the way transformers' apply_chat_template does: variables `messages`, `tools`,
// `documents`, `add_generation_prompt`, plus extra kwargs (chat_template_kwargs such as `thinking` or
// `enable_thinking`, and special tokens such as `bos_token` / `eos_token`).
#pragma once

#include <string>

#include "base/json.h"
#include "base/status.h"
#include "text/jinja/template.h"

namespace dsa::text {

class ChatTemplate {
public:
    static StatusOr<ChatTemplate> from_string(const std::string& source,
                                              const jinja::TemplateOptions& options = {});
    // Reads a template file the way SGLang's --chat-template loader does (leading and trailing newlines of
    // the file are stripped).
    static StatusOr<ChatTemplate> from_file(const std::string& path, const jinja::TemplateOptions& options = {});

    // messages: JSON array of message objects; tools: JSON array or null (the template then sees None);
    // extra_kwargs: JSON object (or null) of further template variables; it cannot replace messages, tools
    // or add_generation_prompt.
    StatusOr<std::string> render(const OrderedJson& messages, const OrderedJson& tools, bool add_generation_prompt,
                                 const OrderedJson& extra_kwargs) const;

    const std::string& source() const { return source_; }

private:
    ChatTemplate(std::string source, jinja::Template tmpl) : source_(std::move(source)), template_(std::move(tmpl)) {}
    std::string source_;
    jinja::Template template_;
};

}  // namespace dsa::text
