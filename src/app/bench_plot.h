// bench-serving's sweep plot: a hand-written SVG of latency (TTFT and end-to-end, median and p99) against
// output token throughput, one marker per sweep point (a request rate or a concurrency), no dependencies.
#pragma once

#include <string>
#include <vector>

#include "base/json.h"
#include "base/status.h"

namespace dsa::app {

struct SweepPoint {
    std::string label;             // e.g. "c=4" or "rate=2"
    double output_throughput = 0;  // tok/s
    double ttft_p50_ms = 0, ttft_p99_ms = 0, e2e_p50_ms = 0, e2e_p99_ms = 0;
};

// Reads the point out of a build_report() JSON.
SweepPoint sweep_point_of(const Json& report, std::string label);

// "Nice" axis ticks (steps of 1, 2 or 5 x 10^k) from 0 to at least `max_value`, about `target` of them.
std::vector<double> nice_ticks(double max_value, int target = 5);

// The whole SVG document.
std::string latency_svg(const std::vector<SweepPoint>& points, const std::string& title);

// Writes latency_svg() to `path`, which must end in .svg (PNG is not written: no image library).
Status write_latency_plot(const std::string& path, const std::vector<SweepPoint>& points, const std::string& title);

}  // namespace dsa::app
