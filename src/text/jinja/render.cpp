// Statement rendering: output, if, for (loop variable, else, filter, break/continue), set (plain, tuple,
// namespace attribute, block), macros and call blocks, filter blocks. Scoping follows jinja2: a for-loop
// iteration and a macro call get fresh frames, `if` does not; a macro sees its own frames and the root.
#include <memory>

#include "text/jinja/interpreter.h"

namespace dsa::text::jinja {


Interpreter::Interpreter(const Limits& limits, const std::unordered_map<std::string, Value>& globals)
    : limits_(limits), globals_(globals) {}

std::string Interpreter::render(const Body& body, const Value& context) {
    frames_.clear();
    frames_.emplace_back();
    if (context.is_object()) {
        for (const auto& [k, v] : context.obj().entries) frames_[0][k] = v;
    }
    std::string out;
    out_ = &out;
    render_body(body);
    return out;
}

void Interpreter::check_string_size(size_t n) const {
    if (n > limits_.max_output_bytes) {
        throw JinjaError("string of " + std::to_string(n) + " bytes exceeds the limit of " +
                         std::to_string(limits_.max_output_bytes) + " bytes");
    }
}

void Interpreter::check_items(size_t n) const {
    if (n > limits_.max_items) {
        throw JinjaError("sequence of " + std::to_string(n) + " items exceeds the limit of " +
                         std::to_string(limits_.max_items) + " items");
    }
}

void Interpreter::count_iteration() {
    if (++iterations_ > limits_.max_loop_iterations) {
        throw JinjaError("template exceeded the limit of " + std::to_string(limits_.max_loop_iterations) +
                         " loop iterations");
    }
}

void Interpreter::emit(const std::string& text) {
    if (out_->size() + text.size() > limits_.max_output_bytes) {
        throw JinjaError("output exceeds the limit of " + std::to_string(limits_.max_output_bytes) + " bytes");
    }
    out_->append(text);
}

Value Interpreter::lookup(const std::string& name) const {
    size_t base = frame_base_.empty() ? 0 : frame_base_.back();
    for (size_t i = frames_.size(); i-- > base;) {
        auto it = frames_[i].find(name);
        if (it != frames_[i].end()) return it->second;
    }
    if (base > 0) {
        auto it = frames_[0].find(name);
        if (it != frames_[0].end()) return it->second;
    }
    auto it = globals_.find(name);
    if (it != globals_.end()) return it->second;
    return Value::undefined("'" + name + "' is undefined");
}

void Interpreter::set_var(const std::string& name, Value v) { frames_.back()[name] = std::move(v); }

Interpreter::Flow Interpreter::render_body(const Body& body) {
    for (const auto& s : body) {
        Flow f = render_stmt(*s);
        if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
}

Interpreter::Flow Interpreter::render_stmt(const Stmt& s) {
    DepthGuard guard(this);
    try {
        Flow flow = Flow::kNormal;
        switch (s.kind) {
            case Stmt::Kind::kData: emit(s.text); break;
            case Stmt::Kind::kPrint: emit(to_str(eval(*s.expr))); break;
            case Stmt::Kind::kIf: render_if(s, &flow); break;
            case Stmt::Kind::kFor: return render_for(s);
            case Stmt::Kind::kSet: render_set(s); break;
            case Stmt::Kind::kSetBlock: render_set_block(s); break;
            case Stmt::Kind::kMacro: define_macro(s); break;
            case Stmt::Kind::kCallBlock: render_call_block(s); break;
            case Stmt::Kind::kFilterBlock: render_filter_block(s); break;
            case Stmt::Kind::kBreak: return Flow::kBreak;
            case Stmt::Kind::kContinue: return Flow::kContinue;
            case Stmt::Kind::kScope: return render_body(s.body);
        }
        return flow;
    } catch (JinjaError& e) {
        if (!e.has_pos()) e.set_pos(s.pos);
        throw;
    }
}

void Interpreter::render_if(const Stmt& s, Flow* flow) {
    for (const auto& [cond, body] : s.branches) {
        if (eval(*cond).truthy()) {
            *flow = render_body(body);
            return;
        }
    }
    *flow = render_body(s.else_body);
}

Array Interpreter::iterate(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::kUndefined: return {};
        case Value::Kind::kArray: return v.items();
        case Value::Kind::kObject: {
            Array keys;
            for (const auto& [k, e] : v.obj().entries) keys.emplace_back(k);
            return keys;
        }
        case Value::Kind::kString: {
            Array chars;
            const std::string& s = v.str();
            for (size_t i = 0; i < s.size();) {
                size_t n = 1;
                auto b = static_cast<unsigned char>(s[i]);
                if (b >= 0xF0) n = 4; else if (b >= 0xE0) n = 3; else if (b >= 0xC0) n = 2;
                n = std::min(n, s.size() - i);
                chars.emplace_back(s.substr(i, n));
                i += n;
            }
            return chars;
        }
        default: throw JinjaError("'" + v.type_name() + "' object is not iterable");
    }
}

void Interpreter::assign_targets(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
        set_var(targets[0], v);
        return;
    }
    if (v.is_undefined()) throw_undefined(v);
    Array parts = iterate(v);
    if (parts.size() != targets.size()) {
        throw JinjaError(parts.size() > targets.size()
                             ? "too many values to unpack (expected " + std::to_string(targets.size()) + ")"
                             : "not enough values to unpack (expected " + std::to_string(targets.size()) +
                                   ", got " + std::to_string(parts.size()) + ")");
    }
    for (size_t i = 0; i < targets.size(); ++i) set_var(targets[i], parts[i]);
}

