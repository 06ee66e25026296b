// CUDA vs CPU for the MLA ops at DeepSeek-V3.2 (H 128, d_n 128, d_v 128) and GLM-5 (H 64, d_n 192, d_v 256)
// shapes, bf16 and 656-byte FP8 latent stores, under Numerics::bf16() and deepseek_fp8(). Tolerances:
//  - KV writes: the store bytes equal the CPU's exactly; KV reads equal the CPU's f32 values exactly.
//  - absorb q/o (bf16 output of an FP32-accumulated GEMM): 3e-3 with bf16 kv_b (summation order + one bf16
//    rounding), 1e-2 with FP8 kv_b (the GPU operand is bf16(fp8 * scale), the CPU's is f32).
//  - expand_kv: the same linear as linear_ops_test, 1e-2.
//  - attention: 1e-2. Both sides compute FP32 scores and softmax, but the GPU rounds the unnormalized
//    probabilities to bf16 inside an online softmax while the CPU rounds the normalized ones; that, the summation
//    order and the final bf16 rounding give ~2-4e-3 (rel L2 of a bf16 result is ~2^-9 = 2e-3 at best).
// Sparse attention runs on both kernels (DSA_MLA_KERNEL=legacy / s1; s1 must nearly equal legacy); MlaS3Test runs
// the opt-in s3 on the same cases (close to s1; bit-equal where the running max is fixed); w3 (the default from 16
// query tokens) is in mla_w3_test.cpp; small batches also exercise the split-K combine. Every
// attention case also checks that a slightly wrong reference (one tile of keys dropped) is rejected by the same
// tolerance, so the comparison can fail. Each kernel call is announced by a flushed line first, so a crash log names
// the case.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "mla_sparse_test_util.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

using namespace mla_test;

using MlaTest = CudaVsCpuTest;

bool same_bytes(const Tensor& a, const Tensor& b) {
    return a.nbytes() == b.nbytes() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

TEST_F(MlaTest, KvWriteAndReadAreExact) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        const int64_t tokens = 37;
        Tensor c_kv = random_act({tokens, kMlaLatentDim}, rng_);
        // Tiles at magnitudes 1e-6 .. 1e3 (scales from the 1e-4 floor to 2^2) and one all-zero tile.
        for (int64_t t = 0; t < tokens; ++t) {
            for (int64_t i = 0; i < kMlaLatentDim; ++i) {
                const int64_t tile = i / 128;
                const float mag = tile == 0 ? 1e-6f : tile == 1 ? 1.0f : tile == 2 ? 1e3f : (t % 5 == 0 ? 0.0f : 0.03f);
                c_kv.data<float>()[t * kMlaLatentDim + i] = round_bf16(c_kv.data<float>()[t * kMlaLatentDim + i] * mag);
            }
        }
        Tensor k_pe = random_act({tokens, kMlaRopeDim}, rng_);
        std::vector<int32_t> perm(300);
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng_);
        std::vector<int32_t> slots(perm.begin(), perm.begin() + tokens);
        slots[3] = -1;
        slots[20] = -1;
        Stores s = make_stores(*gpu_, format, 300, 0xA5);
        cpu_->mla_kv_write({c_kv, k_pe, i32_tensor(slots), &s.cpu});
        gpu_->mla_kv_write({up(c_kv), up(k_pe), gpu_->to_device(i32_tensor(slots)), &s.gpu});
        Tensor got_bytes = gpu_->to_host(s.gpu.data);
        EXPECT_TRUE(same_bytes(got_bytes, s.cpu.data)) << "store bytes differ (" << mla_kv_format_name(format) << ")";
        // Reads: every written slot plus a never-written one, from host and from device slot lists.
        std::vector<int32_t> read_slots;
        for (int32_t v : slots) {
            if (v >= 0) read_slots.push_back(v);
        }
        std::reverse(read_slots.begin(), read_slots.end());
        Tensor ref = cpu_->mla_kv_read(s.cpu, i32_tensor(read_slots));
        for (bool device_list : {false, true}) {
            Tensor list = device_list ? gpu_->to_device(i32_tensor(read_slots)) : i32_tensor(read_slots);
            Tensor got = gpu_->mla_kv_read(s.gpu, list);
            EXPECT_EQ(got.dtype(), DType::kBF16);
            const Diff d = compare(down(got), ref);
            std::cout << "[ metric ] mla_kv_read " << mla_kv_format_name(format) << " max_abs=" << d.max_abs << "\n";
            EXPECT_EQ(d.max_abs, 0.0);
            EXPECT_EQ(d.nonfinite, 0);
        }
    }
}

