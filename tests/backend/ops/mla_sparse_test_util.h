// Sparse MLA attention test helpers shared by mla_ops_test.cpp (legacy / s1 / s3) and mla_w3_test.cpp (w3):
// CPU + device latent stores, random slot lists (masked entries, an all-masked token, a 3-slot token, masked
// whole tiles), the "first tile dropped" wrong reference, the DSA_MLA_KERNEL scope, the CPU comparisons
// (check_sparse, check_staged: rel L2 1e-2), the s1-vs-other pair and the CUDA-graph replay check.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "ops_test_util.h"

namespace dsa::backend::testing::mla_test {

inline constexpr int64_t kSlots = 4096;

struct Stores {
    MlaKvStore cpu, gpu;
};

// A CPU store filled with `fill` bytes and its device copy.
inline Stores make_stores(Backend& gpu, MlaKvFormat format, int64_t slots, uint8_t fill) {
    Stores s;
    s.cpu.format = s.gpu.format = format;
    s.cpu.data = Tensor::empty({slots, mla_kv_bytes_per_token(format)}, DType::kU8);
    std::memset(s.cpu.data.raw_data(), fill, s.cpu.data.nbytes());
    s.gpu.data = gpu.to_device(s.cpu.data);
    return s;
}

// Random latents (c_kv tiles at very different magnitudes, so the FP8 scales vary) written to every slot of a
// CPU store, copied to the device store.
inline Stores filled_stores(Backend& cpu, Backend& gpu, MlaKvFormat format, std::mt19937& rng) {
    Stores s = make_stores(gpu, format, kSlots, 0);
    Tensor c_kv = random_act({kSlots, kMlaLatentDim}, rng);
    Tensor k_pe = random_act({kSlots, kMlaRopeDim}, rng);
    std::vector<int32_t> all(kSlots);
    std::iota(all.begin(), all.end(), 0);
    cpu.mla_kv_write({c_kv, k_pe, i32_tensor(all), &s.cpu});
    s.gpu.data = gpu.to_device(s.cpu.data);
    return s;
}

// Slot lists [T, K]: random slots, ~10% -1 anywhere, row 1 (if any) all -1, row 2 (if any) with 3 valid entries.
inline Tensor slot_lists(int64_t tokens, int64_t width, std::mt19937& rng) {
    Tensor s = Tensor::empty({tokens, width}, DType::kI32);
    std::uniform_int_distribution<int32_t> slot(0, kSlots - 1);
    std::uniform_int_distribution<int> pct(0, 99);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t j = 0; j < width; ++j) {
            int32_t v = pct(rng) < 10 ? -1 : slot(rng);
            if (t == 1) v = -1;
            if (t == 2) v = j < 3 ? slot(rng) : -1;
            s.data<int32_t>()[t * width + j] = v;
        }
    }
    return s;
}

// The same lists with the first 64 entries of every row removed (the "wrong kernel" reference).
inline Tensor drop_first_tile(const Tensor& slots) {
    Tensor s = slots.clone();
    const int64_t width = s.dim(1);
    for (int64_t t = 0; t < s.dim(0); ++t) {
        for (int64_t j = 0; j < std::min<int64_t>(64, width); ++j) s.data<int32_t>()[t * width + j] = -1;
    }
    return s;
}

// Selects the sparse kernel (DSA_MLA_KERNEL, read by the CUDA backend on every call) for one scope.
class SparseKernelScope {
  public:
    explicit SparseKernelScope(const char* kernel) {
        const char* old = std::getenv(kVar);
        had_ = old != nullptr;
        if (had_) old_ = old;
        ::setenv(kVar, kernel, 1);
    }
    ~SparseKernelScope() {
        if (had_) {
            ::setenv(kVar, old_.c_str(), 1);
        } else {
            ::unsetenv(kVar);
        }
    }

  private:
    static constexpr const char* kVar = "DSA_MLA_KERNEL";
    bool had_ = false;
    std::string old_;
};

using KernelList = std::vector<const char*>;
inline const KernelList kSparseKernels = {"legacy", "s1"};

