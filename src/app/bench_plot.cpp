// bench-serving's SVG latency/throughput plot (see bench_plot.h).
#include "app/bench_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace dsa::app {
namespace {

constexpr double kWidth = 760, kHeight = 460;
constexpr double kLeft = 80, kRight = 190, kTop = 50, kBottom = 60;  // margins; the legend sits on the right

std::string xml_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f", v);
    return buf;
}

std::string tick_text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", v);
    return buf;
}

struct Series {
    const char* name;
    const char* color;
    const char* dash;  // "" = solid
    double SweepPoint::*field;
};

const Series kSeries[] = {{"TTFT p50", "#1f77b4", "", &SweepPoint::ttft_p50_ms},
                          {"TTFT p99", "#1f77b4", "6,4", &SweepPoint::ttft_p99_ms},
                          {"E2E p50", "#d62728", "", &SweepPoint::e2e_p50_ms},
                          {"E2E p99", "#d62728", "6,4", &SweepPoint::e2e_p99_ms}};

// Maps data coordinates onto the plot area.
struct Frame {
    double x_max, y_max;
    double px(double x) const { return kLeft + x / x_max * (kWidth - kLeft - kRight); }
    double py(double y) const { return kHeight - kBottom - y / y_max * (kHeight - kTop - kBottom); }
};

void draw_axes(std::ostringstream& o, const Frame& f, const std::vector<double>& xt, const std::vector<double>& yt) {
    o << "<g font-size=\"11\" fill=\"#333\">\n";
    for (double x : xt) {
        o << "<line x1=\"" << num(f.px(x)) << "\" y1=\"" << num(f.py(0)) << "\" x2=\"" << num(f.px(x)) << "\" y2=\""
          << num(f.py(f.y_max)) << "\" stroke=\"#e5e5e5\"/>\n";
        o << "<text x=\"" << num(f.px(x)) << "\" y=\"" << num(f.py(0) + 16) << "\" text-anchor=\"middle\">"
          << tick_text(x) << "</text>\n";
    }
    for (double y : yt) {
        o << "<line x1=\"" << num(f.px(0)) << "\" y1=\"" << num(f.py(y)) << "\" x2=\"" << num(f.px(f.x_max))
          << "\" y2=\"" << num(f.py(y)) << "\" stroke=\"#e5e5e5\"/>\n";
        o << "<text x=\"" << num(f.px(0) - 6) << "\" y=\"" << num(f.py(y) + 4) << "\" text-anchor=\"end\">"
          << tick_text(y) << "</text>\n";
    }
    o << "<rect x=\"" << num(kLeft) << "\" y=\"" << num(kTop) << "\" width=\"" << num(kWidth - kLeft - kRight)
      << "\" height=\"" << num(kHeight - kTop - kBottom) << "\" fill=\"none\" stroke=\"#333\"/>\n";
    o << "<text x=\"" << num((kLeft + kWidth - kRight) / 2) << "\" y=\"" << num(kHeight - 18)
      << "\" text-anchor=\"middle\" font-size=\"13\">Output token throughput (tok/s)</text>\n";
    o << "<text transform=\"translate(22," << num((kTop + kHeight - kBottom) / 2)
      << ") rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">Latency (ms)</text>\n</g>\n";
}

void draw_series(std::ostringstream& o, const Frame& f, const std::vector<SweepPoint>& pts, const Series& s) {
    o << "<g class=\"series\" data-name=\"" << s.name << "\">\n<polyline fill=\"none\" stroke=\"" << s.color
      << "\" stroke-width=\"2\"" << (*s.dash ? std::string(" stroke-dasharray=\"") + s.dash + "\"" : "")
      << " points=\"";
    for (const SweepPoint& p : pts) o << num(f.px(p.output_throughput)) << "," << num(f.py(p.*s.field)) << " ";
    o << "\"/>\n";
    for (const SweepPoint& p : pts) {
        o << "<circle class=\"point\" cx=\"" << num(f.px(p.output_throughput)) << "\" cy=\"" << num(f.py(p.*s.field))
          << "\" r=\"3.5\" fill=\"" << s.color << "\"><title>" << xml_escape(p.label) << ": " << s.name << " "
          << num(p.*s.field) << " ms at " << num(p.output_throughput) << " tok/s</title></circle>\n";
    }
    o << "</g>\n";
}

