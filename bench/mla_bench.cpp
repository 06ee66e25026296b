// MLA kernel benchmarks on the CUDA backend at DeepSeek-V3.2 shapes (H 128, d_n 128, d_v 128): sparse absorbed
// attention at top-k 2048 over a bf16 and an FP8 (656-byte) latent store, decode b = 1, 16, 64, 128 (--batches
// picks others) and a 4096-query prefill, each on the legacy mma.sync kernel and the wgmma kernel s1 or w3 / the
// opt-in s3 (--kernels a,b,... picks DSA_MLA_KERNEL values, 'auto' = the default choice; default legacy,s1;
// --sparse-only skips the rest; --fp8-only skips the bf16 store); the split-K combine alone at the decode split
// counts; the absorbed q/o projections at batch 1..128; dense (expanded MHA) causal prefill of one prompt at a few
// lengths. Each case runs through the backend op, timed with CUDA events (median of 5 runs of 10 calls after
// warm-up). Decode slots are random over a store far larger than L2. Prints time, TFLOP/s, TB/s of KV read and %
// of the H200 datasheet peaks (989 TFLOP/s bf16 dense, 4.8 TB/s). A kernel item may carry environment settings for
// its line: 'w3+DSA_PDL=0' (A/B of variants in one process, same data); --no-prefill skips
// the sparse prefill cases. 'w3+DSA_MLA_W3_CLOCKS=1' also prints w3's per-step clock cycles after its line.
// Usage: mla_bench [--quick] [--sparse-only] [--fp8-only] [--no-prefill] [--batches 1,16,...]
//                  [--kernels legacy,s1,s3,w3,auto[+VAR=VALUE...]]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/mla_sparse_w3.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/mla_kernels.h"
#include "cuda_timing.h"
#include "tensor/numeric.h"

