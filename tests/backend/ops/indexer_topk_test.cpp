// The indexer's exact top-k kernels on crafted score rows, against a host sort of the same rows (score
// descending, equal scores by ascending position, -0 equal to +0): positions and slots must match exactly. Rows:
// random, lengths around k, all equal, few distinct values, a spike of equal scores, +-0, -inf blocks, sorted
// runs, a range of a few ulps, extreme magnitudes; batches whose shapes pick different cluster sizes; padded
// widths (rows far shorter than max_len, +inf garbage past their lengths that must never be read). The global-
// memory kernel, the shared-memory one, its candidate path and the fast kernel (DSA_INDEXER_TOPK=global / smem /
// cand / fast / fastb / fastm) run as separate tests, each also with the selection in ascending position order
// (DSA_INDEXER_TOPK_ORDER=position: the host's first min(k, n) sorted by position).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "backend/cuda/indexer_kernels.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

using Rows = std::vector<std::vector<float>>;

// The expected positions of one row: the first min(k, n) of the host order (sorted by position when
// position_order), then -1.
std::vector<int32_t> host_topk(const std::vector<float>& row, int64_t k, bool position_order) {
    std::vector<int32_t> idx(row.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    idx.resize(std::min<size_t>(idx.size(), static_cast<size_t>(k)));
    if (position_order) std::sort(idx.begin(), idx.end());
    idx.resize(static_cast<size_t>(k), -1);
    return idx;
}

class IndexerTopkKernelTest : public CudaVsCpuTest {
protected:
    ~IndexerTopkKernelTest() override {
        unsetenv("DSA_INDEXER_TOPK");
        unsetenv("DSA_INDEXER_TOPK_ORDER");
        unsetenv("DSA_INDEXER_TOPK_SEG");
        unsetenv("DSA_INDEXER_TOPK_CLUSTER");
    }
    bool position_order_ = false;  // set by the position-order tests (through DSA_INDEXER_TOPK_ORDER)

    // Runs launch_indexer_topk on the rows (row t = request t, limit = its length - 1; max_len = the longest row
    // unless given; positions past a row's length hold `pad`) and checks every row against host_topk. Slots are
    // 7 * pos + t (checked through the output).
    void check(const char* kernel, const std::string& name, const Rows& rows, int64_t k, int64_t max_len = 0,
               float pad = std::numeric_limits<float>::quiet_NaN()) {
        setenv("DSA_INDEXER_TOPK", kernel, 1);
        setenv("DSA_INDEXER_TOPK_ORDER", position_order_ ? "position" : "score", 1);
        const int64_t T = static_cast<int64_t>(rows.size());
        for (const auto& r : rows) max_len = std::max<int64_t>(max_len, static_cast<int64_t>(r.size()));
        Tensor scores = Tensor::empty({T, max_len}, DType::kF32);
        Tensor slots = Tensor::empty({T, max_len}, DType::kI32);
        std::vector<int32_t> request(T), limit(T);
        for (int64_t t = 0; t < T; ++t) {
            for (int64_t s = 0; s < max_len; ++s) {
                const bool in = s < static_cast<int64_t>(rows[t].size());
                scores.data<float>()[t * max_len + s] = in ? rows[t][s] : pad;
                slots.data<int32_t>()[t * max_len + s] = static_cast<int32_t>(7 * s + t);
            }
            request[t] = static_cast<int32_t>(t);
            limit[t] = static_cast<int32_t>(rows[t].size()) - 1;
        }
        Tensor d_scores = gpu_->to_device(scores), d_slots = gpu_->to_device(slots);
        Tensor d_req = gpu_->to_device(i32_tensor(request)), d_lim = gpu_->to_device(i32_tensor(limit));
        Tensor d_pos = Tensor::empty({T, k}, DType::kI32, Device::kCUDA);
        Tensor d_out = Tensor::empty({T, k}, DType::kI32, Device::kCUDA);
        cuda::launch_indexer_topk({d_scores.data<float>(), d_slots.data<int32_t>(), d_req.data<int32_t>(),
                                   d_lim.data<int32_t>(), d_pos.data<int32_t>(), d_out.data<int32_t>(), T, T, max_len,
                                   k},
                                  cuda().stream());
        ASSERT_EQ(cudaStreamSynchronize(cuda().stream()), cudaSuccess) << name;
        Tensor pos = gpu_->to_host(d_pos), out = gpu_->to_host(d_out);
        int64_t bad_rows = 0;
        for (int64_t t = 0; t < T; ++t) {
            const std::vector<int32_t> want = host_topk(rows[t], k, position_order_);
            for (int64_t i = 0; i < k; ++i) {
                const int32_t p = pos.data<int32_t>()[t * k + i], sl = out.data<int32_t>()[t * k + i];
                const int32_t want_slot = want[i] < 0 ? -1 : static_cast<int32_t>(7 * want[i] + t);
                if (p == want[i] && sl == want_slot) continue;
                ADD_FAILURE() << name << " (" << kernel << ") row " << t << " of " << rows[t].size() << " entry " << i
                              << ": position " << p << " slot " << sl << ", want " << want[i] << " / " << want_slot;
                ++bad_rows;
                break;
            }
        }
        std::cout << "[ metric ] indexer_topk_kernel " << kernel << (position_order_ ? " position-order " : " ")
                  << name << " rows=" << T << " bad_rows=" << bad_rows << std::endl;
    }

    std::vector<float> normal_row(int64_t n, float stddev = 1.0f) {
        std::normal_distribution<float> d(0.0f, stddev);
        std::vector<float> r(n);
        for (float& x : r) x = d(rng_);
        return r;
    }

    void run_all(const char* kernel);
    void run_padded(const char* kernel);
};

void IndexerTopkKernelTest::run_all(const char* kernel) {
    constexpr int64_t kK = 2048;
    // Lengths around k, one row each (batch 1: the widest cluster).
    for (const int64_t n : {int64_t{1}, int64_t{2}, int64_t{2047}, int64_t{2048}, int64_t{2049}, int64_t{4096},
                            int64_t{5001}, int64_t{65536}, int64_t{131072}}) {
        check(kernel, "random n=" + std::to_string(n), {normal_row(n)}, kK);
    }
    // Rows of every length in one batch, max_len wider than every row.
    check(kernel, "mixed lengths", {normal_row(1), normal_row(2048), normal_row(2049), normal_row(3000),
                                    normal_row(40000), normal_row(100)},
          kK, 50000);
    // Adversarial value patterns.
    Rows adv;
    adv.push_back(std::vector<float>(6000, 0.0f));  // all equal
    {
        std::vector<float> r(10000);
        for (size_t i = 0; i < r.size(); ++i) r[i] = static_cast<float>((i * 37) % 8) - 3.0f;  // 8 values
        adv.push_back(r);
    }
    {
        std::vector<float> r = normal_row(60000);
        for (size_t i = 0; i < r.size(); ++i) {
            if (i % 50 != 0) r[i] = 0.25f;  // a spike of equal scores with a few others around it
        }
        adv.push_back(r);
    }
    {
        std::vector<float> r = normal_row(7000);
        for (size_t i = 0; i < r.size(); i += 3) r[i] = (i / 3) % 2 ? 0.0f : -0.0f;  // +-0 ties
        adv.push_back(r);
    }
    {
        std::vector<float> r = normal_row(9000);
        for (size_t i = 0; i < r.size(); ++i) {
            if ((i / 700) % 2) r[i] = -std::numeric_limits<float>::infinity();  // masked blocks
        }
        adv.push_back(r);
    }
    {
        std::vector<float> r(3000, -std::numeric_limits<float>::infinity());  // fewer finite keys than k
        for (size_t i = 0; i < r.size(); i += 5) r[i] = static_cast<float>(i);
        adv.push_back(r);
    }
    {
        std::vector<float> up(70000), down(70000);
        for (size_t i = 0; i < up.size(); ++i) {
            up[i] = static_cast<float>(i) * 0.001f;
            down[i] = -static_cast<float>(i) * 0.001f;
        }
        adv.push_back(up);
        adv.push_back(down);
    }
    {
        std::vector<float> r(12000);
        float v = 1.0f;
        for (size_t i = 0; i < r.size(); ++i) {
            r[i] = v;
            if (i % 2000 == 1999) v = std::nextafter(v, 2.0f);  // 6 values a few ulps apart
        }
        adv.push_back(r);
    }
    {
        std::vector<float> r = normal_row(9000);
        r[10] = 3.0e38f;
        r[20] = -3.0e38f;
        r[30] = std::numeric_limits<float>::infinity();
        r[40] = 1e-38f;
        adv.push_back(r);
    }
    {
        std::vector<float> r(4096);  // k ones among zeros: the top value bin is taken whole
        for (size_t i = 0; i < r.size(); ++i) r[i] = (i * 7) % 4 < 2 ? 1.0f : 0.0f;
        adv.push_back(r);
    }
    // Ties at the k-th key crowd its value bin: {n, period of the keys above, period of the ties} = 1000 above and
    // 1500 ties, 1500 and 750, 2000 and 100 (candidate ranking by sort, by sort, by count).
    for (const auto& [n, above, period] : {std::array<size_t, 3>{6000, 6, 4}, std::array<size_t, 3>{6000, 4, 8},
                                           std::array<size_t, 3>{4000, 2, 40}}) {
        std::vector<float> r(n);
        for (size_t i = 0; i < r.size(); ++i) {
            r[i] = i % above == 0    ? 5.0f + 1e-4f * static_cast<float>(i)
                   : i % period == 1 ? 2.0f
                                     : -0.1f * static_cast<float>(i % 7);
        }
        adv.push_back(r);
    }
    check(kernel, "adversarial batch", adv, kK);
    for (size_t i = 0; i < adv.size(); ++i) check(kernel, "adversarial row " + std::to_string(i), {adv[i]}, kK);
    // Decode-like batches (the cluster size follows the batch): 64 x 64K and 128 x 4096.
    Rows b64, b128;
    for (int i = 0; i < 64; ++i) b64.push_back(normal_row(i % 8 == 0 ? 1000 + i : 65536 - 17 * i, 2.0f));
    for (int i = 0; i < 128; ++i) b128.push_back(normal_row(4096 - i));
    check(kernel, "batch 64 x 64K", b64, kK);
    check(kernel, "batch 128 x 4K", b128, kK);
    // Other widths: the largest k and a small one.
    check(kernel, "k=8192", {normal_row(20000), normal_row(8192), normal_row(9000)}, 8192);
    check(kernel, "k=64", {normal_row(5000), normal_row(64), normal_row(65)}, 64);
}

// Graph-bucket widths: rows of real lengths far below max_len (131072), +inf past them (selected if ever read).
void IndexerTopkKernelTest::run_padded(const char* kernel) {
    constexpr int64_t kK = 2048, kWide = 131072;
    const float inf = std::numeric_limits<float>::infinity();
    for (const int64_t n : {int64_t{1}, int64_t{2048}, int64_t{2049}, int64_t{4096}, int64_t{16000}, int64_t{65536}}) {
        check(kernel, "padded n=" + std::to_string(n), {normal_row(n)}, kK, kWide, inf);
    }
    // Crowded threshold bins in short rows of a wide cluster (the radix fallback of a CTA working alone).
    check(kernel, "padded all equal n=3000", {std::vector<float>(3000, 0.5f)}, kK, kWide, inf);
    {
        std::vector<float> r = normal_row(4000);
        for (size_t i = 0; i < r.size(); ++i) {
            if (i % 40 != 0) r[i] = 0.25f;
        }
        check(kernel, "padded spike n=4000", {r}, kK, kWide, inf);
    }
    Rows b64;
    for (int i = 0; i < 64; ++i) b64.push_back(normal_row(i % 2 ? 65536 - 17 * i : 4096 + 5 * i, 2.0f));
    check(kernel, "padded batch 64 x 4K / 64K", b64, kK, kWide, inf);
    // 34 rows of nearly the whole width: two CTAs per row, each segment longer than the fast kernel's cache.
    Rows b34;
    for (int i = 0; i < 34; ++i) b34.push_back(normal_row(kWide - 17 * i));
    check(kernel, "batch 34 x 128K", b34, kK, kWide, inf);
}

TEST_F(IndexerTopkKernelTest, GlobalKernelExact) { run_all("global"); }

TEST_F(IndexerTopkKernelTest, SmemKernelExact) { run_all("smem"); }

TEST_F(IndexerTopkKernelTest, GlobalKernelPositionOrder) {
    position_order_ = true;
    run_all("global");
}

TEST_F(IndexerTopkKernelTest, SmemKernelPositionOrder) {
    position_order_ = true;
    run_all("smem");
}

// DSA_INDEXER_TOPK=cand: the shared-memory kernel's candidate path (position order; the radix path where the
// threshold bin holds more keys than the buffer, e.g. the all-equal and spike rows) and score order (its radix path).
TEST_F(IndexerTopkKernelTest, CandKernelExact) { run_all("cand"); }

TEST_F(IndexerTopkKernelTest, CandKernelPositionOrder) {
    position_order_ = true;
    run_all("cand");
}

// DSA_INDEXER_TOPK=fast (the default in position order on rows wider than 64K): its own kernel (the candidate path, the radix fallback
// for crowded threshold bins such as the all-equal and spike rows; write pass by rule); score order runs cand.
TEST_F(IndexerTopkKernelTest, FastKernelPositionOrder) {
    position_order_ = true;
    run_all("fast");
}

TEST_F(IndexerTopkKernelTest, FastKernelExact) { run_all("fast"); }

// DSA_INDEXER_TOPK=fastm: the fast kernel writing from the gather pass's masks (also with small segments and
// 16-CTA clusters).
TEST_F(IndexerTopkKernelTest, FastMasksKernelPositionOrder) {
    position_order_ = true;
    run_all("fastm");
    setenv("DSA_INDEXER_TOPK_CLUSTER", "16", 1);
    setenv("DSA_INDEXER_TOPK_SEG", "512", 1);
    run_all("fastm");
}

// The fast kernel with small segments (DSA_INDEXER_TOPK_SEG=256): clusters of up to 8 CTAs on short rows, CTAs
// with empty segments; its write pass from the bins everywhere (DSA_INDEXER_TOPK=fastb), long segments too.
TEST_F(IndexerTopkKernelTest, FastKernelSmallSegments) {
    position_order_ = true;
    setenv("DSA_INDEXER_TOPK_SEG", "256", 1);
    run_all("fastb");
    run_padded("fastb");
}

// The fast kernel with clusters of up to 16 CTAs (DSA_INDEXER_TOPK_CLUSTER=16: where the device holds them, else 8)
// and small segments, so that short rows use the 16-CTA clusters too.
TEST_F(IndexerTopkKernelTest, FastKernelCluster16) {
    position_order_ = true;
    setenv("DSA_INDEXER_TOPK_CLUSTER", "16", 1);
    setenv("DSA_INDEXER_TOPK_SEG", "512", 1);
    run_all("fast");
    run_padded("fast");
}

// Padded widths for every kernel (position order, the default) and for the default dispatch in score order.
TEST_F(IndexerTopkKernelTest, PaddedWidthsPositionOrder) {
    position_order_ = true;
    for (const char* kernel : {"auto", "global", "smem", "cand", "fast", "fastm"}) run_padded(kernel);
}

TEST_F(IndexerTopkKernelTest, PaddedWidthsScoreOrder) { run_padded("auto"); }

}  // namespace
}  // namespace dsa::backend::testing
