// `dsaserve bench-serving` (see bench_serving.h): flags, the tokenizer / model / dataset set-up, the timed runs
// (Poisson arrivals, a concurrency cap, one thread per in-flight request) and the sweep with its plot.
#include "app/bench_serving.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "app/bench_backends.h"
#include "app/bench_datasets.h"
#include "app/bench_http.h"
#include "app/bench_metrics.h"
#include "app/bench_plot.h"
#include "app/bench_progress.h"
#include "base/json.h"
#include "base/mapped_file.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace dsa::app {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
    std::string host = "127.0.0.1";
    int port = 30000;
    std::string base_url, backend = "sglang", dataset_name = "sharegpt", dataset_path, model, tokenizer;
    int num_prompts = 1000, sharegpt_output_len = 0, sharegpt_context_len = 0;
    int random_input_len = 1024, random_output_len = 1024, random_vocab_size = 0;
    double random_range_ratio = 0.0;
    std::string request_rate = "inf", request_rate_range, max_concurrency_range, output_file, plot, extra_request_body;
    int max_concurrency = 0, warmup_requests = 1;
    uint64_t seed = 1;
    bool multi = false, disable_tqdm = false, disable_stream = false, disable_ignore_eos = false,
         apply_chat_template = false;
    CLI::Option *sharegpt_output_len_opt = nullptr, *sharegpt_context_len_opt = nullptr;
};

// Everything a run needs once set up.
struct Setup {
    Endpoint ep;
    BackendKind kind = BackendKind::kGenerate;
    BodyOptions body;
    std::shared_ptr<const text::Tokenizer> tokenizer;
    std::string tokenizer_dir;
    std::vector<DatasetRow> rows;
    RunInfo info;
    bool progress = true;
};

struct SweepRun {
    double rate;
    int max_concurrency;
    std::string label;
};

void fail(const std::string& msg) { std::fprintf(stderr, "dsaserve bench-serving: %s\n", msg.c_str()); }

// ---- tokenizer and model --------------------------------------------------------------------------------

bool is_dir(const std::string& p) { return file_exists(join_path(p, "tokenizer.json")); }

// --tokenizer, else --model when it is a local directory, else the server's /get_model_info tokenizer_path
// when that exists on this machine. nullptr (no error) when none is found and none was asked for.
StatusOr<std::shared_ptr<const text::Tokenizer>> find_tokenizer(const BenchArgs& a, const Endpoint& ep,
                                                                std::string* dir) {
    std::string path = a.tokenizer;
    if (path.empty() && !a.model.empty() && is_dir(a.model)) path = a.model;
    if (path.empty()) {
        auto info = http_get(ep, "/get_model_info");
        if (info.is_ok() && info->status == 200) {
            Json j = Json::parse(info->body, nullptr, false);
            std::string p = j.is_object() ? j.value("tokenizer_path", std::string()) : std::string();
            if (!p.empty() && is_dir(p)) path = p;
        }
    }
    if (path.empty()) return std::shared_ptr<const text::Tokenizer>();
    bool file = path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0;
    *dir = file ? path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/')) : path;
    if (dir->empty()) *dir = ".";
    auto tok = text::Tokenizer::from_file(file ? path : join_path(path, "tokenizer.json"));
    if (!tok.is_ok()) return invalid_argument("--tokenizer {}: {}", path, tok.status().message());
    return std::move(tok).value();
}

// --model, else the first id of GET /v1/models.
StatusOr<std::string> find_model_id(const BenchArgs& a, const Endpoint& ep) {
    if (!a.model.empty()) return a.model;
    auto r = http_get(ep, "/v1/models");
    if (!r.is_ok())
        return invalid_argument("GET /v1/models: {}; is the server up? (or pass --model)", r.status().message());
    Json j = Json::parse(r->body, nullptr, false);
    if (r->status != 200 || !j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
        !j["data"][0].contains("id"))
        return invalid_argument("GET /v1/models gave no model id (HTTP {}); pass --model", r->status);
    return j["data"][0]["id"].get<std::string>();
}