struct Dims {
    const char* name;
    MlaHeadDims d;
};
const Dims kDims[] = {{"deepseek", {128, 128, 128}}, {"glm", {64, 192, 256}}};

LinearWeight kv_b_weight(const MlaHeadDims& d, bool fp8, std::mt19937& rng) {
    const int64_t rows = d.num_heads * (d.nope_dim + d.v_dim);
    return fp8 ? random_fp8_weight(rows, kMlaLatentDim, rng, 2e-3f, 8e-3f)
               : random_bf16_weight(rows, kMlaLatentDim, rng, 0.05f);
}

TEST_F(MlaTest, AbsorbQAndO) {
    for (const Dims& dims : kDims) {
        for (bool fp8 : {false, true}) {
            LinearWeight kv_b = kv_b_weight(dims.d, fp8, rng_);
            const double tol = fp8 ? 1e-2 : 3e-3;
            for (int64_t tokens : {1, 37, 130}) {
                const std::string what =
                    std::string(dims.name) + (fp8 ? " fp8" : " bf16") + " kv_b T=" + std::to_string(tokens);
                Tensor q_nope = random_act({tokens, dims.d.num_heads, dims.d.nope_dim}, rng_);
                expect_close("mla_absorb_q " + what, down(gpu_->mla_absorb_q(up(q_nope), kv_b, dims.d)),
                             cpu_->mla_absorb_q(q_nope, kv_b, dims.d), tol);
                Tensor o_lat = random_act({tokens, dims.d.num_heads, kMlaLatentDim}, rng_);
                expect_close("mla_absorb_o " + what, down(gpu_->mla_absorb_o(up(o_lat), kv_b, dims.d)),
                             cpu_->mla_absorb_o(o_lat, kv_b, dims.d), tol);
            }
        }
    }
}

TEST_F(MlaTest, ExpandKv) {
    for (const Numerics& n : {Numerics::bf16(), Numerics::deepseek_fp8()}) {
        make(n);
        for (const Dims& dims : kDims) {
            LinearWeight kv_b = kv_b_weight(dims.d, /*fp8=*/true, rng_);
            Tensor latent = random_act({50, kMlaKvDim}, rng_);
            MlaExpandedKv got = gpu_->mla_expand_kv(up(latent), kv_b, dims.d);
            MlaExpandedKv ref = cpu_->mla_expand_kv(latent, kv_b, dims.d);
            const std::string what = std::string(dims.name) + (n.fp8_activation_quant ? " act_quant" : " bf16");
            expect_close("mla_expand_kv k " + what, down(got.k), ref.k, 1e-2);
            expect_close("mla_expand_kv v " + what, down(got.v), ref.v, 1e-2);
            // k_pe is copied: those 64 columns of every head must match exactly.
            Tensor gk = down(got.k);
            const int64_t qk = dims.d.nope_dim + kMlaRopeDim;
            double worst = 0;
            for (int64_t r = 0; r < gk.numel() / qk; ++r) {
                for (int64_t i = dims.d.nope_dim; i < qk; ++i) {
                    worst = std::max(worst, static_cast<double>(std::fabs(gk.data<float>()[r * qk + i] -
                                                                          ref.k.data<float>()[r * qk + i])));
                }
            }
            EXPECT_EQ(worst, 0.0) << what;
        }
    }
}

TEST_F(MlaTest, SparseAttentionDecodeShapes) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        check_sparse(*cpu_, *gpu_, st, 1, 128, 2048, false, rng_);  // split-K over many CTAs
        check_sparse(*cpu_, *gpu_, st, 3, 128, 2048, true, rng_);
        check_sparse(*cpu_, *gpu_, st, 24, 128, 2048, false, rng_);  // two splits
        check_sparse(*cpu_, *gpu_, st, 4, 64, 2048, false, rng_);    // GLM-5: one head group
        check_sparse(*cpu_, *gpu_, st, 3, 40, 100, false, rng_);     // partial head group, partial last tile
        check_sparse(*cpu_, *gpu_, st, 1, 64, 5000, true, rng_);     // 79 splits: the combine's multi-batch loop
    }
}

