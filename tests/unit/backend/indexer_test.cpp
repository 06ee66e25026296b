// Lightning indexer: the score formula against a direct definition (FP32 and the Hadamard + FP8 numerics),
// per-query causal limits (several queries per request, several requests), and the exact top-k: the order
// (score descending, lower position first on ties), short rows padded with -1, recall 1.0 against std::sort,
// and the position -> slot mapping.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cpu/quant.h"
#include "test_util.h"

namespace dsa::backend {
namespace {

using testing::random_f32;

// Keys of `lengths.size()` requests written into a paged store under shuffled slots.
struct KeySetup {
    IndexerKeyStore store;
    Tensor keys;       // [sum lengths, 128] f32, request-major
    Tensor key_slots;  // [B, max_len] i32
};

KeySetup write_keys(Backend& be, const std::vector<int>& lengths, std::mt19937& rng, const Tensor* given = nullptr) {
    const int total = std::accumulate(lengths.begin(), lengths.end(), 0);
    const int max_len = *std::max_element(lengths.begin(), lengths.end());
    const int64_t pages = (total + 63) / 64 + 1;
    KeySetup s{IndexerKeyStore{Tensor::zeros({pages, indexer_page_bytes(be.numerics().indexer_key_format())},
                                             DType::kU8),
                               be.numerics().indexer_key_format()},
               given ? *given : random_f32({total, 128}, rng), Tensor::empty({(int64_t)lengths.size(), max_len},
                                                                             DType::kI32)};
    std::vector<int32_t> perm(pages * 64);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<int32_t> slots(total);
    int n = 0;
    for (size_t b = 0; b < lengths.size(); ++b) {
        for (int p = 0; p < max_len; ++p) {
            s.key_slots.data<int32_t>()[b * max_len + p] = p < lengths[b] ? perm[n] : -1;
            if (p < lengths[b]) slots[n] = perm[n], ++n;
        }
    }
    be.indexer_k_write({s.keys, testing::i32_tensor(slots), &s.store});
    return s;
}

// Direct definition: sum_j w[j] H^-0.5 128^-0.5 ReLU(q_j · k), on the vectors the numerics imply.
std::vector<float> prepare(const float* x, bool fp8) {
    std::vector<float> v(x, x + 128);
    if (!fp8) return v;
    cpu::hadamard128(v.data());
    for (float& e : v) e = round_bf16(e);
    uint8_t q8[128];
    const float s = cpu::act_quant_block(v.data(), 128, /*ue8m0=*/true, q8);
    for (int i = 0; i < 128; ++i) v[i] = fp8e4m3_to_f32(q8[i]) * s;
    return v;
}

double direct_score(const Tensor& q, const Tensor& w, int64_t t, const float* key, bool fp8) {
    const int64_t heads = q.dim(1);
    const std::vector<float> k = prepare(key, fp8);
    double sum = 0.0;
    for (int64_t j = 0; j < heads; ++j) {
        const std::vector<float> qj = prepare(q.data<float>() + (t * heads + j) * 128, fp8);
        double d = 0.0;
        for (int i = 0; i < 128; ++i) d += static_cast<double>(qj[i]) * k[i];
        sum += w.data<float>()[t * heads + j] / std::sqrt(heads) / std::sqrt(128.0) * std::max(d, 0.0);
    }
    return sum;
}

void check_scores(const Numerics& numerics) {
    std::mt19937 rng(50);
    auto be = make_cpu_backend(numerics);
    const std::vector<int> lengths = {10, 70};
    KeySetup ks = write_keys(*be, lengths, rng);
    const int64_t heads = 8;
    Tensor q = random_f32({4, heads, 128}, rng);
    Tensor w = random_f32({4, heads}, rng);
    // Queries: request 0 at limit 9; request 1 with three MTP-style queries at limits 67, 68, 69.
    const std::vector<int32_t> req = {0, 1, 1, 1}, limit = {9, 67, 68, 69};
    IndexerTopkResult r = be->indexer_topk({q, w, &ks.store, ks.key_slots, testing::i32_tensor(req),
                                            testing::i32_tensor(limit), /*index_topk=*/16, /*return_scores=*/true});
    ASSERT_EQ(r.scores.shape(), (Shape{4, 70}));
    for (int t = 0; t < 4; ++t) {
        const int key_base = req[t] == 0 ? 0 : 10;
        for (int s = 0; s < 70; ++s) {
            const float got = r.scores.data<float>()[t * 70 + s];
            if (s > limit[t]) {
                EXPECT_EQ(got, -INFINITY) << t << "," << s;
                continue;
            }
            const double expect = direct_score(q, w, t, ks.keys.data<float>() + (key_base + s) * 128,
                                               numerics.indexer_fp8);
            EXPECT_NEAR(got, expect, 1e-5 * (std::fabs(expect) + 0.1)) << t << "," << s;
        }
    }
}

TEST(IndexerScores, Fp32MatchesDefinition) { check_scores(Numerics::fp32()); }
TEST(IndexerScores, Fp8HadamardMatchesDefinition) { check_scores(Numerics::deepseek_fp8()); }

TEST(IndexerScores, Fp8ScoresTrackFp32Scores) {
    // The rotation is applied to both q and k, so the FP8 scores stay close to the exact ones.
    std::mt19937 rng(51);
    auto exact = make_cpu_backend(Numerics::fp32());
    auto fp8 = make_cpu_backend(Numerics::deepseek_fp8());
    std::mt19937 rng_a(52), rng_b(52);
    Tensor keys = random_f32({40, 128}, rng);
    KeySetup ka = write_keys(*exact, {40}, rng_a, &keys);
    KeySetup kb = write_keys(*fp8, {40}, rng_b, &keys);
    Tensor q = random_f32({2, 4, 128}, rng), w = random_f32({2, 4}, rng);
    Tensor req = testing::i32_tensor({0, 0}), lim = testing::i32_tensor({39, 39});
    auto a = exact->indexer_topk({q, w, &ka.store, ka.key_slots, req, lim, 8, true});
    auto b = fp8->indexer_topk({q, w, &kb.store, kb.key_slots, req, lim, 8, true});
    const double err = testing::rel_l2(b.scores, a.scores);
    EXPECT_LT(err, 0.08);
    EXPECT_GT(err, 1e-5);  // but they are not identical: quantization happened
}

// One head, q = e_0 and key s = v[s] e_0, weight sqrt(1 * 128): score[s] = ReLU(v[s]) exactly.
struct ControlledScores {
    std::unique_ptr<Backend> be = make_cpu_backend(Numerics::fp32());
    KeySetup ks;
    Tensor q = Tensor::zeros({1, 1, 128}, DType::kF32);
    Tensor w = Tensor::empty({1, 1}, DType::kF32);
    explicit ControlledScores(const std::vector<float>& v, std::mt19937& rng) {
        Tensor keys = Tensor::zeros({static_cast<int64_t>(v.size()), 128}, DType::kF32);
        for (size_t s = 0; s < v.size(); ++s) keys.data<float>()[s * 128] = v[s];
        ks = write_keys(*be, {static_cast<int>(v.size())}, rng, &keys);
        q.data<float>()[0] = 1.0f;
        w.data<float>()[0] = std::sqrt(128.0f);
    }
    IndexerTopkResult run(int limit, int topk) {
        return be->indexer_topk({q, w, &ks.store, ks.key_slots, testing::i32_tensor({0}),
                                 testing::i32_tensor({limit}), topk, false});
    }
};

// Expected top-k by std::sort with the documented order.
std::vector<int32_t> sorted_topk(const std::vector<float>& v, int limit, int k) {
    std::vector<int32_t> idx(limit + 1);
    std::iota(idx.begin(), idx.end(), 0);
    auto score = [&](int32_t i) { return std::max(v[i], 0.0f); };
    std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
        return score(a) > score(b) || (score(a) == score(b) && a < b);
    });
    idx.resize(std::min<int>(k, limit + 1));
    return idx;
}

