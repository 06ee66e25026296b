// The MLA absorbs at decode sizes on DeepSeek-V3.2's FP8 kv_b (128 heads, d_n = d_v = 128, 512 latent: W_UK and
// W_UV 8.4 MB of e4m3 each): the BF16-copy path (DSA_MLA_ABSORB=bf16) against the FP8 kernels (=fp8,
// mla_absorb_fp8.cu; default tuning: one column group and at most 2 m16 token tiles per CTA) and variants (mt1 / mt4:
// at most 1 / 4 token tiles per CTA; ng2: two column groups per CTA), B = 1 .. 64 tokens, 8 rotated kv_b copies per
// CUDA graph: us per call and TB/s of the minimum bytes (FP8 half of kv_b + activations in and out). Then the
// decode fusions (DSA_FUSED_ABSORB): the absorbed query (narrow + absorb_q + mla_query vs one kernel) and absorb_o
// with o_proj's act_quant (absorb_o + act_quant vs one kernel, <= 32 tokens). Usage: absorb_bench [--quick] (B = 1,
// 8, 64 only; the fusions also 32); absorb_bench --combine: only the sparse attention + absorb_o_q8 with the split-K
// combine as its own launch vs merged in absorb_o (DSA_FUSED_COMBINE), B = 1 .. 32.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/mla_absorb_fp8.h"
#include "cuda_timing.h"
#include "tensor/numeric.h"

