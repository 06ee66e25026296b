// Lightning-indexer decode benchmark (DeepSeek-V3.2: H_I 64, dim 128, index_topk 2048, FP8 key pages with UE8M0
// numerics): batch 1, 16, 64, 128 at context 4K..128K, one query per request. Prints the whole op per layer
// (indexer_topk with device-resident inputs), then q-prep + logits and the top-k alone, each with the achieved
// TB/s of key reads (132 B per key) and % of the floor (keys x 132 B / 4.8 TB/s); "padded" lines run with
// key_slots 128K wide (a CUDA-graph buffer) and shorter real contexts. Median of 5 runs of 20 calls (CUDA
// events); small cases rotate over page ranges so that the keys are not all L2-resident. "graph:" repeats the
// kernels (q prep + logits + top-k) and the top-k alone inside a CUDA graph (no host launch cost); the logits
// (default: auto = tmaef, the chained wgmma kernel with tensor-map page copies) are also timed with
// DSA_INDEXER_LOGITS=f16, =e4m3, =wgmma, =chain, =chain4 (the previous default), =tma, =tma3 and =tmaef (tma also in
// a graph, q prep + logits, next to the default; "graph: kernels" also with tma and chain4), the top-k (default: auto,
// the kernel chosen by the row width) also with DSA_INDEXER_TOPK=global, =smem, =cand and =fast, and with
// DSA_INDEXER_TOPK_ORDER=position (ascending positions, no sort), each alone and in a graph.
// --topk: the top-k kernels alone (B = 1, 64 at 4K, 64K, exact and 128K-padded widths; B = 1 at 8K, 16K; each
// kernel of DSA_INDEXER_TOPK) and their graph with q prep + logits.
// Usage: indexer_bench [--quick | --topk | --case B CTX]  (--case: that one case, e.g. under a profiler)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/indexer_kernels.h"
#include "cuda_timing.h"
#include "tensor/numeric.h"

