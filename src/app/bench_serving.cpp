// `dsaserve bench-serving`: random-dataset serving benchmark over POST /generate with SSE streaming.
// A minimal blocking HTTP/1.1 client (one thread per in-flight request), Poisson arrivals, a concurrency cap,
// and an SGLang-style report (stdout) plus optional JSON output file.
#include "app/bench_serving.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <limits>
#include <mutex>
#include <numeric>
#include <sstream>
#include <thread>

namespace dsa::app {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct BenchArgs {
    std::string host = "127.0.0.1";
    int port = 30000;
    std::string base_url;
    std::string backend = "sglang";
    std::string dataset_name = "random";
    int random_input_len = 1024;
    int random_output_len = 1024;
    double random_range_ratio = 0.0;
    int num_prompts = 1000;
    uint64_t seed = 1;
    double request_rate = std::numeric_limits<double>::infinity();
    std::string request_rate_str = "inf";
    int max_concurrency = 0;  // 0: unlimited
    std::string output_file;
    int vocab_size = 256;  // token ids drawn from [0, vocab_size)
};

// ---- HTTP over POSIX sockets -------------------------------------------------------------------------------

int connect_to(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
    int fd = -1;
    for (addrinfo* a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

bool send_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

// Incremental decoder of an HTTP response body: headers, then chunked or raw bytes, handed on line by line.
class StreamReader {
public:
    // Feeds raw socket bytes; calls on_line for each complete body line. Returns false on a malformed stream.
    template <class F>
    bool feed(const char* data, size_t n, F&& on_line) {
        raw_.append(data, n);
        if (!headers_done_ && !parse_headers()) return true;
        if (chunked_) return dechunk(on_line);
        body_ += raw_;
        raw_.clear();
        emit_lines(on_line);
        return true;
    }
    int status() const { return status_; }
    bool finished() const { return finished_; }
    const std::string& leftover() const { return body_; }

private:
    bool parse_headers() {
        size_t end = raw_.find("\r\n\r\n");
        if (end == std::string::npos) return false;
        std::string head = raw_.substr(0, end);
        raw_.erase(0, end + 4);
        headers_done_ = true;
        if (head.size() > 12) status_ = std::atoi(head.c_str() + 9);
        std::string lower = head;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        chunked_ = lower.find("transfer-encoding: chunked") != std::string::npos;
        return true;
    }
    template <class F>
    bool dechunk(F&& on_line) {
        while (true) {
            if (chunk_left_ == 0) {
                size_t eol = raw_.find("\r\n");
                if (eol == std::string::npos) break;
                std::string size_line = raw_.substr(0, eol);
                raw_.erase(0, eol + 2);
                if (size_line.empty()) continue;  // CRLF after a chunk's data
                chunk_left_ = std::strtoul(size_line.c_str(), nullptr, 16);
                if (chunk_left_ == 0) {  // last chunk
                    finished_ = true;
                    break;
                }
            }
            size_t take = std::min(chunk_left_, raw_.size());
            if (take == 0) break;
            body_.append(raw_, 0, take);
            raw_.erase(0, take);
            chunk_left_ -= take;
        }
        emit_lines(on_line);
        return true;
    }
    template <class F>
    void emit_lines(F&& on_line) {
        size_t eol;
        while ((eol = body_.find('\n')) != std::string::npos) {
            std::string line = body_.substr(0, eol);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            body_.erase(0, eol + 1);
            on_line(line);
        }
    }
    std::string raw_, body_;
    bool headers_done_ = false, chunked_ = false, finished_ = false;
    int status_ = 0;
    size_t chunk_left_ = 0;
};

std::string http_post_request(const BenchArgs& a, const std::string& path, const std::string& body) {
    std::ostringstream req;
    req << "POST " << path << " HTTP/1.1\r\nHost: " << a.host << ":" << a.port
        << "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nConnection: close\r\n"
        << "Content-Length: " << body.size() << "\r\n\r\n"
        << body;
    return req.str();
}

// ---- one request -------------------------------------------------------------------------------------------

std::string generate_body(const std::vector<int>& ids, int output_len) {
    Json body = {{"input_ids", ids},
                 {"sampling_params", {{"temperature", 0.0}, {"max_new_tokens", output_len}, {"ignore_eos", true}}},
                 {"stream", true}};
    return body.dump();
}

// Per-event timing as SGLang's sglang backend: TTFT at the first event with output, ITL gap / new tokens.
struct StreamTimer {
    Clock::time_point start, last;
    RequestResult* r;
    int64_t tokens = 0;
    bool first = true;
    void on_event(const SseEvent& ev) {
        int64_t now_tokens = ev.completion_tokens >= 0 ? ev.completion_tokens : tokens + 1;
        if (now_tokens <= tokens && ev.text.empty()) return;
        auto now = Clock::now();
        if (first) {
            r->ttft = std::chrono::duration<double>(now - start).count();
            first = false;
        } else if (now_tokens > tokens) {
            double gap = std::chrono::duration<double>(now - last).count();
            int64_t n = now_tokens - tokens;
            for (int64_t i = 0; i < n; ++i) r->itl.push_back(gap / static_cast<double>(n));
        }
        last = now;
        tokens = std::max(tokens, now_tokens);
    }
};

bool read_stream(int fd, StreamTimer& timer, RequestResult& r) {
    StreamReader reader;
    bool done = false;
    char buf[16384];
    auto on_line = [&](const std::string& line) {
        auto ev = parse_sse_line(line);
        if (!ev) return;
        if (ev->done) done = true;
        else timer.on_event(*ev);
    };
    ssize_t n;
    while (!done && !reader.finished() && (n = recv(fd, buf, sizeof(buf), 0)) > 0) reader.feed(buf, static_cast<size_t>(n), on_line);
    if (reader.status() != 200) {
        r.error = "HTTP " + std::to_string(reader.status()) + " " + reader.leftover().substr(0, 200);
        return false;
    }
    return true;
}

RequestResult run_request(const BenchArgs& a, const std::string& path, const std::vector<int>& ids,
                          int output_len) {
    RequestResult r;
    r.input_len = static_cast<int>(ids.size());
    StreamTimer timer{Clock::now(), Clock::now(), &r};
    int fd = connect_to(a.host, a.port);
    if (fd < 0) {
        r.error = "connect failed";
        return r;
    }
    bool ok = send_all(fd, http_post_request(a, path, generate_body(ids, output_len))) && read_stream(fd, timer, r);
    close(fd);
    r.e2e = seconds_since(timer.start);
    r.output_len = static_cast<int>(timer.tokens);
    r.success = ok && !timer.first;
    if (ok && timer.first) r.error = "no output";
    return r;
}

// ---- the run -----------------------------------------------------------------------------------------------

struct Workload {
    std::vector<std::vector<int>> prompts;
    std::vector<int> output_lens;
};

Workload make_workload(const BenchArgs& a) {
    std::mt19937_64 rng(a.seed);
    std::vector<int> in_lens = sample_lengths(a.random_input_len, a.random_range_ratio, a.num_prompts, rng);
    Workload w;
    w.output_lens = sample_lengths(a.random_output_len, a.random_range_ratio, a.num_prompts, rng);
    std::uniform_int_distribution<int> tok(0, std::max(1, a.vocab_size) - 1);
    for (int len : in_lens) {
        std::vector<int> ids(static_cast<size_t>(len));
        for (int& t : ids) t = tok(rng);
        w.prompts.push_back(std::move(ids));
    }
    return w;
}

class Limiter {
public:
    explicit Limiter(int cap) : cap_(cap) {}
    void acquire() {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return cap_ <= 0 || in_flight_ < cap_; });
        ++in_flight_;
    }
    void release() {
        { std::lock_guard<std::mutex> lk(mu_); --in_flight_; }
        cv_.notify_one();
    }

private:
    int cap_, in_flight_ = 0;
    std::mutex mu_;
    std::condition_variable cv_;
};

std::vector<RequestResult> run_all(const BenchArgs& a, const std::string& path, const Workload& w) {
    size_t n = w.prompts.size();
    std::vector<RequestResult> results(n);
    std::vector<std::thread> threads;
    Limiter limiter(a.max_concurrency);
    std::atomic<int> finished{0};
    std::mt19937_64 rng(a.seed ^ 0x9e3779b97f4a7c15ULL);
    std::exponential_distribution<double> gap(std::isinf(a.request_rate) ? 1.0 : a.request_rate);
    for (size_t i = 0; i < n; ++i) {
        limiter.acquire();
        threads.emplace_back([&, i] {
            results[i] = run_request(a, path, w.prompts[i], w.output_lens[i]);
            limiter.release();
            std::fprintf(stderr, "\rbench-serving: %d/%zu done", ++finished, n);
        });
        if (!std::isinf(a.request_rate) && i + 1 < n)
            std::this_thread::sleep_for(std::chrono::duration<double>(gap(rng)));
    }
    for (auto& t : threads) t.join();
    std::fprintf(stderr, "\n");
    return results;
}

std::string endpoint_path(const BenchArgs& a) {
    std::string base;
    if (!a.base_url.empty()) {
        size_t scheme = a.base_url.find("://");
        size_t slash = a.base_url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
        if (slash != std::string::npos) base = a.base_url.substr(slash);
        while (!base.empty() && base.back() == '/') base.pop_back();
    }
    return base + "/generate";
}

void apply_base_url(BenchArgs& a) {
    if (a.base_url.empty()) return;
    std::string rest = a.base_url;
    size_t scheme = rest.find("://");
    if (scheme != std::string::npos) rest = rest.substr(scheme + 3);
    rest = rest.substr(0, rest.find('/'));
    size_t colon = rest.rfind(':');
    a.host = rest.substr(0, colon);
    a.port = colon == std::string::npos ? 80 : std::atoi(rest.c_str() + colon + 1);
}

int run_bench(BenchArgs a) {
    if (a.dataset_name != "random") {
        std::fprintf(stderr, "dsaserve bench-serving: not supported yet: --dataset-name %s\n", a.dataset_name.c_str());
        return 2;
    }
    if (a.backend != "sglang") {
        std::fprintf(stderr, "dsaserve bench-serving: not supported yet: --backend %s\n", a.backend.c_str());
        return 2;
    }
    apply_base_url(a);
    a.request_rate = std::strtod(a.request_rate_str.c_str(), nullptr);
    if (!(a.request_rate > 0)) a.request_rate = std::numeric_limits<double>::infinity();
    Workload w = make_workload(a);
    std::fprintf(stderr, "bench-serving: %d prompts to %s:%d%s\n", a.num_prompts, a.host.c_str(), a.port,
                 endpoint_path(a).c_str());
    auto t0 = Clock::now();
    std::vector<RequestResult> results = run_all(a, endpoint_path(a), w);
    Json report = build_report(results, seconds_since(t0), a.request_rate, a.max_concurrency);
    std::printf("%s", format_report(report).c_str());
    for (const auto& r : results)
        if (!r.success) {
            std::fprintf(stderr, "bench-serving: first failure: %s\n", r.error.c_str());
            break;
        }
    if (!a.output_file.empty()) std::ofstream(a.output_file) << report.dump(2) << "\n";
    return report["completed"].get<int>() > 0 ? 0 : 1;
}

}  // namespace