// --apply-chat-template: the tokenizer directory's chat template around one user message, BOS removed.
StatusOr<std::function<StatusOr<std::string>(const std::string&)>> chat_template_fn(const std::string& dir) {
    const std::string path = join_path(dir, "tokenizer_config.json");
    DSA_ASSIGN_OR_RETURN(std::string text, read_file(path));
    OrderedJson cfg = OrderedJson::parse(text, nullptr, false);
    if (!cfg.is_object() || !cfg.contains("chat_template") || !cfg["chat_template"].is_string())
        return invalid_argument("--apply-chat-template: {} has no chat_template string", path);
    DSA_ASSIGN_OR_RETURN(text::ChatTemplate tmpl,
                         text::ChatTemplate::from_string(cfg["chat_template"].get<std::string>()));
    OrderedJson kwargs = OrderedJson::object();
    for (const char* key : {"bos_token", "eos_token"}) {
        if (!cfg.contains(key)) continue;
        const OrderedJson& v = cfg[key];
        if (v.is_string())
            kwargs[key] = v;
        else if (v.is_object() && v.contains("content"))
            kwargs[key] = v["content"];
    }
    std::string bos = kwargs.contains("bos_token") ? kwargs["bos_token"].get<std::string>() : "";
    auto shared = std::make_shared<text::ChatTemplate>(std::move(tmpl));
    return std::function<StatusOr<std::string>(const std::string&)>(
        [shared, kwargs, bos](const std::string& user) -> StatusOr<std::string> {
            OrderedJson msgs = OrderedJson::array({{{"role", "user"}, {"content", user}}});
            DSA_ASSIGN_OR_RETURN(std::string s, shared->render(msgs, OrderedJson(), true, kwargs));
            for (size_t p; !bos.empty() && (p = s.find(bos)) != std::string::npos;) s.erase(p, bos.size());
            return s;
        });
}

// ---- dataset --------------------------------------------------------------------------------------------

StatusOr<std::vector<SharegptPair>> read_sharegpt(const std::string& path) {
    if (path.empty())
        return invalid_argument("--dataset-path is required for ShareGPT data (dsaserve does not download it)");
    DSA_ASSIGN_OR_RETURN(std::string text, read_file(path));
    auto pairs = parse_sharegpt(text);
    if (!pairs.is_ok()) return invalid_argument("{}: {}", path, pairs.status().message());
    return pairs;
}

StatusOr<std::vector<DatasetRow>> build_dataset(const BenchArgs& a, const Setup& s) {
    EncodeFn encode;
    if (s.tokenizer) encode = [tok = s.tokenizer](std::string_view t) { return tok->encode(t); };
    RandomOptions ro{a.random_input_len,
                     a.random_output_len,
                     a.random_range_ratio,
                     a.num_prompts,
                     a.seed,
                     a.random_vocab_size > 0 ? a.random_vocab_size : (s.tokenizer ? s.tokenizer->vocab_size() : 256)};
    const bool needs_file = a.dataset_name == "sharegpt" || (a.dataset_name == "random" && !a.dataset_path.empty());
    if (a.dataset_name == "random-ids" || (a.dataset_name == "random" && a.dataset_path.empty()))
        return sample_random_ids(ro);
    if (!needs_file)
        return invalid_argument("--dataset-name {}: not supported (sharegpt, random, random-ids)", a.dataset_name);
    if (!s.tokenizer)
        return invalid_argument("--dataset-name {} needs a tokenizer: pass --tokenizer DIR (or --model DIR)",
                                a.dataset_name);
    DSA_ASSIGN_OR_RETURN(std::vector<SharegptPair> pairs, read_sharegpt(a.dataset_path));
    if (a.dataset_name == "random") return sample_random_from_sharegpt(std::move(pairs), ro, encode);
    SharegptOptions so;
    so.num_prompts = a.num_prompts;
    so.seed = a.seed;
    if (a.sharegpt_output_len_opt->count()) so.fixed_output_len = a.sharegpt_output_len;
    if (a.sharegpt_context_len_opt->count()) so.context_len = a.sharegpt_context_len;
    if (a.apply_chat_template) {
        DSA_ASSIGN_OR_RETURN(so.chat_template, chat_template_fn(s.tokenizer_dir));
    }
    return sample_sharegpt(std::move(pairs), so, encode);
}