namespace dsa::backend {
namespace {

constexpr int kCopies = 8;

Tensor random_bf16(const Shape& shape, std::mt19937& rng) {
    Tensor t = Tensor::empty(shape, DType::kBF16);
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<uint16_t>()[i] = f32_to_bf16(d(rng));
    return t;
}

LinearWeight host_kv_b(std::mt19937& rng) {
    LinearWeight w{Tensor::empty({128 * 256, 512}, DType::kF8E4M3), Tensor::empty({256, 4}, DType::kF32)};
    std::uniform_int_distribution<int> byte(0, 255);
    for (int64_t i = 0; i < w.weight.numel(); ++i) {
        int b = byte(rng);
        if ((b & 0x7f) == 0x7f) b &= 0xfe;
        w.weight.data<uint8_t>()[i] = static_cast<uint8_t>(b);
    }
    for (int64_t i = 0; i < w.scale_inv.numel(); ++i) w.scale_inv.data<float>()[i] = 4e-3f;
    return w;
}

// Seconds per call of body(i), i = 0..kCopies-1, captured once in a graph under DSA_MLA_ABSORB=`mode`.
double graph_seconds(cuda::CudaBackend& be, const char* mode, const std::function<void(int)>& body) {
    setenv("DSA_MLA_ABSORB", mode, 1);
    for (int i = 0; i < kCopies; ++i) body(i);  // eager warm-up: uploads, the BF16 copies
    auto graph = be.capture_graph([&] {
        for (int i = 0; i < kCopies; ++i) body(i);
    });
    DSA_CHECK(graph.is_ok()) << graph.status().message();
    return bench::median_seconds_per_call(be, [&](int) { be.replay_graph(**graph); }) / kCopies;
}

struct Variant {
    const char* name;
    const char* mode;
    int max_mtiles, ngroups;
};
const Variant kVariants[] = {{"bf16-copy", "bf16", 0, 0}, {"fp8", "fp8", 0, 0},    {"fp8 mt1", "fp8", 1, 0},
                             {"fp8 mt4", "fp8", 4, 0},    {"fp8 ng2", "fp8", 0, 2}, {"fp8 mt4 ng2", "fp8", 4, 2}};

void bench_absorb(cuda::CudaBackend& be, const std::vector<LinearWeight>& kv_b, bool q, int64_t b, std::mt19937& rng) {
    const MlaHeadDims d{128, 128, 128};
    const int64_t in = q ? d.nope_dim : 512, out = q ? 512 : d.v_dim;
    const Tensor x = be.to_device(random_bf16({b, d.num_heads, in}, rng));
    const double bytes = 128.0 * 128 * 512 + 2.0 * b * d.num_heads * (in + out);
    std::printf("absorb_%s B=%-3lld", q ? "q" : "o", static_cast<long long>(b));
    for (const Variant& v : kVariants) {
        cuda::set_absorb_fp8_tuning(v.max_mtiles, v.ngroups);
        const double t = graph_seconds(be, v.mode, [&](int i) {
            if (q) {
                be.mla_absorb_q(x, kv_b[i], d);
            } else {
                be.mla_absorb_o(x, kv_b[i], d);
            }
        });
        std::printf(" | %s %7.2f us %5.2f TB/s", v.name, t * 1e6, bytes / t / 1e12);
    }
    cuda::set_absorb_fp8_tuning(0, 0);
    std::printf("\n");
    std::fflush(stdout);
}

// Seconds per call of body under DSA_FUSED_ABSORB=`fused` (FP8 absorbs).
double fused_seconds(cuda::CudaBackend& be, const char* fused, const std::function<void(int)>& body) {
    setenv("DSA_FUSED_ABSORB", fused, 1);
    const double t = graph_seconds(be, "fp8", body);
    setenv("DSA_FUSED_ABSORB", "0", 1);
    return t;
}

// The decode fusions at B tokens: the absorbed query from q [B, 128, 192] and absorb_o with o_proj's act_quant,
// each unfused (the separate launches) and fused.
void bench_fused(cuda::CudaBackend& be, const std::vector<LinearWeight>& kv_b, const RopeTable& rope, int64_t b,
                 std::mt19937& rng) {
    const MlaHeadDims d{128, 128, 128};
    const Tensor q = be.to_device(random_bf16({b, d.num_heads, d.nope_dim + 64}, rng));
    const Tensor o_lat = be.to_device(random_bf16({b, d.num_heads, 512}, rng));
    Tensor positions = Tensor::empty({b}, DType::kI32);
    for (int64_t i = 0; i < b; ++i) positions.data<int32_t>()[i] = static_cast<int32_t>(4000 + i);
    positions = be.to_device(positions);
    const int64_t width = d.num_heads * d.v_dim;
    Tensor xq = Tensor::empty({b, width}, DType::kF8E4M3, Device::kCUDA, "bench.q8");
    Tensor xs = Tensor::empty({width / 128, b}, DType::kF32, Device::kCUDA, "bench.scales");
    auto query = [&](int i) { be.mla_absorbed_query(q, kv_b[i], d, positions, &rope, RopeLayout::kInterleaved); };
    const double q0 = fused_seconds(be, "0", query), q1 = fused_seconds(be, "1", query);
    const double o0 = fused_seconds(be, "0", [&](int i) {
        const Tensor o = be.mla_absorb_o(o_lat, kv_b[i], d);
        cuda::launch_act_quant({o.data<uint16_t>(), xq.data<uint8_t>(), xs.data<float>(), nullptr, b, width, b, true},
                               be.stream());
    });
    std::printf("fused B=%-3lld | query: narrow+absorb_q+mla_query %6.2f us, one kernel %6.2f us | absorb_o+act_quant "
                "%6.2f us, ",
                static_cast<long long>(b), q0 * 1e6, q1 * 1e6, o0 * 1e6);
    if (b <= cuda::kAbsorbOQuantMaxTokens) {
        const double o1 = fused_seconds(be, "1", [&](int i) { be.mla_absorb_o_q8(o_lat, kv_b[i], d); });
        std::printf("one kernel %6.2f us\n", o1 * 1e6);
    } else {
        std::printf("one kernel: not taken above %lld tokens\n", static_cast<long long>(cuda::kAbsorbOQuantMaxTokens));
    }
    std::fflush(stdout);
}

// The sparse attention (top-k 2048 on an FP8 store of 8192 slots, split-K at these sizes) + absorb_o with
// o_proj's act_quant at B tokens: the combine as its own launch (DSA_FUSED_COMBINE=0) vs merged in absorb_o (=1).
void bench_combine(cuda::CudaBackend& be, const std::vector<LinearWeight>& kv_b, int64_t b, std::mt19937& rng) {
    const MlaHeadDims d{128, 128, 128};
    constexpr int64_t kSlots = 8192, kTopk = 2048;
    MlaKvStore store;
    store.format = MlaKvFormat::kFp8;
    store.data = Tensor::empty({kSlots, mla_kv_bytes_per_token(store.format)}, DType::kU8, Device::kCUDA, "store");
    Tensor all = Tensor::empty({kSlots}, DType::kI32);
    for (int64_t i = 0; i < kSlots; ++i) all.data<int32_t>()[i] = static_cast<int32_t>(i);
    be.mla_kv_write({be.to_device(random_bf16({kSlots, 512}, rng)), be.to_device(random_bf16({kSlots, 64}, rng)),
                     be.to_device(all), &store});
    Tensor slots = Tensor::empty({b, kTopk}, DType::kI32);
    std::uniform_int_distribution<int32_t> slot(0, kSlots - 1);
    for (int64_t i = 0; i < slots.numel(); ++i) slots.data<int32_t>()[i] = slot(rng);
    const Tensor sd = be.to_device(slots), q = be.to_device(random_bf16({b, d.num_heads, 576}, rng));
    auto body = [&](int i) { be.mla_sparse_attention_o_q8({q, &store, sd, 0.1352338f}, kv_b[i], d); };
    setenv("DSA_FUSED_ABSORB", "1", 1);
    setenv("DSA_FUSED_COMBINE", "0", 1);
    const double t0 = graph_seconds(be, "fp8", body);
    setenv("DSA_FUSED_COMBINE", "1", 1);
    const double t1 = graph_seconds(be, "fp8", body);
    const bool fused = be.last_combine_fused();
    unsetenv("DSA_FUSED_COMBINE");
    setenv("DSA_FUSED_ABSORB", "0", 1);
    std::printf("combine B=%-3lld | sparse MLA + combine + absorb_o_q8 %6.2f us, combine in absorb_o %6.2f us%s\n",
                static_cast<long long>(b), t0 * 1e6, t1 * 1e6, fused ? "" : " (not taken)");
    std::fflush(stdout);
}

int run(int argc, char** argv) {
    if (cuda_device_count() == 0) {
        std::printf("absorb_bench: no CUDA device, nothing to measure\n");
        return 0;
    }
    const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
    const bool combine_only = argc > 1 && std::string(argv[1]) == "--combine";
    std::mt19937 rng(11);
    auto owner = make_cuda_backend(Numerics::deepseek_fp8(), 0);  // the absorbs do not depend on it; o's act_quant does
    auto& be = static_cast<cuda::CudaBackend&>(*owner);
    const LinearWeight host = host_kv_b(rng);
    std::vector<LinearWeight> kv_b;
    for (int i = 0; i < kCopies; ++i) kv_b.push_back({be.to_device(host.weight), host.scale_inv});
    std::printf(
        "MLA absorbs, FP8 kv_b [32768, 512] (DeepSeek-V3.2), %d rotated copies per graph; TB/s of the 8.4 MB\n"
        "FP8 half + activations in and out\n",
        kCopies);
    if (combine_only) {
        for (int64_t b : {1, 2, 4, 8, 16, 32}) bench_combine(be, kv_b, b, rng);
        return 0;
    }
    const std::vector<int64_t> batches =
        quick ? std::vector<int64_t>{1, 8, 64} : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 48, 64};
    for (int64_t b : batches) {
        bench_absorb(be, kv_b, /*q=*/true, b, rng);
        bench_absorb(be, kv_b, /*q=*/false, b, rng);
    }
    std::vector<float> inv_freq(32);
    for (int i = 0; i < 32; ++i) inv_freq[i] = static_cast<float>(std::pow(10000.0, -i / 32.0));
    const RopeTable rope = be.make_rope_table(inv_freq, 4096 + 64);
    for (int64_t b : quick ? std::vector<int64_t>{1, 8, 32, 64} : std::vector<int64_t>{1, 2, 8, 16, 32, 64}) {
        bench_fused(be, kv_b, rope, b, rng);
    }
    return 0;
}

}  // namespace
}  // namespace dsa::backend

int main(int argc, char** argv) { return dsa::backend::run(argc, argv); }
