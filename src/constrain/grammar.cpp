// Grammar building and the byte-level matcher. Each step looks at the top frame only: it consumes the byte,
// rejects it, or rewrites the stack (pop a finished frame, push a child) and asks for the byte to be fed again.
// Frames that may either end or continue (whitespace, numbers, an alternative that is complete but could
// extend) stay on the stack until a byte that does not extend them arrives.
#include "constrain/grammar.h"

#include <algorithm>

namespace dsa::constrain {
namespace {

constexpr int32_t kMaxWs = 20;         // longest whitespace run between JSON tokens
constexpr int32_t kMaxNumberLen = 18;  // longest JSON number, in bytes (integers stay within int64)
constexpr int32_t kMaxExpDigits = 2;   // exponents stay within double range
constexpr int32_t kWsElem = 0, kColonElem = 1, kStringElem = 2;  // shared elements every grammar has

bool is_ws(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::vector<int32_t> kmp_failure(const std::string& t) {
    std::vector<int32_t> fail(t.size(), 0);
    for (size_t i = 1, k = 0; i < t.size(); ++i) {
        while (k > 0 && t[i] != t[k]) k = static_cast<size_t>(fail[k - 1]);
        if (t[i] == t[k]) ++k;
        fail[i] = static_cast<int32_t>(k);
    }
    return fail;
}

// Options of an alternative that share the first `pos` bytes with option `cand`.
bool same_prefix(const std::string& x, const std::string& y, int32_t pos) {
    return x.size() >= static_cast<size_t>(pos) && y.size() >= static_cast<size_t>(pos) &&
           x.compare(0, static_cast<size_t>(pos), y, 0, static_cast<size_t>(pos)) == 0;
}

}  // namespace

bool Utf8Check::step(int32_t& need, int32_t& range, uint8_t c) {
    if (need > 0) {
        static constexpr uint8_t kLo[] = {0x80, 0xA0, 0x80, 0x90, 0x80};
        static constexpr uint8_t kHi[] = {0xBF, 0xBF, 0x9F, 0xBF, 0x8F};
        if (c < kLo[range] || c > kHi[range]) return false;
        --need;
        range = 0;
        return true;
    }
    if (c < 0x80) return true;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1, range = 0;
    else if (c == 0xE0)
        need = 2, range = 1;
    else if (c == 0xED)
        need = 2, range = 2;
    else if (c >= 0xE1 && c <= 0xEF)
        need = 2, range = 0;
    else if (c == 0xF0)
        need = 3, range = 3;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3, range = 0;
    else if (c == 0xF4)
        need = 3, range = 4;
    else
        return false;
    return true;
}

// ---- building ----------------------------------------------------------------------------------------------

Elem Elem::of(ElemKind kind) {
    Elem e;
    e.kind = kind;
    return e;
}

Grammar::Grammar() {  // the shared elements, at fixed ids
    elems_.push_back(Elem::of(ElemKind::kWs));
    Elem colon = Elem::of(ElemKind::kLit);
    colon.text = ":";
    elems_.push_back(std::move(colon));
    elems_.push_back(Elem::of(ElemKind::kString));
}

int32_t Grammar::add(Elem e) {
    elems_.push_back(std::move(e));
    return static_cast<int32_t>(elems_.size()) - 1;
}

int32_t Grammar::add_lit(std::string text) {
    Elem e = Elem::of(ElemKind::kLit);
    e.text = std::move(text);
    return add(std::move(e));
}
int32_t Grammar::add_seq(std::vector<int32_t> kids) {
    Elem e = Elem::of(ElemKind::kSeq);
    e.kids = std::move(kids);
    return add(std::move(e));
}
int32_t Grammar::add_alt(std::vector<std::pair<std::string, int32_t>> alts) {
    std::sort(alts.begin(), alts.end());
    alts.erase(std::unique(alts.begin(), alts.end()), alts.end());
    Elem e = Elem::of(ElemKind::kAlt);
    e.alts = std::move(alts);
    return add(std::move(e));
}
int32_t Grammar::add_until(std::string terminator) {
    Elem e = Elem::of(ElemKind::kUntil);
    e.text = std::move(terminator);
    e.fail = kmp_failure(e.text);
    return add(std::move(e));
}
int32_t Grammar::add_ws() { return kWsElem; }
int32_t Grammar::add_string() { return kStringElem; }
int32_t Grammar::add_number(bool integer) {
    Elem e = Elem::of(ElemKind::kNumber);
    e.integer = integer;
    return add(std::move(e));
}
int32_t Grammar::add_object(std::vector<Property> props) {
    Elem e = Elem::of(ElemKind::kObject);
    e.props = std::move(props);
    return add(std::move(e));
}
int32_t Grammar::add_map(int32_t value) {
    Elem e = Elem::of(ElemKind::kMap);
    e.item = value;
    return add(std::move(e));
}
int32_t Grammar::add_array(int32_t item, int32_t min_items, int32_t max_items) {
    Elem e = Elem::of(ElemKind::kArray);
    e.item = item;
    e.min_items = min_items;
    e.max_items = max_items;
    return add(std::move(e));
}
int32_t Grammar::add_dispatch(const std::array<int32_t, kNumSlots>& slots) {
    Elem e = Elem::of(ElemKind::kDispatch);
    e.slots = slots;
    return add(std::move(e));
}
int32_t Grammar::reserve() { return add(Elem::of(ElemKind::kLit)); }
void Grammar::set_elem(int32_t id, Elem e) {
    if (e.kind == ElemKind::kUntil) e.fail = kmp_failure(e.text);
    if (e.kind == ElemKind::kAlt) std::sort(e.alts.begin(), e.alts.end());
    elems_[static_cast<size_t>(id)] = std::move(e);
}

// ---- matching ----------------------------------------------------------------------------------------------

MatchState Grammar::start() const {
    MatchState s;
    if (root_ >= 0) push(s, root_);
    return s;
}

bool Grammar::push(MatchState& s, int32_t elem) const {
    if (s.size >= kMaxFrames) return false;
    Frame f;
    f.elem = elem;
    s.frames[static_cast<size_t>(s.size++)] = f;
    return true;
}

bool Grammar::feed(MatchState& s, uint8_t byte) const {
    for (int guard = 0; guard < 4 * kMaxFrames; ++guard) {
        if (s.size == 0) return false;
        Step r = step(s, byte);
        if (r == Step::kConsumed) return true;
        if (r == Step::kReject) return false;
    }
    return false;
}

bool Grammar::feed(MatchState& s, std::string_view bytes) const {
    for (char c : bytes) {
        if (!feed(s, static_cast<uint8_t>(c))) return false;
    }
    return true;
}

bool Grammar::nullable(int32_t id) const {
    const Elem& e = elem(id);
    if (e.kind == ElemKind::kWs) return true;
    if (e.kind == ElemKind::kLit) return e.text.empty();
    if (e.kind != ElemKind::kSeq) return false;
    return std::all_of(e.kids.begin(), e.kids.end(), [&](int32_t k) { return nullable(k); });
}

bool Grammar::frame_can_end(const Frame& f) const {
    const Elem& e = elem(f.elem);
    switch (e.kind) {
        case ElemKind::kWs:
            return true;
        case ElemKind::kLit:
            return static_cast<size_t>(f.a) >= e.text.size();
        case ElemKind::kNumber:
            return f.phase == 2 || f.phase == 3 || f.phase == 5 || f.phase == 8;
        case ElemKind::kSeq:
            for (size_t i = static_cast<size_t>(f.a); i < e.kids.size(); ++i)
                if (!nullable(e.kids[i])) return false;
            return true;
        case ElemKind::kAlt:
            for (const auto& [lit, cont] : e.alts) {
                if (lit.size() == static_cast<size_t>(f.a) &&
                    same_prefix(lit, e.alts[static_cast<size_t>(f.b)].first, f.a) && (cont < 0 || nullable(cont)))
                    return true;
            }
            return false;
        default:
            return false;
    }
}

bool Grammar::can_end(const MatchState& s) const {
    for (int32_t i = 0; i < s.size; ++i)
        if (!frame_can_end(s.frames[static_cast<size_t>(i)])) return false;
    return true;
}

FreeText Grammar::free_text(const MatchState& s) const {
    if (s.size == 0) return FreeText::kNone;
    const Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    const Elem& e = elem(f.elem);
    if (e.kind == ElemKind::kString && f.phase == 1 && f.a == 0 && f.b == 0) return FreeText::kJsonString;
    if (e.kind != ElemKind::kUntil || f.a != 0 || f.b != 0) return FreeText::kNone;
    if (e.text[0] == '<') return FreeText::kNoLt;
    if (e.text[0] == '"') return FreeText::kNoQuote;
    return FreeText::kNone;
}

Grammar::Step Grammar::step(MatchState& s, uint8_t byte) const {
    switch (elem(s.frames[static_cast<size_t>(s.size - 1)].elem).kind) {
        case ElemKind::kLit:
            return step_lit(s, byte);
        case ElemKind::kSeq:
            return step_seq(s);
        case ElemKind::kAlt:
            return step_alt(s, byte);
        case ElemKind::kUntil:
            return step_until(s, byte);
        case ElemKind::kWs:
            return step_ws(s, byte);
        case ElemKind::kString:
            return step_string(s, byte);
        case ElemKind::kNumber:
            return step_number(s, byte);
        case ElemKind::kObject:
            return step_object(s, byte);
        case ElemKind::kMap:
            return step_map(s, byte);
        case ElemKind::kArray:
            return step_array(s, byte);
        case ElemKind::kDispatch:
            return step_dispatch(s, byte);
    }
    return Step::kReject;
}

Grammar::Step Grammar::step_lit(MatchState& s, uint8_t byte) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    const std::string& t = elem(f.elem).text;
    if (static_cast<size_t>(f.a) >= t.size()) {
        --s.size;
        return Step::kRefeed;
    }
    if (static_cast<uint8_t>(t[static_cast<size_t>(f.a)]) != byte) return Step::kReject;
    if (static_cast<size_t>(++f.a) == t.size()) --s.size;
    return Step::kConsumed;
}

Grammar::Step Grammar::step_seq(MatchState& s) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    const Elem& e = elem(f.elem);
    if (static_cast<size_t>(f.a) >= e.kids.size()) {
        --s.size;
        return Step::kRefeed;
    }
    int32_t kid = e.kids[static_cast<size_t>(f.a++)];
    if (static_cast<size_t>(f.a) == e.kids.size()) --s.size;  // the last child replaces the sequence
    return push(s, kid) ? Step::kRefeed : Step::kReject;
}

