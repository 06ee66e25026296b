// Decoder-layer decode benchmark: one decode step (every sequence adds one token at position L) through full
// DeepSeek-V3.2 decoder layers, run by the real model code (model::DsaModel::forward) on the CUDA backend with
// random weights in the checkpoint formats and KV stores pre-filled for context L. Per batch x context: step
// time, time per layer ((t(N layers) - t(1 layer)) / (N - 1)), the HBM floor of one layer (weights of attention,
// indexer, router, the distinct routed experts of that step and the shared expert, plus the KV it reads) at
// 4.8 TB/s, achieved TB/s and % of floor. The lm_head is timed on its own. `--device cpu --tiny` runs the same
// path on the CPU backend at the tiny fixture's sizes (the ctest smoke run). Each case also times the same step
// through forward_decode (device-resident inputs) and replayed from a CUDA graph. Usage: layer_bench --help
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "layer_bench_setup.h"
#include "model/transformer.h"
#include "recording_backend.h"
#include "tensor/numeric.h"

#ifdef DSA_HAVE_CUDA
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include "backend/cuda/allocator.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/device_memory.h"
#include "cuda_timing.h"
#endif

namespace dsa::layer_bench {
namespace {

constexpr double kPeakBytes = 4.8e12;  // H200 HBM3e
constexpr int64_t kFullVocab = 129280;
constexpr int64_t kReserveBytes = int64_t{3} << 30;  // activations, workspaces, dequantized weight copies

const char* kUsage =
    "usage: layer_bench [--device cuda|cpu] [--tiny] [--layers N] [--batches 1,4,...] [--contexts 4096,...]\n"
    "                   [--iters N] [--numerics bf16|deepseek-fp8] [--kv fp8|bf16] [--indexer-keys fp8|f32]\n"
    "                   [--no-dense] [--quick] [--profile]\n"
    "Defaults: cuda, DeepSeek-V3.2 shapes, 2 MoE layers, batches 1,4,16,64,128,256, contexts 4K,16K,64K,128K,\n"
    "10 timed steps, bf16 activations with FP8 KV (656-byte latent rows, FP8 indexer keys). --tiny: the tiny\n"
    "fixture's sizes, batches 1,4, contexts 128,512. --quick: batches 1,64, contexts 4K,128K.\n"
    "--profile: for the first batch and context only, run one untimed forward_decode step between\n"
    "cudaProfilerStart/Stop (for a kernel profiler started with profiling off) and exit; no timings.\n";

struct Args {
    Device device = Device::kCUDA;
    bool tiny = false, dense = true, quick = false, profile = false;
    int64_t layers = 2;
    int iters = 10;
    std::vector<int64_t> batches, contexts;
    std::string numerics = "bf16", kv = "fp8", indexer_keys = "fp8";
};

StatusOr<std::vector<int64_t>> parse_list(const std::string& flag, const std::string& text) {
    std::vector<int64_t> v;
    size_t pos = 0;
    while (pos <= text.size()) {
        const size_t end = std::min(text.find(',', pos), text.size());
        const std::string item = text.substr(pos, end - pos);
        char* stop = nullptr;
        const long long x = std::strtoll(item.c_str(), &stop, 10);
        if (item.empty() || *stop != '\0' || x < 1) return invalid_argument("{} '{}': positive integers", flag, text);
        v.push_back(x);
        pos = end + 1;
    }
    return v;
}

StatusOr<int64_t> parse_int(const std::string& flag, const std::string& text, int64_t lo, int64_t hi) {
    DSA_ASSIGN_OR_RETURN(std::vector<int64_t> v, parse_list(flag, text));
    if (v.size() != 1 || v[0] < lo || v[0] > hi)
        return invalid_argument("{} '{}': one integer in [{}, {}]", flag, text, lo, hi);
    return v[0];
}

Status check_choice(const std::string& flag, const std::string& value, std::initializer_list<const char*> choices) {
    for (const char* c : choices) {
        if (value == c) return Status::ok();
    }
    return invalid_argument("{} '{}' is not one of the choices (see --help)", flag, value);
}

StatusOr<Args> parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string f = argv[i];
        if (f == "--tiny") {
            a.tiny = true;
            continue;
        }
        if (f == "--no-dense") {
            a.dense = false;
            continue;
        }
        if (f == "--quick") {
            a.quick = true;
            continue;
        }
        if (f == "--profile") {
            a.profile = true;
            continue;
        }
        if (i + 1 >= argc) return invalid_argument("{} needs a value, or is unknown (see --help)", f);
        const std::string v = argv[++i];
        if (f == "--device") {
            DSA_RETURN_IF_ERROR(check_choice(f, v, {"cuda", "cpu"}));
            a.device = v == "cpu" ? Device::kCPU : Device::kCUDA;
        } else if (f == "--layers") {
            DSA_ASSIGN_OR_RETURN(a.layers, parse_int(f, v, 1, 8));
        } else if (f == "--iters") {
            DSA_ASSIGN_OR_RETURN(int64_t n, parse_int(f, v, 1, 1000));
            a.iters = static_cast<int>(n);
        } else if (f == "--batches") {
            DSA_ASSIGN_OR_RETURN(a.batches, parse_list(f, v));
        } else if (f == "--contexts") {
            DSA_ASSIGN_OR_RETURN(a.contexts, parse_list(f, v));
        } else if (f == "--numerics") {
            DSA_RETURN_IF_ERROR(check_choice(f, v, {"bf16", "deepseek-fp8"}));
            a.numerics = v;
        } else if (f == "--kv") {
            DSA_RETURN_IF_ERROR(check_choice(f, v, {"fp8", "bf16"}));
            a.kv = v;
        } else if (f == "--indexer-keys") {
            DSA_RETURN_IF_ERROR(check_choice(f, v, {"fp8", "f32"}));
            a.indexer_keys = v;
        } else {
            return invalid_argument("unknown flag {} (see --help)", f);
        }
    }
    if (a.batches.empty()) {
        a.batches = a.tiny    ? std::vector<int64_t>{1, 4}
                    : a.quick ? std::vector<int64_t>{1, 64}
                              : std::vector<int64_t>{1, 4, 16, 64, 128, 256};
    }
    if (a.contexts.empty()) {
        a.contexts = a.tiny    ? std::vector<int64_t>{128, 512}
                     : a.quick ? std::vector<int64_t>{4096, 131072}
                               : std::vector<int64_t>{4096, 16384, 65536, 131072};
    }
    for (int64_t l : a.contexts) {
        if (l + 1 >= 163840) return invalid_argument("--contexts {}: beyond max_position_embeddings 163840", l);
    }
    return a;
}