// The chat route takes text: id prompts are decoded (as SGLang's random dataset does for every backend).
Status textify_for_chat(Setup& s) {
    for (DatasetRow& r : s.rows) {
        if (r.prompt_ids.empty()) continue;
        if (!s.tokenizer)
            return invalid_argument("--backend {} needs text prompts: pass --tokenizer DIR to decode random ids",
                                    s.info.backend);
        r.prompt = s.tokenizer->decode(r.prompt_ids);
        r.prompt_ids.clear();
    }
    return Status::ok();
}

// ---- runs -----------------------------------------------------------------------------------------------

class Limiter {
  public:
    explicit Limiter(int cap) : cap_(cap) {}
    void acquire() {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return cap_ <= 0 || in_flight_ < cap_; });
        ++in_flight_;
    }
    void release() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            --in_flight_;
        }
        cv_.notify_one();
    }

  private:
    int cap_, in_flight_ = 0;
    std::mutex mu_;
    std::condition_variable cv_;
};

// Sends every row: request i is due at its Poisson arrival time (all at 0 for rate inf) and starts once a
// concurrency slot is free, as SGLang's semaphore does.
std::vector<RequestResult> run_all(const Setup& s, const SweepRun& run, uint64_t seed, double* duration) {
    const size_t n = s.rows.size();
    std::vector<RequestResult> results(n);
    std::vector<std::thread> threads;
    Limiter limiter(run.max_concurrency);
    Progress progress(static_cast<int>(n), s.progress, isatty(STDERR_FILENO) != 0);
    std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
    std::exponential_distribution<double> gap(std::isinf(run.rate) ? 1.0 : run.rate);
    const auto t0 = Clock::now();
    auto due = t0;
    for (size_t i = 0; i < n; ++i) {
        std::this_thread::sleep_until(due);
        limiter.acquire();
        threads.emplace_back([&, i] {
            results[i] = send_request(s.ep, s.kind, s.rows[i], s.body);
            limiter.release();
            progress.tick();
        });
        if (!std::isinf(run.rate))
            due += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
    }
    for (auto& t : threads) t.join();
    *duration = std::chrono::duration<double>(Clock::now() - t0).count();
    progress.finish();
    if (s.tokenizer)
        for (auto& r : results)
            if (r.success) r.retokenized_len = static_cast<int>(s.tokenizer->encode(r.generated_text).size());
    return results;
}

Status warmup(const Setup& s, int count) {
    if (count <= 0 || s.rows.empty()) return Status::ok();
    std::fprintf(stderr, "bench-serving: warmup with %d request(s)\n", count);
    DatasetRow row = s.rows[0];
    row.output_len = std::min(row.output_len, 32);
    std::vector<RequestResult> out(static_cast<size_t>(count));
    std::vector<std::thread> threads;
    for (int i = 0; i < count; ++i)
        threads.emplace_back([&, i] { out[static_cast<size_t>(i)] = send_request(s.ep, s.kind, row, s.body); });
    for (auto& t : threads) t.join();
    for (const auto& r : out)
        if (r.success) return Status::ok();
    return invalid_argument("warmup failed, check the server address, --backend and --model: {}", out[0].error);
}

Json run_point(const Setup& s, const SweepRun& run, uint64_t seed, const std::string& output_file) {
    double duration = 0;
    std::vector<RequestResult> results = run_all(s, run, seed, &duration);
    RunInfo info = s.info;
    info.request_rate = run.rate;
    info.max_concurrency = run.max_concurrency;
    Json report = build_report(results, duration, info);
    std::printf("%s", format_report(report).c_str());
    std::fflush(stdout);
    for (const auto& r : results)
        if (!r.success) {
            std::fprintf(stderr, "bench-serving: first failure: %s\n", r.error.c_str());
            break;
        }
    if (!output_file.empty()) std::ofstream(output_file, std::ios::app) << report.dump() << "\n";
    return report;
}

// ---- sweep ----------------------------------------------------------------------------------------------

double parse_rate(const std::string& text, bool* ok) {
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    *ok = end && *end == '\0' && !text.empty() && v > 0;
    return v;
}

