// Prometheus exposition: number formatting, cumulative histogram buckets with SGLang's bounds, metric names,
// and a parse of the whole text by python3-prometheus-client.
#include "server/metrics.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

namespace dsa::server {
namespace {

TEST(Metrics, PromFloat) {
    EXPECT_EQ(prom_float(1), "1.0");
    EXPECT_EQ(prom_float(0.25), "0.25");
    EXPECT_EQ(prom_float(0.002), "0.002");
    EXPECT_EQ(prom_float(1e20), "1e+20");
    EXPECT_EQ(prom_float(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(prom_float(std::nan("")), "NaN");
}

TEST(Metrics, HistogramIsCumulative) {
    Histogram h({0.1, 1});
    h.observe(0.05);
    h.observe(0.1);  // le is inclusive
    h.observe(0.5);
    h.observe(7);
    std::string out;
    h.render("x", "a=\"b\"", out);
    EXPECT_EQ(out,
              "x_bucket{a=\"b\",le=\"0.1\"} 2.0\n"
              "x_bucket{a=\"b\",le=\"1.0\"} 3.0\n"
              "x_bucket{a=\"b\",le=\"+Inf\"} 4.0\n"
              "x_count{a=\"b\"} 4.0\n"
              "x_sum{a=\"b\"} 7.65\n");
}

TEST(Metrics, SglangBuckets) {
    EXPECT_EQ(ttft_buckets().size(), 18u);
    EXPECT_EQ(ttft_buckets().back(), 400);
    EXPECT_EQ(inter_token_buckets().size(), 23u);
    EXPECT_EQ(inter_token_buckets().front(), 0.002);
    EXPECT_EQ(e2e_buckets().back(), 2400);
}

std::string sample_text() {
    static ServerMetrics m;
    static bool once = [] {
        m.record_request(10, 5, 4, 0.3, false);
        m.record_request(7, 0, 0, 0.01, true);
        m.time_to_first_token.observe(0.05);
        m.record_inter_token(0.01, 2);
        return true;
    }();
    (void)once;
    engine::EngineStats s;
    s.num_running_reqs = 3;
    s.num_queue_reqs = 1;
    s.token_usage = 0.5;
    s.cache_hit_rate = 0.25;
    s.page_size = 64;
    s.num_total_pages = 6;
    s.num_free_pages = 3;
    s.num_held_pages = 2;
    s.num_evictable_pages = 1;
    return render_metrics(m, s, MetricLabels{"my \"model\"", "unified"}, 4096);
}

TEST(Metrics, NamesAndValues) {
    std::string t = sample_text();
    for (const char* line : {
             "# TYPE sglang:prompt_tokens_total counter",
             "sglang:prompt_tokens_total{model_name=\"my \\\"model\\\"\",engine_type=\"unified\"} 17.0",
             "sglang:generation_tokens_total{model_name=\"my \\\"model\\\"\",engine_type=\"unified\"} 5.0",
             "sglang:num_aborted_requests_total{model_name=\"my \\\"model\\\"\",engine_type=\"unified\"} 1.0",
             "# TYPE sglang:time_to_first_token_seconds histogram",
             "# TYPE sglang:inter_token_latency_seconds histogram",
             "sglang:inter_token_latency_seconds_count{model_name=\"my \\\"model\\\"\",engine_type=\"unified\"} 2.0",
             "# TYPE sglang:e2e_request_latency_seconds histogram",
             "sglang:num_running_reqs{model_name=\"my \\\"model\\\"\",engine_type=\"unified\",tp_rank=\"0\",pp_rank=\"0\",moe_ep_rank=\"0\"} 3.0",
             "# TYPE sglang:num_queue_reqs gauge",
             "# TYPE sglang:token_usage gauge",
             "# TYPE sglang:cache_hit_rate gauge",
             "sglang:kv_available_tokens{model_name=\"my \\\"model\\\"\",engine_type=\"unified\",tp_rank=\"0\",pp_rank=\"0\",moe_ep_rank=\"0\"} 192.0",
             "sglang:kv_used_tokens{model_name=\"my \\\"model\\\"\",engine_type=\"unified\",tp_rank=\"0\",pp_rank=\"0\",moe_ep_rank=\"0\"} 128.0",
             "sglang:kv_evictable_tokens{model_name=\"my \\\"model\\\"\",engine_type=\"unified\",tp_rank=\"0\",pp_rank=\"0\",moe_ep_rank=\"0\"} 64.0",
         })
        EXPECT_NE(t.find(line), std::string::npos) << line << "\n" << t;
}

// The text must parse with the reference Python parser; the script also checks a few values.
TEST(Metrics, ParsesWithPrometheusClient) {
    if (std::system("/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null") != 0)
        GTEST_SKIP() << "python3-prometheus-client is not installed";
    std::string path = ::testing::TempDir() + "metrics_sample.txt";
    std::ofstream(path) << sample_text();
    std::string script = path + ".py";
    std::ofstream(script) << R"(import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
assert fams['sglang:prompt_tokens'].type == 'counter', fams.keys()
assert fams['sglang:prompt_tokens'].samples[0].value == 17.0
h = fams['sglang:time_to_first_token_seconds']
assert h.type == 'histogram'
buckets = [s for s in h.samples if s.name.endswith('_bucket')]
assert len(buckets) == 19 and buckets[-1].labels['le'] == '+Inf'
assert fams['sglang:num_running_reqs'].samples[0].value == 3.0
assert fams['sglang:num_running_reqs'].samples[0].labels['model_name'] == 'my "model"'
for name in ['sglang:generation_tokens', 'sglang:inter_token_latency_seconds', 'sglang:e2e_request_latency_seconds',
             'sglang:num_queue_reqs', 'sglang:token_usage', 'sglang:cache_hit_rate', 'sglang:num_requests']:
    assert name in fams, name
print('ok', len(fams))
)";
    std::string cmd = "/usr/bin/python3 " + script + " " + path;
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[256] = {0};
    std::string out;
    while (fgets(buf, sizeof buf, p)) out += buf;
    int rc = pclose(p);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out.rfind("ok", 0), 0u) << out;
}

}  // namespace
}  // namespace dsa::server
