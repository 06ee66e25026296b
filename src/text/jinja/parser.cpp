// Recursive-descent Jinja parser (see parser.h): statements in parse_body/parse_statement, expressions in
// the parse_* chain that follows jinja2's parser.py method by method.
#include "text/jinja/parser.h"

#include <set>

#include "text/jinja/interpreter.h"

namespace dsa::text::jinja {

namespace {

using T = Token::Type;

class Parser {
public:
    explicit Parser(const std::vector<Token>& toks) : toks_(toks) {}

    Body parse_all() {
        Body body = parse_body({});
        if (cur().type != T::kEof) fail("unexpected tag '" + peek_tag() + "'");
        return body;
    }

private:
    // ---- token helpers -------------------------------------------------------------------------------
    const Token& cur() const { return toks_[i_]; }
    const Token& peek(size_t k = 1) const { return toks_[std::min(i_ + k, toks_.size() - 1)]; }
    const Token& next() {
        const Token& t = toks_[i_];
        if (i_ + 1 < toks_.size()) ++i_;
        return t;
    }
    bool is_op(const char* op) const { return cur().type == T::kOp && cur().text == op; }
    bool is_name(const char* n) const { return cur().type == T::kName && cur().text == n; }
    [[noreturn]] void fail(const std::string& msg) const { throw JinjaError(msg, cur().pos); }

    static std::string describe(const Token& t) {
        switch (t.type) {
            case T::kEof: return "end of template";
            case T::kBlockEnd: return "end of statement block";
            case T::kVarEnd: return "end of print statement";
            case T::kData: return "template data";
            case T::kString: return "string";
            case T::kInt:
            case T::kFloat: return "number";
            default: return "'" + t.text + "'";
        }
    }

