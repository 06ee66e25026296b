// Test helpers for the streaming parsers: chunkings of a text (whole, 1-byte, every 2-way split,
// token-like pieces that keep special markers whole, seeded random splits), running a parser over a
// chunking, and deterministic tool-call ids.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "parsers/factory.h"

namespace dsa::parsers::testing {

using Chunking = std::vector<std::string>;

inline Chunking split_at(std::string_view text, std::vector<size_t> cuts) {
    Chunking out;
    size_t prev = 0;
    for (size_t c : cuts) {
        out.emplace_back(text.substr(prev, c - prev));
        prev = c;
    }
    out.emplace_back(text.substr(prev));
    return out;
}

inline Chunking one_byte_chunks(std::string_view text) {
    Chunking out;
    for (char c : text) out.emplace_back(1, c);
    return out;
}

// Pieces like a tokenizer's: each special marker (anything from '<' up to the next '>' that contains a
// full-width bar or is a known tag) is one piece; other text is cut every 1-4 bytes.
inline Chunking token_like_chunks(std::string_view text, uint64_t seed) {
    std::mt19937_64 rng(seed);
    Chunking out;
    size_t i = 0;
    while (i < text.size()) {
        if (text[i] == '<') {
            const size_t end = text.find('>', i);
            if (end != std::string_view::npos && end - i < 64) {
                out.emplace_back(text.substr(i, end - i + 1));
                i = end + 1;
                continue;
            }
        }
        const size_t n = std::min<size_t>(1 + rng() % 4, text.size() - i);
        out.emplace_back(text.substr(i, n));
        i += n;
    }
    return out;
}

inline Chunking random_chunks(std::string_view text, std::mt19937_64& rng) {
    std::vector<size_t> cuts;
    if (!text.empty()) {
        const size_t num_cuts = rng() % std::min<size_t>(text.size(), 16) + 1;
        for (size_t k = 0; k < num_cuts; ++k) cuts.push_back(rng() % (text.size() + 1));
        std::sort(cuts.begin(), cuts.end());
    }
    return split_at(text, cuts);
}

// Every chunking the property tests use for one text.
inline std::vector<Chunking> all_chunkings(std::string_view text, uint64_t seed = 1234) {
    std::vector<Chunking> out;
    out.push_back({std::string(text)});
    out.push_back(one_byte_chunks(text));
    for (size_t cut = 0; cut <= text.size(); ++cut) out.push_back(split_at(text, {cut}));
    for (uint64_t s = 0; s < 5; ++s) out.push_back(token_like_chunks(text, seed + s));
    std::mt19937_64 rng(seed);
    for (int k = 0; k < 200; ++k) out.push_back(random_chunks(text, rng));
    return out;
}

inline ToolParserOptions counting_ids() {
    auto counter = std::make_shared<int>(0);
    ToolParserOptions options;
    options.make_id = [counter] { return "call_" + std::to_string((*counter)++); };
    return options;
}

inline std::unique_ptr<ToolCallParser> make_tool_parser(const std::string& name, const OrderedJson& tools) {
    auto parser = make_tool_call_parser(name, tools, counting_ids());
    return parser.is_ok() ? std::move(parser).value() : nullptr;
}

inline std::vector<ToolParseDelta> stream_tool(ToolCallParser& parser, const Chunking& chunks) {
    std::vector<ToolParseDelta> deltas;
    for (const auto& c : chunks) deltas.push_back(parser.feed(c));
    deltas.push_back(parser.finish());
    return deltas;
}

inline ReasoningDelta stream_reasoning(ReasoningParser& parser, const Chunking& chunks) {
    ReasoningDelta sum;
    for (const auto& c : chunks) {
        ReasoningDelta d = parser.feed(c);
        sum.reasoning += d.reasoning;
        sum.content += d.content;
    }
    ReasoningDelta d = parser.finish();
    return {sum.reasoning + d.reasoning, sum.content + d.content};
}

}  // namespace dsa::parsers::testing
