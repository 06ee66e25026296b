// ChatTemplate (see chat_template.h): builds the render context in transformers' order and delegates to
// the Jinja interpreter.
#include "text/chat_template.h"

#include <fstream>
#include <sstream>

namespace dsa::text {

StatusOr<ChatTemplate> ChatTemplate::from_string(const std::string& source, const jinja::TemplateOptions& options) {
    DSA_ASSIGN_OR_RETURN(jinja::Template tmpl, jinja::Template::parse(source, options));
    return ChatTemplate(source, std::move(tmpl));
}

StatusOr<ChatTemplate> ChatTemplate::from_file(const std::string& path, const jinja::TemplateOptions& options) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return not_found("cannot open chat template file '{}'", path);
    std::stringstream buf;
    buf << in.rdbuf();
    std::string source = buf.str();
    size_t lo = source.find_first_not_of('\n');
    size_t hi = source.find_last_not_of('\n');
    source = lo == std::string::npos ? std::string() : source.substr(lo, hi - lo + 1);
    return from_string(source, options);
}

StatusOr<std::string> ChatTemplate::render(const OrderedJson& messages, const OrderedJson& tools,
                                           bool add_generation_prompt, const OrderedJson& extra_kwargs) const {
    if (!messages.is_array()) return invalid_argument("chat template: messages must be a JSON array");
    if (!tools.is_null() && !tools.is_array()) return invalid_argument("chat template: tools must be an array or null");
    if (!extra_kwargs.is_null() && !extra_kwargs.is_object()) {
        return invalid_argument("chat template: extra kwargs must be a JSON object");
    }
    OrderedJson context = OrderedJson::object();
    context["messages"] = messages;
    context["tools"] = tools;
    context["documents"] = nullptr;
    context["add_generation_prompt"] = add_generation_prompt;
    if (extra_kwargs.is_object()) {
        for (const auto& [key, value] : extra_kwargs.items()) {
            if (key == "messages" || key == "tools" || key == "add_generation_prompt") continue;
            context[key] = value;
        }
    }
    return template_.render(context);
}

}  // namespace dsa::text
