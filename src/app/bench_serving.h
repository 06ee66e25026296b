// `dsaserve bench-serving`: the counterpart of `python -m sglang.bench_serving`, with SGLang's flag spellings.
// Builds a dataset (bench_datasets), sends it to a running server through one of SGLang's backends
// (bench_backends) at a Poisson request rate and/or under a concurrency cap, prints SGLang's report
// (bench_metrics), appends it as one JSON line to --output-file, and can sweep several rates or concurrencies
// and plot latency against throughput (bench_plot).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "base/status.h"

namespace dsa::app {

// A sweep list "a,b,c,...". With `rates` (--request-rate-range) "inf" is allowed and exactly three values mean
// start,stop,step (stop excluded), as SGLang reads that flag; concurrency lists are always plain lists.
StatusOr<std::vector<double>> parse_sweep_range(const std::string& text, bool rates);

// Registers the subcommand on `app`; the callback runs it and sets the exit code.
void add_bench_serving_command(CLI::App& app, int* exit_code);

}  // namespace dsa::app