TEST_F(MlaTest, SparseAttentionPrefillShapes) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        check_sparse(*cpu_, *gpu_, st, 200, 128, 512, true, rng_);
    }
}

// Edges of the tiled kernels: one token, 300 tokens (no split, many CTAs), list widths that are not a multiple of
// the 64-row tile, GLM-5's 64 heads with a long list, both stores; -1 slots are in every list (slot_lists).
TEST_F(MlaTest, SparseAttentionEdges) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        check_sparse(*cpu_, *gpu_, st, 1, 128, 1000, true, rng_);  // width 1000 = 15 tiles + 40
        check_sparse(*cpu_, *gpu_, st, 300, 128, 2048, true, rng_);
        check_sparse(*cpu_, *gpu_, st, 5, 128, 77, false, rng_);  // one full tile + 13
        check_sparse(*cpu_, *gpu_, st, 2, 64, 33, false, rng_);   // less than one tile
        check_sparse(*cpu_, *gpu_, st, 130, 64, 1040, true, rng_);
    }
}

// The two kernels agree with each other far closer than with the CPU reference (same bf16 P rounding).
TEST_F(MlaTest, SparseKernelsAgree) {
    make(Numerics::bf16());
    Stores st = filled_stores(*cpu_, *gpu_, MlaKvFormat::kBF16, rng_);
    const int64_t tokens = 16, heads = 128, width = 2048;
    Tensor q = gpu_->to_device(to_bf16(random_act({tokens, heads, kMlaKvDim}, rng_)));
    Tensor slots = gpu_->to_device(slot_lists(tokens, width, rng_));
    Tensor out[2];
    for (int i = 0; i < 2; ++i) {
        SparseKernelScope scope(kSparseKernels[i]);
        announce(std::string("mla_sparse agree [") + kSparseKernels[i] + "] T=16 H=128 K=2048");
        out[i] = to_f32(gpu_->to_host(gpu_->mla_sparse_attention({q, &st.gpu, slots, 0.1352338f})));
    }
    const Diff d = compare(out[1], out[0]);
    std::cout << "[ metric ] mla_sparse s1 vs legacy T=16 H=128 K=2048: rel_l2=" << d.rel_l2 << std::endl;
    EXPECT_LT(d.rel_l2, 4e-3);
}

TEST_F(MlaTest, SparseAttentionStaged) {
    make(Numerics::bf16());
    Stores st = filled_stores(*cpu_, *gpu_, MlaKvFormat::kBF16, rng_);
    check_staged(*cpu_, *gpu_, st, rng_, kSparseKernels);
}

// ---- kernel s3 (DSA_MLA_KERNEL=s3, opt-in): the sparse cases above on s3 alone, agreement with s1 (its running max
// moves per 32 keys, s1's per 64: the bf16 P roundings differ slightly), bit equality with s1 where the max cannot
// move (q = 0: every score 0), and a captured call replayed on new inputs. ----
using MlaS3Test = CudaVsCpuTest;
const KernelList kS3Only = {"s3"};

TEST_F(MlaS3Test, SparseAttentionDecodeShapes) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        check_sparse(*cpu_, *gpu_, st, 1, 128, 2048, false, rng_, kS3Only);  // split-K over many CTAs
        check_sparse(*cpu_, *gpu_, st, 3, 128, 2048, true, rng_, kS3Only);
        check_sparse(*cpu_, *gpu_, st, 24, 128, 2048, false, rng_, kS3Only);  // two splits
        check_sparse(*cpu_, *gpu_, st, 4, 64, 2048, false, rng_, kS3Only);
        check_sparse(*cpu_, *gpu_, st, 3, 40, 100, false, rng_, kS3Only);  // partial head group and last tile
        check_sparse(*cpu_, *gpu_, st, 1, 64, 5000, true, rng_, kS3Only);  // 79 splits
        check_sparse(*cpu_, *gpu_, st, 2, 16, 130, true, rng_, kS3Only);   // 16 heads, 3 tiles
    }
}