// ---- pure pieces -------------------------------------------------------------------------------------------

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

std::vector<int> sample_lengths(int len, double range_ratio, int n, std::mt19937_64& rng) {
    int lo = std::max(1, static_cast<int>(len * range_ratio));
    int hi = std::max(lo, len);
    std::uniform_int_distribution<int> dist(lo, hi);
    std::vector<int> out(static_cast<size_t>(std::max(0, n)));
    for (int& v : out) v = dist(rng);
    return out;
}

std::optional<SseEvent> parse_sse_line(const std::string& line) {
    if (line.rfind("data:", 0) != 0) return std::nullopt;
    std::string payload = line.substr(5);
    payload.erase(0, payload.find_first_not_of(' '));
    SseEvent ev;
    if (payload == "[DONE]") {
        ev.done = true;
        return ev;
    }
    Json j = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return std::nullopt;
    if (j.contains("text") && j["text"].is_string()) ev.text = j["text"].get<std::string>();
    if (j.contains("meta_info") && j["meta_info"].contains("completion_tokens"))
        ev.completion_tokens = j["meta_info"]["completion_tokens"].get<int64_t>();
    return ev;
}

namespace {

void add_stats(Json& out, const std::string& name, const std::vector<double>& seconds) {
    std::vector<double> ms;
    for (double s : seconds) ms.push_back(s * 1000.0);
    out["mean_" + name + "_ms"] = mean_of(ms);
    out["median_" + name + "_ms"] = percentile(ms, 50);
    out["p99_" + name + "_ms"] = percentile(ms, 99);
}

}  // namespace

