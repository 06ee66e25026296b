// StopStringMatcher: stop strings on the streamed text of one choice (API_SPEC §8.4). Text that could still
// be the start of a stop string is held back and released once proven harmless; on a match the output is
// cut at the stop string (kept with no_stop_trim) and nothing after it is ever emitted. Works on UTF-8 bytes:
// a valid UTF-8 stop string can only match at a character boundary, so held text never splits a character
// that was not already split by the input.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dsa::api {

class StopStringMatcher {
public:
    StopStringMatcher() = default;
    // Empty stop strings are ignored. With several matches in one delta the earliest start wins; at the same
    // start, the first in `stops` order.
    StopStringMatcher(std::vector<std::string> stops, bool no_stop_trim);

    // Appends decoded text; returns the text that is now safe to emit (possibly empty).
    std::string feed(std::string_view delta);
    // End of output without a match: releases the held-back text.
    std::string flush();

    bool matched() const { return matched_index_ >= 0; }
    const std::string& matched_stop() const;
    bool active() const { return !stops_.empty(); }
    size_t num_held_bytes() const { return held_.size(); }

private:
    // Length of the longest suffix of held_ that is a proper prefix of some stop string.
    size_t partial_suffix_len() const;

    std::vector<std::string> stops_;
    bool no_stop_trim_ = false;
    std::string held_;
    int matched_index_ = -1;
};

}  // namespace dsa::api
