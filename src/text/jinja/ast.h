// Jinja AST: one generic expression node and one generic statement node, each tagged with a kind and the
// source position used in error messages. The parser builds it once; renders only read it.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja/value.h"

namespace dsa::text::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
using KwArgs = std::vector<std::pair<std::string, ExprPtr>>;

struct Expr {
    enum class Kind {
        kLiteral,   // literal
        kName,      // name
        kList,      // children = items
        kTuple,     // children = items (a list at run time)
        kDict,      // children = k0, v0, k1, v1, ...
        kGetAttr,   // children[0] . name
        kGetItem,   // children[0] [ children[1] ]
        kSlice,     // children[0] [ c1 : c2 : c3 ] (null children are omitted bounds)
        kCall,      // children[0] ( children[1..], kwargs )
        kFilter,    // children[0] | name ( children[1..], kwargs ); children[0] null in filter blocks
        kTest,      // children[0] is [not] name ( children[1..], kwargs ); `negated`
        kUnary,     // name in {"-", "+", "not"}; children[0]
        kBinary,    // name in {"+","-","*","/","//","%","**","~","and","or"}; children[0], children[1]
        kCompare,   // children[0] ops[0] children[1] ops[1] children[2] ...
        kCondExpr,  // children[1] if children[0] else children[2] (children[2] may be null)
    };
    Kind kind = Kind::kLiteral;
    Pos pos;
    Value literal;
    std::string name;
    std::vector<ExprPtr> children;
    KwArgs kwargs;
    std::vector<std::string> ops;
    bool negated = false;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
    enum class Kind {
        kData,         // text
        kPrint,        // expr
        kIf,           // branches (cond, body); else_body
        kFor,          // targets in expr [if cond]; body; else_body
        kSet,          // targets (or ns.attr when attr is set) = expr
        kSetBlock,     // targets[0] = rendered body, through filter (an Expr kFilter chain) when present
        kMacro,        // name(params) body
        kCallBlock,    // expr (a call); params = caller's params; body = caller body
        kFilterBlock,  // filter (kFilter chain with a null innermost input); body
        kBreak,
        kContinue,
        kScope,        // body rendered as-is (generation blocks)
    };
    Kind kind = Kind::kData;
    Pos pos;
    std::string text;
    std::string name;
    std::string attr;
    std::vector<std::string> targets;
    ExprPtr expr;
    ExprPtr cond;
    ExprPtr filter;
    std::vector<std::pair<ExprPtr, Body>> branches;
    Body body;
    Body else_body;
    std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters with optional defaults
};

}  // namespace dsa::text::jinja
