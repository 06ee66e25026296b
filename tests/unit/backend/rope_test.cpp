// CPU RoPE in the interleaved and NeoX layouts against a naive complex-number rotation, on a sub-range of the
// head dims (MLA: last 64 of 192; indexer: first 64 of 128), with dims outside the range untouched.
#include <cmath>
#include <complex>
#include <random>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "test_util.h"

namespace dsa::backend {
namespace {

using testing::random_f32;

std::vector<float> make_inv_freq(int64_t rot, double base) {
    std::vector<float> f(rot / 2);
    for (int64_t i = 0; i < rot / 2; ++i) f[i] = static_cast<float>(std::pow(base, -2.0 * i / rot));
    return f;
}

// Rotates pair i of each head by e^{i p theta_i} as complex numbers.
void naive_rope(Tensor& x, const std::vector<int32_t>& pos, const std::vector<float>& inv_freq, bool interleaved,
                int64_t offset) {
    const int64_t tokens = x.dim(0), heads = x.dim(1), dim = x.dim(2), half = inv_freq.size();
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t h = 0; h < heads; ++h) {
            float* v = x.data<float>() + (t * heads + h) * dim + offset;
            for (int64_t i = 0; i < half; ++i) {
                const int64_t ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
                const double angle = static_cast<double>(static_cast<float>(pos[t]) * inv_freq[i]);
                const std::complex<double> z = std::complex<double>(v[ia], v[ib]) * std::polar(1.0, angle);
                v[ia] = static_cast<float>(z.real());
                v[ib] = static_cast<float>(z.imag());
            }
        }
    }
}

void check_layout(RopeLayout layout, int64_t head_dim, int64_t offset) {
    std::mt19937 rng(30);
    const std::vector<float> inv_freq = make_inv_freq(64, 10000.0);
    const std::vector<int32_t> pos = {0, 1, 7, 4095, 100000};
    auto be = make_cpu_backend(Numerics::fp32());
    RopeTable table = be->make_rope_table(inv_freq, 100001);
    Tensor x = random_f32({5, 3, head_dim}, rng);
    Tensor expect = x.clone();
    naive_rope(expect, pos, inv_freq, layout == RopeLayout::kInterleaved, offset);
    be->apply_rope({x, testing::i32_tensor(pos), &table, layout, offset});
    for (int64_t i = 0; i < x.numel(); ++i) {
        EXPECT_NEAR(x.data<float>()[i], expect.data<float>()[i], 2e-6) << i;
    }
}

TEST(Rope, InterleavedOnLast64Of192) { check_layout(RopeLayout::kInterleaved, 192, 128); }
TEST(Rope, NeoxOnFirst64Of128) { check_layout(RopeLayout::kNeox, 128, 0); }
TEST(Rope, InterleavedOnFirst64Of128) { check_layout(RopeLayout::kInterleaved, 128, 0); }

TEST(Rope, LayoutsDifferAndPositionZeroIsIdentity) {
    std::mt19937 rng(31);
    auto be = make_cpu_backend(Numerics::fp32());
    RopeTable table = be->make_rope_table(make_inv_freq(64, 10000.0), 16);
    Tensor a = random_f32({2, 1, 64}, rng);
    Tensor b = a.clone();
    Tensor orig = a.clone();
    Tensor pos = testing::i32_tensor({0, 5});
    be->apply_rope({a, pos, &table, RopeLayout::kInterleaved, 0});
    be->apply_rope({b, pos, &table, RopeLayout::kNeox, 0});
    for (int i = 0; i < 64; ++i) {
        EXPECT_EQ(a.data<float>()[i], orig.data<float>()[i]);  // position 0
        EXPECT_EQ(b.data<float>()[i], orig.data<float>()[i]);
    }
    EXPECT_GT(testing::rel_l2(a.data<float>() + 64, b.data<float>() + 64, 64), 1e-3);
}

TEST(Rope, RelativePositionPropertyOfDotProducts) {
    // <rope(q, m), rope(k, n)> depends only on m - n.
    std::mt19937 rng(32);
    auto be = make_cpu_backend(Numerics::fp32());
    RopeTable table = be->make_rope_table(make_inv_freq(64, 10000.0), 64);
    Tensor q = random_f32({1, 1, 64}, rng), k = random_f32({1, 1, 64}, rng);
    auto dot_at = [&](int m, int n) {
        Tensor qa = q.clone(), ka = k.clone();
        be->apply_rope({qa, testing::i32_tensor({m}), &table, RopeLayout::kNeox, 0});
        be->apply_rope({ka, testing::i32_tensor({n}), &table, RopeLayout::kNeox, 0});
        double d = 0.0;
        for (int i = 0; i < 64; ++i) d += qa.data<float>()[i] * ka.data<float>()[i];
        return d;
    };
    EXPECT_NEAR(dot_at(10, 3), dot_at(50, 43), 1e-4);
    EXPECT_GT(std::fabs(dot_at(10, 3) - dot_at(10, 4)), 1e-4);
}

}  // namespace
}  // namespace dsa::backend
