// Runtime values of the Jinja interpreter: a variant of undefined, none, bool, int, float, string, array,
// object (insertion-ordered), namespace and callable. Arrays, objects and namespaces are shared by reference
// (Python semantics: `ns.x = 1` and `list.append` mutate what every alias sees). JinjaError is the internal
// error type; it is converted to a Status (with line and column) at the Template API boundary.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "base/json.h"

namespace dsa::text::jinja {

struct Pos {
    int line = 0;
    int col = 0;
};

// Internal error: thrown by the lexer, parser and renderer, caught by Template.
class JinjaError : public std::runtime_error {
public:
    explicit JinjaError(const std::string& msg, Pos pos = {}) : std::runtime_error(msg), pos_(pos) {}
    Pos pos() const { return pos_; }
    bool has_pos() const { return pos_.line > 0; }
    void set_pos(Pos p) { pos_ = p; }

private:
    Pos pos_;
};

class Value;
class Interpreter;
using Array = std::vector<Value>;

struct ObjectData;
struct CallArgs;

// A callable: builtin function, bound method, macro or loop.cycle.
struct Callable {
    std::string name;
    std::function<Value(Interpreter&, CallArgs&)> fn;
};

class Value {
public:
    enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kArray, kObject, kNamespace, kCallable };

    Value() = default;  // undefined
    static Value undefined(std::string hint = {});
    static Value none();
    Value(bool b);                 // NOLINT
    Value(int64_t i);              // NOLINT
    Value(int i) : Value(static_cast<int64_t>(i)) {}  // NOLINT
    Value(double d);               // NOLINT
    Value(std::string s);          // NOLINT
    Value(const char* s) : Value(std::string(s)) {}  // NOLINT
    static Value array(Array items = {});
    static Value tuple(Array items);  // an array that prints as a Python tuple
    static Value object();
    static Value make_namespace();
    static Value callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);
    static Value from_json(const OrderedJson& j, int depth = 0);  // throws past kMaxNesting

    Kind kind() const { return kind_; }
    bool is_undefined() const { return kind_ == Kind::kUndefined; }
    bool is_none() const { return kind_ == Kind::kNone; }
    bool is_bool() const { return kind_ == Kind::kBool; }
    bool is_int() const { return kind_ == Kind::kInt; }
    bool is_float() const { return kind_ == Kind::kFloat; }
    bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
    bool is_string() const { return kind_ == Kind::kString; }
    bool is_array() const { return kind_ == Kind::kArray; }
    bool is_tuple() const { return tuple_; }
    bool is_object() const { return kind_ == Kind::kObject; }
    bool is_namespace() const { return kind_ == Kind::kNamespace; }
    bool is_mapping_like() const { return kind_ == Kind::kObject || kind_ == Kind::kNamespace; }
    bool is_callable() const { return kind_ == Kind::kCallable; }

    bool as_bool() const { return b_; }
    int64_t as_int() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }
    double as_double() const { return kind_ == Kind::kFloat ? d_ : static_cast<double>(as_int()); }
    const std::string& str() const { return s_; }
    const std::string& undefined_hint() const { return s_; }
    Array& items() const { return *arr_; }
    ObjectData& obj() const { return *obj_; }
    const Callable& fn() const { return *fn_; }
    const void* identity() const;  // the shared object, for `sameas` and cycle checks

    bool truthy() const;
    size_t length() const;  // len(): strings count code points; throws for non-sized values
    std::string type_name() const;

private:
    Kind kind_ = Kind::kUndefined;
    bool b_ = false;
    bool tuple_ = false;
    int64_t i_ = 0;
    double d_ = 0;
    std::string s_;  // string value or undefined hint
    std::shared_ptr<Array> arr_;
    std::shared_ptr<ObjectData> obj_;
    std::shared_ptr<Callable> fn_;
};

// An insertion-ordered string-keyed map (Python dict order).
struct ObjectData {
    std::vector<std::pair<std::string, Value>> entries;
    const Value* find(const std::string& key) const;
    void set(const std::string& key, Value v);
};

struct CallArgs {
    std::vector<Value> args;
    std::vector<std::pair<std::string, Value>> kwargs;
    Pos pos;
    // Positional argument i, or keyword `name`, or `fallback`; marks keywords as used.
    Value get(size_t i, const std::string& name, Value fallback = Value());
    bool has(size_t i, const std::string& name) const;
};

// Python str() of a value (what `{{ x }}` prints).
std::string to_str(const Value& v);
// Python repr() (strings quoted, used inside lists and dicts).
std::string repr(const Value& v);
// Python repr() of a float.
std::string float_repr(double d);
// Python `==`.
bool equals(const Value& a, const Value& b);
// Python `<` ordering: <0, 0, >0; throws for incomparable types.
int compare(const Value& a, const Value& b);
// Throws unless the value graph under `v` is shallower than the nesting limit.
void check_depth(const Value& v, int depth);
constexpr int kMaxNesting = 512;
// Throws when `v` (deeply) contains the object `target`: stores must not create reference cycles.
void check_no_cycle(const Value& v, const void* target, int depth = 0);

}  // namespace dsa::text::jinja