TEST(IndexerTopk, TiesPreferLowerPositions) {
    std::mt19937 rng(53);
    std::vector<float> v(200);
    std::uniform_int_distribution<int> level(-2, 3);  // many equal scores, ReLU makes all negatives tie at 0
    for (float& x : v) x = static_cast<float>(level(rng));
    ControlledScores cs(v, rng);
    for (int limit : {199, 150}) {
        IndexerTopkResult r = cs.run(limit, 64);
        const std::vector<int32_t> expect = sorted_topk(v, limit, 64);
        for (int i = 0; i < 64; ++i) EXPECT_EQ(r.positions.data<int32_t>()[i], expect[i]) << limit << "," << i;
    }
}

TEST(IndexerTopk, ShortRowsArePaddedAndSlotsMatch) {
    std::mt19937 rng(54);
    std::vector<float> v = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f, 0.1f, 9.0f};
    ControlledScores cs(v, rng);
    IndexerTopkResult r = cs.run(/*limit=*/5, /*topk=*/10);  // 6 visible keys; position 6 is in the future
    const int32_t expect[] = {1, 3, 4, 0, 5, 2, -1, -1, -1, -1};
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(r.positions.data<int32_t>()[i], expect[i]) << i;
        const int32_t slot = expect[i] < 0 ? -1 : cs.ks.key_slots.data<int32_t>()[expect[i]];
        EXPECT_EQ(r.slots.data<int32_t>()[i], slot) << i;
    }
}