Grammar::Step Grammar::step_alt(MatchState& s, uint8_t byte) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    const auto& alts = elem(f.elem).alts;
    const std::string& cur = alts[static_cast<size_t>(f.b)].first;
    const auto pos = static_cast<size_t>(f.a);
    for (size_t j = 0; j < alts.size(); ++j) {
        const std::string& lit = alts[j].first;
        if (lit.size() <= pos || static_cast<uint8_t>(lit[pos]) != byte || !same_prefix(lit, cur, f.a)) continue;
        f.a += 1;
        f.b = static_cast<int32_t>(j);
        if (lit.size() != pos + 1) return Step::kConsumed;
        bool longer = false;  // another option extends this one: keep the frame until a byte decides
        for (const auto& [other, cont] : alts)
            longer = longer || (other.size() > lit.size() && same_prefix(other, lit, f.a));
        if (longer) return Step::kConsumed;
        int32_t cont = alts[j].second;
        --s.size;
        return cont < 0 || push(s, cont) ? Step::kConsumed : Step::kReject;
    }
    for (const auto& [lit, cont] : alts) {  // no extension: end on a complete option
        if (lit.size() != pos || !same_prefix(lit, cur, f.a)) continue;
        --s.size;
        return cont < 0 || push(s, cont) ? Step::kRefeed : Step::kReject;
    }
    return Step::kReject;
}

