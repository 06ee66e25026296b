// bench-serving's statistics and report (see bench_metrics.h).
#include "app/bench_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

namespace dsa::app {

double percentile(std::vector<double> values, double p) {
    if (values.empty()) return 0.0;
    std::sort(values.begin(), values.end());
    double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(values.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(rank));
    size_t hi = std::min(lo + 1, values.size() - 1);
    return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

double mean_of(const std::vector<double>& values) {
    if (values.empty()) return 0.0;
    return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

double stddev_of(const std::vector<double>& values) {
    if (values.empty()) return 0.0;
    double m = mean_of(values), acc = 0;
    for (double v : values) acc += (v - m) * (v - m);
    return std::sqrt(acc / static_cast<double>(values.size()));
}

namespace {

// mean/median/std/p99 (and p95/max where SGLang has them) of `seconds`, in ms.
void add_stats(Json& out, const std::string& name, const std::vector<double>& seconds, bool with_p95_max) {
    std::vector<double> ms;
    for (double s : seconds) ms.push_back(s * 1000.0);
    out["mean_" + name + "_ms"] = mean_of(ms);
    out["median_" + name + "_ms"] = percentile(ms, 50);
    out["std_" + name + "_ms"] = stddev_of(ms);
    if (with_p95_max) out["p95_" + name + "_ms"] = percentile(ms, 95);
    out["p99_" + name + "_ms"] = percentile(ms, 99);
    if (with_p95_max) out["max_" + name + "_ms"] = ms.empty() ? 0.0 : *std::max_element(ms.begin(), ms.end());
}

Json run_info_json(const RunInfo& info) {
    Json j;
    j["backend"] = info.backend;
    j["dataset_name"] = info.dataset_name;
    j["request_rate"] = std::isinf(info.request_rate) ? Json("inf") : Json(info.request_rate);
    j["max_concurrency"] = info.max_concurrency > 0 ? Json(info.max_concurrency) : Json(nullptr);
    j["sharegpt_output_len"] = info.sharegpt_output_len ? Json(*info.sharegpt_output_len) : Json(nullptr);
    j["random_input_len"] = info.random_input_len;
    j["random_output_len"] = info.random_output_len;
    j["random_range_ratio"] = info.random_range_ratio;
    return j;
}

}  // namespace

Json build_report(const std::vector<RequestResult>& results, double duration_s, const RunInfo& info) {
    std::vector<double> ttft, tpot, itl, e2e;
    int completed = 0;
    int64_t in_tok = 0, out_tok = 0, retok = 0;
    bool have_retok = false;
    for (const auto& r : results) {
        if (!r.success) continue;
        ++completed;
        in_tok += r.input_len;
        out_tok += r.output_len;
        if (r.retokenized_len >= 0) {
            have_retok = true;
            retok += r.retokenized_len;
        }
        ttft.push_back(r.ttft);
        e2e.push_back(r.e2e);
        itl.insert(itl.end(), r.itl.begin(), r.itl.end());
        if (r.output_len > 1) tpot.push_back((r.e2e - r.ttft) / (r.output_len - 1));
    }
    double d = duration_s > 0 ? duration_s : 1e-9;
    Json j = run_info_json(info);
    j["duration"] = duration_s;
    j["completed"] = completed;
    j["total_input_tokens"] = in_tok;
    j["total_output_tokens"] = out_tok;
    j["total_output_tokens_retokenized"] = have_retok ? Json(retok) : Json(nullptr);
    j["request_throughput"] = completed / d;
    j["input_throughput"] = static_cast<double>(in_tok) / d;
    j["output_throughput"] = static_cast<double>(out_tok) / d;
    j["total_throughput"] = static_cast<double>(in_tok + out_tok) / d;
    add_stats(j, "e2e_latency", e2e, false);
    add_stats(j, "ttft", ttft, false);
    add_stats(j, "tpot", tpot, false);
    add_stats(j, "itl", itl, true);
    j["concurrency"] = std::accumulate(e2e.begin(), e2e.end(), 0.0) / d;
    j["accept_length"] = nullptr;
    return j;
}

namespace {

class ReportWriter {
  public:
    void text(const char* label, const std::string& v) { line("%-40s %-10s\n", label, v.c_str()); }
    void num(const char* label, const Json& v) { line("%-40s %-10.2f\n", label, v.get<double>()); }
    void count(const char* label, const Json& v) {
        text(label, v.is_null() ? std::string("n/a") : std::to_string(v.get<int64_t>()));
    }
    void title(const char* t, char fill) {
        std::string s = std::string(" ") + t + " ";
        if (fill == '-') s = t;
        size_t pad = s.size() < 50 ? 50 - s.size() : 0;
        o_ << std::string(pad / 2, fill) << s << std::string(pad - pad / 2, fill) << "\n";
    }
    std::string str() const { return o_.str(); }

  private:
    template <class... A>
    void line(const char* fmt, A... a) {
        char buf[160];
        std::snprintf(buf, sizeof(buf), fmt, a...);
        o_ << buf;
    }
    std::ostringstream o_;
};

std::string rate_text(const Json& r) {
    if (r.is_string()) return r.get<std::string>();
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", r.get<double>());
    return buf;
}

}  // namespace

std::string format_report(const Json& j) {
    ReportWriter w;
    w.title("Serving Benchmark Result", '=');
    w.text("Backend:", j["backend"].get<std::string>());
    w.text("Traffic request rate:", rate_text(j["request_rate"]));
    w.text("Max request concurrency:",
           j["max_concurrency"].is_null() ? "not set" : std::to_string(j["max_concurrency"].get<int>()));
    w.count("Successful requests:", j["completed"]);
    w.num("Benchmark duration (s):", j["duration"]);
    w.count("Total input tokens:", j["total_input_tokens"]);
    w.count("Total generated tokens:", j["total_output_tokens"]);
    w.count("Total generated tokens (retokenized):", j["total_output_tokens_retokenized"]);
    w.num("Request throughput (req/s):", j["request_throughput"]);
    w.num("Input token throughput (tok/s):", j["input_throughput"]);
    w.num("Output token throughput (tok/s):", j["output_throughput"]);
    w.num("Total token throughput (tok/s):", j["total_throughput"]);
    w.num("Concurrency:", j["concurrency"]);
    struct Section {
        const char* title;
        const char* key;
        const char* label;
        bool p95_max;
    };
    const Section sections[] = {{"End-to-End Latency", "e2e_latency", "E2E Latency", false},
                                {"Time to First Token", "ttft", "TTFT", false},
                                {"Time per Output Token (excl. 1st token)", "tpot", "TPOT", false},
                                {"Inter-Token Latency", "itl", "ITL", true}};
    for (const Section& s : sections) {
        w.title(s.title, '-');
        std::vector<std::pair<std::string, std::string>> rows = {{"mean", "Mean"}, {"median", "Median"}};
        if (s.p95_max) rows.push_back({"p95", "P95"});
        rows.push_back({"p99", "P99"});
        if (s.p95_max) rows.push_back({"max", "Max"});
        for (const auto& [stat, name] : rows) {
            std::string label = name + " " + s.label + " (ms):";
            w.num(label.c_str(), j[stat + "_" + s.key + "_ms"]);
        }
    }
    return w.str() + std::string(50, '=') + "\n";
}

}  // namespace dsa::app