    void expect_op(const char* op) {
        if (!is_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
        next();
    }
    std::string expect_name() {
        if (cur().type != T::kName) fail("expected a name, got " + describe(cur()));
        return next().text;
    }
    void expect_block_end() {
        if (cur().type != T::kBlockEnd) fail("expected end of statement block, got " + describe(cur()));
        next();
    }
    std::string peek_tag() const { return cur().type == T::kBlockBegin ? peek().text : describe(cur()); }

    struct DepthGuard {
        explicit DepthGuard(Parser* p) : p_(p) {
            if (++p_->depth_ > kMaxParseDepth) p_->fail("template nested too deeply");
        }
        ~DepthGuard() { --p_->depth_; }
        Parser* p_;
    };

    // Remembers the end tag the innermost open block expects, for error messages.
    struct BlockGuard {
        BlockGuard(Parser* p, const std::set<std::string>& ends) : p_(p), pushed_(!ends.empty()) {
            if (pushed_) p_->open_blocks_.push_back(*ends.rbegin());
        }
        ~BlockGuard() {
            if (pushed_) p_->open_blocks_.pop_back();
        }
        Parser* p_;
        bool pushed_;
    };

    // Counts the links of a left-deep chain (a + b + c, a.b.c, x | f | g) as nesting too.
    struct ChainGuard {
        explicit ChainGuard(Parser* p) : p_(p) {}
        void step() {
            ++added_;
            if (++p_->depth_ > kMaxParseDepth) p_->fail("expression nested too deeply");
        }
        ~ChainGuard() { p_->depth_ -= added_; }
        Parser* p_;
        int added_ = 0;
    };

    ExprPtr node(Expr::Kind kind, Pos pos) {
        auto e = std::make_unique<Expr>();
        e->kind = kind;
        e->pos = pos;
        return e;
    }

    // ---- statements ----------------------------------------------------------------------------------
    // Parses until EOF or a block tag whose name is in `ends`; consumes that name and stores it in `end`.
    Body parse_body(const std::set<std::string>& ends, std::string* end = nullptr) {
        DepthGuard guard(this);
        BlockGuard block(this, ends);
        Body body;
        while (true) {
            const Token& t = cur();
            if (t.type == T::kEof) {
                if (!ends.empty()) fail("unexpected end of template, expected '" + *ends.rbegin() + "'");
                return body;
            }
            if (t.type == T::kData) {
                auto s = std::make_unique<Stmt>();
                s->kind = Stmt::Kind::kData;
                s->pos = t.pos;
                s->text = next().text;
                body.push_back(std::move(s));
            } else if (t.type == T::kVarBegin) {
                body.push_back(parse_print());
            } else if (t.type == T::kBlockBegin) {
                if (peek().type == T::kName && ends.count(peek().text)) {
                    next();
                    if (end) *end = cur().text;
                    next();
                    return body;
                }
                body.push_back(parse_statement());
            } else {
                fail("unexpected " + describe(t));
            }
        }
    }

    StmtPtr make_stmt(Stmt::Kind kind, Pos pos) {
        auto s = std::make_unique<Stmt>();
        s->kind = kind;
        s->pos = pos;
        return s;
    }

    StmtPtr parse_print() {
        Pos pos = next().pos;
        auto s = make_stmt(Stmt::Kind::kPrint, pos);
        s->expr = parse_tuple(/*with_condexpr=*/true, /*explicit_parens=*/false);
        if (cur().type != T::kVarEnd) fail("expected end of print statement, got " + describe(cur()));
        next();
        return s;
    }

    StmtPtr parse_statement() {
        next();  // block begin
        if (cur().type != T::kName) fail("expected a statement name, got " + describe(cur()));
        Pos pos = cur().pos;
        std::string tag = next().text;
        if (tag == "if") return parse_if(pos);
        if (tag == "for") return parse_for(pos);
        if (tag == "set") return parse_set(pos);
        if (tag == "macro") return parse_macro(pos);
        if (tag == "call") return parse_call_block(pos);
        if (tag == "filter") return parse_filter_block(pos);
        if (tag == "break" || tag == "continue") {
            expect_block_end();
            return make_stmt(tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, pos);
        }
        if (tag == "generation") {
            expect_block_end();
            auto s = make_stmt(Stmt::Kind::kScope, pos);
            s->body = parse_body({"endgeneration"});
            expect_block_end();
            return s;
        }
        if (!open_blocks_.empty() && (tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else")) {
            throw JinjaError("unexpected tag '" + tag + "', expected '" + open_blocks_.back() + "'", pos);
        }
        throw JinjaError("unknown or unsupported tag '" + tag + "'", pos);
    }

    StmtPtr parse_if(Pos pos) {
        auto s = make_stmt(Stmt::Kind::kIf, pos);
        while (true) {
            ExprPtr cond = parse_tuple(/*with_condexpr=*/false, /*explicit_parens=*/false);
            expect_block_end();
            std::string tag;
            Body body = parse_body({"elif", "else", "endif"}, &tag);
            s->branches.emplace_back(std::move(cond), std::move(body));
            if (tag == "elif") continue;
            if (tag == "else") {
                expect_block_end();
                s->else_body = parse_body({"endif"});
            }
            break;
        }
        expect_block_end();
        return s;
    }

    std::vector<std::string> parse_targets() {
        std::vector<std::string> names;
        bool parens = is_op("(");
        if (parens) next();
        names.push_back(expect_name());
        while (is_op(",")) {
            next();
            if (cur().type != T::kName || is_name("in")) break;
            names.push_back(expect_name());
        }
        if (parens) expect_op(")");
        return names;
    }

    StmtPtr parse_for(Pos pos) {
        auto s = make_stmt(Stmt::Kind::kFor, pos);
        s->targets = parse_targets();
        if (!is_name("in")) fail("expected 'in' in for loop, got " + describe(cur()));
        next();
        s->expr = parse_tuple(/*with_condexpr=*/false, /*explicit_parens=*/false);
        if (is_name("if")) {
            next();
            s->cond = parse_expression(/*with_condexpr=*/true);
        }
        if (is_name("recursive")) fail("recursive loops are not supported");
        expect_block_end();
        std::string tag;
        s->body = parse_body({"else", "endfor"}, &tag);
        if (tag == "else") {
            expect_block_end();
            s->else_body = parse_body({"endfor"});
        }
        expect_block_end();
        return s;
    }

    StmtPtr parse_set(Pos pos) {
        auto s = make_stmt(Stmt::Kind::kSet, pos);
        if (cur().type == T::kName && peek().type == T::kOp && peek().text == ".") {
            s->name = next().text;
            next();
            s->attr = expect_name();
        } else {
            s->targets = parse_targets();
        }
        if (is_op("=")) {
            next();
            s->expr = parse_tuple(/*with_condexpr=*/true, /*explicit_parens=*/false);
            expect_block_end();
            return s;
        }
        if (!s->attr.empty() || s->targets.size() != 1) fail("expected '=' in set statement");
        s->kind = Stmt::Kind::kSetBlock;
        if (is_op("|")) s->filter = parse_filter(nullptr);
        expect_block_end();
        s->body = parse_body({"endset"});
        expect_block_end();
        return s;
    }

    void parse_params(Stmt* s) {
        expect_op("(");
        while (!is_op(")")) {
            if (!s->params.empty()) expect_op(",");
            if (is_op(")")) break;
            std::string name = expect_name();
            ExprPtr def;
            if (is_op("=")) {
                next();
                def = parse_expression(/*with_condexpr=*/true);
            }
            s->params.emplace_back(name, std::move(def));
        }
        next();
    }

    StmtPtr parse_macro(Pos pos) {
        auto s = make_stmt(Stmt::Kind::kMacro, pos);
        s->name = expect_name();
        parse_params(s.get());
        expect_block_end();
        s->body = parse_body({"endmacro"});
        expect_block_end();
        return s;
    }

    StmtPtr parse_call_block(Pos pos) {
        auto s = make_stmt(Stmt::Kind::kCallBlock, pos);
        if (is_op("(")) parse_params(s.get());
        s->expr = parse_expression(/*with_condexpr=*/true);
        if (s->expr->kind != Expr::Kind::kCall) throw JinjaError("expected a call in call block", s->expr->pos);
        expect_block_end();
        s->body = parse_body({"endcall"});
        expect_block_end();
        return s;
    }

    StmtPtr parse_filter_block(Pos pos) {
        auto s = make_stmt(Stmt::Kind::kFilterBlock, pos);
        s->filter = parse_filter(nullptr, /*start_inline=*/true);
        expect_block_end();
        s->body = parse_body({"endfilter"});
        expect_block_end();
        return s;
    }

    // ---- expressions ---------------------------------------------------------------------------------
    ExprPtr parse_expression(bool with_condexpr) {
        DepthGuard guard(this);
        return with_condexpr ? parse_condexpr() : parse_or();
    }

    bool is_tuple_end() const {
        return cur().type == T::kVarEnd || cur().type == T::kBlockEnd || cur().type == T::kEof || is_op(")");
    }

    ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens) {
        Pos pos = cur().pos;
        std::vector<ExprPtr> items;
        bool is_tuple = false;
        while (true) {
            if (!items.empty()) expect_op(",");
            if (is_tuple_end() || (!with_condexpr && is_name("if"))) break;
            items.push_back(parse_expression(with_condexpr));
            if (is_op(",")) {
                is_tuple = true;
            } else {
                break;
            }
        }
        if (!is_tuple) {
            if (!items.empty()) return std::move(items[0]);
            if (!explicit_parens) fail("expected an expression, got " + describe(cur()));
        }
        auto e = node(Expr::Kind::kTuple, pos);
        e->children = std::move(items);
        return e;
    }

    ExprPtr parse_condexpr() {
        ChainGuard chain(this);
        ExprPtr expr1 = parse_or();
        while (is_name("if")) {
            chain.step();
            Pos pos = next().pos;
            ExprPtr expr2 = parse_or();
            ExprPtr expr3;
            if (is_name("else")) {
                next();
                expr3 = parse_condexpr();
            }
            auto e = node(Expr::Kind::kCondExpr, pos);
            e->children.push_back(std::move(expr2));
            e->children.push_back(std::move(expr1));
            e->children.push_back(std::move(expr3));
            expr1 = std::move(e);
        }
        return expr1;
    }

    ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r, Pos pos) {
        auto e = node(Expr::Kind::kBinary, pos);
        e->name = op;
        e->children.push_back(std::move(l));
        e->children.push_back(std::move(r));
        return e;
    }

