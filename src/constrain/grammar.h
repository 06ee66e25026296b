// Grammar: a small, deterministic, byte-level pushdown matcher for constrained decoding. A grammar is a table of
// elements (literals, sequences, literal alternatives with continuations, raw text up to a terminator, and the
// JSON pieces: strings, numbers, objects with ordered properties, free objects, arrays, first-byte dispatch).
// A MatchState is a fixed-capacity stack of frames that is cheap to copy, so the token masker can walk a
// vocabulary trie byte by byte from one state. Built by constrain/json_schema and constrain/formats.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsa::constrain {

enum class ElemKind : uint8_t {
    kLit,       // exact bytes
    kSeq,       // children in order
    kAlt,       // one of several literals, each followed by its own continuation element (or nothing)
    kUntil,     // any UTF-8 text, ended by (and including) a terminator literal
    kWs,        // optional JSON whitespace (bounded run)
    kString,    // a JSON string, quotes included
    kNumber,    // a JSON number (or integer)
    kObject,    // a JSON object with known properties in declaration order (no others)
    kMap,       // a JSON object with any keys, values of one element
    kArray,     // a JSON array of one item element, with bounds on the count
    kDispatch,  // a JSON value whose type is picked by its first byte
};

// kDispatch target slots.
enum JsonSlot { kSlotObject, kSlotArray, kSlotString, kSlotNumber, kSlotBool, kSlotNull, kNumSlots };

struct Property {
    std::string key;  // JSON-encoded key with quotes, e.g. "\"city\""
    int32_t value = -1;
    bool required = false;
};

struct Elem {
    ElemKind kind = ElemKind::kLit;
    std::string text;                                              // kLit bytes, kUntil terminator
    std::vector<int32_t> fail;                                     // kUntil: KMP failure function of the terminator
    std::vector<int32_t> kids;                                     // kSeq
    std::vector<std::pair<std::string, int32_t>> alts;             // kAlt, sorted by literal
    std::vector<Property> props;                                   // kObject
    int32_t item = -1;                                             // kMap value, kArray item
    int32_t min_items = 0, max_items = -1;                         // kArray (-1: unbounded)
    bool integer = false;                                          // kNumber
    std::array<int32_t, kNumSlots> slots{-1, -1, -1, -1, -1, -1};  // kDispatch

    static Elem of(ElemKind kind);
};

// One stack frame. `elem` indexes the grammar; the meaning of phase/a..d depends on the element kind.
struct Frame {
    int32_t elem = 0;
    uint8_t phase = 0;
    uint8_t pad0 = 0;
    uint16_t pad1 = 0;
    int32_t a = 0, b = 0, c = 0, d = 0;
};

constexpr int kMaxFrames = 48;

struct MatchState {
    int32_t size = 0;
    std::array<Frame, kMaxFrames> frames;

    void copy_from(const MatchState& o) {
        size = o.size;
        std::memcpy(frames.data(), o.frames.data(), static_cast<size_t>(size) * sizeof(Frame));
    }
    // The used frames as bytes: a key for mask caches.
    std::string_view key() const {
        return {reinterpret_cast<const char*>(frames.data()), static_cast<size_t>(size) * sizeof(Frame)};
    }
};

// Kinds of free text. A token is plain for a kind when it is complete UTF-8 and has none of the kind's bytes:
// kNoLt '<'; kNoQuote '"'; kJsonString '"', '\\' and control characters.
enum class FreeText : uint8_t { kNone, kNoLt, kNoQuote, kJsonString };
constexpr int kNumFreeText = 4;

class Grammar {
  public:
    Grammar();
    // ---- building ----
    int32_t add_lit(std::string text);
    int32_t add_seq(std::vector<int32_t> kids);
    int32_t add_alt(std::vector<std::pair<std::string, int32_t>> alts);
    int32_t add_until(std::string terminator);
    int32_t add_ws();
    int32_t add_string();
    int32_t add_number(bool integer);
    int32_t add_object(std::vector<Property> props);
    int32_t add_map(int32_t value);
    int32_t add_array(int32_t item, int32_t min_items, int32_t max_items);
    int32_t add_dispatch(const std::array<int32_t, kNumSlots>& slots);
    // Reserves an element to be filled later (recursive schemas); set_elem fills it.
    int32_t reserve();
    void set_elem(int32_t id, Elem e);
    void set_root(int32_t root) { root_ = root; }
    const Elem& elem(int32_t id) const { return elems_[static_cast<size_t>(id)]; }
    int32_t num_elems() const { return static_cast<int32_t>(elems_.size()); }

    // ---- matching ----
    MatchState start() const;
    // Advances `s` by one byte; false (and `s` unspecified) if the byte is not allowed.
    bool feed(MatchState& s, uint8_t byte) const;
    bool feed(MatchState& s, std::string_view bytes) const;
    // The text so far is a complete sentence of the grammar.
    bool can_end(const MatchState& s) const;
    // When the next bytes are free text — inside a JSON string, or raw text whose terminator starts with '<' or
    // '"' — every token made of "plain" bytes for that text (see FreeText) is allowed and leaves the state as it
    // is; the masker then only needs to walk the other tokens.
    FreeText free_text(const MatchState& s) const;

  private:
    enum class Step { kConsumed, kRefeed, kReject };
    int32_t add(Elem e);
    bool push(MatchState& s, int32_t elem) const;
    bool frame_can_end(const Frame& f) const;
    bool nullable(int32_t elem) const;
    Step step(MatchState& s, uint8_t byte) const;
    Step step_lit(MatchState& s, uint8_t byte) const;
    Step step_seq(MatchState& s) const;
    Step step_alt(MatchState& s, uint8_t byte) const;
    Step step_until(MatchState& s, uint8_t byte) const;
    Step step_ws(MatchState& s, uint8_t byte) const;
    Step step_string(MatchState& s, uint8_t byte) const;
    Step step_number(MatchState& s, uint8_t byte) const;
    Step step_object(MatchState& s, uint8_t byte) const;
    Step step_map(MatchState& s, uint8_t byte) const;
    Step step_array(MatchState& s, uint8_t byte) const;
    Step step_dispatch(MatchState& s, uint8_t byte) const;
    Step object_key_byte(MatchState& s, uint8_t byte) const;

    std::vector<Elem> elems_;
    int32_t root_ = -1;
};

// UTF-8 well-formedness, one byte at a time: `need` continuation bytes remain, the next in [lo, hi].
struct Utf8Check {
    // Returns false for an ill-formed byte. State lives in the caller's ints: need, range code.
    static bool step(int32_t& need, int32_t& range, uint8_t byte);
};

}  // namespace dsa::constrain