// Printed (and flushed) before a kernel runs: if it crashes or hangs, the log names the case.
inline void announce(const std::string& what) { std::cout << "[ case ] " << what << std::endl; }

// One random case on every kernel of `kernels` against one CPU reference.
inline void check_sparse(Backend& cpu, Backend& gpu, const Stores& st, int64_t tokens, int64_t heads, int64_t width,
                         bool device_slots, std::mt19937& rng, const KernelList& kernels = kSparseKernels) {
    const float scale = 0.1352338f;
    Tensor q = random_act({tokens, heads, kMlaKvDim}, rng);
    Tensor slots = slot_lists(tokens, width, rng);
    Tensor ref = cpu.mla_sparse_attention({q, &st.cpu, slots, scale});
    Tensor wrong;
    if (width > 64) wrong = cpu.mla_sparse_attention({q, &st.cpu, drop_first_tile(slots), scale});
    for (const char* kernel : kernels) {
        SparseKernelScope scope(kernel);
        const std::string what = std::string("mla_sparse [") + kernel + "] " + mla_kv_format_name(st.cpu.format) +
                                 " T=" + std::to_string(tokens) + " H=" + std::to_string(heads) +
                                 " K=" + std::to_string(width) + (device_slots ? " (device slots)" : "");
        announce(what);
        Tensor got = gpu.to_host(gpu.mla_sparse_attention(
            {gpu.to_device(to_bf16(q)), &st.gpu, device_slots ? gpu.to_device(slots) : slots, scale}));
        Tensor got_f = to_f32(got);
        expect_close(what, got_f, ref, 1e-2);
        if (tokens > 1) {  // the all -1 row is exactly zero
            double worst = 0;
            for (int64_t i = 0; i < heads * kMlaLatentDim; ++i) {
                worst = std::max(worst, static_cast<double>(std::fabs(got_f.data<float>()[heads * kMlaLatentDim + i])));
            }
            EXPECT_EQ(worst, 0.0) << what << ": a row without valid slots must output zeros";
        }
        if (wrong.defined()) {
            const Diff d = compare(got_f, wrong);
            std::cout << "[ metric ] " << what << " vs a reference without the first 64 keys: rel_l2=" << d.rel_l2
                      << std::endl;
            EXPECT_GT(d.rel_l2, 1e-2) << "the tolerance cannot tell a wrong result apart";
        }
    }
}

// Staged cases that localize a failure: (1) one valid slot per list (the output is that row's first 512 values:
// gather + P V with a one-hot P, S irrelevant); (2) q = 0 over full lists (uniform weights: P V with a dense P);
// (3) general q (adds S = Q K^T and the softmax). Every kernel against the CPU, tolerance as above.
inline void check_staged(Backend& cpu, Backend& gpu, const Stores& st, std::mt19937& rng, const KernelList& kernels) {
    const int64_t tokens = 4, heads = 128, width = 256;
    const float scale = 0.1352338f;
    std::uniform_int_distribution<int32_t> slot(0, kSlots - 1);
    std::uniform_int_distribution<int64_t> pos(0, width - 1);
    Tensor one_hot = Tensor::empty({tokens, width}, DType::kI32), full = Tensor::empty({tokens, width}, DType::kI32);
    for (int64_t t = 0; t < tokens; ++t) {
        const int64_t keep = pos(rng);
        for (int64_t j = 0; j < width; ++j) {
            one_hot.data<int32_t>()[t * width + j] = j == keep ? slot(rng) : -1;
            full.data<int32_t>()[t * width + j] = slot(rng);
        }
    }
    Tensor q_rand = random_act({tokens, heads, kMlaKvDim}, rng);
    Tensor q_zero = Tensor::zeros({tokens, heads, kMlaKvDim}, DType::kF32);
    const struct {
        const char* name;
        const Tensor& q;
        const Tensor& slots;
    } stages[] = {{"one valid slot", q_rand, one_hot}, {"q = 0", q_zero, full}, {"general", q_rand, full}};
    for (const auto& stage : stages) {
        Tensor ref = cpu.mla_sparse_attention({stage.q, &st.cpu, stage.slots, scale});
        for (const char* kernel : kernels) {
            SparseKernelScope scope(kernel);
            const std::string what = std::string("mla_sparse staged [") + kernel + "] " +
                                     mla_kv_format_name(st.cpu.format) + " " + stage.name;
            announce(what);
            Tensor got = to_f32(gpu.to_host(gpu.mla_sparse_attention(
                {gpu.to_device(to_bf16(stage.q)), &st.gpu, gpu.to_device(stage.slots), scale})));
            expect_close(what, got, ref, 1e-2);
        }
    }
}

