// ValueStreamer (see value_stream.h). Every decision depends only on the bytes seen, never on how they were
// split into pieces, so streamed and one-shot parses print the same value.
#include "parsers/value_stream.h"

#include "parsers/scan.h"

namespace dsa::parsers {

std::string ValueStreamer::feed_string(std::string_view raw) {
    std::string out;
    for (char c : raw) {
        if (options_.strip && !seen_text_ && is_space(c)) continue;
        if (options_.strip && is_space(c)) {
            held_ += c;
            continue;
        }
        seen_text_ = true;
        append_json_escaped(out, held_);
        held_.clear();
        append_json_escaped(out, std::string_view(&c, 1));
    }
    return out;
}

// The first non-space byte of a kJson value picks the mode.
std::string ValueStreamer::decide(std::string_view raw) {
    size_t i = 0;
    while (i < raw.size() && is_space(raw[i])) ++i;
    leading_ += raw.substr(0, i);
    if (i == raw.size()) return "";
    const char c = raw[i];
    if (c == '{' || c == '[' || c == '"') {
        mode_ = Mode::kJson;
        return json_.feed(raw.substr(i));
    }
    mode_ = Mode::kScalar;
    held_ = leading_;
    return feed(raw.substr(i));
}

std::string ValueStreamer::feed(std::string_view raw) {
    switch (mode_) {
        case Mode::kUndecided:
            if (options_.kind == ValueKind::kString) {
                mode_ = Mode::kString;
                return "\"" + feed_string(raw);
            }
            return decide(raw);
        case Mode::kString:
            return feed_string(raw);
        case Mode::kJson:
            return json_.feed(raw);
        case Mode::kScalar:
            held_ += raw;
            if (held_.size() <= kMaxHeldScalar) return "";
            // Too long for a number or literal: it is plain text, streamed as a string from now on.
            mode_ = Mode::kString;
            std::string text = std::move(held_);
            held_.clear();
            return "\"" + feed_string(text);
    }
    return "";
}

std::string ValueStreamer::scalar_text() const {
    const std::string_view stripped = trim(held_);
    const std::string number = canonical_number(stripped);
    if (!number.empty()) return number;
    if (stripped == "true" || stripped == "false" || stripped == "null") return std::string(stripped);
    if (options_.python_literals) {
        if (stripped == "True") return "true";
        if (stripped == "False") return "false";
        if (stripped == "None") return "null";
    }
    return json_quote(options_.strip ? stripped : std::string_view(held_));
}

std::string ValueStreamer::finish() {
    switch (mode_) {
        case Mode::kUndecided:
            if (options_.kind == ValueKind::kJson && !options_.strip && !leading_.empty()) return json_quote(leading_);
            return "\"\"";
        case Mode::kString:
            return "\"";  // with strip, the held trailing spaces are dropped
        case Mode::kJson:
            return json_.finish();
        case Mode::kScalar:
            return scalar_text();
    }
    return "";
}

}  // namespace dsa::parsers
