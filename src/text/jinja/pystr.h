// Python str methods on UTF-8 strings (code-point semantics, Python's Unicode whitespace), shared by the
// string methods (methods.cpp) and the filters (filters.cpp).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace dsa::text::jinja::pystr {

enum class Side { kBoth, kLeft, kRight };

// str.strip([chars]); chars == nullopt strips whitespace.
std::string strip(const std::string& s, const std::optional<std::string>& chars, Side side);
// str.split(sep=None, maxsplit=-1) and str.rsplit.
std::vector<std::string> split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> rsplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> splitlines(const std::string& s, bool keepends);
std::string replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);
std::string title(const std::string& s);       // str.title()
std::string jinja_title(const std::string& s);  // jinja2's |title filter
std::string capitalize(const std::string& s);
// Code-point index of the first/last occurrence, or -1.
int64_t find(const std::string& s, const std::string& sub, bool reverse);
int64_t count(const std::string& s, const std::string& sub);
bool all_chars(const std::string& s, bool (*pred)(char32_t));
// jinja2's |indent filter.
std::string indent(const std::string& s, const std::string& pad, bool first, bool blank);
size_t wordcount(const std::string& s);
std::string html_escape(const std::string& s);

}  // namespace dsa::text::jinja::pystr