Json build_report(const std::vector<RequestResult>& results, double duration_s, double request_rate,
                  int max_concurrency) {
    std::vector<double> ttft, tpot, itl, e2e;
    int completed = 0;
    int64_t in_tok = 0, out_tok = 0;
    for (const auto& r : results) {
        if (!r.success) continue;
        ++completed;
        in_tok += r.input_len;
        out_tok += r.output_len;
        ttft.push_back(r.ttft);
        e2e.push_back(r.e2e);
        itl.insert(itl.end(), r.itl.begin(), r.itl.end());
        if (r.output_len > 1) tpot.push_back((r.e2e - r.ttft) / (r.output_len - 1));
    }
    double d = duration_s > 0 ? duration_s : 1e-9;
    Json j = {{"backend", "sglang"}, {"dataset_name", "random"},
              {"request_rate", std::isinf(request_rate) ? Json("inf") : Json(request_rate)},
              {"max_concurrency", max_concurrency > 0 ? Json(max_concurrency) : Json(nullptr)},
              {"duration", duration_s}, {"completed", completed},
              {"total_input_tokens", in_tok}, {"total_output_tokens", out_tok},
              {"request_throughput", completed / d}, {"input_throughput", in_tok / d},
              {"output_throughput", out_tok / d}, {"total_throughput", (in_tok + out_tok) / d}};
    add_stats(j, "ttft", ttft);
    add_stats(j, "tpot", tpot);
    add_stats(j, "itl", itl);
    add_stats(j, "e2e_latency", e2e);
    return j;
}