    ExprPtr parse_or() {
        ChainGuard chain(this);
        ExprPtr left = parse_and();
        while (is_name("or")) {
            chain.step();
            Pos pos = next().pos;
            left = binary("or", std::move(left), parse_and(), pos);
        }
        return left;
    }

    ExprPtr parse_and() {
        ChainGuard chain(this);
        ExprPtr left = parse_not();
        while (is_name("and")) {
            chain.step();
            Pos pos = next().pos;
            left = binary("and", std::move(left), parse_not(), pos);
        }
        return left;
    }

    ExprPtr parse_not() {
        if (is_name("not")) {
            DepthGuard guard(this);
            Pos pos = next().pos;
            auto e = node(Expr::Kind::kUnary, pos);
            e->name = "not";
            e->children.push_back(parse_not());
            return e;
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        Pos pos = cur().pos;
        ExprPtr first = parse_math1();
        auto e = node(Expr::Kind::kCompare, pos);
        e->children.push_back(std::move(first));
        static const std::set<std::string> kOps = {"==", "!=", "<", ">", "<=", ">="};
        while (true) {
            if (cur().type == T::kOp && kOps.count(cur().text)) {
                e->ops.push_back(next().text);
            } else if (is_name("in")) {
                next();
                e->ops.push_back("in");
            } else if (is_name("not") && peek().type == T::kName && peek().text == "in") {
                next();
                next();
                e->ops.push_back("not in");
            } else {
                break;
            }
            e->children.push_back(parse_math1());
        }
        if (e->ops.empty()) return std::move(e->children[0]);
        return e;
    }

    ExprPtr parse_math1() {
        ChainGuard chain(this);
        ExprPtr left = parse_concat();
        while (is_op("+") || is_op("-")) {
            chain.step();
            Pos pos = cur().pos;
            std::string op = next().text;
            left = binary(op, std::move(left), parse_concat(), pos);
        }
        return left;
    }

    ExprPtr parse_concat() {
        ChainGuard chain(this);
        ExprPtr left = parse_math2();
        while (is_op("~")) {
            chain.step();
            Pos pos = next().pos;
            left = binary("~", std::move(left), parse_math2(), pos);
        }
        return left;
    }

    ExprPtr parse_math2() {
        ChainGuard chain(this);
        ExprPtr left = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            chain.step();
            Pos pos = cur().pos;
            std::string op = next().text;
            left = binary(op, std::move(left), parse_pow(), pos);
        }
        return left;
    }