StatusOr<std::vector<SweepRun>> plan_runs(const BenchArgs& a) {
    bool ok = false;
    double rate = parse_rate(a.request_rate, &ok);
    if (!ok) return invalid_argument("--request-rate {}: expected a positive number or inf", a.request_rate);
    if (a.max_concurrency < 0) return invalid_argument("--max-concurrency {}: must be positive", a.max_concurrency);
    const bool rate_sweep = a.multi || !a.request_rate_range.empty();
    if (rate_sweep && !a.max_concurrency_range.empty())
        return invalid_argument("give --request-rate-range or --max-concurrency-range, not both");
    std::vector<SweepRun> runs;
    if (rate_sweep) {
        DSA_ASSIGN_OR_RETURN(auto rates,
                             parse_sweep_range(a.request_rate_range.empty() ? "2,34,2" : a.request_rate_range, true));
        for (double r : rates) runs.push_back({r, a.max_concurrency, "rate=" + fmt::format("{}", r)});
    } else if (!a.max_concurrency_range.empty()) {
        DSA_ASSIGN_OR_RETURN(auto concs, parse_sweep_range(a.max_concurrency_range, false));
        for (double c : concs) {
            if (c != std::floor(c)) return invalid_argument("--max-concurrency-range: {} is not an integer", c);
            runs.push_back({rate, static_cast<int>(c), "c=" + std::to_string(static_cast<int>(c))});
        }
    } else {
        runs.push_back({rate, a.max_concurrency, ""});
    }
    return runs;
}

std::string fixed(double v) { return fmt::format("{:.2f}", v); }

void print_sweep_summary(const std::vector<Json>& reports, const std::vector<SweepRun>& runs) {
    std::printf("\n%-12s %10s %14s %12s %12s %12s %12s\n", "point", "req/s", "out tok/s", "TTFT p50", "TTFT p99",
                "E2E p50", "E2E p99");
    for (size_t i = 0; i < reports.size(); ++i) {
        const Json& r = reports[i];
        std::printf("%-12s %10s %14s %12s %12s %12s %12s\n", runs[i].label.c_str(),
                    fixed(r["request_throughput"]).c_str(), fixed(r["output_throughput"]).c_str(),
                    fixed(r["median_ttft_ms"]).c_str(), fixed(r["p99_ttft_ms"]).c_str(),
                    fixed(r["median_e2e_latency_ms"]).c_str(), fixed(r["p99_e2e_latency_ms"]).c_str());
    }
}

// ---- the command ----------------------------------------------------------------------------------------

Status check_args(const BenchArgs& a) {
    if (a.num_prompts <= 0) return invalid_argument("--num-prompts {}: must be positive", a.num_prompts);
    if (a.random_input_len <= 0 || a.random_output_len <= 0)
        return invalid_argument("--random-input-len and --random-output-len must be positive");
    if (a.random_range_ratio < 0 || a.random_range_ratio > 1)
        return invalid_argument("--random-range-ratio {}: must be in [0, 1]", a.random_range_ratio);
    if (!a.plot.empty() && !(a.plot.size() > 4 && a.plot.ends_with(".svg")))
        return invalid_argument("--plot {}: only SVG is written; give a path ending in .svg", a.plot);
    return Status::ok();
}

