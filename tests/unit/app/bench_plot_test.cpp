// bench-serving's SVG plot and progress display: the SVG is well-formed XML (checked by a small strict parser
// here), has one marker per point and series at the right place, escapes labels, and only .svg paths are
// written; the progress bar and the plain non-terminal lines.
#include "app/bench_plot.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <regex>

#include "app/bench_progress.h"
#include "base/mapped_file.h"

namespace dsa::app {
namespace {

// Strict enough well-formedness check: one root, matched tags, quoted attributes, only the five predefined
// entities, no raw '<' or '&' in text or attribute values. Returns "" when well-formed, else the problem.
std::string xml_problem(const std::string& s) {
    std::vector<std::string> stack;
    size_t i = 0;
    int roots = 0;
    auto bad_text = [](const std::string& t) -> bool {
        for (size_t k = 0; k < t.size(); ++k) {
            if (t[k] == '<') return true;
            if (t[k] != '&') continue;
            size_t semi = t.find(';', k);
            if (semi == std::string::npos) return true;
            std::string e = t.substr(k, semi - k + 1);
            if (e != "&amp;" && e != "&lt;" && e != "&gt;" && e != "&quot;" && e != "&apos;") return true;
        }
        return false;
    };
    if (s.rfind("<?xml", 0) == 0) i = s.find("?>") + 2;
    while (i < s.size()) {
        size_t lt = s.find('<', i);
        std::string text = s.substr(i, lt == std::string::npos ? std::string::npos : lt - i);
        if (bad_text(text)) return "bad text: " + text;
        if (stack.empty() && text.find_first_not_of(" \n") != std::string::npos) return "text outside root";
        if (lt == std::string::npos) break;
        size_t gt = s.find('>', lt);
        if (gt == std::string::npos) return "unclosed tag";
        std::string tag = s.substr(lt + 1, gt - lt - 1);
        i = gt + 1;
        if (tag[0] == '/') {
            if (stack.empty() || stack.back() != tag.substr(1)) return "mismatched </" + tag.substr(1) + ">";
            stack.pop_back();
            continue;
        }
        bool self = tag.back() == '/';
        if (self) tag.pop_back();
        static const std::regex element(R"(^([A-Za-z][\w:-]*)((\s+[A-Za-z][\w:-]*="[^"<]*")*)\s*$)");
        std::smatch m;
        if (!std::regex_match(tag, m, element)) return "bad tag: <" + tag + ">";
        if (bad_text(m[2].str())) return "bad attribute in <" + tag + ">";
        if (stack.empty() && ++roots > 1) return "two roots";
        if (!self) stack.push_back(m[1].str());
    }
    return stack.empty() && roots == 1 ? "" : "unclosed elements or no root";
}

std::vector<SweepPoint> points() {
    return {{"c=1", 100, 40, 60, 900, 1000}, {"c=4", 300, 80, 150, 1500, 2100}, {"c=<16>&", 420, 300, 700, 2900, 4000}};
}

int count(const std::string& s, const std::string& what) {
    int n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
}

TEST(BenchPlot, CheckerRejectsBrokenXml) {
    EXPECT_EQ(xml_problem("<a><b x=\"1\"/>t &amp; u</a>"), "");
    EXPECT_NE(xml_problem("<a><b></a>"), "");
    EXPECT_NE(xml_problem("<a>1 < 2</a>"), "");
    EXPECT_NE(xml_problem("<a x=1></a>"), "");
    EXPECT_NE(xml_problem("<a>&nbsp;</a>"), "");
    EXPECT_NE(xml_problem("<a/><b/>"), "");
}

TEST(BenchPlot, SvgIsWellFormedWithEveryPoint) {
    std::string svg = latency_svg(points(), "sweep <test> & more");
    EXPECT_EQ(xml_problem(svg), "") << svg;
    EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
    EXPECT_EQ(count(svg, "<circle class=\"point\""), 12);  // 3 points x 4 series
    EXPECT_EQ(count(svg, "<polyline"), 4);
    for (const char* series : {"TTFT p50", "TTFT p99", "E2E p50", "E2E p99"})
        EXPECT_NE(svg.find(std::string("data-name=\"") + series + "\""), std::string::npos) << series;
    EXPECT_NE(svg.find("c=&lt;16&gt;&amp;"), std::string::npos);
    EXPECT_NE(svg.find("sweep &lt;test&gt; &amp; more"), std::string::npos);
    EXPECT_NE(svg.find("E2E p99 4000.0 ms at 420.0 tok/s"), std::string::npos);
}

TEST(BenchPlot, MarkersSitWhereTheDataSays) {
    // The fastest point is furthest right and its p99 E2E highest (smallest y) of all markers.
    std::string svg = latency_svg(points(), "t");
    std::regex circle(R"re(<circle class="point" cx="([\d.]+)" cy="([\d.]+)")re");
    double max_cx = 0, min_cy = 1e9;
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), circle); it != std::sregex_iterator(); ++it) {
        max_cx = std::max(max_cx, std::stod((*it)[1]));
        min_cy = std::min(min_cy, std::stod((*it)[2]));
    }
    std::smatch m;
    std::string tail = svg.substr(svg.find("data-name=\"E2E p99\""));
    ASSERT_TRUE(std::regex_search(
        tail, m, std::regex(R"re(cx="([\d.]+)" cy="([\d.]+)" r="3.5" fill="#d62728"><title>c=&lt;16)re")));
    EXPECT_DOUBLE_EQ(std::stod(m[1]), max_cx);
    EXPECT_DOUBLE_EQ(std::stod(m[2]), min_cy);
}

TEST(BenchPlot, NiceTicksCoverTheRange) {
    EXPECT_EQ(nice_ticks(4200), (std::vector<double>{0, 1000, 2000, 3000, 4000, 5000}));
    EXPECT_EQ(nice_ticks(9), (std::vector<double>{0, 2, 4, 6, 8, 10}));
    EXPECT_EQ(nice_ticks(0).back(), 1);
}

TEST(BenchPlot, WritesOnlySvgFiles) {
    auto dir = std::filesystem::temp_directory_path() / ("bench_plot_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string svg_path = (dir / "sweep.svg").string();
    ASSERT_TRUE(write_latency_plot(svg_path, points(), "t").is_ok());
    auto text = read_file(svg_path);
    ASSERT_TRUE(text.is_ok());
    EXPECT_EQ(xml_problem(*text), "");
    EXPECT_FALSE(write_latency_plot((dir / "sweep.png").string(), points(), "t").is_ok());
    EXPECT_FALSE(write_latency_plot(svg_path, {}, "t").is_ok());
    std::filesystem::remove_all(dir);
}

TEST(BenchProgress, BarAndPlainLines) {
    EXPECT_EQ(progress_bar_line(5, 10, 1.31, 10), "[#####     ]  5/10  50% 1.3s");
    EXPECT_EQ(progress_bar_line(10, 10, 2.0, 4), "[####] 10/10 100% 2.0s");
    std::FILE* f = std::tmpfile();
    ASSERT_NE(f, nullptr);
    {
        Progress p(20, /*enabled=*/true, /*tty=*/false, f);
        for (int i = 0; i < 20; ++i) p.tick();
        p.finish();
    }
    std::rewind(f);
    std::string out;
    for (int c; (c = std::fgetc(f)) != EOF;) out += static_cast<char>(c);
    std::fclose(f);
    EXPECT_EQ(count(out, "\n"), 10) << out;  // one line per tenth, no carriage returns
    EXPECT_EQ(out.find('\r'), std::string::npos);
    EXPECT_NE(out.find("20/20 100%"), std::string::npos) << out;
}

}  // namespace
}  // namespace dsa::app