namespace dsa::backend {
namespace {

constexpr double kHbmBytesPerS = 4.8e12;
constexpr int64_t kHeads = 64, kDim = kIndexerHeadDim, kTopk = 2048;
constexpr int kRotations = 8;

double time_per_call(cuda::CudaBackend& be, const std::function<void(int)>& fn) {
    return bench::median_seconds_per_call(be, fn);
}

// Seconds per call of fn(i), i = 0..kCalls-1 captured into one CUDA graph and replayed (median of 5 x 2
// replays): the kernels' time without the host's launch cost, as in captured decode steps.
double graph_seconds_per_call(cuda::CudaBackend& be, const std::function<void(int)>& fn) {
    constexpr int kCalls = 10;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    DSA_CUDA_CHECK(cudaStreamBeginCapture(be.stream(), cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < kCalls; ++i) fn(i);
    DSA_CUDA_CHECK(cudaStreamEndCapture(be.stream(), &graph));
    DSA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    const double t = bench::median_seconds_per_call(
        be, [&](int) { DSA_CUDA_CHECK(cudaGraphLaunch(exec, be.stream())); }, 2, 5);
    DSA_CUDA_CHECK(cudaGraphExecDestroy(exec));
    DSA_CUDA_CHECK(cudaGraphDestroy(graph));
    return t / kCalls;
}

// fn() with the environment variable `var` set to `value` (the previous value restored afterwards).
double with_env(const char* var, const char* value, const std::function<double()>& fn) {
    const char* prev = std::getenv(var);
    const std::string saved = prev != nullptr ? prev : "";
    setenv(var, value, 1);
    const double t = fn();
    if (prev != nullptr) {
        setenv(var, saved.c_str(), 1);
    } else {
        unsetenv(var);
    }
    return t;
}

Tensor host_i32(const std::vector<int32_t>& v, const Shape& shape) {
    Tensor t = Tensor::empty(shape, DType::kI32);
    std::memcpy(t.raw_data(), v.data(), v.size() * 4);
    return t;
}

// A device FP8 store of `pages` pages: key bytes from a random 512-page pool (finite e4m3 codes), a distinct
// random scale per key (so that scores do not tie).
IndexerKeyStore make_store(cuda::CudaBackend& be, int64_t pages, std::mt19937& rng) {
    IndexerKeyStore s{Tensor::empty({pages, kIndexerFp8PageBytes}, DType::kU8, Device::kCUDA, "indexer_keys"),
                      IndexerKeyFormat::kFp8};
    const int64_t pool = std::min<int64_t>(pages, 512);
    Tensor host = Tensor::empty({pool, kIndexerFp8PageBytes}, DType::kU8);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int64_t i = 0; i < host.numel(); ++i) {
        int b = byte(rng);
        if ((b & 0x7f) == 0x7f) b &= 0xfe;
        host.data<uint8_t>()[i] = static_cast<uint8_t>(b);
    }
    Tensor dpool = be.to_device(host);
    auto* dst = static_cast<uint8_t*>(s.data.raw_data());
    for (int64_t p = 0; p < pages; p += pool) {
        const int64_t n = std::min(pool, pages - p);
        DSA_CUDA_CHECK(cudaMemcpy(dst + p * kIndexerFp8PageBytes, dpool.raw_data(), n * kIndexerFp8PageBytes,
                                  cudaMemcpyDeviceToDevice));
    }
    std::vector<float> scales(pages * kIndexerPageSize);
    std::uniform_real_distribution<float> sd(1e-3f, 2e-3f);
    for (float& v : scales) v = sd(rng);
    DSA_CUDA_CHECK(cudaMemcpy2D(dst + kIndexerFp8ScaleOffset, kIndexerFp8PageBytes, scales.data(), kIndexerPageSize * 4,
                                kIndexerPageSize * 4, pages, cudaMemcpyHostToDevice));
    return s;
}

struct Inputs {
    Tensor q, weights, request, limit;
    std::vector<Tensor> key_slots;  // rotations over disjoint page ranges where the store has room
};

// key_slots [batch, width]: positions < ctx hold slots, the rest -1 (width >= ctx).
Inputs make_inputs(cuda::CudaBackend& be, int64_t batch, int64_t ctx, int64_t width, int64_t store_pages,
                   std::mt19937& rng) {
    Inputs in;
    Tensor q = Tensor::empty({batch, kHeads, kDim}, DType::kBF16);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t i = 0; i < q.numel(); ++i) q.data<uint16_t>()[i] = f32_to_bf16(nd(rng));
    Tensor w = Tensor::empty({batch, kHeads}, DType::kF32);
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = nd(rng);
    in.q = be.to_device(q);
    in.weights = be.to_device(w);
    std::vector<int32_t> req(batch), lim(batch, static_cast<int32_t>(ctx - 1));
    std::iota(req.begin(), req.end(), 0);
    in.request = be.to_device(host_i32(req, {batch}));
    in.limit = be.to_device(host_i32(lim, {batch}));
    const int64_t pages = batch * ctx / kIndexerPageSize;
    const int64_t rotations = std::max<int64_t>(1, std::min<int64_t>(kRotations, store_pages / pages));
    std::vector<int32_t> order(pages);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);  // pages of a request are scattered, as in a real cache
    for (int64_t r = 0; r < rotations; ++r) {
        std::vector<int32_t> slots(batch * width, -1);
        for (int64_t i = 0; i < batch * ctx; ++i) {
            const int64_t page = order[i / kIndexerPageSize] + r * pages;
            slots[(i / ctx) * width + i % ctx] = static_cast<int32_t>(page * kIndexerPageSize + i % kIndexerPageSize);
        }
        in.key_slots.push_back(be.to_device(host_i32(slots, {batch, width})));
    }
    return in;
}

// Device buffers of the kernels-alone runs: q prep's outputs, the score rows, the top-k outputs.
struct KernelBuffers {
    Tensor q8, wt, scores, pos, slots;
    KernelBuffers(int64_t batch, int64_t width)
        : q8(Tensor::empty({batch, kHeads, kDim}, DType::kU8, Device::kCUDA)),
          wt(Tensor::empty({batch, kHeads}, DType::kF32, Device::kCUDA)),
          scores(Tensor::empty({batch, width}, DType::kF32, Device::kCUDA)),
          pos(Tensor::empty({batch, kTopk}, DType::kI32, Device::kCUDA)),
          slots(Tensor::empty({batch, kTopk}, DType::kI32, Device::kCUDA)) {}
};

// q prep + logits of call i (key_slots rotation i) into b.scores.
void run_logits(cuda::CudaBackend& be, const IndexerKeyStore& store, const Inputs& in, KernelBuffers& b, int i) {
    const int64_t batch = b.scores.dim(0), width = b.scores.dim(1), n = static_cast<int64_t>(in.key_slots.size());
    const float head_scale = 1.0f / std::sqrt(static_cast<float>(kHeads)), dim_scale = 1.0f / std::sqrt(128.0f);
    cuda::launch_indexer_q_prep({in.q.data<uint16_t>(), in.weights.data<float>(), b.q8.data<uint8_t>(),
                                 b.wt.data<float>(), batch, kHeads, kHeads, head_scale, dim_scale, dim_scale, true},
                                be.stream());
    cuda::launch_indexer_logits(
        {nullptr, b.q8.data<uint8_t>(), b.wt.data<float>(), store.data.data<uint8_t>(),
         in.key_slots[i % n].data<int32_t>(), in.request.data<int32_t>(), in.limit.data<int32_t>(),
         b.scores.data<float>(), batch, kHeads, batch, width, store.num_slots(), head_scale, dim_scale, true, false},
        be.stream());
}