Grammar::Step Grammar::step_until(MatchState& s, uint8_t byte) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    const Elem& e = elem(f.elem);
    if (!Utf8Check::step(f.b, f.c, byte)) return Step::kReject;
    auto k = static_cast<size_t>(f.a);
    const auto c = static_cast<char>(byte);
    while (k > 0 && e.text[k] != c) k = static_cast<size_t>(e.fail[k - 1]);
    if (e.text[k] == c) ++k;
    if (k == e.text.size()) {
        --s.size;
        return Step::kConsumed;
    }
    f.a = static_cast<int32_t>(k);
    return Step::kConsumed;
}

Grammar::Step Grammar::step_ws(MatchState& s, uint8_t byte) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    if (is_ws(byte) && f.a < kMaxWs) {
        ++f.a;
        return Step::kConsumed;
    }
    --s.size;
    return Step::kRefeed;
}

Grammar::Step Grammar::step_string(MatchState& s, uint8_t byte) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    if (f.phase == 0) {
        if (byte != '"') return Step::kReject;
        f.phase = 1;
        return Step::kConsumed;
    }
    if (f.b > 0) return Utf8Check::step(f.b, f.c, byte) ? Step::kConsumed : Step::kReject;
    if (f.a == 1) {  // after a backslash
        if (byte == 'u')
            f.a = 2;
        else if (std::string_view("\"\\/bfnrt").find(static_cast<char>(byte)) != std::string_view::npos)
            f.a = 0;
        else
            return Step::kReject;
        return Step::kConsumed;
    }
    if (f.a >= 2) {  // \uXXXX digits
        if (!is_hex(byte)) return Step::kReject;
        f.a = f.a == 5 ? 0 : f.a + 1;
        return Step::kConsumed;
    }
    if (byte == '"') {
        --s.size;
        return Step::kConsumed;
    }
    if (byte == '\\') {
        f.a = 1;
        return Step::kConsumed;
    }
    if (byte < 0x20) return Step::kReject;
    return Utf8Check::step(f.b, f.c, byte) ? Step::kConsumed : Step::kReject;
}

