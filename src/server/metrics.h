// Front-end Prometheus metrics with SGLang's names and buckets (API_SPEC §2.10, RUNTIME_NOTES §11.1) and the
// text exposition format (version 0.0.4), written by hand. Counters and histograms are updated from I/O
// threads (lock-free atomics); scheduler gauges come from an EngineStats snapshot at scrape time.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/engine_client.h"

namespace dsa::server {

class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double v);
    // Exposition lines (_bucket cumulative with le, +Inf, _sum, _count) for `name` with `labels` ("a=\"b\"").
    void render(const std::string& name, const std::string& labels, std::string& out) const;
    uint64_t count() const { return count_.load(std::memory_order_relaxed); }
    const std::vector<double>& bounds() const { return bounds_; }

private:
    std::vector<double> bounds_;
    std::vector<std::atomic<uint64_t>> buckets_;  // per bucket (not cumulative); last = +Inf
    std::atomic<uint64_t> count_{0};
    std::atomic<uint64_t> sum_micro_{0};  // sum in 1e-6 units
};

// SGLang's bucket lists.
std::vector<double> ttft_buckets();
std::vector<double> inter_token_buckets();
std::vector<double> e2e_buckets();

struct ServerMetrics {
    ServerMetrics();

    std::atomic<uint64_t> prompt_tokens{0};
    std::atomic<uint64_t> generation_tokens{0};
    std::atomic<uint64_t> cached_tokens{0};
    std::atomic<uint64_t> num_requests{0};
    std::atomic<uint64_t> num_aborted_requests{0};
    Histogram time_to_first_token;
    Histogram inter_token_latency;
    Histogram e2e_request_latency;

    // One finished (or aborted) engine request.
    void record_request(int64_t prompt, int64_t generated, int64_t cached, double e2e_seconds, bool aborted);
    // `num_tokens` tokens arrived `interval` seconds after the previous ones: each observes interval / n.
    void record_inter_token(double interval, int64_t num_tokens);
};

struct MetricLabels {
    std::string model_name = "default";
    std::string engine_type = "unified";
};

// The whole /metrics body.
std::string render_metrics(const ServerMetrics& m, const engine::EngineStats& stats, const MetricLabels& labels,
                           int64_t context_len);

// Python-style float text as prometheus_client writes it: "1.0", "0.25", "+Inf", "NaN".
std::string prom_float(double v);

}  // namespace dsa::server
