// ValueStreamer: turns the raw text of one tool-call argument value, arriving in pieces, into its JSON text
// inside the arguments object. kString: the raw text is the string (optionally stripped) and streams as it
// arrives. kJson: the text is JSON — containers and quoted strings stream through JsonNormalizer; bare
// scalars (numbers, true/false/null, or plain text that is not JSON) are short and are held until the value
// ends, then printed as JSON or, if invalid, as a string. A bare scalar longer than kMaxHeldScalar bytes
// cannot be a sensible number and turns into a streamed string.
#pragma once

#include <string>
#include <string_view>

#include "parsers/json_stream.h"

namespace dsa::parsers {

enum class ValueKind { kString, kJson };

struct ValueOptions {
    ValueKind kind = ValueKind::kString;
    bool strip = true;             // strip surrounding whitespace of string values (and of invalid JSON)
    bool python_literals = false;  // accept True / False / None for bare scalars (GLM's literal_eval step)
};

class ValueStreamer {
public:
    static constexpr size_t kMaxHeldScalar = 256;

    explicit ValueStreamer(ValueOptions options) : options_(options) {}
    std::string feed(std::string_view raw);
    std::string finish();

private:
    enum class Mode { kUndecided, kString, kJson, kScalar };

    std::string feed_string(std::string_view raw);
    std::string decide(std::string_view raw);
    std::string scalar_text() const;

    ValueOptions options_;
    Mode mode_ = Mode::kUndecided;
    bool seen_text_ = false;  // kString: a non-space byte was emitted (leading spaces are stripped)
    std::string held_;        // kScalar: the raw text so far; kString with strip: trailing spaces
    std::string leading_;     // kUndecided: leading spaces (kept when the value turns out a raw string)
    JsonNormalizer json_;
};

}  // namespace dsa::parsers