// The top-k of call i on b.scores (the default position order).
void run_topk(cuda::CudaBackend& be, const Inputs& in, KernelBuffers& b, int i) {
    const int64_t batch = b.scores.dim(0), n = static_cast<int64_t>(in.key_slots.size());
    cuda::launch_indexer_topk({b.scores.data<float>(), in.key_slots[i % n].data<int32_t>(), in.request.data<int32_t>(),
                               in.limit.data<int32_t>(), b.pos.data<int32_t>(), b.slots.data<int32_t>(), batch, batch,
                               b.scores.dim(1), kTopk},
                              be.stream());
}

// --topk: the top-k kernels alone in a graph (default, global, cand, fast, lean) and the graph of q prep + logits +
// top-k with the default, fast and cand top-k.
void bench_topk_case(cuda::CudaBackend& be, const IndexerKeyStore& store, int64_t batch, int64_t ctx, int64_t width,
                     std::mt19937& rng) {
    Inputs in = make_inputs(be, batch, ctx, width, store.data.dim(0), rng);
    KernelBuffers b(batch, width);
    run_logits(be, store, in, b, 0);
    auto topk = [&](int i) { run_topk(be, in, b, i); };
    auto all = [&](int i) {
        run_logits(be, store, in, b, i);
        run_topk(be, in, b, i);
    };
    // In a graph under DSA_INDEXER_TOPK=kernel (after one eager call: the kernel's attributes are set outside the
    // capture).
    auto g = [&](const char* kernel, const std::function<void(int)>& fn) {
        return with_env("DSA_INDEXER_TOPK", kernel, [&] {
            fn(0);
            DSA_CUDA_CHECK(cudaStreamSynchronize(be.stream()));
            return graph_seconds_per_call(be, fn) * 1e6;
        });
    };
    std::printf(
        "topk B=%-3lld ctx=%-6lld%s graph: default %6.1f us | global %6.1f | cand %6.1f | fast %6.1f | lean "
        "%6.1f | q prep + logits + top-k: default %6.1f us, fast %6.1f us, cand %6.1f us\n",
        static_cast<long long>(batch), static_cast<long long>(ctx), width > ctx ? " padded-128K" : "", g("auto", topk),
        g("global", topk), g("cand", topk), g("fast", topk), g("lean", topk), g("auto", all), g("fast", all),
        g("cand", all));
    std::fflush(stdout);
}

