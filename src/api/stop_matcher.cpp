// Stop-string holdback and trimming (see stop_matcher.h).
#include "api/stop_matcher.h"

#include <algorithm>

namespace dsa::api {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops, bool no_stop_trim)
    : no_stop_trim_(no_stop_trim) {
    for (auto& s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
}

const std::string& StopStringMatcher::matched_stop() const {
    static const std::string kEmpty;
    return matched() ? stops_[matched_index_] : kEmpty;
}

std::string StopStringMatcher::feed(std::string_view delta) {
    if (matched()) return {};
    if (stops_.empty()) return std::string(delta);
    held_.append(delta);
    size_t best_pos = std::string::npos;
    for (size_t i = 0; i < stops_.size(); ++i) {
        size_t pos = held_.find(stops_[i]);
        if (pos < best_pos) {
            best_pos = pos;
            matched_index_ = static_cast<int>(i);
        }
    }
    if (best_pos != std::string::npos) {
        size_t keep = best_pos + (no_stop_trim_ ? stops_[matched_index_].size() : 0);
        std::string out = held_.substr(0, keep);
        held_.clear();
        return out;
    }
    size_t hold = partial_suffix_len();
    std::string out = held_.substr(0, held_.size() - hold);
    held_.erase(0, held_.size() - hold);
    return out;
}

std::string StopStringMatcher::flush() {
    std::string out;
    out.swap(held_);
    return out;
}

size_t StopStringMatcher::partial_suffix_len() const {
    size_t best = 0;
    std::string_view text(held_);
    for (const auto& stop : stops_) {
        size_t max_len = std::min(stop.size() - 1, text.size());
        for (size_t len = max_len; len > best; --len) {
            if (text.substr(text.size() - len) == std::string_view(stop).substr(0, len)) {
                best = len;
                break;
            }
        }
    }
    return best;
}

}  // namespace dsa::api
