// A compiled PCRE2 pattern (UTF + UCP + JIT) for the tokenizer's pre-tokenizer splits. Patterns come from
// tokenizer.json, written for Oniguruma; `\s`/`\S` are rewritten to the White_Space property so that they
// match Oniguruma (PCRE2's UCP `\s` misses U+0085). Matching is thread-safe: match data and the JIT stack
// are per thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace dsa::text {

class Regex {
public:
    static StatusOr<Regex> compile(std::string_view pattern);

    // Finds the first match in subject[start..). The subject must be valid UTF-8 and start a code point.
    // Returns false when there is none (or when PCRE2 gives up, e.g. a match limit on hostile input).
    bool find(std::string_view subject, size_t start, size_t* begin, size_t* end) const;

    const std::string& pattern() const { return pattern_; }

private:
    struct CodeDeleter {
        void operator()(void* code) const;
    };
    std::string pattern_;
    std::shared_ptr<void> code_;  // pcre2_code_8*, immutable and shareable across threads
};

// Oniguruma -> PCRE2 rewrite (exposed for tests): `\s` -> `\p{White_Space}`, `\S` -> `\P{White_Space}`.
std::string rewrite_oniguruma_pattern(std::string_view pattern);

}  // namespace dsa::text