    ExprPtr parse_pow() {
        ChainGuard chain(this);
        ExprPtr left = parse_unary(/*with_filter=*/true);
        while (is_op("**")) {
            chain.step();
            Pos pos = next().pos;
            left = binary("**", std::move(left), parse_unary(/*with_filter=*/true), pos);
        }
        return left;
    }

    ExprPtr parse_unary(bool with_filter) {
        DepthGuard guard(this);
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            Pos pos = cur().pos;
            e = node(Expr::Kind::kUnary, pos);
            e->name = next().text;
            e->children.push_back(parse_unary(/*with_filter=*/false));
        } else {
            e = parse_primary();
        }
        e = parse_postfix(std::move(e));
        if (with_filter) e = parse_filter_expr(std::move(e));
        return e;
    }

    ExprPtr literal(Value v, Pos pos) {
        auto e = node(Expr::Kind::kLiteral, pos);
        e->literal = std::move(v);
        return e;
    }

    ExprPtr parse_primary() {
        const Token& t = cur();
        Pos pos = t.pos;
        switch (t.type) {
            case T::kName: {
                std::string n = next().text;
                if (n == "true" || n == "True") return literal(Value(true), pos);
                if (n == "false" || n == "False") return literal(Value(false), pos);
                if (n == "none" || n == "None") return literal(Value::none(), pos);
                auto e = node(Expr::Kind::kName, pos);
                e->name = n;
                return e;
            }
            case T::kString: {
                std::string s;
                while (cur().type == T::kString) s += next().text;
                return literal(Value(std::move(s)), pos);
            }
            case T::kInt: return literal(Value(next().int_value), pos);
            case T::kFloat: return literal(Value(next().float_value), pos);
            default: break;
        }
        if (is_op("(")) {
            next();
            ExprPtr e = parse_tuple(/*with_condexpr=*/true, /*explicit_parens=*/true);
            expect_op(")");
            return e;
        }
        if (is_op("[")) return parse_list(pos);
        if (is_op("{")) return parse_dict(pos);
        fail("unexpected " + describe(t));
    }

    ExprPtr parse_list(Pos pos) {
        next();
        auto e = node(Expr::Kind::kList, pos);
        while (!is_op("]")) {
            if (!e->children.empty()) expect_op(",");
            if (is_op("]")) break;
            e->children.push_back(parse_expression(/*with_condexpr=*/true));
        }
        next();
        return e;
    }

    ExprPtr parse_dict(Pos pos) {
        next();
        auto e = node(Expr::Kind::kDict, pos);
        while (!is_op("}")) {
            if (!e->children.empty()) expect_op(",");
            if (is_op("}")) break;
            e->children.push_back(parse_expression(/*with_condexpr=*/true));
            expect_op(":");
            e->children.push_back(parse_expression(/*with_condexpr=*/true));
        }
        next();
        return e;
    }

