// Public entry point of the Jinja interpreter: parse a template once, render it many times (thread-safe:
// a render only reads the AST). Defaults match how transformers renders chat templates: trim_blocks and
// lstrip_blocks on, the trailing newline of the source dropped, its tojson / raise_exception / strftime_now.
// Syntax and runtime errors come back as Status messages carrying "line L, column C".
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/json.h"
#include "base/status.h"
#include "text/jinja/interpreter.h"

namespace dsa::text::jinja {

struct TemplateOptions {
    bool trim_blocks = true;
    bool lstrip_blocks = true;
    bool keep_trailing_newline = false;
    Limits limits;
};

class Template {
public:
    static StatusOr<Template> parse(std::string_view source, const TemplateOptions& options = {});

    // `context` must be a JSON object; its keys become template variables.
    StatusOr<std::string> render(const OrderedJson& context) const;
    StatusOr<std::string> render(const Value& context) const;

private:
    struct Parsed;
    explicit Template(std::shared_ptr<const Parsed> parsed) : parsed_(std::move(parsed)) {}
    std::shared_ptr<const Parsed> parsed_;
};

}  // namespace dsa::text::jinja
