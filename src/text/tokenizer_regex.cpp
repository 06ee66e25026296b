// PCRE2 wrapper: compile once with UTF | UCP | MULTILINE (Oniguruma's Ruby syntax makes ^/$ line anchors),
// JIT-compile, and match with per-thread match data and a per-thread JIT stack large enough for long runs.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/tokenizer_regex.h"

#include <pcre2.h>

namespace dsa::text {
namespace {

constexpr size_t kJitStackStart = 32 * 1024;
constexpr size_t kJitStackMax = 16 * 1024 * 1024;

// Per-thread PCRE2 scratch shared by every pattern.
struct MatchScratch {
    pcre2_match_data* data = pcre2_match_data_create(8, nullptr);
    pcre2_match_context* context = pcre2_match_context_create(nullptr);
    pcre2_jit_stack* stack = pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr);

    MatchScratch() { pcre2_jit_stack_assign(context, nullptr, stack); }
    ~MatchScratch() {
        pcre2_jit_stack_free(stack);
        pcre2_match_context_free(context);
        pcre2_match_data_free(data);
    }
};

MatchScratch& scratch() {
    thread_local MatchScratch s;
    return s;
}

}  // namespace

void Regex::CodeDeleter::operator()(void* code) const { pcre2_code_free(static_cast<pcre2_code*>(code)); }

std::string rewrite_oniguruma_pattern(std::string_view pattern) {
    std::string out;
    out.reserve(pattern.size() + 32);
    for (size_t i = 0; i < pattern.size(); ++i) {
        char c = pattern[i];
        if (c != '\\' || i + 1 == pattern.size()) {
            out.push_back(c);
            continue;
        }
        char e = pattern[++i];
        if (e == 's') {
            out += "\\p{White_Space}";
        } else if (e == 'S') {
            out += "\\P{White_Space}";
        } else {
            out.push_back('\\');
            out.push_back(e);
        }
    }
    return out;
}

StatusOr<Regex> Regex::compile(std::string_view pattern) {
    std::string rewritten = rewrite_oniguruma_pattern(pattern);
    int error = 0;
    PCRE2_SIZE offset = 0;
    uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(), options,
                                     &error, &offset, nullptr);
    if (code == nullptr) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(error, msg, sizeof(msg));
        return invalid_argument("tokenizer regex {:?} does not compile at offset {}: {}", std::string(pattern),
                                offset, reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is unavailable
    Regex r;
    r.pattern_ = std::string(pattern);
    r.code_ = std::shared_ptr<void>(code, CodeDeleter());
    return r;
}

bool Regex::find(std::string_view subject, size_t start, size_t* begin, size_t* end) const {
    MatchScratch& s = scratch();
    int rc = pcre2_match(static_cast<const pcre2_code*>(code_.get()), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                         subject.size(), start, PCRE2_NO_UTF_CHECK, s.data, s.context);
    if (rc < 0) return false;  // no match, or a resource limit: the rest is left unsplit
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
    *begin = ov[0];
    *end = ov[1];
    return true;
}

}  // namespace dsa::text
