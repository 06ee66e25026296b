// The Jinja renderer: walks the AST with a stack of scopes and an output buffer. Statements are in
// render.cpp, expressions in eval.cpp, filters in filters.cpp, `is` tests in tests.cpp, methods of str / dict /
// list in methods.cpp and global functions in globals.cpp. Every render is bounded by Limits (output size,
// collection size, total loop iterations, macro call depth).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/jinja/ast.h"
#include "text/jinja/value.h"

namespace dsa::text::jinja {

struct Limits {
    size_t max_output_bytes = 32u << 20;  // also the largest string any expression may build
    size_t max_items = 1u << 20;          // largest list or range() a template may build
    uint64_t max_loop_iterations = 10'000'000;
    int max_call_depth = 100;
    int max_render_depth = 1500;  // nested statements + expressions being evaluated (bounds stack use)
};

class Interpreter {
public:
    Interpreter(const Limits& limits, const std::unordered_map<std::string, Value>& globals);

    // Renders `body` with `context` as the template's variables.
    std::string render(const Body& body, const Value& context);

    // ---- used by filters, tests, methods and globals --------------------------------------------------
    Value eval(const Expr& e);
    Value call(const Value& callee, CallArgs& args);
    Value get_attr(const Value& obj, const std::string& name);
    Value get_item(const Value& obj, const Value& key);
    Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
    bool apply_test(const std::string& name, const Value& input, CallArgs& args);
    bool has_test(const std::string& name) const;
    // Elements of an iterable value (list items, dict keys, string characters); throws if not iterable.
    Array iterate(const Value& v);
    void check_string_size(size_t n) const;
    void check_items(size_t n) const;
    void count_iteration();
    const Limits& limits() const { return limits_; }

private:
    enum class Flow { kNormal, kBreak, kContinue };
    struct DepthGuard {
        explicit DepthGuard(Interpreter* in) : in_(in) {
            if (++in_->render_depth_ > in_->limits_.max_render_depth) {
                --in_->render_depth_;
                throw JinjaError("template evaluation nested too deeply");
            }
        }
        ~DepthGuard() { --in_->render_depth_; }
        Interpreter* in_;
    };
    using Frame = std::unordered_map<std::string, Value>;

    // render.cpp
    Flow render_body(const Body& body);
    Flow render_stmt(const Stmt& s);
    void emit(const std::string& text);
    void render_if(const Stmt& s, Flow* flow);
    Flow render_for(const Stmt& s);
    void render_set(const Stmt& s);
    void render_set_block(const Stmt& s);
    void define_macro(const Stmt& s);
    void render_call_block(const Stmt& s);
    void render_filter_block(const Stmt& s);
    std::string capture(const Body& body, Flow* flow = nullptr);
    Value apply_filter_chain(const Expr& chain, Value input);
    Value call_macro(const Stmt& macro, CallArgs& args, const Value& caller);
    void assign_targets(const std::vector<std::string>& targets, const Value& v);
    Value make_loop(const Array& items, size_t i, const Value& cycle);
    Value lookup(const std::string& name) const;
    void set_var(const std::string& name, Value v);
    void push_frame() { frames_.emplace_back(); }
    void pop_frame() { frames_.pop_back(); }

    // eval.cpp
    Value eval_node(const Expr& e);
    Value eval_binary(const Expr& e);
    Value eval_compare(const Expr& e);
    Value eval_call(const Expr& e);
    Value eval_filter(const Expr& e);
    Value eval_test(const Expr& e);
    Value eval_slice(const Expr& e);
    CallArgs eval_args(const Expr& e, size_t first_arg);
    Value arithmetic(const std::string& op, const Value& a, const Value& b);

    Limits limits_;
    const std::unordered_map<std::string, Value>& globals_;
    std::vector<Frame> frames_;
    std::vector<size_t> frame_base_;  // first frame of each active macro call
    std::string* out_ = nullptr;
    uint64_t iterations_ = 0;
    int call_depth_ = 0;
    int render_depth_ = 0;
};

// Helpers shared by the builtins.
[[noreturn]] void throw_undefined(const Value& v);
Value bound_method(const Value& self, const std::string& name);  // methods.cpp; undefined when unknown
std::unordered_map<std::string, Value> default_globals();       // globals.cpp
// Python json.dumps (json_dump.cpp); indent nullopt means None.
struct JsonDumpOptions {
    std::optional<std::string> indent;
    bool ensure_ascii = false;
    bool sort_keys = false;
    std::string item_sep = ", ";
    std::string key_sep = ": ";
};
std::string json_dumps(const Value& v, const JsonDumpOptions& options);
bool is_filter_name(const std::string& name);  // filters.cpp
bool is_test_name(const std::string& name);    // tests.cpp
// Python `item in container`.
bool contains(Interpreter& in, const Value& container, const Value& item);
// Python `fmt % args` (printf-style: %s %r %d %i %f %%).
std::string percent_format(const std::string& fmt, const Value& args);
// Value -> nlohmann JSON (for callers of the API); throws for callables and undefined.
OrderedJson to_json(const Value& v);

}  // namespace dsa::text::jinja