backend::Numerics numerics_of(const Args& a) {
    backend::Numerics n = a.numerics == "bf16" ? backend::Numerics::bf16() : backend::Numerics::deepseek_fp8();
    n.kv_cache_fp8 = a.kv == "fp8";
    n.indexer_fp8 = a.indexer_keys == "fp8";
    return n;
}

// The backend under test and what only the CUDA one has: event timing, free memory, the allocator cache.
struct Runner {
    std::unique_ptr<backend::Backend> backend;
    Device device = Device::kCPU;
    int iters = 10;

    // Median seconds of one call of fn after warm-up (CUDA events on the GPU, wall clock on the CPU).
    double median_seconds(const std::function<void()>& fn) {
#ifdef DSA_HAVE_CUDA
        if (device == Device::kCUDA) {
            auto& be = static_cast<backend::cuda::CudaBackend&>(*backend);
            return backend::bench::median_seconds_per_call(
                be, [&fn](int) { fn(); }, 1, iters);
        }
#endif
        fn();
        std::vector<double> runs;
        for (int i = 0; i < iters; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            fn();
            runs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(runs.begin(), runs.end());
        return runs[runs.size() / 2];
    }

    // Device bytes free now (cached allocator blocks returned first); the CPU run has no limit.
    int64_t free_bytes() {
#ifdef DSA_HAVE_CUDA
        if (device == Device::kCUDA) {
            DSA_CUDA_CHECK(cudaDeviceSynchronize());
            backend::cuda::CachingAllocator::instance(0).release_cached();
            StatusOr<backend::CudaMemoryInfo> m = backend::cuda_memory_info(0);
            DSA_CHECK(m.is_ok()) << m.status().message();
            return m->free_bytes;
        }
#endif
        return INT64_MAX;
    }
};

StatusOr<Runner> make_runner(const Args& a) {
    Runner r;
    r.device = a.device;
    r.iters = a.iters;
    const backend::Numerics n = numerics_of(a);
    if (a.device == Device::kCPU) {
        r.backend = backend::make_cpu_backend(n);
        return r;
    }
#ifdef DSA_HAVE_CUDA
    if (backend::cuda_device_count() == 0) return invalid_argument("--device cuda: no CUDA device is present");
    r.backend = backend::make_cuda_backend(n, 0);
    cudaDeviceProp prop{};
    DSA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
    return r;
#else
    return invalid_argument("--device cuda: this build has no CUDA backend (use --device cpu --tiny)");
#endif
}

double mb(double bytes) { return bytes / 1e6; }

// lm_head (final logits, the full vocabulary) for each batch on its own: it is not part of the layer timing.
void bench_lm_head(Runner& r, const model::ModelConfig& c, int64_t vocab, WeightFiller& filler, const Args& a) {
    const backend::LinearWeight head{filler.bf16(vocab, c.hidden_size, "lm_head.weight"), Tensor()};
    std::mt19937 rng(7);
    for (int64_t b : a.batches) {
        Tensor x = Tensor::empty({b, c.hidden_size}, DType::kF32, Device::kCPU, "x");
        std::normal_distribution<float> d(0.0f, 1.0f);
        for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = d(rng);
        if (r.device == Device::kCUDA) {
            Tensor xb = Tensor::empty(x.shape(), DType::kBF16, Device::kCPU, "x.bf16");
            for (int64_t i = 0; i < x.numel(); ++i) xb.data<uint16_t>()[i] = f32_to_bf16(x.data<float>()[i]);
            x = xb;
        }
        Tensor xd = r.backend->to_device(x);
        const double s = r.median_seconds([&] { (void)r.backend->lm_head(xd, head); });
        const double bytes = static_cast<double>(head.weight.nbytes());
        std::printf("lm_head  B=%-4lld vocab %lld bf16: %9.1f us  %6.3f TB/s (%5.1f%% of 4.8)\n",
                    static_cast<long long>(b), static_cast<long long>(vocab), s * 1e6, bytes / s / 1e12,
                    100.0 * bytes / s / kPeakBytes);
    }
    std::fflush(stdout);
}

// Distinct experts routed in each recorded MoE layer of one step.
std::vector<int64_t> distinct_experts(const std::vector<Tensor>& routes) {
    std::vector<int64_t> out;
    for (const Tensor& ids : routes) {
        std::set<int32_t> s(ids.data<int32_t>(), ids.data<int32_t>() + ids.numel());
        out.push_back(static_cast<int64_t>(s.size()));
    }
    return out;
}

// Whether every logit of a forward is finite (random weights must still give a sane forward pass).
Status check_logits(const Tensor& logits, const char* what) {
    for (int64_t i = 0; i < logits.numel(); ++i) {
        if (!std::isfinite(logits.data<float>()[i])) {
            return make_error(StatusCode::kInternal, "{}: logit {} is not finite", what, i);
        }
    }
    return Status::ok();
}

// One routing record per MoE layer, each with at least top_k distinct experts (a token's experts differ).
Status check_routes(const std::vector<int64_t>& distinct, const model::ModelConfig& c) {
    if (static_cast<int64_t>(distinct.size()) != c.num_hidden_layers) {
        return make_error(StatusCode::kInternal, "{} routing records for {} MoE layers", distinct.size(),
                          c.num_hidden_layers);
    }
    for (int64_t d : distinct) {
        if (d < c.num_experts_per_tok || d > c.n_routed_experts) {
            return make_error(StatusCode::kInternal, "a step routed to {} distinct experts", d);
        }
    }
    return Status::ok();
}

// What one batch x context case needs of the models and the KV.
struct Models {
    const model::ModelConfig& config;  // N MoE layers
    model::DsaModel& all;              // N MoE layers
    model::DsaModel& one;              // the first of them only
    model::DsaModel* dense;            // one dense layer (its own weights), or null
    backend::bench::RecordingBackend& rec;
    std::vector<LayerWeightBytes> moe_bytes;
    LayerWeightBytes dense_bytes;
};

struct KvBytes {
    double per_seq_mla = 0, per_seq_index = 0;
};

KvBytes kv_read_bytes(const model::ModelConfig& c, const backend::Numerics& n, int64_t context) {
    const int64_t visible = context + 1;
    KvBytes k;
    k.per_seq_mla = static_cast<double>(std::min(visible, c.index_topk)) *
                    static_cast<double>(backend::mla_kv_bytes_per_token(n.mla_kv_format()));
    const double key_bytes =
        n.indexer_fp8 ? backend::kIndexerFp8BytesPerToken : static_cast<double>(backend::kIndexerHeadDim) * 4;
    k.per_seq_index = static_cast<double>(visible) * key_bytes;  // the indexer scores every visible key
    return k;
}

// Step times of one case: the N-layer model, the 1-layer model, and what they imply per layer.
struct StepTimes {
    double all = 0, layer = 0, fixed = 0;
};

StepTimes time_steps(Runner& r, Models& m, const DecodeBatch& db, model::KvStores& kv, int64_t layers) {
    StepTimes t;
    t.all = r.median_seconds([&] { (void)m.all.forward(db.batch, kv); });
    const double one = layers > 1 ? r.median_seconds([&] { (void)m.one.forward(db.batch, kv); }) : t.all;
    t.layer = layers > 1 ? (t.all - one) / static_cast<double>(layers - 1) : t.all;
    t.fixed = layers > 1 ? one - t.layer : 0.0;  // embedding, batch upload, logits of a tiny vocab, host sync
    return t;
}

// Mean over the MoE layers of the weight bytes one step must read, and of the distinct experts routed.
struct MoeFloor {
    double weights = 0, experts = 0;
};

MoeFloor moe_floor(const Models& m, const std::vector<int64_t>& distinct) {
    MoeFloor f;
    for (size_t i = 0; i < m.moe_bytes.size(); ++i) {
        const LayerWeightBytes& w = m.moe_bytes[i];
        const double e = static_cast<double>(distinct.at(i));
        f.weights += static_cast<double>(w.attention + w.shared) + e * static_cast<double>(w.expert);
        f.experts += e;
    }
    f.weights /= static_cast<double>(m.moe_bytes.size());
    f.experts /= static_cast<double>(m.moe_bytes.size());
    return f;
}

void print_moe(int64_t b, int64_t l, const StepTimes& t, const MoeFloor& f, double kv_bytes) {
    const double floor_s = (f.weights + kv_bytes) / kPeakBytes;
    std::printf(
        "B=%-4lld L=%-6lld step %9.1f us | MoE layer %9.1f us | floor %8.1f us (w %.1f MB + kv %.1f MB) | "
        "%6.3f TB/s | %5.1f%% of floor | %5.2fx weights | experts %5.1f | fixed %7.1f us\n",
        static_cast<long long>(b), static_cast<long long>(l), t.all * 1e6, t.layer * 1e6, floor_s * 1e6, mb(f.weights),
        mb(kv_bytes), (f.weights + kv_bytes) / t.layer / 1e12, 100.0 * floor_s / t.layer,
        t.layer / (f.weights / kPeakBytes), f.experts, t.fixed * 1e6);
}

// One dense layer: its 1-layer step minus the fixed cost measured on the MoE models.
void time_dense(Runner& r, Models& m, const DecodeBatch& db, model::KvStores& kv, const StepTimes& t, double kv_bytes,
                int64_t b, int64_t l) {
    const double step = r.median_seconds([&] { (void)m.dense->forward(db.batch, kv); });
    const double layer = step - t.fixed;
    const double w = static_cast<double>(m.dense_bytes.attention + m.dense_bytes.dense);
    const double floor_s = (w + kv_bytes) / kPeakBytes;
    std::printf(
        "B=%-4lld L=%-6lld dense layer %9.1f us | floor %8.1f us (w %.1f MB + kv %.1f MB) | %6.3f TB/s | "
        "%5.1f%% of floor\n",
        static_cast<long long>(b), static_cast<long long>(l), layer * 1e6, floor_s * 1e6, mb(w), mb(kv_bytes),
        (w + kv_bytes) / layer / 1e12, 100.0 * floor_s / layer);
}

// The decode batch as model::DecodeInputs on the backend's device (what a CUDA graph replays).
model::DecodeInputs device_decode_inputs(backend::Backend& be, const DecodeBatch& db) {
    const auto b = static_cast<int64_t>(db.tokens.size());
    const auto pages = static_cast<int64_t>(db.pages.at(0).size());
    Tensor tok = Tensor::empty({b}, DType::kI32), pos = Tensor::empty({b}, DType::kI32);
    Tensor qr = Tensor::empty({b}, DType::kI32), pt = Tensor::empty({b, pages}, DType::kI32);
    for (int64_t i = 0; i < b; ++i) {
        tok.data<int32_t>()[i] = db.tokens[i].at(0);
        pos.data<int32_t>()[i] = db.batch.positions.data<int32_t>()[i];
        qr.data<int32_t>()[i] = static_cast<int32_t>(i);
        std::copy(db.pages[i].begin(), db.pages[i].end(), pt.data<int32_t>() + i * pages);
    }
    model::DecodeInputs in;
    in.token_ids = be.to_device(tok);
    in.positions = be.to_device(pos);
    in.query_request = be.to_device(qr);
    in.page_table = be.to_device(pt);
    in.page_size = backend::kIndexerPageSize;  // the bench's KV page size (layer_bench_setup.cpp)
    in.width = pages * in.page_size;
    return in;
}

// The N-layer step through forward_decode (inputs already on the device), eagerly and replayed from a CUDA
// graph: the difference to `step` above is the host work of forward() (batch upload, op dispatch, launches).
// Median time of replaying the captured forward_decode of `model`; 0 with the reason in `why` if capture failed.
double replay_seconds(Runner& r, model::DsaModel& model, const model::DecodeInputs& in, model::KvStores& kv,
                      std::string& why) {
    StatusOr<std::unique_ptr<backend::BackendGraph>> graph =
        r.backend->capture_graph([&] { (void)model.forward_decode(in, kv); });
    if (!graph.is_ok()) {
        why = graph.status().message();
        return 0;
    }
    return r.median_seconds([&] { r.backend->replay_graph(**graph); });
}

void time_graph(Runner& r, Models& m, const DecodeBatch& db, model::KvStores& kv, const StepTimes& t,
                const MoeFloor& f, int64_t layers, int64_t b, int64_t l) {
    const model::DecodeInputs in = device_decode_inputs(*r.backend, db);
    const double eager = r.median_seconds([&] { (void)m.all.forward_decode(in, kv); });
    std::string why;
    const double replay = replay_seconds(r, m.all, in, kv, why);
    std::printf("B=%-4lld L=%-6lld decode step: forward %9.1f us | forward_decode %9.1f us | graph replay ",
                static_cast<long long>(b), static_cast<long long>(l), t.all * 1e6, eager * 1e6);
    if (replay == 0) {
        std::printf("n/a (%s)\n", why.c_str());
        return;
    }
    std::printf("%9.1f us (%.2fx faster than forward)\n", replay * 1e6, t.all / replay);
    if (layers < 2) return;
    // The layer as the server runs it: (graph of N layers - graph of 1 layer) / (N - 1).
    const double one = replay_seconds(r, m.one, in, kv, why);
    if (one == 0) return;
    const double layer = (replay - one) / static_cast<double>(layers - 1);
    std::printf("B=%-4lld L=%-6lld MoE layer from graph replays %9.1f us | %5.2fx weights\n",
                static_cast<long long>(b), static_cast<long long>(l), layer * 1e6, layer / (f.weights / kPeakBytes));
}

// One forward_decode step inside a profiler range (after one warm-up step outside it), for a kernel profiler
// such as Nsight Compute run with profiling off at start; the per-kernel table is the profiler's output.
Status profile_step(Runner& r, Models& m, const DecodeBatch& db, model::KvStores& kv) {
#ifdef DSA_HAVE_CUDA
    if (r.device == Device::kCUDA) {
        const model::DecodeInputs in = device_decode_inputs(*r.backend, db);
        (void)m.all.forward_decode(in, kv);
        cudaDeviceSynchronize();
        cudaProfilerStart();
        (void)m.all.forward_decode(in, kv);
        cudaDeviceSynchronize();
        cudaProfilerStop();
        std::printf("profiled one forward_decode step\n");
        return Status::ok();
    }
#endif
    (void)r, (void)m, (void)db, (void)kv;
    return invalid_argument("--profile needs --device cuda");
}

Status run_case(Runner& r, Models& m, const Args& a, int64_t b, int64_t l) {
    const backend::Numerics& n = r.backend->numerics();
    const KvPlan plan = plan_kv(b, l);
    const int64_t need = kv_store_bytes(plan, a.layers, n) + b * (l + 1) * 16 + kReserveBytes;
    const int64_t free = r.free_bytes();
    if (need > free) {
        std::printf("B=%-4lld L=%-6lld skipped: needs %.0f MB of KV + workspace, %.0f MB free\n",
                    static_cast<long long>(b), static_cast<long long>(l), mb(need), mb(free));
        std::fflush(stdout);
        return Status::ok();
    }
    std::mt19937 rng(static_cast<uint32_t>(b * 1000003 + l));
    model::KvStores kv = make_filled_kv(m.config, n, r.device, plan, rng);
    std::unique_ptr<DecodeBatch> db = make_decode_batch(plan, m.config.vocab_size, rng);

    // One recorded step (untimed): its logits must be finite and its routing is what the floor counts.
    m.rec.set_recording(true);
    model::ForwardOutput out = m.all.forward(db->batch, kv);
    m.rec.set_recording(false);
    DSA_RETURN_IF_ERROR(check_logits(out.logits, "decode step"));
    const std::vector<int64_t> distinct = distinct_experts(m.rec.take_routes());
    DSA_RETURN_IF_ERROR(check_routes(distinct, m.config));

    if (a.profile) return profile_step(r, m, *db, kv);
    const StepTimes t = time_steps(r, m, *db, kv, a.layers);
    const KvBytes kvb = kv_read_bytes(m.config, n, l);
    const double kv_bytes = static_cast<double>(b) * (kvb.per_seq_mla + kvb.per_seq_index);
    const MoeFloor floor = moe_floor(m, distinct);
    print_moe(b, l, t, floor, kv_bytes);
    if (m.dense != nullptr) time_dense(r, m, *db, kv, t, kv_bytes, b, l);
    time_graph(r, m, *db, kv, t, floor, a.layers, b, l);
    std::fflush(stdout);
    return Status::ok();
}

Status run(const Args& a) {
    // The timed forward uses a small vocabulary (its lm_head is negligible); the real one is timed on its own.
    const int64_t vocab = a.tiny ? 1408 : 1024;
    DSA_ASSIGN_OR_RETURN(const model::ModelConfig all_cfg, make_config(a.tiny, a.layers, 0, vocab));
    DSA_ASSIGN_OR_RETURN(const model::ModelConfig one_cfg, make_config(a.tiny, 1, 0, vocab));
    DSA_ASSIGN_OR_RETURN(const model::ModelConfig dense_cfg, make_config(a.tiny, 1, 1, vocab));
    DSA_ASSIGN_OR_RETURN(Runner r, make_runner(a));
    const backend::Numerics& n = r.backend->numerics();
    std::printf(
        "layer_bench: %s, %lld MoE layers, numerics %s, KV %s latent rows (%lld B) + %s indexer keys, "
        "%d timed steps; floor at %.1f TB/s; %s\n",
        all_cfg.summary().c_str(), static_cast<long long>(a.layers), a.numerics.c_str(),
        backend::mla_kv_format_name(n.mla_kv_format()),
        static_cast<long long>(backend::mla_kv_bytes_per_token(n.mla_kv_format())),
        backend::indexer_key_format_name(n.indexer_key_format()), a.iters, kPeakBytes / 1e12,
        a.layers > 1 ? "layer = (t(N layers) - t(1 layer)) / (N - 1), fixed = t(1 layer) - layer"
                     : "layer = the whole step (fixed cost included: use --layers 2 or more)");
    std::fflush(stdout);

    WeightFiller filler(r.device, a.tiny ? (int64_t{1} << 20) : (int64_t{64} << 20), 1234);
    bench_lm_head(r, all_cfg, a.tiny ? vocab : kFullVocab, filler, a);
    const model::ModelWeights weights = make_weights(all_cfg, filler);
    model::ModelWeights dense_weights;
    if (a.dense) dense_weights = make_weights(dense_cfg, filler);

    backend::bench::RecordingBackend rec(*r.backend);
    model::ModelOptions mo;
    mo.max_positions = *std::max_element(a.contexts.begin(), a.contexts.end()) + 2;
    model::DsaModel all(all_cfg, weights, rec, mo), one(one_cfg, weights, rec, mo);
    std::unique_ptr<model::DsaModel> dense;
    if (a.dense) dense = std::make_unique<model::DsaModel>(dense_cfg, dense_weights, rec, mo);
    Models m{all_cfg, all, one, dense.get(), rec, {}, {}};
    for (const model::LayerWeights& lw : weights.layers) m.moe_bytes.push_back(layer_weight_bytes(lw));
    if (a.dense) m.dense_bytes = layer_weight_bytes(dense_weights.layers.at(0));
    std::printf("weights per MoE layer: attention+indexer+router %.1f MB, one expert %.1f MB, shared %.1f MB\n",
                mb(m.moe_bytes[0].attention), mb(m.moe_bytes[0].expert), mb(m.moe_bytes[0].shared));
    if (a.dense) std::printf("dense layer MLP: %.1f MB\n", mb(m.dense_bytes.dense));
    for (int64_t b : a.batches) {
        for (int64_t l : a.contexts) {
            DSA_RETURN_IF_ERROR(run_case(r, m, a, b, l));
            if (a.profile) return Status::ok();
        }
    }
    return Status::ok();
}

}  // namespace
}  // namespace dsa::layer_bench

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
            std::printf("%s", dsa::layer_bench::kUsage);
            return 0;
        }
    }
    dsa::StatusOr<dsa::layer_bench::Args> args = dsa::layer_bench::parse_args(argc, argv);
    if (!args.is_ok()) {
        std::fprintf(stderr, "layer_bench: %s\n%s", args.status().message().c_str(), dsa::layer_bench::kUsage);
        return 2;
    }
    const dsa::Status s = dsa::layer_bench::run(*args);
    if (!s.is_ok()) {
        std::fprintf(stderr, "layer_bench: %s\n", s.message().c_str());
        return 1;
    }
    return 0;
}