TEST_F(MlaS3Test, SparseAttentionPrefillShapes) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        check_sparse(*cpu_, *gpu_, st, 200, 128, 512, true, rng_, kS3Only);
    }
}

TEST_F(MlaS3Test, SparseAttentionEdges) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        check_sparse(*cpu_, *gpu_, st, 1, 128, 1000, true, rng_, kS3Only);  // 15 tiles + 40
        check_sparse(*cpu_, *gpu_, st, 300, 128, 2048, true, rng_, kS3Only);
        check_sparse(*cpu_, *gpu_, st, 5, 128, 77, false, rng_, kS3Only);  // one full tile + 13
        check_sparse(*cpu_, *gpu_, st, 2, 64, 33, false, rng_, kS3Only);   // less than one tile
        check_sparse(*cpu_, *gpu_, st, 130, 64, 1040, true, rng_, kS3Only);
        check_sparse(*cpu_, *gpu_, st, 3, 96, 192, false, rng_, kS3Only);  // 3 tiles, a half head group
        check_sparse(*cpu_, *gpu_, st, 2, 128, 256, true, rng_, kS3Only);  // 4 tiles: the first buffer reused
    }
}

// The staged cases on both stores (FP8: s3's in-place dequantization under the one-hot and uniform stages).
TEST_F(MlaS3Test, SparseAttentionStaged) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        check_staged(*cpu_, *gpu_, st, rng_, kS3Only);
    }
}

TEST_F(MlaS3Test, AgreesWithS1) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        const int64_t shapes[][3] = {{16, 128, 2048}, {1, 128, 2048}, {3, 64, 1000}, {70, 128, 2048}};
        for (const auto& sh : shapes) {
            const int64_t tokens = sh[0], heads = sh[1], width = sh[2];
            const std::string what = std::string(mla_kv_format_name(format)) + " T=" + std::to_string(tokens) +
                                     " H=" + std::to_string(heads) + " K=" + std::to_string(width);
            Tensor q = gpu_->to_device(to_bf16(random_act({tokens, heads, kMlaKvDim}, rng_)));
            Tensor slots = gpu_->to_device(lists_with_masked_tiles(tokens, width, rng_));
            auto [s1, s3] = s1_and_s3(*gpu_, st, q, slots, what);
            const Diff d = compare(to_f32(s3), to_f32(s1));
            std::cout << "[ metric ] mla_sparse s3 vs s1 " << what << ": rel_l2=" << d.rel_l2
                      << " max_abs=" << d.max_abs << std::endl;
            EXPECT_LT(d.rel_l2, 1.5e-3) << what;  // H200: 3.5e-4 .. 6.4e-4
            EXPECT_EQ(d.nonfinite, 0) << what;
        }
    }
}