StatusOr<Setup> make_setup(const BenchArgs& a) {
    Setup s;
    DSA_RETURN_IF_ERROR(check_args(a));
    DSA_ASSIGN_OR_RETURN(s.kind, parse_backend(a.backend));
    if (!a.base_url.empty()) {
        DSA_ASSIGN_OR_RETURN(s.ep, parse_base_url(a.base_url));
    } else {
        s.ep.host = a.host;
        s.ep.port = a.port;
    }
    if (const char* key = std::getenv("OPENAI_API_KEY"); key && *key)
        s.ep.headers.push_back({"Authorization", std::string("Bearer ") + key});
    DSA_ASSIGN_OR_RETURN(s.tokenizer, find_tokenizer(a, s.ep, &s.tokenizer_dir));
    if (s.kind != BackendKind::kGenerate) {
        DSA_ASSIGN_OR_RETURN(s.body.model, find_model_id(a, s.ep));
    }
    s.body.stream = !a.disable_stream;
    s.body.ignore_eos = !a.disable_ignore_eos;
    if (!a.extra_request_body.empty()) {
        s.body.extra = Json::parse(a.extra_request_body, nullptr, false);
        if (!s.body.extra.is_object()) return invalid_argument("--extra-request-body: expected a JSON object");
    }
    s.info = RunInfo{a.backend,           a.dataset_name,      0, 0, std::nullopt, a.random_input_len,
                     a.random_output_len, a.random_range_ratio};
    if (a.sharegpt_output_len_opt->count()) s.info.sharegpt_output_len = a.sharegpt_output_len;
    DSA_ASSIGN_OR_RETURN(s.rows, build_dataset(a, s));
    if (s.rows.empty()) return invalid_argument("the dataset gave no request (all filtered out?)");
    if (static_cast<int>(s.rows.size()) < a.num_prompts)
        std::fprintf(stderr, "bench-serving: only %zu usable prompts (asked for %d)\n", s.rows.size(), a.num_prompts);
    if (s.kind == BackendKind::kChat) DSA_RETURN_IF_ERROR(textify_for_chat(s));
    s.progress = !a.disable_tqdm;
    return s;
}

// One socket per in-flight request: raise the open-file soft limit as SGLang's client does.
void raise_fd_limit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    rlim_t want = lim.rlim_max == RLIM_INFINITY ? 65535 : std::min<rlim_t>(lim.rlim_max, 65535);
    if (lim.rlim_cur < want) {
        lim.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

int run_bench(const BenchArgs& a) {
    raise_fd_limit();
    auto runs = plan_runs(a);
    auto setup = runs.is_ok() ? make_setup(a) : StatusOr<Setup>(runs.status());
    if (!setup.is_ok()) {
        fail(setup.status().message());
        return 2;
    }
    const Setup& s = *setup;
    int64_t in_tok = 0;
    for (const auto& r : s.rows) in_tok += r.prompt_len;
    std::fprintf(stderr, "bench-serving: %zu prompts (%lld input tokens) to %s:%d%s%s, tokenizer: %s\n", s.rows.size(),
                 static_cast<long long>(in_tok), s.ep.host.c_str(), s.ep.port, s.ep.base_path.c_str(),
                 backend_path(s.kind), s.tokenizer ? s.tokenizer_dir.c_str() : "none");
    if (Status w = warmup(s, a.warmup_requests); !w.is_ok()) {
        fail(w.message());
        return 1;
    }
    std::vector<Json> reports;
    std::vector<SweepPoint> points;
    bool all_ok = true;
    for (const SweepRun& run : *runs) {
        if (runs->size() > 1) std::fprintf(stderr, "bench-serving: sweep point %s\n", run.label.c_str());
        reports.push_back(run_point(s, run, a.seed, a.output_file));
        all_ok = all_ok && reports.back()["completed"].get<int>() > 0;
        points.push_back(sweep_point_of(reports.back(), run.label.empty() ? "run" : run.label));
    }
    if (runs->size() > 1) print_sweep_summary(reports, *runs);
    if (!a.plot.empty()) {
        std::string title = "dsaserve bench-serving: " + a.backend + ", " + a.dataset_name + ", " +
                            std::to_string(s.rows.size()) + " prompts per point";
        if (Status st = write_latency_plot(a.plot, points, title); !st.is_ok()) {
            fail(st.message());
            return 1;
        }
        std::fprintf(stderr, "bench-serving: wrote %s\n", a.plot.c_str());
    }
    return all_ok ? 0 : 1;
}

void add_dataset_options(CLI::App* cmd, BenchArgs* a) {
    cmd->add_option("--dataset-name", a->dataset_name, "sharegpt, random or random-ids")->capture_default_str();
    cmd->add_option("--dataset-path", a->dataset_path, "ShareGPT-format JSON file");
    cmd->add_option("--num-prompts", a->num_prompts)->capture_default_str();
    a->sharegpt_output_len_opt =
        cmd->add_option("--sharegpt-output-len", a->sharegpt_output_len, "Output length for every ShareGPT prompt");
    a->sharegpt_context_len_opt = cmd->add_option("--sharegpt-context-len", a->sharegpt_context_len,
                                                  "Drop ShareGPT pairs whose prompt + output exceed this");
    cmd->add_option("--random-input-len", a->random_input_len)->capture_default_str();
    cmd->add_option("--random-output-len", a->random_output_len)->capture_default_str();
    cmd->add_option("--random-range-ratio", a->random_range_ratio)->capture_default_str();
    cmd->add_option("--random-vocab-size", a->random_vocab_size,
                    "random ids in [0, N) (default: the tokenizer's vocab, else 256)");
    cmd->add_flag("--apply-chat-template", a->apply_chat_template, "Wrap ShareGPT prompts in the chat template");
    cmd->add_option("--seed", a->seed)->capture_default_str();
}

void add_traffic_options(CLI::App* cmd, BenchArgs* a) {
    cmd->add_option("--request-rate", a->request_rate, "Requests/s (Poisson); inf sends all at once")
        ->capture_default_str();
    cmd->add_option("--max-concurrency", a->max_concurrency, "Max in-flight requests (0: unlimited)");
    cmd->add_flag("--multi", a->multi, "Sweep --request-rate-range (default 2,34,2)");
    cmd->add_option("--request-rate-range", a->request_rate_range,
                    "Sweep these rates: a,b,c,... or exactly start,stop,step");
    cmd->add_option("--max-concurrency-range", a->max_concurrency_range, "Sweep these concurrencies: a,b,c,...");
    cmd->add_option("--plot", a->plot, "Write an SVG of latency against output throughput over the sweep");
    cmd->add_option("--warmup-requests", a->warmup_requests)->capture_default_str();
    cmd->add_flag("--disable-stream", a->disable_stream, "Non-streaming requests (TTFT = latency)");
    cmd->add_flag("--disable-ignore-eos", a->disable_ignore_eos, "Let requests stop at EOS");
    cmd->add_option("--extra-request-body", a->extra_request_body, "JSON object merged into every request body");
    cmd->add_flag("--disable-tqdm", a->disable_tqdm, "No progress display");
    cmd->add_option("--output-file", a->output_file, "Append one JSON line of metrics per run");
}

}  // namespace