std::string format_report(const Json& j) {
    std::ostringstream o;
    char line[128];
    auto row = [&](const char* label, double v) {
        std::snprintf(line, sizeof(line), "%-40s%-10.2f\n", label, v);
        o << line;
    };
    auto irow = [&](const char* label, int64_t v) {
        std::snprintf(line, sizeof(line), "%-40s%-10lld\n", label, static_cast<long long>(v));
        o << line;
    };
    o << "\n============ Serving Benchmark Result ============\n";
    o << "Backend:                                sglang\n";
    o << "Traffic request rate:                   " << (j["request_rate"].is_string() ? "inf"
                                                        : std::to_string(j["request_rate"].get<double>())) << "\n";
    o << "Max request concurrency:                "
      << (j["max_concurrency"].is_null() ? "not set" : std::to_string(j["max_concurrency"].get<int>())) << "\n";
    irow("Successful requests:", j["completed"].get<int64_t>());
    row("Benchmark duration (s):", j["duration"]);
    irow("Total input tokens:", j["total_input_tokens"].get<int64_t>());
    irow("Total generated tokens:", j["total_output_tokens"].get<int64_t>());
    row("Request throughput (req/s):", j["request_throughput"]);
    row("Input token throughput (tok/s):", j["input_throughput"]);
    row("Output token throughput (tok/s):", j["output_throughput"]);
    row("Total token throughput (tok/s):", j["total_throughput"]);
    const char* names[] = {"e2e_latency", "ttft", "tpot", "itl"};
    const char* titles[] = {"End-to-End Latency", "Time to First Token", "Time per Output Token (excl. 1st token)",
                            "Inter-Token Latency"};
    const char* shorts[] = {"E2E Latency", "TTFT", "TPOT", "ITL"};
    for (int k = 0; k < 4; ++k) {
        std::snprintf(line, sizeof(line), "%s\n", titles[k]);
        o << "---------------" << line;
        for (const char* stat : {"mean", "median", "p99"}) {
            std::string key = std::string(stat) + "_" + names[k] + "_ms";
            std::string label = std::string(stat == std::string("mean") ? "Mean" : stat == std::string("median")
                                                                                       ? "Median" : "P99") +
                                " " + shorts[k] + " (ms):";
            row(label.c_str(), j[key]);
        }
    }
    o << "==================================================\n";
    return o.str();
}

void add_bench_serving_command(CLI::App& app, int* exit_code) {
    auto args = std::make_shared<BenchArgs>();
    CLI::App* cmd = app.add_subcommand("bench-serving", "Online serving benchmark (like sglang.bench_serving)");
    cmd->add_option("--host", args->host, "Server host")->capture_default_str();
    cmd->add_option("--port", args->port, "Server port")->capture_default_str();
    cmd->add_option("--base-url", args->base_url, "Server base URL (overrides --host/--port)");
    cmd->add_option("--backend", args->backend, "Only 'sglang' (POST /generate, streaming)")->capture_default_str();
    cmd->add_option("--dataset-name", args->dataset_name, "Only 'random'")->capture_default_str();
    cmd->add_option("--random-input-len", args->random_input_len)->capture_default_str();
    cmd->add_option("--random-output-len", args->random_output_len)->capture_default_str();
    cmd->add_option("--random-range-ratio", args->random_range_ratio)->capture_default_str();
    cmd->add_option("--num-prompts", args->num_prompts)->capture_default_str();
    cmd->add_option("--seed", args->seed)->capture_default_str();
    cmd->add_option("--request-rate", args->request_rate_str, "Requests/s (Poisson); inf sends all at once")
        ->capture_default_str();
    cmd->add_option("--max-concurrency", args->max_concurrency, "Max in-flight requests (0: unlimited)");
    cmd->add_option("--output-file", args->output_file, "Write the metrics as JSON");
    cmd->add_option("--random-vocab-size", args->vocab_size, "Random token ids in [0, N)")->capture_default_str();
    cmd->callback([args, exit_code] { *exit_code = run_bench(*args); });
}

}  // namespace dsa::app
