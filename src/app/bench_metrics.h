// bench-serving's metrics: per-request measurements, the statistics over them (numpy's percentile and std),
// the run's report as JSON with SGLang's bench_serving key names, and its console layout.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/json.h"

namespace dsa::app {

// Linear-interpolated percentile (numpy's default); p in [0, 100]. 0 for an empty sample.
double percentile(std::vector<double> values, double p);
double mean_of(const std::vector<double>& values);
double stddev_of(const std::vector<double>& values);  // population std (numpy's default)

// What one request measured. Times in seconds.
struct RequestResult {
    bool success = false;
    std::string error;
    int input_len = 0;
    int output_len = 0;
    double ttft = 0;
    double e2e = 0;
    std::vector<double> itl;
    std::string generated_text;
    int retokenized_len = -1;  // the generated text re-encoded by the client's tokenizer; -1 without one
};

// The run's settings echoed into the report (SGLang writes them first).
struct RunInfo {
    std::string backend = "sglang";
    std::string dataset_name = "random";
    double request_rate = 0;  // +inf: all at once
    int max_concurrency = 0;  // 0: not set
    std::optional<int> sharegpt_output_len;
    int random_input_len = 0;
    int random_output_len = 0;
    double random_range_ratio = 0;
};

// The metrics SGLang writes (times in ms, throughputs per second).
Json build_report(const std::vector<RequestResult>& results, double duration_s, const RunInfo& info);
// The console report of `build_report`'s JSON, in SGLang's layout.
std::string format_report(const Json& report);

}  // namespace dsa::app