StatusOr<std::vector<double>> parse_sweep_range(const std::string& text, bool rates) {
    std::vector<double> v;
    std::stringstream ss(text);
    for (std::string item; std::getline(ss, item, ',');) {
        bool ok = false;
        double x = parse_rate(item, &ok);
        if (!ok || (!rates && std::isinf(x))) return invalid_argument("sweep range {}: bad value '{}'", text, item);
        v.push_back(x);
    }
    if (v.empty()) return invalid_argument("sweep range '{}' is empty", text);
    if (rates && v.size() == 3) {  // start,stop,step
        if (std::isinf(v[1]) || std::isinf(v[2]) || v[0] >= v[1])
            return invalid_argument("sweep range {}: three values mean start,stop,step with start < stop", text);
        std::vector<double> r;
        for (double x = v[0]; x < v[1] - 1e-9; x += v[2]) r.push_back(x);
        return r;
    }
    return v;
}

void add_bench_serving_command(CLI::App& app, int* exit_code) {
    auto a = std::make_shared<BenchArgs>();
    CLI::App* cmd = app.add_subcommand("bench-serving", "Online serving benchmark (like sglang.bench_serving)");
    cmd->add_option("--backend", a->backend, "sglang, sglang-oai or sglang-oai-chat (and vllm/lmdeploy aliases)")
        ->capture_default_str();
    cmd->add_option("--host", a->host, "Server host")->capture_default_str();
    cmd->add_option("--port", a->port, "Server port")->capture_default_str();
    cmd->add_option("--base-url", a->base_url, "Server base URL (overrides --host/--port)");
    cmd->add_option("--model", a->model, "Model name for the OpenAI routes (default: GET /v1/models)");
    cmd->add_option("--tokenizer", a->tokenizer,
                    "Tokenizer directory or tokenizer.json (default: --model, else the server's tokenizer_path)");
    add_dataset_options(cmd, a.get());
    add_traffic_options(cmd, a.get());
    cmd->callback([a, exit_code] { *exit_code = run_bench(*a); });
}

}  // namespace dsa::app
