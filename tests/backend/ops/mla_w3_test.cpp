// Sparse MLA kernel w3 (mla_sparse_w3.cu; the default from 16 query tokens, DSA_MLA_KERNEL=w3 forces it): three
// warp-specialized warpgroups (S + softmax, P V, gather) with the two head groups of a token in a cluster of 2 that
// share the gather (FP8 store, 128 heads; anything else runs s1). Same arithmetic and order as s1 (P V of
// warpgroup 0 takes P from registers, the same bf16 values), so its output must equal s1's bit for bit; against the
// CPU the tolerance of the other kernels (rel L2 1e-2; check_sparse also checks that a reference without the first
// 64 keys is rejected). Cases: decode b = 1 (split-K), 3 (an all-masked token, a token of 3 valid slots), 24 (two
// splits), 64, 128; widths 1000, 77, 33; a prefill of 256 tokens; masked whole tiles; the fallbacks; the default
// (auto) path on both sides of its threshold; a CUDA graph replayed on new inputs. The profiling build
// (DSA_MLA_W3_CLOCKS=1) must give the same bits too; the strict parse of its switch (host).
#include <cstring>
#include <string>

#include "backend/cuda/mla_sparse_w3.h"
#include "mla_sparse_test_util.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

using namespace mla_test;

using MlaW3Test = CudaVsCpuTest;
const KernelList kW3Only = {"w3"};

TEST_F(MlaW3Test, SparseAttentionDecodeShapes) {
    make(Numerics::deepseek_fp8());
    Stores st = filled_stores(*cpu_, *gpu_, MlaKvFormat::kFp8, rng_);
    check_sparse(*cpu_, *gpu_, st, 1, 128, 2048, false, rng_, kW3Only);    // split-K over many clusters
    check_sparse(*cpu_, *gpu_, st, 3, 128, 2048, true, rng_, kW3Only);     // all-masked token, 3-slot token
    check_sparse(*cpu_, *gpu_, st, 24, 128, 2048, false, rng_, kW3Only);   // two splits
    check_sparse(*cpu_, *gpu_, st, 64, 128, 2048, true, rng_, kW3Only);    // one cluster per token
    check_sparse(*cpu_, *gpu_, st, 128, 128, 2048, false, rng_, kW3Only);  // two waves of clusters
    check_sparse(*cpu_, *gpu_, st, 1, 128, 1000, true, rng_, kW3Only);     // 15 tiles + 40, split-K
    check_sparse(*cpu_, *gpu_, st, 5, 128, 77, false, rng_, kW3Only);      // one full tile + 13
    check_sparse(*cpu_, *gpu_, st, 2, 128, 33, false, rng_, kW3Only);      // less than one tile
}

TEST_F(MlaW3Test, SparseAttentionPrefillShapes) {
    make(Numerics::deepseek_fp8());
    Stores st = filled_stores(*cpu_, *gpu_, MlaKvFormat::kFp8, rng_);
    check_sparse(*cpu_, *gpu_, st, 256, 128, 512, true, rng_, kW3Only);
}

// Where w3 does not apply it runs s1: the bf16 store, 64 heads (one group), 40 heads.
TEST_F(MlaW3Test, FallsBackToS1) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        if (format == MlaKvFormat::kBF16) check_sparse(*cpu_, *gpu_, st, 3, 128, 2048, true, rng_, kW3Only);
        check_sparse(*cpu_, *gpu_, st, 4, 64, 2048, false, rng_, kW3Only);
        check_sparse(*cpu_, *gpu_, st, 3, 40, 100, false, rng_, kW3Only);
    }
}

TEST_F(MlaW3Test, SparseAttentionStaged) {
    make(Numerics::deepseek_fp8());
    Stores st = filled_stores(*cpu_, *gpu_, MlaKvFormat::kFp8, rng_);
    check_staged(*cpu_, *gpu_, st, rng_, kW3Only);
}

// w3 vs s1, bit for bit: decode b = 1 (split-K), 3, 24 (two splits), 64, 128, a prefill of 512 tokens, widths that
// are not a multiple of the tile, on lists with masked whole tiles (the first and a middle tile) and on slot_lists
// (token 1 all -1, token 2 three valid slots, ~10% -1 anywhere). The max |difference| is printed either way.
void expect_same_bits_as_s1(Backend& gpu, const Stores& st, std::mt19937& rng, const std::string& label) {
    const int64_t shapes[][2] = {{1, 2048},   {3, 2048}, {24, 2048}, {64, 2048}, {128, 2048},
                                 {512, 2048}, {1, 1000}, {5, 77},    {4, 33}};
    for (const auto& sh : shapes) {
        for (bool masked_tiles : {false, true}) {
            const int64_t tokens = sh[0], width = sh[1];
            if (masked_tiles && width < 704) continue;
            const std::string what = label + "fp8 T=" + std::to_string(tokens) + " K=" + std::to_string(width) +
                                     (masked_tiles ? " masked tiles" : "");
            Tensor q = gpu.to_device(to_bf16(random_act({tokens, 128, kMlaKvDim}, rng)));
            Tensor slots = gpu.to_device(masked_tiles ? lists_with_masked_tiles(tokens, width, rng)
                                                      : slot_lists(tokens, width, rng));
            auto [s1, w3] = s1_and_s3(gpu, st, q, slots, what, "w3");
            const Diff d = compare(to_f32(w3), to_f32(s1));
            std::cout << "[ metric ] mla_sparse w3 vs s1 " << what << ": max_abs=" << d.max_abs
                      << " rel_l2=" << d.rel_l2 << std::endl;
            EXPECT_EQ(d.nonfinite, 0) << what;
            EXPECT_EQ(std::memcmp(s1.raw_data(), w3.raw_data(), s1.nbytes()), 0) << "w3 differs from s1: " << what;
        }
    }
}

