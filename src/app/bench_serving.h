// `dsaserve bench-serving`: the counterpart of `python -m sglang.bench_serving` for the random dataset.
// Sends random token-id prompts to POST /generate (streaming), times TTFT / TPOT / ITL / E2E per request and
// prints an SGLang-style report. The pure pieces (sampling, percentiles, SSE parsing, report) are exposed here
// so they can be unit-tested without a server.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/json.h"

namespace dsa::app {

// Linear-interpolated percentile (numpy's default); p in [0, 100]. 0 for an empty sample.
double percentile(std::vector<double> values, double p);
double mean_of(const std::vector<double>& values);

// `n` lengths drawn uniformly from [max(1, int(len * ratio)), len], as SGLang's random dataset does.
std::vector<int> sample_lengths(int len, double range_ratio, int n, std::mt19937_64& rng);

// One SSE line of /generate. nullopt for lines that carry no event (blank, comments, malformed JSON).
struct SseEvent {
    bool done = false;  // `data: [DONE]`
    std::string text;   // cumulative text
    int64_t completion_tokens = -1;  // cumulative; -1 when absent
};
std::optional<SseEvent> parse_sse_line(const std::string& line);

// What one request measured. Times in seconds.
struct RequestResult {
    bool success = false;
    std::string error;
    int input_len = 0;
    int output_len = 0;
    double ttft = 0;
    double e2e = 0;
    std::vector<double> itl;
};

// The metrics SGLang prints, as JSON (times in ms, throughputs per second).
Json build_report(const std::vector<RequestResult>& results, double duration_s, double request_rate,
                  int max_concurrency);
// The human-readable report of `build_report`'s JSON.
std::string format_report(const Json& report);

// Registers the subcommand on `app`; the callback runs it and sets the exit code.
void add_bench_serving_command(CLI::App& app, int* exit_code);

}  // namespace dsa::app
