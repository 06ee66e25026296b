// bench-serving's pure parts: percentile math, random length sampling within the range ratio, SSE line
// parsing of /generate streams, and the report's JSON fields (SGLang's names).
#include "app/bench_serving.h"

#include <limits>

#include <gtest/gtest.h>

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
}

TEST(BenchServing, SampledLengthsStayInRange) {
    std::mt19937_64 rng(7);
    for (int v : sample_lengths(100, 0.25, 500, rng)) {
        EXPECT_GE(v, 25);
        EXPECT_LE(v, 100);
    }
    for (int v : sample_lengths(10, 0.0, 100, rng)) EXPECT_GE(v, 1);
    for (int v : sample_lengths(32, 1.0, 10, rng)) EXPECT_EQ(v, 32);
}

TEST(BenchServing, ParsesSseLines) {
    auto ev = parse_sse_line(R"(data: {"text":"ab","meta_info":{"completion_tokens":3}})");
    ASSERT_TRUE(ev);
    EXPECT_FALSE(ev->done);
    EXPECT_EQ(ev->text, "ab");
    EXPECT_EQ(ev->completion_tokens, 3);
    auto done = parse_sse_line("data: [DONE]");
    ASSERT_TRUE(done);
    EXPECT_TRUE(done->done);
    EXPECT_FALSE(parse_sse_line(""));
    EXPECT_FALSE(parse_sse_line(": keep-alive"));
    EXPECT_FALSE(parse_sse_line("data: {not json"));
}

TEST(BenchServing, ReportHasSglangFields) {
    RequestResult a{true, "", 10, 5, 0.1, 0.5, {0.1, 0.1, 0.1, 0.1}};
    RequestResult failed;
    Json r = build_report({a, failed}, 2.0, std::numeric_limits<double>::infinity(), 8);
    EXPECT_EQ(r["completed"], 1);
    EXPECT_EQ(r["total_input_tokens"], 10);
    EXPECT_EQ(r["total_output_tokens"], 5);
    EXPECT_DOUBLE_EQ(r["request_throughput"].get<double>(), 0.5);
    EXPECT_DOUBLE_EQ(r["output_throughput"].get<double>(), 2.5);
    EXPECT_NEAR(r["mean_ttft_ms"].get<double>(), 100.0, 1e-9);
    EXPECT_NEAR(r["mean_tpot_ms"].get<double>(), 100.0, 1e-9);
    EXPECT_NEAR(r["median_itl_ms"].get<double>(), 100.0, 1e-9);
    EXPECT_NEAR(r["p99_e2e_latency_ms"].get<double>(), 500.0, 1e-9);
    EXPECT_EQ(r["request_rate"], "inf");
    EXPECT_EQ(r["max_concurrency"], 8);
    EXPECT_NE(format_report(r).find("Successful requests:"), std::string::npos);
}

}  // namespace
}  // namespace dsa::app
