// bench-serving's metrics and sweep planning: numpy-style percentile/std, the report's JSON keys (SGLang's
// names, as one JSON line) and values, the console layout, and the sweep range syntax.
#include "app/bench_serving.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "app/bench_metrics.h"

namespace dsa::app {
namespace {

TEST(BenchServing, PercentileInterpolatesLikeNumpy) {
    std::vector<double> v = {4, 1, 3, 2};
    EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
    EXPECT_DOUBLE_EQ(percentile(v, 0), 1.0);
    EXPECT_DOUBLE_EQ(percentile(v, 100), 4.0);
    EXPECT_NEAR(percentile(v, 99), 3.97, 1e-12);
    EXPECT_DOUBLE_EQ(percentile({}, 50), 0.0);
    EXPECT_DOUBLE_EQ(mean_of(v), 2.5);
    EXPECT_NEAR(stddev_of(v), std::sqrt(1.25), 1e-12);  // population std, numpy's default
}

// SGLang's "{:<40} {:<10}" row, trailing padding left out.
std::string row(const std::string& label, const std::string& value) {
    return label + std::string(40 - label.size(), ' ') + " " + value;
}

RunInfo info_for_test() {
    RunInfo info;
    info.backend = "sglang-oai";
    info.dataset_name = "sharegpt";
    info.request_rate = std::numeric_limits<double>::infinity();
    info.max_concurrency = 8;
    info.sharegpt_output_len = 16;
    info.random_input_len = 64;
    info.random_output_len = 8;
    info.random_range_ratio = 0.5;
    return info;
}

TEST(BenchServing, ReportHasSglangKeysAndValues) {
    RequestResult a{true, "", 10, 5, 0.1, 0.5, {0.1, 0.1, 0.1, 0.1}, "hello", 7};
    RequestResult failed;
    failed.error = "HTTP 500";
    Json r = build_report({a, failed}, 2.0, info_for_test());
    for (const char* key : {"backend",
                            "dataset_name",
                            "request_rate",
                            "max_concurrency",
                            "sharegpt_output_len",
                            "random_input_len",
                            "random_output_len",
                            "random_range_ratio",
                            "duration",
                            "completed",
                            "total_input_tokens",
                            "total_output_tokens",
                            "total_output_tokens_retokenized",
                            "request_throughput",
                            "input_throughput",
                            "output_throughput",
                            "mean_e2e_latency_ms",
                            "median_e2e_latency_ms",
                            "std_e2e_latency_ms",
                            "p99_e2e_latency_ms",
                            "mean_ttft_ms",
                            "median_ttft_ms",
                            "std_ttft_ms",
                            "p99_ttft_ms",
                            "mean_tpot_ms",
                            "median_tpot_ms",
                            "std_tpot_ms",
                            "p99_tpot_ms",
                            "mean_itl_ms",
                            "median_itl_ms",
                            "std_itl_ms",
                            "p95_itl_ms",
                            "p99_itl_ms",
                            "concurrency",
                            "accept_length"})
        EXPECT_TRUE(r.contains(key)) << key;
    EXPECT_EQ(r["backend"], "sglang-oai");
    EXPECT_EQ(r["sharegpt_output_len"], 16);
    EXPECT_EQ(r["completed"], 1);
    EXPECT_EQ(r["total_input_tokens"], 10);
    EXPECT_EQ(r["total_output_tokens"], 5);
    EXPECT_EQ(r["total_output_tokens_retokenized"], 7);
    EXPECT_DOUBLE_EQ(r["request_throughput"].get<double>(), 0.5);
    EXPECT_DOUBLE_EQ(r["output_throughput"].get<double>(), 2.5);
    EXPECT_NEAR(r["mean_ttft_ms"].get<double>(), 100.0, 1e-9);
    EXPECT_NEAR(r["mean_tpot_ms"].get<double>(), 100.0, 1e-9);  // (0.5 - 0.1) / (5 - 1)
    EXPECT_NEAR(r["median_itl_ms"].get<double>(), 100.0, 1e-9);
    EXPECT_NEAR(r["p99_e2e_latency_ms"].get<double>(), 500.0, 1e-9);
    EXPECT_NEAR(r["concurrency"].get<double>(), 0.25, 1e-12);  // 0.5 s of requests over 2 s
    EXPECT_EQ(r["request_rate"], "inf");
    EXPECT_EQ(r["max_concurrency"], 8);
    // One JSON line per run in --output-file: the dump has no newline and parses back.
    std::string line = r.dump();
    EXPECT_EQ(line.find('\n'), std::string::npos);
    EXPECT_EQ(Json::parse(line), r);
}

TEST(BenchServing, ReportWithoutTokenizerOrSuccessStaysFinite) {
    RequestResult failed;
    RunInfo info = info_for_test();
    info.max_concurrency = 0;
    info.sharegpt_output_len.reset();
    Json r = build_report({failed}, 1.0, info);
    EXPECT_EQ(r["completed"], 0);
    EXPECT_TRUE(r["total_output_tokens_retokenized"].is_null());
    EXPECT_TRUE(r["max_concurrency"].is_null());
    EXPECT_TRUE(r["sharegpt_output_len"].is_null());
    EXPECT_DOUBLE_EQ(r["p99_ttft_ms"].get<double>(), 0.0);
    std::string text = format_report(r);
    EXPECT_NE(text.find(row("Max request concurrency:", "not set")), std::string::npos) << text;
    EXPECT_NE(text.find(row("Total generated tokens (retokenized):", "n/a")), std::string::npos) << text;
}

TEST(BenchServing, ConsoleReportFollowsSglangLayout) {
    RequestResult a{true, "", 10, 5, 0.1, 0.5, {0.1, 0.1, 0.1, 0.1}, "hello", 5};
    std::string text = format_report(build_report({a}, 2.0, info_for_test()));
    // Python's "{:^50}" centring: the odd pad character goes right.
    EXPECT_EQ(text.rfind(std::string(12, '=') + " Serving Benchmark Result " + std::string(12, '=') + "\n", 0), 0u)
        << text;
    EXPECT_NE(text.find(row("Backend:", "sglang-oai")), std::string::npos) << text;
    EXPECT_NE(text.find(row("Successful requests:", "1")), std::string::npos) << text;
    EXPECT_NE(text.find(row("Output token throughput (tok/s):", "2.50")), std::string::npos) << text;
    EXPECT_NE(text.find(std::string(15, '-') + "Time to First Token" + std::string(16, '-') + "\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find(row("Median TTFT (ms):", "100.00")), std::string::npos) << text;
    EXPECT_NE(text.find(row("P99 E2E Latency (ms):", "500.00")), std::string::npos) << text;
    EXPECT_NE(text.find("P95 ITL (ms):"), std::string::npos) << text;
    EXPECT_NE(text.find("Max ITL (ms):"), std::string::npos) << text;
    EXPECT_EQ(text.substr(text.size() - 51), std::string(50, '=') + "\n");
}

TEST(BenchServing, SweepRangesParse) {
    auto list = parse_sweep_range("1,2,4,8", true);
    ASSERT_TRUE(list.is_ok());
    EXPECT_EQ(*list, (std::vector<double>{1, 2, 4, 8}));
    auto triple = parse_sweep_range("2,10,2", true);  // start,stop,step for rates, as SGLang reads it
    ASSERT_TRUE(triple.is_ok());
    EXPECT_EQ(*triple, (std::vector<double>{2, 4, 6, 8}));
    auto conc = parse_sweep_range("1,4,16", false);  // concurrency lists stay lists
    ASSERT_TRUE(conc.is_ok());
    EXPECT_EQ(*conc, (std::vector<double>{1, 4, 16}));
    auto with_inf = parse_sweep_range("1,inf", true);
    ASSERT_TRUE(with_inf.is_ok());
    EXPECT_TRUE(std::isinf(with_inf->back()));
    EXPECT_FALSE(parse_sweep_range("1,inf", false).is_ok());
    EXPECT_FALSE(parse_sweep_range("1,x", true).is_ok());
    EXPECT_FALSE(parse_sweep_range("", true).is_ok());
    EXPECT_FALSE(parse_sweep_range("0,2", false).is_ok());
    EXPECT_FALSE(parse_sweep_range("8,2,1", true).is_ok());
}

}  // namespace
}  // namespace dsa::app