void bench_case(cuda::CudaBackend& be, const IndexerKeyStore& store, int64_t batch, int64_t ctx, int64_t width,
                std::mt19937& rng) {
    Inputs in = make_inputs(be, batch, ctx, width, store.data.dim(0), rng);
    const int n = static_cast<int>(in.key_slots.size());
    auto params = [&](int i) {
        return IndexerTopkParams{in.q, in.weights, &store, in.key_slots[i % n], in.request, in.limit, kTopk, false};
    };
    const double total = time_per_call(be, [&](int i) { be.indexer_topk(params(i)); });

    // The kernels alone: q prep + logits, then top-k on the logits of the last call.
    KernelBuffers b(batch, width);
    auto logits = [&](int i) { run_logits(be, store, in, b, i); };
    const double t_logits = time_per_call(be, logits);
    const double t_logits_f16 = with_env("DSA_INDEXER_LOGITS", "f16", [&] { return time_per_call(be, logits); });
    const double t_logits_e4m3 = with_env("DSA_INDEXER_LOGITS", "e4m3", [&] { return time_per_call(be, logits); });
    const double t_logits_sep = with_env("DSA_INDEXER_LOGITS", "wgmma", [&] { return time_per_call(be, logits); });
    const double t_logits_chain = with_env("DSA_INDEXER_LOGITS", "chain", [&] { return time_per_call(be, logits); });
    const double t_logits_chain4 = with_env("DSA_INDEXER_LOGITS", "chain4", [&] { return time_per_call(be, logits); });
    const double t_logits_tma = with_env("DSA_INDEXER_LOGITS", "tma", [&] { return time_per_call(be, logits); });
    const double t_logits_tma3 = with_env("DSA_INDEXER_LOGITS", "tma3", [&] { return time_per_call(be, logits); });
    const double t_logits_tmaef = with_env("DSA_INDEXER_LOGITS", "tmaef", [&] { return time_per_call(be, logits); });
    const double g_logits_tma =
        with_env("DSA_INDEXER_LOGITS", "tma", [&] { return graph_seconds_per_call(be, logits); });
    const double g_logits = graph_seconds_per_call(be, logits);
    auto topk = [&](int i) { run_topk(be, in, b, i); };
    const double t_topk = time_per_call(be, topk);
    const double g_all = graph_seconds_per_call(be, [&](int i) {
        logits(i);
        topk(i);
    });
    const double g_topk = graph_seconds_per_call(be, topk);
    auto graph_all_env = [&](const char* kernel) {
        return with_env("DSA_INDEXER_LOGITS", kernel, [&] {
            return graph_seconds_per_call(be, [&](int i) {
                logits(i);
                topk(i);
            });
        });
    };
    const double g_all_tma = graph_all_env("tma"), g_all_chain4 = graph_all_env("chain4");
    // Alone and in a graph under `var` = value.
    auto topk_env = [&](const char* var, const char* value) {
        return std::make_pair(with_env(var, value, [&] { return time_per_call(be, topk); }),
                              with_env(var, value, [&] { return graph_seconds_per_call(be, topk); }));
    };
    const auto [t_topk_global, g_topk_global] = topk_env("DSA_INDEXER_TOPK", "global");
    const auto [t_topk_smem, g_topk_smem] = topk_env("DSA_INDEXER_TOPK", "smem");
    const auto [t_topk_cand, g_topk_cand] = topk_env("DSA_INDEXER_TOPK", "cand");
    const auto [t_topk_fast, g_topk_fast] = topk_env("DSA_INDEXER_TOPK", "fast");
    const auto [t_topk_pos, g_topk_pos] = topk_env("DSA_INDEXER_TOPK_ORDER", "position");
    const double bytes = static_cast<double>(batch) * ctx * kIndexerFp8BytesPerToken;
    const double floor_s = bytes / kHbmBytesPerS;
    const double flops = 2.0 * static_cast<double>(batch) * ctx * kHeads * kDim;  // q . k of every (key, head)
    auto rate = [&](double t) { return std::make_pair(bytes / t / 1e12, 100.0 * floor_s / t); };
    const auto [r_all, f_all] = rate(total);
    const auto [r_log, f_log] = rate(t_logits);
    const auto [r_top, f_top] = rate(t_topk);
    std::printf(
        "indexer B=%-3lld ctx=%-6lld%s total %8.1f us %5.2f TB/s %5.1f%% | "
        "logits %8.1f us %5.2f TB/s %5.1f%% %6.1f TFLOP/s (mma.sync f16 %8.1f us, e4m3 %8.1f us) | "
        "topk %7.1f us (%5.2f TB/s-equiv %5.1f%%; global %7.1f us, smem %7.1f us, cand %7.1f us, fast %7.1f "
        "us, position order %7.1f us) | floor %6.1f us | graph: kernels %8.1f us topk %7.1f us (global %7.1f "
        "us, smem %7.1f us, cand %7.1f us, fast %7.1f us, position order %7.1f us)%s\n",
        static_cast<long long>(batch), static_cast<long long>(ctx), width > ctx ? " padded-128K" : "", total * 1e6,
        r_all, f_all, t_logits * 1e6, r_log, f_log, flops / t_logits / 1e12, t_logits_f16 * 1e6, t_logits_e4m3 * 1e6,
        t_topk * 1e6, r_top, f_top, t_topk_global * 1e6, t_topk_smem * 1e6, t_topk_cand * 1e6, t_topk_fast * 1e6,
        t_topk_pos * 1e6, floor_s * 1e6, g_all * 1e6, g_topk * 1e6, g_topk_global * 1e6, g_topk_smem * 1e6,
        g_topk_cand * 1e6, g_topk_fast * 1e6, g_topk_pos * 1e6, n > 1 ? "" : " (single page range)");
    const auto [r_sep, f_sep] = rate(t_logits_sep);
    const auto [r_chain, f_chain] = rate(t_logits_chain);
    const auto [r_chain4, f_chain4] = rate(t_logits_chain4);
    const auto [r_tma, f_tma] = rate(t_logits_tma);
    const auto [r_tma3, f_tma3] = rate(t_logits_tma3);
    const auto [r_tmaef, f_tmaef] = rate(t_logits_tmaef);
    std::printf(
        "indexer B=%-3lld ctx=%-6lld logits default %8.1f us %5.2f TB/s %5.1f%% | wgmma, separate k-step "
        "accumulators %8.1f us %5.2f TB/s %5.1f%% | chained (chain) %8.1f us %5.2f TB/s %5.1f%% | chained, 4 "
        "CTAs/SM (chain4) %8.1f us %5.2f TB/s %5.1f%% | tensor-map page copies (tma) %8.1f us %5.2f TB/s "
        "%5.1f%% | "
        "tma, 3 CTAs/SM (tma3) %8.1f us %5.2f TB/s %5.1f%% | tma, L2 evict-first keys (tmaef) %8.1f us %5.2f "
        "TB/s %5.1f%% | graph (q prep + logits): default %8.1f us, tma %8.1f us | graph: kernels with tma "
        "%8.1f us, chain4 %8.1f us\n",
        static_cast<long long>(batch), static_cast<long long>(ctx), t_logits * 1e6, r_log, f_log, t_logits_sep * 1e6,
        r_sep, f_sep, t_logits_chain * 1e6, r_chain, f_chain, t_logits_chain4 * 1e6, r_chain4, f_chain4,
        t_logits_tma * 1e6, r_tma, f_tma, t_logits_tma3 * 1e6, r_tma3, f_tma3, t_logits_tmaef * 1e6, r_tmaef, f_tmaef,
        g_logits * 1e6, g_logits_tma * 1e6, g_all_tma * 1e6, g_all_chain4 * 1e6);
    std::fflush(stdout);
}