Grammar::Step Grammar::step_number(MatchState& s, uint8_t byte) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    const bool integer = elem(f.elem).integer;
    const bool digit = is_digit(byte), exp = (byte == 'e' || byte == 'E') && !integer, dot = byte == '.' && !integer;
    int next = -1;
    switch (f.phase) {
        case 0:
            next = byte == '-' ? 1 : byte == '0' ? 2 : digit ? 3 : -1;
            break;
        case 1:
            next = byte == '0' ? 2 : digit ? 3 : -1;
            break;
        case 2:
            next = dot ? 4 : exp ? 6 : -1;
            break;
        case 3:
            next = digit ? 3 : dot ? 4 : exp ? 6 : -1;
            break;
        case 4:
            next = digit ? 5 : -1;
            break;
        case 5:
            next = digit ? 5 : exp ? 6 : -1;
            break;
        case 6:
            next = (byte == '+' || byte == '-') ? 7 : digit ? 8 : -1;
            break;
        case 7:
            next = digit ? 8 : -1;
            break;
        case 8:
            next = digit ? 8 : -1;
            break;
        default:
            break;
    }
    if (next == 8 && f.b >= kMaxExpDigits) next = -1;
    if (next >= 0 && f.a < kMaxNumberLen) {
        f.phase = static_cast<uint8_t>(next);
        ++f.a;
        if (next == 8) ++f.b;
        return Step::kConsumed;
    }
    if (!frame_can_end(f)) return Step::kReject;
    --s.size;
    return Step::kRefeed;
}

// Object frame: phase 0 before '{', 1 after '{', 2 after a value, 3 after ',', 4 inside a key;
// a = index of the first property still allowed, b = properties written, c = key candidate, d = key position
// (phase 4) or whitespace run length.
Grammar::Step Grammar::step_object(MatchState& s, uint8_t byte) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    const auto& props = elem(f.elem).props;
    const auto n = static_cast<int32_t>(props.size());
    if (f.phase == 4) return object_key_byte(s, byte);
    if (f.phase == 0) {
        if (byte != '{') return Step::kReject;
        f.phase = 1;
        return Step::kConsumed;
    }
    if (is_ws(byte)) return f.d++ < kMaxWs ? Step::kConsumed : Step::kReject;
    bool can_close = true;
    for (int32_t i = f.a; i < n; ++i) can_close = can_close && !props[static_cast<size_t>(i)].required;
    if (byte == '}' && f.phase != 3 && can_close) {
        --s.size;
        return Step::kConsumed;
    }
    if (byte == ',' && f.phase == 2 && f.a < n) {
        f.phase = 3;
        f.d = 0;
        return Step::kConsumed;
    }
    if (byte == '"' && f.phase != 2 && f.a < n) {
        f.phase = 4;
        f.c = f.a;
        f.d = 1;
        return Step::kConsumed;
    }
    return Step::kReject;
}