TEST_F(MlaW3Test, SameBitsAsS1) {
    make(Numerics::deepseek_fp8());
    Stores st = filled_stores(*cpu_, *gpu_, MlaKvFormat::kFp8, rng_);
    expect_same_bits_as_s1(*gpu_, st, rng_, "");
}

// The profiling build (DSA_MLA_W3_CLOCKS=1): s1's bits on SameBitsAsS1's cases, and its report must have counted
// CTAs.
TEST_F(MlaW3Test, ClocksSameBitsAsS1) {
    make(Numerics::deepseek_fp8());
    Stores st = filled_stores(*cpu_, *gpu_, MlaKvFormat::kFp8, rng_);
    EnvScope clocks("DSA_MLA_W3_CLOCKS", "1");
    cuda::mla_sparse_w3_clock_report();
    expect_same_bits_as_s1(*gpu_, st, rng_, "CLOCKS=1 ");
    const std::string report = cuda::mla_sparse_w3_clock_report();
    std::cout << "[ clocks ] " << report << std::endl;
    EXPECT_EQ(report.find("(thread 0 of each warpgroup, 0 CTAs"), std::string::npos) << report;
}

// Host: DSA_MLA_W3_CLOCKS parses strictly (unset / empty / 0: off, 1: on; anything else stops naming it).
TEST(MlaW3EnvTest, ClocksSwitchParses) {
    for (const char* off : {static_cast<const char*>(nullptr), "", "0"}) {
        EnvScope v("DSA_MLA_W3_CLOCKS", off);
        EXPECT_FALSE(cuda::mla_sparse_w3_clocks());
    }
    {
        EnvScope v("DSA_MLA_W3_CLOCKS", "1");
        EXPECT_TRUE(cuda::mla_sparse_w3_clocks());
    }
    for (const char* bad_value : {"2", "x", "-1"}) {
        EnvScope bad("DSA_MLA_W3_CLOCKS", bad_value);
        EXPECT_DEATH(cuda::mla_sparse_w3_clocks(), "DSA_MLA_W3_CLOCKS") << bad_value;
    }
}

// The default path (DSA_MLA_KERNEL unset / 'auto': w3 from 4 query tokens on the FP8 store with 128 heads, s1
// otherwise) on both sides of the threshold (1, 3 tokens: s1; 4, 64: w3) and on the bf16 store (s1): against the
// CPU (check_sparse, with its dropped-first-tile check) and bit for bit against s1 (w3 computes s1's bits), then a
// graph replay (b = 2: s1 with the split-K combine; b = 64: w3).
TEST_F(MlaW3Test, DefaultPath) {
    const KernelList kAuto = {"auto"};
    for (MlaKvFormat format : {MlaKvFormat::kFp8, MlaKvFormat::kBF16}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        for (int64_t tokens : {1, 3, 4, 64}) {
            check_sparse(*cpu_, *gpu_, st, tokens, 128, 2048, tokens % 2 == 0, rng_, kAuto);
            const std::string what = std::string(mla_kv_format_name(format)) + " auto T=" + std::to_string(tokens);
            Tensor q = gpu_->to_device(to_bf16(random_act({tokens, 128, kMlaKvDim}, rng_)));
            Tensor slots = gpu_->to_device(lists_with_masked_tiles(tokens, 2048, rng_));
            auto [s1, got] = s1_and_s3(*gpu_, st, q, slots, what, "auto");
            EXPECT_EQ(std::memcmp(s1.raw_data(), got.raw_data(), s1.nbytes()), 0)
                << "default differs from s1: " << what;
        }
        if (format == MlaKvFormat::kFp8) expect_graph_replays(*cpu_, *gpu_, st, "auto", rng_);
    }
}

// Graph replays under w3 (expect_graph_replays: b = 2 split-K + combine, b = 64).
TEST_F(MlaW3Test, GraphReplay) {
    make(Numerics::deepseek_fp8());
    Stores st = filled_stores(*cpu_, *gpu_, MlaKvFormat::kFp8, rng_);
    expect_graph_replays(*cpu_, *gpu_, st, "w3", rng_);
}

}  // namespace
}  // namespace dsa::backend::testing