int run(int argc, char** argv) {
    if (cuda_device_count() == 0) {
        std::printf("no CUDA device present; indexer_bench skipped\n");
        return 0;
    }
    const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
    const bool one_case = argc > 3 && std::string(argv[1]) == "--case";   // --case B CTX: that case alone (profiling)
    const bool topk_only = argc > 1 && std::string(argv[1]) == "--topk";  // the top-k kernels alone (A/B runs)
    const bool small = quick || topk_only;
    std::vector<int64_t> batches = small ? std::vector<int64_t>{1, 64} : std::vector<int64_t>{1, 16, 64, 128};
    std::vector<int64_t> ctxs =
        small ? std::vector<int64_t>{4096, 65536} : std::vector<int64_t>{4096, 16384, 65536, 131072};
    if (one_case) {
        batches = {std::atoll(argv[2])};
        ctxs = {std::atoll(argv[3])};
        if (batches[0] < 1 || ctxs[0] < 1 || batches[0] * ctxs[0] > (int64_t{1} << 26)) {
            std::fprintf(stderr, "indexer_bench --case B CTX: B, CTX >= 1 and B x CTX <= 2^26\n");
            return 2;
        }
    }
    std::mt19937 rng(11);
    auto owner = make_cuda_backend(Numerics::deepseek_fp8(), 0);
    auto& be = static_cast<cuda::CudaBackend&>(*owner);
    const int64_t max_keys = batches.back() * ctxs.back();
    const IndexerKeyStore store = make_store(be, max_keys / kIndexerPageSize, rng);
    const char* kernel = std::getenv("DSA_INDEXER_LOGITS");
    std::printf(
        "indexer decode: H_I=%lld dim=%lld top-k=%lld, FP8 pages (132 B per key), logits kernel %s; floor = "
        "keys x 132 B / 4.8 TB/s (B=64 ctx=65536: %.1f us)\n",
        static_cast<long long>(kHeads), static_cast<long long>(kDim), static_cast<long long>(kTopk),
        kernel != nullptr && *kernel != '\0' ? kernel : "auto", 64.0 * 65536 * 132 / kHbmBytesPerS * 1e6);
    if (topk_only) {
        for (int64_t b : batches) {
            for (int64_t c : ctxs) {
                bench_topk_case(be, store, b, c, c, rng);
                bench_topk_case(be, store, b, c, 131072, rng);
            }
        }
        bench_topk_case(be, store, 1, 8192, 8192, rng);
        bench_topk_case(be, store, 1, 16384, 16384, rng);
        return 0;
    }
    for (int64_t b : batches) {
        for (int64_t c : ctxs) bench_case(be, store, b, c, c, rng);
    }
    if (one_case) return 0;
    for (int64_t b : batches) {  // graph-style padding: the kernels must follow the real limits
        for (int64_t c : {int64_t{4096}, int64_t{65536}}) bench_case(be, store, b, c, 131072, rng);
    }
    // A top-k without selection (all 2048 positions kept, appended and sorted): against B=1 ctx=4096 it splits
    // the small-batch top-k time into radix select and sort.
    bench_case(be, store, 1, 2048, 2048, rng);
    return 0;
}

}  // namespace
}  // namespace dsa::backend

int main(int argc, char** argv) { return dsa::backend::run(argc, argv); }