Grammar::Step Grammar::object_key_byte(MatchState& s, uint8_t byte) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    const auto& props = elem(f.elem).props;
    const std::string& cur = props[static_cast<size_t>(f.c)].key;
    for (int32_t j = f.a; j < static_cast<int32_t>(props.size()); ++j) {
        const Property& p = props[static_cast<size_t>(j)];
        const bool fits = p.key.size() > static_cast<size_t>(f.d) &&
                          static_cast<uint8_t>(p.key[static_cast<size_t>(f.d)]) == byte && same_prefix(p.key, cur, f.d);
        if (fits) {
            f.c = j;
            if (static_cast<size_t>(++f.d) < p.key.size()) return Step::kConsumed;
            f.phase = 2;  // the key is complete (keys are quoted, so no key is a prefix of another)
            f.a = j + 1;
            f.b += 1;
            f.d = 0;
            const bool ok = push(s, p.value) && push(s, kWsElem) && push(s, kColonElem) && push(s, kWsElem);
            return ok ? Step::kConsumed : Step::kReject;
        }
        if (p.required) break;  // later properties cannot come before a required one
    }
    return Step::kReject;
}

// Map frame: phase 0 before '{', 1 after '{', 2 after a value, 3 after ','; d = whitespace run length.
Grammar::Step Grammar::step_map(MatchState& s, uint8_t byte) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    if (f.phase == 0) {
        if (byte != '{') return Step::kReject;
        f.phase = 1;
        return Step::kConsumed;
    }
    if (is_ws(byte)) return f.d++ < kMaxWs ? Step::kConsumed : Step::kReject;
    if (byte == '}' && f.phase != 3) {
        --s.size;
        return Step::kConsumed;
    }
    if (byte == ',' && f.phase == 2) {
        f.phase = 3;
        f.d = 0;
        return Step::kConsumed;
    }
    if (byte == '"' && f.phase != 2) {
        f.phase = 2;
        f.d = 0;
        const int32_t value = elem(f.elem).item;
        const bool ok =
            push(s, value) && push(s, kWsElem) && push(s, kColonElem) && push(s, kWsElem) && push(s, kStringElem);
        return ok ? Step::kRefeed : Step::kReject;
    }
    return Step::kReject;
}

// Array frame: phase 0 before '[', 1 after '[', 2 after an item, 3 after ','; a = items started.
Grammar::Step Grammar::step_array(MatchState& s, uint8_t byte) const {
    Frame& f = s.frames[static_cast<size_t>(s.size - 1)];
    const Elem& e = elem(f.elem);
    if (f.phase == 0) {
        if (byte != '[') return Step::kReject;
        f.phase = 1;
        return Step::kConsumed;
    }
    if (is_ws(byte)) return f.d++ < kMaxWs ? Step::kConsumed : Step::kReject;
    if (f.phase == 2) {
        if (byte == ',' && (e.max_items < 0 || f.a < e.max_items)) {
            f.phase = 3;
            f.d = 0;
            return Step::kConsumed;
        }
        if (byte == ']' && f.a >= e.min_items) {
            --s.size;
            return Step::kConsumed;
        }
        return Step::kReject;
    }
    if (f.phase == 1 && byte == ']' && e.min_items == 0) {
        --s.size;
        return Step::kConsumed;
    }
    if (f.phase == 1 && e.max_items == 0) return Step::kReject;
    f.phase = 2;
    f.a += 1;
    f.d = 0;
    return push(s, e.item) ? Step::kRefeed : Step::kReject;
}

Grammar::Step Grammar::step_dispatch(MatchState& s, uint8_t byte) const {
    const Elem& e = elem(s.frames[static_cast<size_t>(s.size - 1)].elem);
    int slot = -1;
    if (byte == '{')
        slot = kSlotObject;
    else if (byte == '[')
        slot = kSlotArray;
    else if (byte == '"')
        slot = kSlotString;
    else if (byte == '-' || is_digit(byte))
        slot = kSlotNumber;
    else if (byte == 't' || byte == 'f')
        slot = kSlotBool;
    else if (byte == 'n')
        slot = kSlotNull;
    if (slot < 0 || e.slots[static_cast<size_t>(slot)] < 0) return Step::kReject;
    --s.size;
    return push(s, e.slots[static_cast<size_t>(slot)]) ? Step::kRefeed : Step::kReject;
}

}  // namespace dsa::constrain
