// UTF-8 helpers for Python-compatible string semantics: strings are indexed, sliced and measured in code
// points, and whitespace / case follow Python's str methods (case mapping covers ASCII, Latin-1, Latin
// Extended-A, Greek and Cyrillic; other scripts are left unchanged). Invalid UTF-8 bytes decode as U+FFFD.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsa::text::jinja {

std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t cp);
size_t utf8_length(std::string_view s);
bool is_ascii(std::string_view s);

bool py_isspace(char32_t c);  // str.isspace / str.split() / str.strip()
bool py_isalpha(char32_t c);
bool py_isdigit(char32_t c);
bool py_isalnum(char32_t c);
bool py_isword(char32_t c);  // regex \w
char32_t py_upper(char32_t c);
char32_t py_lower(char32_t c);

std::string str_upper(std::string_view s);
std::string str_lower(std::string_view s);

}  // namespace dsa::text::jinja
