// MLA attention: the absorbed 576/512 sparse form (with W_UK / W_UV absorption) agrees with the expanded MHA
// form (k_nope / v from kv_b_proj) for DeepSeek and GLM head dims, with and without a top-k mask; sparse
// attention equals dense attention with an additive -inf mask computed directly; -1 entries are ignored; an
// FP8 store is read dequantized.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "test_util.h"

namespace dsa::backend {
namespace {

using testing::random_f32;

struct MlaCase {
    MlaHeadDims dims;
    int64_t keys = 0;
    Tensor latent;      // [S, 576]
    LinearWeight kv_b;  // [H (d_n + d_v), 512] f32
    Tensor q;           // [T, H, d_n + 64]
    MlaKvStore store;   // latent of position s at slot slot_of[s]
    std::vector<int32_t> slot_of;
};

MlaCase make_case(int64_t heads, int64_t nope, int64_t v, int64_t keys, int64_t tokens, std::mt19937& rng,
                  Backend& be) {
    MlaCase c;
    c.dims = {heads, nope, v};
    c.keys = keys;
    c.latent = random_f32({keys, 576}, rng);
    c.kv_b = LinearWeight{random_f32({heads * (nope + v), 512}, rng, 0.05f), {}};
    c.q = random_f32({tokens, heads, nope + 64}, rng, 0.5f);
    c.store = MlaKvStore{Tensor::zeros({keys + 7, kMlaF32BytesPerToken}, DType::kU8), MlaKvFormat::kF32};
    for (int64_t s = 0; s < keys; ++s) c.slot_of.push_back(static_cast<int32_t>((s * 5 + 3) % (keys + 7)));
    be.mla_kv_write({be.narrow_last(c.latent, 0, 512), be.narrow_last(c.latent, 512, 576),
                     testing::i32_tensor(c.slot_of), &c.store});
    return c;
}

// Absorbed path: q̃ = W_UK^T q_nope, sparse attention over the slots, then W_UV.
Tensor absorbed(Backend& be, const MlaCase& c, const Tensor& slots, float scale) {
    Tensor q_nope = be.narrow_last(c.q, 0, c.dims.nope_dim);
    Tensor q_pe = be.narrow_last(c.q, c.dims.nope_dim, c.dims.nope_dim + 64);
    const Tensor parts[] = {be.mla_absorb_q(q_nope, c.kv_b, c.dims), q_pe};
    Tensor o_latent = be.mla_sparse_attention({be.concat_last(parts), &c.store, slots, scale});
    return be.mla_absorb_o(o_latent, c.kv_b, c.dims);
}

// Positions -> slots for a [T, K] position table (-1 kept).
Tensor to_slots(const MlaCase& c, const std::vector<int32_t>& positions, int64_t width) {
    std::vector<int32_t> s(positions.size());
    for (size_t i = 0; i < positions.size(); ++i) s[i] = positions[i] < 0 ? -1 : c.slot_of[positions[i]];
    return testing::i32_tensor(s, {static_cast<int64_t>(positions.size()) / width, width});
}

void check_forms_agree(int64_t heads, int64_t nope, int64_t v) {
    std::mt19937 rng(60);
    auto be = make_cpu_backend(Numerics::fp32());
    MlaCase c = make_case(heads, nope, v, /*keys=*/12, /*tokens=*/3, rng, *be);
    const float scale = 1.0f / std::sqrt(static_cast<float>(nope + 64));
    const std::vector<int32_t> qpos = {11, 6, 3};
    MlaExpandedKv kv = be->mla_expand_kv(c.latent, c.kv_b, c.dims);
    // Causal only: every visible position.
    std::vector<int32_t> causal(3 * 12, -1);
    for (int t = 0; t < 3; ++t) {
        for (int s = 0; s <= qpos[t]; ++s) causal[t * 12 + s] = s;
    }
    Tensor expanded = be->mla_dense_attention({c.q, kv.k, kv.v, testing::i32_tensor(qpos), {}, scale});
    Tensor absorbed_out = absorbed(*be, c, to_slots(c, causal, 12), scale);
    ASSERT_EQ(absorbed_out.shape(), (Shape{3, heads, v}));
    EXPECT_LT(testing::rel_l2(absorbed_out, expanded), 1e-5);
    // With a top-k mask (unordered, -1 padded).
    const std::vector<int32_t> topk = {9, 2, 11, -1, 5, 0, 6, -1, 3, 0, -1, -1};
    Tensor masked = be->mla_dense_attention({c.q, kv.k, kv.v, testing::i32_tensor(qpos), testing::i32_tensor(topk, {3, 4}),
                                             scale});
    Tensor masked_abs = absorbed(*be, c, to_slots(c, topk, 4), scale);
    EXPECT_LT(testing::rel_l2(masked_abs, masked), 1e-5);
    EXPECT_GT(testing::rel_l2(masked, expanded), 1e-2);  // the mask really changed the result
}

TEST(MlaForms, AbsorbedEqualsExpandedDeepSeekDims) { check_forms_agree(4, 128, 128); }
TEST(MlaForms, AbsorbedEqualsExpandedGlmDims) { check_forms_agree(2, 192, 256); }

TEST(MlaSparse, EqualsDenseAttentionWithAdditiveMask) {
    std::mt19937 rng(61);
    auto be = make_cpu_backend(Numerics::fp32());
    MlaCase c = make_case(3, 128, 128, 20, 2, rng, *be);
    Tensor q = random_f32({2, 3, 576}, rng, 0.3f);
    const std::vector<int32_t> pos = {4, 17, -1, 8, 0, -1, 19, 19 - 1, -1, -1};
    Tensor out = be->mla_sparse_attention({q, &c.store, to_slots(c, pos, 5), 0.1f});
    for (int t = 0; t < 2; ++t) {
        std::vector<double> mask(20, -INFINITY);
        for (int j = 0; j < 5; ++j) {
            if (pos[t * 5 + j] >= 0) mask[pos[t * 5 + j]] = 0.0;
        }
        for (int h = 0; h < 3; ++h) {
            // Dense scores over every key plus the mask, softmax, P·c_kv.
            std::vector<double> p(20);
            double mx = -INFINITY, sum = 0.0;
            for (int s = 0; s < 20; ++s) {
                double d = 0.0;
                for (int i = 0; i < 576; ++i) d += q.data<float>()[(t * 3 + h) * 576 + i] * c.latent.data<float>()[s * 576 + i];
                p[s] = 0.1 * d + mask[s];
                mx = std::max(mx, p[s]);
            }
            for (double& e : p) sum += (e = std::exp(e - mx));
            for (int i = 0; i < 512; ++i) {
                double o = 0.0;
                for (int s = 0; s < 20; ++s) o += p[s] / sum * c.latent.data<float>()[s * 576 + i];
                EXPECT_NEAR(out.data<float>()[(t * 3 + h) * 512 + i], o, 1e-5) << t << "," << h << "," << i;
            }
        }
    }
}

TEST(MlaSparse, EmptyRowGivesZerosAndFp8StoreIsReadDequantized) {
    std::mt19937 rng(62);
    auto be = make_cpu_backend(Numerics::fp32());
    MlaKvStore fp8{Tensor::zeros({6, kMlaFp8BytesPerToken}, DType::kU8), MlaKvFormat::kFp8};
    Tensor lat = random_f32({6, 576}, rng);
    Tensor all = testing::i32_tensor({0, 1, 2, 3, 4, 5});
    be->mla_kv_write({be->narrow_last(lat, 0, 512), be->narrow_last(lat, 512, 576), all, &fp8});
    // The same values as the FP8 store returns, in an exact f32 store.
    Tensor deq = be->mla_kv_read(fp8, all);
    MlaKvStore f32{Tensor::zeros({6, kMlaF32BytesPerToken}, DType::kU8), MlaKvFormat::kF32};
    be->mla_kv_write({be->narrow_last(deq, 0, 512), be->narrow_last(deq, 512, 576), all, &f32});
    Tensor q = random_f32({2, 2, 576}, rng, 0.2f);
    Tensor slots = testing::i32_tensor({5, 0, 3, -1, -1, -1, -1, -1}, {2, 4});
    Tensor a = be->mla_sparse_attention({q, &fp8, slots, 0.1f});
    Tensor b = be->mla_sparse_attention({q, &f32, slots, 0.1f});
    EXPECT_EQ(testing::rel_l2(a, b), 0.0);
    for (int i = 2 * 512; i < 4 * 512; ++i) EXPECT_EQ(a.data<float>()[i], 0.0f);  // token 1: no valid slot
    EXPECT_GT(testing::rel_l2(a.data<float>(), a.data<float>() + 512, 512), 0.0);  // heads differ
}

TEST(MlaAbsorb, MatchesPerHeadMatrixProducts) {
    std::mt19937 rng(63);
    auto be = make_cpu_backend(Numerics::fp32());
    const MlaHeadDims d{2, 128, 128};
    LinearWeight kv_b{random_f32({2 * 256, 512}, rng, 0.05f), {}};
    Tensor q_nope = random_f32({1, 2, 128}, rng);
    Tensor o_lat = random_f32({1, 2, 512}, rng);
    Tensor qa = be->mla_absorb_q(q_nope, kv_b, d);
    Tensor o = be->mla_absorb_o(o_lat, kv_b, d);
    const float* w = kv_b.weight.data<float>();
    for (int h = 0; h < 2; ++h) {
        for (int c = 0; c < 512; c += 37) {
            double e = 0.0;
            for (int i = 0; i < 128; ++i) e += q_nope.data<float>()[h * 128 + i] * w[(h * 256 + i) * 512 + c];
            EXPECT_NEAR(qa.data<float>()[h * 512 + c], e, 1e-4);
        }
        for (int v = 0; v < 128; v += 13) {
            double e = 0.0;
            for (int c = 0; c < 512; ++c) e += o_lat.data<float>()[h * 512 + c] * w[(h * 256 + 128 + v) * 512 + c];
            EXPECT_NEAR(o.data<float>()[h * 128 + v], e, 1e-4);
        }
    }
}

TEST(MlaForms, Bf16NumericsRoundOutputsAndStayClose) {
    std::mt19937 rng_a(64), rng_b(64);
    auto exact = make_cpu_backend(Numerics::fp32());
    auto bf16 = make_cpu_backend(Numerics::bf16());
    MlaCase a = make_case(2, 128, 128, 9, 2, rng_a, *exact);
    MlaCase b = make_case(2, 128, 128, 9, 2, rng_b, *bf16);
    const std::vector<int32_t> pos = {0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 2, 4, -1, -1, -1, -1, -1, -1};
    const float scale = 1.0f / std::sqrt(192.0f);
    Tensor oa = absorbed(*exact, a, to_slots(a, pos, 9), scale);
    Tensor ob = absorbed(*bf16, b, to_slots(b, pos, 9), scale);
    for (int64_t i = 0; i < ob.numel(); ++i) EXPECT_EQ(ob.data<float>()[i], round_bf16(ob.data<float>()[i])) << i;
    const double err = testing::rel_l2(ob, oa);
    EXPECT_LT(err, 2e-2);
    EXPECT_GT(err, 1e-5);
}

}  // namespace
}  // namespace dsa::backend