TEST(IndexerTopk, RecallOneAgainstStdSort) {
    std::mt19937 rng(55);
    std::vector<float> v(500);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (float& x : v) x = dist(rng) + 3.0f;
    ControlledScores cs(v, rng);
    IndexerTopkResult r = cs.run(499, 128);
    std::vector<int32_t> got(r.positions.data<int32_t>(), r.positions.data<int32_t>() + 128);
    std::vector<int32_t> expect = sorted_topk(v, 499, 128);
    EXPECT_EQ(got, expect);
    std::sort(got.begin(), got.end());
    std::sort(expect.begin(), expect.end());
    EXPECT_EQ(got, expect);  // recall 1.0 as sets too
}

TEST(IndexerTopk, RequestsUseTheirOwnKeys) {
    std::mt19937 rng(56);
    auto be = make_cpu_backend(Numerics::fp32());
    KeySetup ks = write_keys(*be, {5, 8}, rng);
    Tensor q = random_f32({2, 2, 128}, rng), w = random_f32({2, 2}, rng);
    IndexerTopkResult r = be->indexer_topk({q, w, &ks.store, ks.key_slots, testing::i32_tensor({1, 0}),
                                            testing::i32_tensor({7, 4}), 16, true});
    for (int t = 0; t < 2; ++t) {
        const int req = t == 0 ? 1 : 0, base = t == 0 ? 5 : 0, visible = t == 0 ? 8 : 5;
        for (int s = 0; s < visible; ++s) {
            EXPECT_NEAR(r.scores.data<float>()[t * 8 + s],
                        direct_score(q, w, t, ks.keys.data<float>() + (base + s) * 128, false), 1e-5);
        }
        int valid = 0;
        for (int i = 0; i < 16; ++i) {
            const int32_t pos = r.positions.data<int32_t>()[t * 16 + i];
            if (pos < 0) continue;
            ++valid;
            EXPECT_EQ(r.slots.data<int32_t>()[t * 16 + i], ks.key_slots.data<int32_t>()[req * 8 + pos]);
        }
        EXPECT_EQ(valid, visible);
    }
}

TEST(CausalIndices, AllVisiblePositionsAscending) {
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor key_slots = testing::i32_tensor({10, 11, 12, 13, 20, 21, -1, -1}, {2, 4});
    IndexerTopkResult r = be->causal_indices({key_slots, testing::i32_tensor({0, 1}), testing::i32_tensor({3, 1}), 5});
    const int32_t pos[] = {0, 1, 2, 3, -1, 0, 1, -1, -1, -1};
    const int32_t slot[] = {10, 11, 12, 13, -1, 20, 21, -1, -1, -1};
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(r.positions.data<int32_t>()[i], pos[i]) << i;
        EXPECT_EQ(r.slots.data<int32_t>()[i], slot[i]) << i;
    }
}

}  // namespace
}  // namespace dsa::backend
