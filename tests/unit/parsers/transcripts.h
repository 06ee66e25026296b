// The transcript suite shared by the golden tests and the streaming property tests: model outputs for each
// tool-call format (plain text, one / several calls, calls after text, unicode and escapes inside
// arguments, nested JSON, typed values, malformed and truncated blocks) with the expected parse.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "base/json.h"

namespace dsa::parsers::testing {

struct ExpectedCall {
    std::string name;
    std::string arguments;
    bool truncated = false;
};

struct Transcript {
    std::string name;
    std::string parser;  // SGLang --tool-call-parser name
    std::string text;
    std::string content;
    std::vector<ExpectedCall> calls;
};

inline void PrintTo(const Transcript& t, std::ostream* os) { *os << t.name; }

inline OrderedJson test_tools() {
    return OrderedJson::parse(R"([
      {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
        "properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}},
      {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string"}}}}},
      {"type":"function","function":{"name":"write_file","parameters":{"type":"object","properties":{
        "path":{"type":"string"},"content":{"type":"string"},"mode":{"type":["integer","null"]},
        "meta":{"type":"object"},"flag":{"type":"boolean"}}}}}])");
}

// ---- DSML (deepseekv32) builders ----
inline std::string dsml_param(const std::string& key, bool is_string, const std::string& value) {
    return "<｜DSML｜parameter name=\"" + key + "\" string=\"" + (is_string ? "true" : "false") + "\">" + value +
           "</｜DSML｜parameter>";
}
inline std::string dsml_invoke(const std::string& name, const std::vector<std::string>& params) {
    std::string body;
    for (size_t i = 0; i < params.size(); ++i) body += (i ? "\n" : "") + params[i];
    return "<｜DSML｜invoke name=\"" + name + "\">\n" + body + "\n</｜DSML｜invoke>";
}
inline std::string dsml_block(const std::vector<std::string>& invokes) {
    std::string body;
    for (size_t i = 0; i < invokes.size(); ++i) body += (i ? "\n" : "") + invokes[i];
    return "<｜DSML｜function_calls>\n" + body + "\n</｜DSML｜function_calls>";
}

// ---- DeepSeek-V3.1 builders ----
inline const std::string kV31Begin = "<｜tool▁calls▁begin｜>";
inline const std::string kV31End = "<｜tool▁calls▁end｜>";
inline std::string v31_call(const std::string& name, const std::string& args) {
    return "<｜tool▁call▁begin｜>" + name + "<｜tool▁sep｜>" + args + "<｜tool▁call▁end｜>";
}

// ---- GLM builders ----
inline std::string glm_call(const std::string& name, const std::vector<std::pair<std::string, std::string>>& args) {
    std::string s = "<tool_call>" + name;
    for (const auto& [k, v] : args) s += "<arg_key>" + k + "</arg_key><arg_value>" + v + "</arg_value>";
    return s + "</tool_call>";
}

inline std::string long_text() {
    std::string s;
    for (int i = 0; i < 60; ++i) s += "line " + std::to_string(i) + ": Grüße, 世界 — lorem ipsum dolor sit amet\n";
    return s;
}

inline std::string long_text_json() {
    std::string s;
    for (char c : long_text()) s += c == '\n' ? std::string("\\n") : std::string(1, c);
    return s;
}

std::vector<Transcript> dsml_transcripts();
std::vector<Transcript> v31_transcripts();
std::vector<Transcript> glm_transcripts();

inline std::vector<Transcript> all_transcripts() {
    std::vector<Transcript> all;
    for (auto* f : {dsml_transcripts, v31_transcripts, glm_transcripts}) {
        for (auto& t : f()) all.push_back(std::move(t));
    }
    return all;
}

}  // namespace dsa::parsers::testing