    ExprPtr parse_postfix(ExprPtr e) {
        ChainGuard chain(this);
        while (true) {
            chain.step();
            if (is_op(".")) {
                Pos pos = next().pos;
                if (cur().type == T::kInt) {
                    auto g = node(Expr::Kind::kGetItem, pos);
                    g->children.push_back(std::move(e));
                    g->children.push_back(literal(Value(next().int_value), pos));
                    e = std::move(g);
                } else {
                    auto g = node(Expr::Kind::kGetAttr, pos);
                    g->name = expect_name();
                    g->children.push_back(std::move(e));
                    e = std::move(g);
                }
            } else if (is_op("[")) {
                e = parse_subscript(std::move(e));
            } else if (is_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr target) {
        Pos pos = next().pos;
        std::vector<ExprPtr> parts(3);
        int colons = 0;
        while (!is_op("]")) {
            if (is_op(":")) {
                if (++colons > 2) fail("invalid slice");
                next();
                continue;
            }
            if (parts[static_cast<size_t>(colons)]) fail("expected ']', got " + describe(cur()));
            parts[static_cast<size_t>(colons)] = parse_expression(/*with_condexpr=*/true);
        }
        next();
        auto e = node(colons ? Expr::Kind::kSlice : Expr::Kind::kGetItem, pos);
        if (!colons && !parts[0]) throw JinjaError("expected a subscript", pos);
        e->children.push_back(std::move(target));
        for (size_t k = 0; k < (colons ? 3u : 1u); ++k) e->children.push_back(std::move(parts[k]));
        return e;
    }

    void parse_call_args(Expr* e) {
        expect_op("(");
        bool first = true;
        while (!is_op(")")) {
            if (!first) expect_op(",");
            first = false;
            if (is_op(")")) break;
            if (cur().type == T::kName && peek().type == T::kOp && peek().text == "=") {
                std::string key = next().text;
                next();
                e->kwargs.emplace_back(key, parse_expression(/*with_condexpr=*/true));
            } else {
                if (!e->kwargs.empty()) fail("positional argument follows keyword argument");
                e->children.push_back(parse_expression(/*with_condexpr=*/true));
            }
        }
        next();
    }

    ExprPtr parse_call(ExprPtr callee) {
        auto e = node(Expr::Kind::kCall, cur().pos);
        e->children.push_back(std::move(callee));
        parse_call_args(e.get());
        return e;
    }

    std::string dotted_name() {
        std::string n = expect_name();
        while (is_op(".")) {
            next();
            n += "." + expect_name();
        }
        return n;
    }

    // `| name(args) | ...`; with start_inline the first `|` is already implied (filter blocks).
    ExprPtr parse_filter(ExprPtr input, bool start_inline = false) {
        ChainGuard chain(this);
        while (is_op("|") || start_inline) {
            chain.step();
            if (!start_inline) next();
            start_inline = false;
            auto f = node(Expr::Kind::kFilter, cur().pos);
            f->name = dotted_name();
            if (!is_filter_name(f->name)) throw JinjaError("no filter named '" + f->name + "'", f->pos);
            f->children.push_back(std::move(input));
            if (is_op("(")) parse_call_args(f.get());
            input = std::move(f);
        }
        return input;
    }

    ExprPtr parse_test(ExprPtr input) {
        Pos pos = next().pos;  // `is`
        auto t = node(Expr::Kind::kTest, pos);
        if (is_name("not")) {
            next();
            t->negated = true;
        }
        Pos name_pos = cur().pos;
        t->name = dotted_name();
        if (!is_test_name(t->name)) throw JinjaError("no test named '" + t->name + "'", name_pos);
        t->children.push_back(std::move(input));
        if (is_op("(")) {
            parse_call_args(t.get());
        } else if ((cur().type == T::kName || cur().type == T::kString || cur().type == T::kInt ||
                    cur().type == T::kFloat || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
            if (is_name("is")) fail("you cannot chain multiple tests with is");
            t->children.push_back(parse_postfix(parse_primary()));
        }
        return t;
    }

    ExprPtr parse_filter_expr(ExprPtr e) {
        ChainGuard chain(this);
        while (true) {
            chain.step();
            if (is_op("|")) {
                e = parse_filter(std::move(e));
            } else if (is_name("is")) {
                e = parse_test(std::move(e));
            } else if (is_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    const std::vector<Token>& toks_;
    size_t i_ = 0;
    int depth_ = 0;
    std::vector<std::string> open_blocks_;
};

}  // namespace

Body parse_template(const std::vector<Token>& tokens) { return Parser(tokens).parse_all(); }

}  // namespace dsa::text::jinja