// With q = 0 every score is 0, so the running max never moves (factors 1) and P is 1 on every valid key: s3's
// gather (bf16 and FP8 dequantized in place), P V order and epilogue must give s1's bits exactly.
TEST_F(MlaS3Test, SameBitsAsS1WithAFixedMax) {
    for (MlaKvFormat format : {MlaKvFormat::kBF16, MlaKvFormat::kFp8}) {
        make(format == MlaKvFormat::kFp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        Stores st = filled_stores(*cpu_, *gpu_, format, rng_);
        for (int64_t tokens : {1, 64}) {
            const int64_t heads = 128, width = 2048;
            const std::string what = std::string(mla_kv_format_name(format)) + " q=0 T=" + std::to_string(tokens);
            Tensor q = gpu_->to_device(to_bf16(Tensor::zeros({tokens, heads, kMlaKvDim}, DType::kF32)));
            Tensor slots = gpu_->to_device(lists_with_masked_tiles(tokens, width, rng_));
            auto [s1, s3] = s1_and_s3(*gpu_, st, q, slots, what);
            EXPECT_EQ(std::memcmp(s1.raw_data(), s3.raw_data(), s1.nbytes()), 0) << "s3 differs from s1: " << what;
        }
    }
}

// Graph replays under s3 (expect_graph_replays).
TEST_F(MlaS3Test, GraphReplay) {
    make(Numerics::deepseek_fp8());
    Stores st = filled_stores(*cpu_, *gpu_, MlaKvFormat::kFp8, rng_);
    expect_graph_replays(*cpu_, *gpu_, st, "s3", rng_);
}

void check_dense(Backend& cpu, Backend& gpu, const MlaHeadDims& d, int64_t tokens, int64_t keys, bool with_mask,
                 std::mt19937& rng) {
    const int64_t qk = d.nope_dim + kMlaRopeDim, heads = d.num_heads;
    const float scale = 0.0625f;
    Tensor q = random_act({tokens, heads, qk}, rng);
    Tensor k = random_act({keys, heads, qk}, rng);
    Tensor v = random_act({keys, heads, d.v_dim}, rng);
    std::vector<int32_t> pos(tokens);
    for (int64_t t = 0; t < tokens; ++t) pos[t] = static_cast<int32_t>(keys - tokens + t);  // the last `tokens` keys
    Tensor allowed;
    const int64_t width = 64;
    if (with_mask) {
        allowed = Tensor::empty({tokens, width}, DType::kI32);
        std::uniform_int_distribution<int> pct(0, 99);
        for (int64_t t = 0; t < tokens; ++t) {
            std::uniform_int_distribution<int32_t> p(0, pos[t]);
            for (int64_t j = 0; j < width; ++j) allowed.data<int32_t>()[t * width + j] = pct(rng) < 20 ? -1 : p(rng);
        }
    }
    MlaDenseParams gp{gpu.to_device(to_bf16(q)),
                      gpu.to_device(to_bf16(k)),
                      gpu.to_device(to_bf16(v)),
                      gpu.to_device(i32_tensor(pos)),
                      with_mask ? gpu.to_device(allowed) : Tensor(),
                      scale};
    Tensor got = to_f32(gpu.to_host(gpu.mla_dense_attention(gp)));
    Tensor ref = cpu.mla_dense_attention({q, k, v, i32_tensor(pos), allowed, scale});
    const std::string what = "mla_dense H=" + std::to_string(heads) + " d_qk=" + std::to_string(qk) +
                             " d_v=" + std::to_string(d.v_dim) + " T=" + std::to_string(tokens) +
                             " S=" + std::to_string(keys) + (with_mask ? " top-k mask" : " causal");
    expect_close(what, got, ref, 1e-2);
    // A wrong reference: the same queries one position earlier (a causal off-by-one).
    std::vector<int32_t> earlier(pos);
    for (auto& p : earlier) p = std::max(0, p - 1);
    const Diff dw = compare(got, cpu.mla_dense_attention({q, k, v, i32_tensor(earlier), allowed, scale}));
    std::cout << "[ metric ] " << what << " vs an off-by-one causal reference: rel_l2=" << dw.rel_l2 << "\n";
    if (!with_mask) {
        EXPECT_GT(dw.rel_l2, 1e-2) << "the tolerance cannot tell a wrong result apart";
    }
}

TEST_F(MlaTest, DenseAttention) {
    check_dense(*cpu_, *gpu_, kDims[0].d, 300, 300, false, rng_);  // one 300-token prompt, DeepSeek dims
    check_dense(*cpu_, *gpu_, kDims[0].d, 1, 65, false, rng_);     // one query, keys past one tile
    check_dense(*cpu_, *gpu_, kDims[0].d, 40, 700, true, rng_);    // a chunk continuing a prefix, top-k mask
    check_dense(*cpu_, *gpu_, kDims[1].d, 20, 130, false, rng_);   // GLM dims
    check_dense(*cpu_, *gpu_, kDims[1].d, 20, 130, true, rng_);
    // Head dims without a tensor-core instantiation (the generic CUDA-core kernel).
    check_dense(*cpu_, *gpu_, MlaHeadDims{16, 128, 256}, 70, 90, true, rng_);
    check_dense(*cpu_, *gpu_, MlaHeadDims{16, 128, 256}, 70, 90, false, rng_);
}

}  // namespace
}  // namespace dsa::backend::testing