namespace dsa::backend {
namespace {

constexpr double kPeakFlops = 989e12;
constexpr double kPeakBytes = 4.8e12;
constexpr int64_t kHeads = 128, kTopk = 2048, kNope = 128, kV = 128;
constexpr float kScale = 0.1352338f;

double time_per_call(cuda::CudaBackend& be, const std::function<void()>& fn) {
    return bench::median_seconds_per_call(
        be, [&fn](int) { fn(); }, 10);
}

void report(const std::string& name, double seconds, double bytes, double flops) {
    std::printf("%-52s %10.2f us %8.1f TFLOP/s (%5.1f%% of 989) %7.3f TB/s (%5.1f%% of 4.8)\n", name.c_str(),
                seconds * 1e6, flops / seconds / 1e12, 100.0 * flops / seconds / kPeakFlops, bytes / seconds / 1e12,
                100.0 * bytes / seconds / kPeakBytes);
    std::fflush(stdout);
}

Tensor random_bf16(const Shape& shape, std::mt19937& rng, float stddev) {
    Tensor t = Tensor::empty(shape, DType::kBF16);
    std::normal_distribution<float> d(0.0f, stddev);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<uint16_t>()[i] = f32_to_bf16(d(rng));
    return t;
}

// A device store of `slots` rows written through mla_kv_write with random latents (1024 at a time).
MlaKvStore make_store(cuda::CudaBackend& be, MlaKvFormat format, int64_t slots, std::mt19937& rng) {
    MlaKvStore store{Tensor::empty({slots, mla_kv_bytes_per_token(format)}, DType::kU8, Device::kCUDA, "mla_store"),
                     format};
    const int64_t chunk = 1024;
    Tensor c_kv = be.to_device(random_bf16({chunk, 512}, rng, 1.0f));
    Tensor k_pe = be.to_device(random_bf16({chunk, 64}, rng, 1.0f));
    for (int64_t s0 = 0; s0 < slots; s0 += chunk) {
        Tensor ids = Tensor::empty({chunk}, DType::kI32);
        for (int64_t i = 0; i < chunk; ++i) ids.data<int32_t>()[i] = static_cast<int32_t>(s0 + i < slots ? s0 + i : -1);
        be.mla_kv_write({c_kv, k_pe, be.to_device(ids), &store});
    }
    be.synchronize();
    return store;
}

// Random top-k lists [tokens, kTopk] over slots [0, range).
Tensor random_lists(int64_t tokens, int64_t range, std::mt19937& rng) {
    Tensor ids = Tensor::empty({tokens, kTopk}, DType::kI32);
    std::uniform_int_distribution<int32_t> slot(0, static_cast<int32_t>(range - 1));
    for (int64_t i = 0; i < ids.numel(); ++i) ids.data<int32_t>()[i] = slot(rng);
    return ids;
}

// "a,b,c" -> {"a", "b", "c"} (empty items dropped; `sep` other than ',' splits on it).
std::vector<std::string> split_list(const std::string& list, char sep = ',') {
    std::vector<std::string> out;
    for (size_t at = 0; at <= list.size();) {
        const size_t comma = std::min(list.find(sep, at), list.size());
        if (comma > at) out.push_back(list.substr(at, comma - at));
        at = comma + 1;
    }
    return out;
}

// One sparse line per kernel (DSA_MLA_KERNEL=legacy: mma.sync; s1: the wgmma kernel, the default below 4 tokens;
// s3: three warpgroups; w3: three warp-specialized warpgroups in clusters sharing the FP8 gather, the default from
// 4 tokens; auto: the default choice).
void sparse_case(cuda::CudaBackend& be, const MlaKvStore& store, const std::string& name, const Tensor& q,
                 const Tensor& ids, const std::vector<std::string>& kernels) {
    const int64_t tokens = q.dim(0);
    const double flops = 2.0 * tokens * kHeads * kTopk * (576 + 512);
    const double bytes = static_cast<double>(tokens) * kTopk * mla_kv_bytes_per_token(store.format);
    for (const std::string& item : kernels) {
        const std::vector<std::string> parts = split_list(item, '+');  // kernel, then VAR=VALUE settings
        ::setenv("DSA_MLA_KERNEL", parts.empty() ? "" : parts[0].c_str(), 1);
        for (size_t i = 1; i < parts.size(); ++i) {
            const size_t eq = parts[i].find('=');
            if (eq != std::string::npos) ::setenv(parts[i].substr(0, eq).c_str(), parts[i].substr(eq + 1).c_str(), 1);
        }
        const char* clocks = std::getenv("DSA_MLA_W3_CLOCKS");
        const bool w3_clocks = clocks != nullptr && std::string(clocks) == "1";
        if (w3_clocks) cuda::mla_sparse_w3_clock_report();  // clears the sums
        report(name + " [" + item + "]",
               time_per_call(be,
                             [&] {
                                 be.mla_sparse_attention({q, &store, ids, kScale});
                             }),
               bytes, flops);
        if (w3_clocks) std::printf("  %s\n", cuda::mla_sparse_w3_clock_report().c_str());
        for (size_t i = 1; i < parts.size(); ++i) ::unsetenv(parts[i].substr(0, parts[i].find('=')).c_str());
    }
    ::unsetenv("DSA_MLA_KERNEL");
}

// Decode at b tokens, and prefill of 4096 queries whose lists cover 8K keys (L2-resident, like a prompt of 8K
// tokens) or the whole 256K-row store (every row from HBM).
void bench_sparse(cuda::CudaBackend& be, std::mt19937& rng, const std::vector<int64_t>& batches, bool quick,
                  bool fp8_only, bool prefill_cases, const std::vector<std::string>& kernels) {
    const int64_t max_batch = 128, slots = max_batch * kTopk, prefill = 4096;
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        if (fp8_only && format != MlaKvFormat::kFp8) continue;
        MlaKvStore store = make_store(be, format, slots, rng);
        const std::string fmt = mla_kv_format_name(format);
        for (int64_t b : batches) {
            Tensor q = be.to_device(random_bf16({b, kHeads, 576}, rng, 1.0f));
            sparse_case(be, store, "sparse decode " + fmt + " b=" + std::to_string(b) + " H=128 topk=2048", q,
                        be.to_device(random_lists(b, slots, rng)), kernels);
        }
        if (!prefill_cases) continue;
        Tensor q = be.to_device(random_bf16({prefill, kHeads, 576}, rng, 1.0f));
        for (int64_t range : quick ? std::vector<int64_t>{8192} : std::vector<int64_t>{8192, slots}) {
            sparse_case(be, store, "sparse prefill " + fmt + " T=4096 H=128 topk=2048 keys=" + std::to_string(range), q,
                        be.to_device(random_lists(prefill, range, rng)), kernels);
        }
    }
}

// The split-K combine alone on random partials: b tokens x 128 heads x `splits` partial rows of 512 f32 (the
// decode split counts of a 132-SM H200: b = 1 -> 32 splits, b = 4 -> 16, b = 16 -> 4). Bytes = partials read.
void bench_combine(cuda::CudaBackend& be, std::mt19937& rng) {
    struct Case {
        int64_t tokens, splits;
    };
    for (const Case c : {Case{1, 32}, Case{4, 16}, Case{16, 4}}) {
        const int64_t rows = c.tokens * kHeads;
        Tensor ml = Tensor::empty({c.splits, rows, 2}, DType::kF32);
        std::uniform_real_distribution<float> m(-4.0f, 4.0f), l(1.0f, 50.0f);
        for (int64_t i = 0; i < c.splits * rows; ++i) {
            ml.data<float>()[2 * i] = m(rng);
            ml.data<float>()[2 * i + 1] = l(rng);
        }
        Tensor o = Tensor::empty({c.splits, rows, 512}, DType::kF32);
        std::normal_distribution<float> v(0.0f, 1.0f);
        for (int64_t i = 0; i < o.numel(); ++i) o.data<float>()[i] = v(rng);
        Tensor d_ml = be.to_device(ml), d_o = be.to_device(o);
        Tensor out = Tensor::empty({c.tokens, kHeads, 512}, DType::kBF16, Device::kCUDA, "combine_out");
        cuda::MlaSparseKernelParams p;
        p.out = out.data<uint16_t>();
        p.num_tokens = c.tokens, p.heads = kHeads, p.width = kTopk;
        p.splits = c.splits, p.tiles_per_split = kTopk / 64 / c.splits;
        p.part_o = d_o.data<float>(), p.part_ml = d_ml.data<float>();
        report("sparse combine b=" + std::to_string(c.tokens) + " H=128 splits=" + std::to_string(c.splits),
               time_per_call(be, [&] { cuda::launch_mla_sparse_combine(p, be.stream()); }),
               static_cast<double>(o.nbytes() + ml.nbytes()), 0.0);
    }
}

void bench_absorb(cuda::CudaBackend& be, std::mt19937& rng, bool quick) {
    const MlaHeadDims d{kHeads, kNope, kV};
    LinearWeight kv_b{be.to_device(random_bf16({kHeads * (kNope + kV), 512}, rng, 0.05f)), {}};
    for (int64_t b : quick ? std::vector<int64_t>{1, 64} : std::vector<int64_t>{1, 8, 32, 64, 128}) {
        Tensor qn = be.to_device(random_bf16({b, kHeads, kNope}, rng, 1.0f));
        Tensor ol = be.to_device(random_bf16({b, kHeads, 512}, rng, 1.0f));
        const double flops = 2.0 * b * kHeads * kNope * 512;
        const double wbytes = static_cast<double>(kHeads) * kNope * 512 * 2;
        report("absorb_q bf16 kv_b b=" + std::to_string(b), time_per_call(be, [&] { be.mla_absorb_q(qn, kv_b, d); }),
               wbytes, flops);
        report("absorb_o bf16 kv_b b=" + std::to_string(b), time_per_call(be, [&] { be.mla_absorb_o(ol, kv_b, d); }),
               wbytes, flops);
    }
}

void bench_dense(cuda::CudaBackend& be, std::mt19937& rng, bool quick) {
    for (int64_t s : quick ? std::vector<int64_t>{512} : std::vector<int64_t>{256, 512, 1024, 2048}) {
        Tensor q = be.to_device(random_bf16({s, kHeads, kNope + 64}, rng, 1.0f));
        Tensor k = be.to_device(random_bf16({s, kHeads, kNope + 64}, rng, 1.0f));
        Tensor v = be.to_device(random_bf16({s, kHeads, kV}, rng, 1.0f));
        Tensor pos = Tensor::empty({s}, DType::kI32);
        for (int64_t i = 0; i < s; ++i) pos.data<int32_t>()[i] = static_cast<int32_t>(i);
        Tensor dpos = be.to_device(pos);
        // Causal: S^2 / 2 scores, 2 FLOPs per multiply-add over d_qk + d_v.
        const double flops = static_cast<double>(s) * s * kHeads * (kNope + 64 + kV);
        const double bytes = static_cast<double>(s) * kHeads * (2 * (kNope + 64) + 2 * kV) * 2;
        report("dense prefill causal S=" + std::to_string(s) + " H=128 d_qk=192 d_v=128",
               time_per_call(be,
                             [&] {
                                 be.mla_dense_attention({q, k, v, dpos, Tensor(), kScale});
                             }),
               bytes, flops);
    }
}

int run(int argc, char** argv) {
    if (cuda_device_count() == 0) {
        std::printf("mla_bench: no CUDA device, nothing to measure\n");
        return 0;
    }
    bool quick = false, sparse_only = false, fp8_only = false, prefill_cases = true;
    std::vector<std::string> kernels = {"legacy", "s1"};
    std::vector<int64_t> batches;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--quick") {
            quick = true;
        } else if (a == "--sparse-only") {
            sparse_only = true;
        } else if (a == "--fp8-only") {
            fp8_only = true;
        } else if (a == "--no-prefill") {
            prefill_cases = false;
        } else if (a == "--kernels" && i + 1 < argc) {
            kernels = split_list(argv[++i]);
        } else if (a == "--batches" && i + 1 < argc) {
            batches.clear();
            for (const std::string& b : split_list(argv[++i]))
                batches.push_back(std::max<int64_t>(1, std::atoll(b.c_str())));
        } else {
            std::fprintf(stderr,
                         "usage: mla_bench [--quick] [--sparse-only] [--fp8-only] [--no-prefill] [--batches 1,16,...] "
                         "[--kernels legacy,s1,s3,w3,auto[+VAR=VALUE...]]\n");
            return 2;
        }
    }
    cudaDeviceProp prop{};
    DSA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs; sparse FLOPs = 2*H*K*(576+512) per token; KV bytes = K rows of the store\n",
                prop.name, prop.multiProcessorCount);
    std::mt19937 rng(11);
    auto owner = make_cuda_backend(Numerics::bf16(), 0);
    auto& be = static_cast<cuda::CudaBackend&>(*owner);
    if (batches.empty()) batches = quick ? std::vector<int64_t>{1, 64} : std::vector<int64_t>{1, 16, 64, 128};
    bench_sparse(be, rng, batches, quick, fp8_only, prefill_cases, kernels);
    if (sparse_only) return 0;
    bench_combine(be, rng);
    bench_absorb(be, rng, quick);
    bench_dense(be, rng, quick);
    return 0;
}

}  // namespace
}  // namespace dsa::backend

int main(int argc, char** argv) { return dsa::backend::run(argc, argv); }