Value Interpreter::make_loop(const Array& items, size_t i, const Value& cycle) {
    Value loop = Value::object();
    auto& o = loop.obj();
    auto n = static_cast<int64_t>(items.size());
    auto idx = static_cast<int64_t>(i);
    o.set("index", Value(idx + 1));
    o.set("index0", Value(idx));
    o.set("revindex", Value(n - idx));
    o.set("revindex0", Value(n - idx - 1));
    o.set("first", Value(i == 0));
    o.set("last", Value(idx == n - 1));
    o.set("length", Value(n));
    o.set("depth", Value(1));
    o.set("depth0", Value(0));
    o.set("previtem", i > 0 ? items[i - 1] : Value::undefined("'loop.previtem' is undefined"));
    o.set("nextitem", idx + 1 < n ? items[i + 1] : Value::undefined("'loop.nextitem' is undefined"));
    o.set("cycle", cycle);
    return loop;
}

Interpreter::Flow Interpreter::render_for(const Stmt& s) {
    Value seq = eval(*s.expr);
    if (seq.is_none()) throw JinjaError("'NoneType' object is not iterable", s.expr->pos);
    Array items = iterate(seq);
    if (s.cond) {
        Array kept;
        for (const auto& item : items) {
            count_iteration();
            push_frame();
            assign_targets(s.targets, item);
            bool keep = eval(*s.cond).truthy();
            pop_frame();
            if (keep) kept.push_back(item);
        }
        items = std::move(kept);
    }
    if (items.empty()) return render_body(s.else_body);
    auto index = std::make_shared<size_t>(0);
    Value cycle = Value::callable("loop.cycle", [index](Interpreter&, CallArgs& a) {
        if (a.args.empty()) throw JinjaError("no items for cycling given");
        return a.args[*index % a.args.size()];
    });
    for (size_t i = 0; i < items.size(); ++i) {
        count_iteration();
        *index = i;
        push_frame();
        set_var("loop", make_loop(items, i, cycle));
        assign_targets(s.targets, items[i]);
        Flow f = render_body(s.body);
        pop_frame();
        if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
}

void Interpreter::render_set(const Stmt& s) {
    Value v = eval(*s.expr);
    if (s.attr.empty()) {
        assign_targets(s.targets, v);
        return;
    }
    Value ns = lookup(s.name);
    if (!ns.is_namespace()) throw JinjaError("cannot assign attribute on non-namespace object");
    check_no_cycle(v, ns.identity());
    ns.obj().set(s.attr, std::move(v));
}

std::string Interpreter::capture(const Body& body, Flow* flow) {
    std::string buf;
    std::string* saved = out_;
    out_ = &buf;
    try {
        Flow f = render_body(body);
        if (flow) *flow = f;
    } catch (...) {
        out_ = saved;
        throw;
    }
    out_ = saved;
    return buf;
}

void Interpreter::render_set_block(const Stmt& s) {
    push_frame();
    std::string text;
    try {
        text = capture(s.body);
    } catch (...) {
        pop_frame();
        throw;
    }
    pop_frame();
    Value v(std::move(text));
    if (s.filter) v = apply_filter_chain(*s.filter, std::move(v));
    set_var(s.targets[0], std::move(v));
}

Value Interpreter::apply_filter_chain(const Expr& chain, Value input) {
    if (chain.kind != Expr::Kind::kFilter) return input;
    if (chain.children[0]) input = apply_filter_chain(*chain.children[0], std::move(input));
    CallArgs args = eval_args(chain, 1);
    try {
        return apply_filter(chain.name, input, args);
    } catch (JinjaError& e) {
        if (!e.has_pos()) e.set_pos(chain.pos);
        throw;
    }
}

void Interpreter::render_filter_block(const Stmt& s) {
    std::string text = capture(s.body);
    emit(to_str(apply_filter_chain(*s.filter, Value(std::move(text)))));
}

void Interpreter::define_macro(const Stmt& s) {
    const Stmt* macro = &s;
    set_var(s.name, Value::callable(s.name, [macro](Interpreter& in, CallArgs& a) {
                Value caller = Value::undefined("'caller' is undefined");
                for (size_t i = 0; i < a.kwargs.size(); ++i) {
                    if (a.kwargs[i].first == "caller") {
                        caller = a.kwargs[i].second;
                        a.kwargs.erase(a.kwargs.begin() + static_cast<std::ptrdiff_t>(i));
                        break;
                    }
                }
                return in.call_macro(*macro, a, caller);
            }));
}

Value Interpreter::call_macro(const Stmt& macro, CallArgs& a, const Value& caller) {
    if (++call_depth_ > limits_.max_call_depth) {
        --call_depth_;
        throw JinjaError("maximum macro call depth (" + std::to_string(limits_.max_call_depth) + ") exceeded");
    }
    frame_base_.push_back(frames_.size());
    push_frame();
    std::string text;
    try {
        Array varargs;
        for (size_t i = macro.params.size(); i < a.args.size(); ++i) varargs.push_back(a.args[i]);
        Value kwargs = Value::object();
        for (const auto& [k, v] : a.kwargs) {
            bool is_param = false;
            for (const auto& p : macro.params) is_param = is_param || p.first == k;
            if (!is_param) kwargs.obj().set(k, v);
        }
        set_var("varargs", Value::tuple(std::move(varargs)));
        set_var("kwargs", kwargs);
        set_var("caller", caller);
        for (size_t i = 0; i < macro.params.size(); ++i) {
            const auto& [name, def] = macro.params[i];
            Value v = a.has(i, name) ? a.get(i, name)
                      : def          ? eval(*def)
                                     : Value::undefined("parameter '" + name + "' was not provided");
            set_var(name, std::move(v));
        }
        text = capture(macro.body);
    } catch (...) {
        pop_frame();
        frame_base_.pop_back();
        --call_depth_;
        throw;
    }
    pop_frame();
    frame_base_.pop_back();
    --call_depth_;
    return Value(std::move(text));
}

void Interpreter::render_call_block(const Stmt& s) {
    const Stmt* block = &s;
    Value caller = Value::callable("caller", [block](Interpreter& in, CallArgs& a) {
        CallArgs args = a;
        for (size_t i = args.args.size(); i < block->params.size(); ++i) {
            if (!args.has(i, block->params[i].first) && block->params[i].second) {
                args.kwargs.emplace_back(block->params[i].first, in.eval(*block->params[i].second));
            }
        }
        in.push_frame();
        for (size_t i = 0; i < block->params.size(); ++i) {
            in.set_var(block->params[i].first, args.get(i, block->params[i].first));
        }
        std::string text;
        try {
            text = in.capture(block->body);
        } catch (...) {
            in.pop_frame();
            throw;
        }
        in.pop_frame();
        return Value(std::move(text));
    });
    const Expr& call_expr = *s.expr;
    Value callee = eval(*call_expr.children[0]);
    CallArgs args = eval_args(call_expr, 1);
    args.kwargs.emplace_back("caller", caller);
    emit(to_str(call(callee, args)));
}

}  // namespace dsa::text::jinja