void draw_legend(std::ostringstream& o, const std::vector<SweepPoint>& pts) {
    double x = kWidth - kRight + 20, y = kTop + 10;
    o << "<g font-size=\"12\">\n";
    for (const Series& s : kSeries) {
        o << "<line x1=\"" << num(x) << "\" y1=\"" << num(y) << "\" x2=\"" << num(x + 28) << "\" y2=\"" << num(y)
          << "\" stroke=\"" << s.color << "\" stroke-width=\"2\""
          << (*s.dash ? std::string(" stroke-dasharray=\"") + s.dash + "\"" : "") << "/>\n";
        o << "<text x=\"" << num(x + 36) << "\" y=\"" << num(y + 4) << "\">" << s.name << "</text>\n";
        y += 20;
    }
    y += 10;
    o << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\" font-weight=\"bold\">Points</text>\n";
    for (const SweepPoint& p : pts) {
        y += 16;
        o << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\">" << xml_escape(p.label) << ": "
          << num(p.output_throughput) << " tok/s</text>\n";
    }
    o << "</g>\n";
}

}  // namespace

SweepPoint sweep_point_of(const Json& report, std::string label) {
    SweepPoint p;
    p.label = std::move(label);
    p.output_throughput = report.value("output_throughput", 0.0);
    p.ttft_p50_ms = report.value("median_ttft_ms", 0.0);
    p.ttft_p99_ms = report.value("p99_ttft_ms", 0.0);
    p.e2e_p50_ms = report.value("median_e2e_latency_ms", 0.0);
    p.e2e_p99_ms = report.value("p99_e2e_latency_ms", 0.0);
    return p;
}

std::vector<double> nice_ticks(double max_value, int target) {
    if (!(max_value > 0) || !std::isfinite(max_value)) max_value = 1;
    double raw = max_value / std::max(1, target);
    double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 5.0, 10.0}) {
        step = m * mag;
        if (step >= raw) break;
    }
    std::vector<double> ticks;
    for (int i = 0; ticks.empty() || ticks.back() < max_value - 1e-12 * max_value; ++i) ticks.push_back(i * step);
    return ticks;
}

std::string latency_svg(const std::vector<SweepPoint>& points, const std::string& title) {
    double x_max = 0, y_max = 0;
    for (const SweepPoint& p : points) {
        x_max = std::max(x_max, p.output_throughput);
        for (const Series& s : kSeries) y_max = std::max(y_max, p.*s.field);
    }
    std::vector<double> xt = nice_ticks(x_max * 1.05), yt = nice_ticks(y_max * 1.05);
    Frame f{xt.back(), yt.back()};
    std::ostringstream o;
    o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth
      << "\" height=\"" << kHeight << "\" viewBox=\"0 0 " << kWidth << " " << kHeight
      << "\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    o << "<text x=\"" << num(kWidth / 2) << "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" << xml_escape(title)
      << "</text>\n";
    draw_axes(o, f, xt, yt);
    for (const Series& s : kSeries) draw_series(o, f, points, s);
    draw_legend(o, points);
    o << "</svg>\n";
    return o.str();
}

Status write_latency_plot(const std::string& path, const std::vector<SweepPoint>& points, const std::string& title) {
    auto ends_with = [&](const char* ext) {
        std::string e = ext;
        return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
    };
    if (!ends_with(".svg") && !ends_with(".SVG"))
        return invalid_argument("--plot {}: only SVG is written; give a path ending in .svg", path);
    if (points.empty()) return invalid_argument("--plot {}: no successful sweep point to plot", path);
    std::ofstream out(path);
    if (!out) return invalid_argument("--plot {}: cannot open for writing", path);
    out << latency_svg(points, title);
    if (!out) return make_error(StatusCode::kInternal, "--plot {}: write failed", path);
    return Status::ok();
}

}  // namespace dsa::app
