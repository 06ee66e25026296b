// Prometheus text exposition of the front-end counters/histograms and the engine gauges (see metrics.h).
#include "server/metrics.h"

#include <cmath>

#include <fmt/format.h>

namespace dsa::server {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {}

void Histogram::observe(double v) {
    size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    double micro = std::max(0.0, v) * 1e6;
    sum_micro_.fetch_add(static_cast<uint64_t>(std::llround(micro)), std::memory_order_relaxed);
}

std::string prom_float(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    std::string s = fmt::format("{}", v);
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
}

void Histogram::render(const std::string& name, const std::string& labels, std::string& out) const {
    uint64_t cumulative = 0;
    std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i <= bounds_.size(); ++i) {
        cumulative += buckets_[i].load(std::memory_order_relaxed);
        std::string le = i < bounds_.size() ? prom_float(bounds_[i]) : "+Inf";
        out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, le, prom_float(double(cumulative)));
    }
    double sum = sum_micro_.load(std::memory_order_relaxed) / 1e6;
    out += fmt::format("{}_count{{{}}} {}\n", name, labels, prom_float(double(count())));
    out += fmt::format("{}_sum{{{}}} {}\n", name, labels, prom_float(sum));
}

std::vector<double> ttft_buckets() {
    return {0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400};
}
std::vector<double> inter_token_buckets() {
    return {0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060,
            0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1,     2,     4,     6,     8};
}
std::vector<double> e2e_buckets() {
    return {0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400};
}

ServerMetrics::ServerMetrics()
    : time_to_first_token(ttft_buckets()), inter_token_latency(inter_token_buckets()), e2e_request_latency(e2e_buckets()) {}

void ServerMetrics::record_request(int64_t prompt, int64_t generated, int64_t cached, double e2e, bool aborted) {
    prompt_tokens.fetch_add(static_cast<uint64_t>(std::max<int64_t>(prompt, 0)), std::memory_order_relaxed);
    generation_tokens.fetch_add(static_cast<uint64_t>(std::max<int64_t>(generated, 0)), std::memory_order_relaxed);
    cached_tokens.fetch_add(static_cast<uint64_t>(std::max<int64_t>(cached, 0)), std::memory_order_relaxed);
    num_requests.fetch_add(1, std::memory_order_relaxed);
    if (aborted) num_aborted_requests.fetch_add(1, std::memory_order_relaxed);
    e2e_request_latency.observe(e2e);
}

void ServerMetrics::record_inter_token(double interval, int64_t num_tokens) {
    if (num_tokens <= 0) return;
    double each = interval / static_cast<double>(num_tokens);
    for (int64_t i = 0; i < num_tokens; ++i) inter_token_latency.observe(each);
}

namespace {

std::string escape_label(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

void family(std::string& out, const std::string& name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void sample(std::string& out, const std::string& name, const std::string& labels, double v) {
    out += fmt::format("{}{{{}}} {}\n", name, labels, prom_float(v));
}

void render_counters(const ServerMetrics& m, const std::string& l, std::string& out) {
    auto counter = [&](const char* name, const char* help, uint64_t v) {
        family(out, name, "counter", help);
        sample(out, name, l, static_cast<double>(v));
    };
    counter("sglang:prompt_tokens_total", "Number of prefill tokens processed.", m.prompt_tokens.load());
    counter("sglang:generation_tokens_total", "Number of generation tokens processed.", m.generation_tokens.load());
    counter("sglang:num_requests_total", "Number of requests processed.", m.num_requests.load());
    counter("sglang:num_aborted_requests_total", "Number of requests aborted.", m.num_aborted_requests.load());
    family(out, "sglang:cached_tokens_total", "counter", "Number of cached prompt tokens.");
    sample(out, "sglang:cached_tokens_total", l + ",cache_source=\"device\"", static_cast<double>(m.cached_tokens.load()));
}

void render_histograms(const ServerMetrics& m, const std::string& l, std::string& out) {
    family(out, "sglang:time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.");
    m.time_to_first_token.render("sglang:time_to_first_token_seconds", l, out);
    family(out, "sglang:inter_token_latency_seconds", "histogram", "Histogram of inter-token latency in seconds.");
    m.inter_token_latency.render("sglang:inter_token_latency_seconds", l, out);
    family(out, "sglang:e2e_request_latency_seconds", "histogram", "Histogram of End-to-end request latency in seconds");
    m.e2e_request_latency.render("sglang:e2e_request_latency_seconds", l, out);
}

void render_gauges(const engine::EngineStats& s, const std::string& l, int64_t context_len, std::string& out) {
    auto gauge = [&](const char* name, const char* help, double v) {
        family(out, name, "gauge", help);
        sample(out, name, l, v);
    };
    gauge("sglang:num_running_reqs", "The number of running requests.", double(s.num_running_reqs));
    gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", double(s.num_queue_reqs));
    gauge("sglang:num_used_tokens", "The number of used tokens.", double(s.num_used_tokens));
    gauge("sglang:token_usage", "The token usage.", s.token_usage);
    gauge("sglang:max_total_num_tokens", "Maximum total number of tokens in the KV cache pool.",
          double(s.max_total_num_tokens));
    gauge("sglang:gen_throughput", "The generation throughput (token/s).", s.gen_throughput);
    gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", s.cache_hit_rate);
    gauge("sglang:num_retracted_reqs", "The number of retracted requests.", double(s.num_retracted_reqs));
    gauge("sglang:context_len", "The context length.", double(context_len));
    const double page = double(s.page_size);
    gauge("sglang:kv_available_tokens", "The number of free KV tokens.", double(s.num_free_pages) * page);
    gauge("sglang:kv_used_tokens", "The number of KV tokens held by requests.", double(s.num_held_pages) * page);
    gauge("sglang:kv_evictable_tokens", "The number of unreferenced KV tokens in the prefix cache.",
          double(s.num_evictable_pages) * page);
    gauge("sglang:page_size", "The KV page size in tokens.", page);
}

}  // namespace

std::string render_metrics(const ServerMetrics& m, const engine::EngineStats& stats, const MetricLabels& labels,
                           int64_t context_len) {
    std::string front = fmt::format("model_name=\"{}\",engine_type=\"{}\"", escape_label(labels.model_name),
                                    escape_label(labels.engine_type));
    std::string sched = front + ",tp_rank=\"0\",pp_rank=\"0\",moe_ep_rank=\"0\"";
    std::string out;
    render_counters(m, front, out);
    render_histograms(m, front, out);
    render_gauges(stats, sched, context_len, out);
    return out;
}

}  // namespace dsa::server
