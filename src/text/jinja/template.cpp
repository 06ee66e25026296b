// Template: lex + parse into a shared AST; render with a fresh Interpreter per call. Internal JinjaErrors
// become Statuses here, the only place exceptions of the interpreter are caught.
#include "text/jinja/template.h"

#include "text/jinja/lexer.h"
#include "text/jinja/parser.h"

namespace dsa::text::jinja {

struct Template::Parsed {
    Body body;
    TemplateOptions options;
    std::unordered_map<std::string, Value> globals;
};

namespace {

Status to_status(const char* what, const JinjaError& e) {
    if (e.has_pos()) {
        return invalid_argument("{} at line {}, column {}: {}", what, e.pos().line, e.pos().col, e.what());
    }
    return invalid_argument("{}: {}", what, e.what());
}

}  // namespace

StatusOr<Template> Template::parse(std::string_view source, const TemplateOptions& options) {
    auto parsed = std::make_shared<Parsed>();
    parsed->options = options;
    parsed->globals = default_globals();
    try {
        LexOptions lex;
        lex.trim_blocks = options.trim_blocks;
        lex.lstrip_blocks = options.lstrip_blocks;
        lex.keep_trailing_newline = options.keep_trailing_newline;
        parsed->body = parse_template(tokenize(source, lex));
    } catch (const JinjaError& e) {
        return to_status("template syntax error", e);
    }
    return Template(std::move(parsed));
}

StatusOr<std::string> Template::render(const OrderedJson& context) const {
    if (!context.is_object()) return invalid_argument("template context must be a JSON object");
    Value ctx;
    try {
        ctx = Value::from_json(context);
    } catch (const JinjaError& e) {
        return to_status("template context", e);
    }
    return render(ctx);
}

StatusOr<std::string> Template::render(const Value& context) const {
    try {
        Interpreter interp(parsed_->options.limits, parsed_->globals);
        return interp.render(parsed_->body, context);
    } catch (const JinjaError& e) {
        return to_status("template error", e);
    } catch (const std::bad_alloc&) {
        return Status(StatusCode::kResourceExhausted, "template render ran out of memory");
    } catch (const std::exception& e) {
        return Status(StatusCode::kInternal, std::string("template render failed: ") + e.what());
    }
}

}  // namespace dsa::text::jinja
