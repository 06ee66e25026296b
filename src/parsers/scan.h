// Small byte-level helpers shared by the streaming parsers: finding the first of several markers, the length
// of a held-back partial marker at the end of a buffer, whitespace tests, and Python-style JSON string
// escaping. Markers are matched on bytes, so a delta boundary may fall anywhere, even inside a UTF-8 char.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dsa::parsers {

inline constexpr size_t kNotFound = std::string_view::npos;

struct MarkerHit {
    size_t pos = kNotFound;  // byte offset of the earliest marker, kNotFound when none occurs
    int which = -1;          // index of that marker in the list
    size_t size = 0;         // its length
    bool found() const { return pos != kNotFound; }
};

// The earliest complete occurrence of any marker (the first listed wins a tie).
MarkerHit find_first(std::string_view text, std::span<const std::string_view> markers);
inline MarkerHit find_first(std::string_view text, std::initializer_list<std::string_view> markers) {
    return find_first(text, std::span<const std::string_view>(markers.begin(), markers.size()));
}

// Longest k >= 1 such that the last k bytes of `text` are a proper prefix of some marker; 0 if none.
size_t partial_suffix(std::string_view text, std::span<const std::string_view> markers);
inline size_t partial_suffix(std::string_view text, std::initializer_list<std::string_view> markers) {
    return partial_suffix(text, std::span<const std::string_view>(markers.begin(), markers.size()));
}

// Incremental match of a tag's attribute list after its name: (\s+ KEY="VALUE")... \s* then ">" (or "/>"
// when allowed), with the keys in the given order. kNeedMore while the text could still match.
struct TagMatch {
    enum Status { kNeedMore, kFail, kOk } status = kNeedMore;
    size_t length = 0;  // bytes up to and including the closing ">"
    std::vector<std::string> values;
    bool self_closing = false;
};
TagMatch match_tag_attributes(std::string_view text, std::initializer_list<std::string_view> keys,
                              bool allow_self_closing, size_t max_length);

bool is_space(char c);
bool all_space(std::string_view text);
std::string_view trim(std::string_view text);
size_t trailing_space(std::string_view text);

// Appends `raw` escaped as the inside of a JSON string the way Python's json.dumps(ensure_ascii=False) does
// ('"', '\\', \n \r \t \b \f, other control bytes as \u00XX; everything else, UTF-8 included, verbatim).
void append_json_escaped(std::string& out, std::string_view raw);
std::string json_quote(std::string_view raw);

}  // namespace dsa::parsers
