// bench-serving's datasets, as SGLang's bench_serving builds them: `sharegpt` (a JSON list of
// {conversations: [{from, value}, ...]}; first human turn = prompt, the turn after it sets the output length
// unless --sharegpt-output-len; too short / too long pairs dropped), `random` (lengths uniform in
// [len * ratio, len]; prompt tokens cut from ShareGPT prompts when a dataset file is given, else random ids)
// and `random-ids`. Tokenization goes through a caller-supplied function so the pieces test without files.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace dsa::app {

// One benchmark request. Exactly one of `prompt` (text) and `prompt_ids` is the prompt sent.
struct DatasetRow {
    std::string prompt;
    std::vector<int32_t> prompt_ids;
    int prompt_len = 0;
    int output_len = 0;
};

using EncodeFn = std::function<std::vector<int32_t>(std::string_view)>;

// `n` lengths drawn uniformly from [max(min_len, int(len * ratio)), len].
std::vector<int> sample_lengths(int len, double range_ratio, int n, std::mt19937_64& rng, int min_len = 1);

struct SharegptPair {
    std::string prompt;
    std::string completion;
};

// Parses a ShareGPT-format file's text. Entries with fewer than two turns or no human turn followed by a
// reply are skipped; a malformed file (not a JSON list, turns without string values) is an error.
StatusOr<std::vector<SharegptPair>> parse_sharegpt(std::string_view json_text);

struct SharegptOptions {
    int num_prompts = 1000;
    std::optional<int> fixed_output_len;  // --sharegpt-output-len
    std::optional<int> context_len;       // --sharegpt-context-len: drop prompt + output longer than this
    uint64_t seed = 1;
    // --apply-chat-template: turns a user message into the templated prompt text; empty = off.
    std::function<StatusOr<std::string>(const std::string&)> chat_template;
};

// Shuffles the pairs (seeded) and keeps the first `num_prompts` that pass SGLang's filters (prompt and output
// at least 2 tokens, within context_len). Fewer rows come back when the file has fewer usable pairs.
StatusOr<std::vector<DatasetRow>> sample_sharegpt(std::vector<SharegptPair> pairs, const SharegptOptions& opt,
                                                  const EncodeFn& encode);

struct RandomOptions {
    int input_len = 1024;
    int output_len = 1024;
    double range_ratio = 0.0;
    int num_prompts = 1000;
    uint64_t seed = 1;
    int vocab_size = 256;  // ids drawn from [0, vocab_size) for random-ids
};

// Random token ids (SGLang's random-ids). prompt_ids set, prompt empty.
std::vector<DatasetRow> sample_random_ids(const RandomOptions& opt);

// SGLang's random: each prompt is a ShareGPT prompt's tokens repeated / cut to the sampled length. Errors when
// the pairs hold no non-empty prompt.
StatusOr<std::vector<DatasetRow>> sample_random_from_sharegpt(std::vector<SharegptPair> pairs, const RandomOptions& opt,
                                                              const EncodeFn& encode);

}  // namespace dsa::app