// Lists whose first tile, and one tile in the middle, are all -1 on top of slot_lists' masks.
inline Tensor lists_with_masked_tiles(int64_t tokens, int64_t width, std::mt19937& rng) {
    Tensor s = slot_lists(tokens, width, rng);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t j = 0; j < width; ++j) {
            if (j < 64 || (j >= 640 && j < 704)) s.data<int32_t>()[t * width + j] = -1;
        }
    }
    return s;
}

// s1 and `other` (s3, w3) outputs of one call each (device q and lists).
inline std::pair<Tensor, Tensor> s1_and_s3(Backend& gpu, const Stores& st, const Tensor& q, const Tensor& slots,
                                           const std::string& what, const char* other = "s3") {
    Tensor out[2];
    const char* kernels[2] = {"s1", other};
    for (int i = 0; i < 2; ++i) {
        SparseKernelScope scope(kernels[i]);
        announce(std::string("mla_sparse [") + kernels[i] + "] " + what);
        out[i] = gpu.to_host(gpu.mla_sparse_attention({q, &st.gpu, slots, 0.1352338f}));
    }
    return {out[0], out[1]};
}

// Under `kernel`: a sparse call captured in a CUDA graph and replayed after new q and lists were copied into its
// inputs equals an eager call bit for bit and the CPU within 1e-2 (b = 2: split-K and the combine in the graph;
// b = 64: one CTA / cluster per token and head group).
inline void expect_graph_replays(Backend& cpu, Backend& gpu, Stores& st, const std::string& kernel, std::mt19937& rng) {
    SparseKernelScope scope(kernel.c_str());
    for (int64_t tokens : {2, 64}) {
        const int64_t heads = 128, width = 2048;
        Tensor dq = gpu.to_device(to_bf16(random_act({tokens, heads, kMlaKvDim}, rng)));
        Tensor dslots = gpu.to_device(slot_lists(tokens, width, rng));
        Tensor out;
        gpu.mla_sparse_attention({dq, &st.gpu, dslots, 0.1352338f});  // buffers exist before the capture
        auto graph = gpu.capture_graph([&] { out = gpu.mla_sparse_attention({dq, &st.gpu, dslots, 0.1352338f}); });
        ASSERT_TRUE(graph.is_ok()) << graph.status().message();
        const std::string what = "mla_sparse " + kernel + " graph replay T=" + std::to_string(tokens);
        for (int rep = 0; rep < 2; ++rep) {
            announce(what + " rep " + std::to_string(rep));
            Tensor q = random_act({tokens, heads, kMlaKvDim}, rng);
            Tensor slots = slot_lists(tokens, width, rng);
            // copy_into takes 1-D / 2-D tensors: q [T, H, 576] as a [T * H, 576] view of the same storage.
            Tensor dq2 = dq.view({tokens * heads, kMlaKvDim});
            gpu.copy_into(to_bf16(q).view(dq2.shape()), dq2);
            gpu.copy_into(slots, dslots);
            gpu.replay_graph(**graph);
            Tensor replay = gpu.to_host(out);
            Tensor eager = gpu.to_host(gpu.mla_sparse_attention({dq, &st.gpu, dslots, 0.1352338f}));
            EXPECT_EQ(std::memcmp(replay.raw_data(), eager.raw_data(), replay.nbytes()), 0)
                << what << ": replay vs eager";
            expect_close(what, to_f32(replay), cpu.mla_sparse_attention({q, &st.cpu, slots, 0.1352338f}), 1e-2);
        }
    }
}

}  // namespace dsa::backend::testing::mla_test
