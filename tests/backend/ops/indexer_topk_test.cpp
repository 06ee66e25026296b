// The indexer's exact top-k kernels on crafted score rows, against a host sort of the same rows (score
// descending, equal scores by ascending position, -0 equal to +0): positions and slots must match exactly. Rows:
// random, lengths around k, all equal, few distinct values, a spike of equal scores, +-0, -inf blocks, sorted
// runs, a range of a few ulps, extreme magnitudes; batches whose shapes pick different cluster sizes; padded
// widths (rows far shorter than max_len, +inf garbage past their lengths that must never be read); a CUDA-graph
// replay on new rows. The global-memory kernel, the shared-memory one, its candidate path, the fast kernel and the
// lean one (DSA_INDEXER_TOPK=global / smem / cand / fast / lean) run as separate tests, each also with the selection
// in ascending position order (DSA_INDEXER_TOPK_ORDER=position: the host's first min(k, n) sorted by position).
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
    }
    bool position_order_ = false;  // set by the position-order tests (through DSA_INDEXER_TOPK_ORDER)

    // The device inputs and outputs of one launch over `rows` (row t = request t, limit = its length - 1; max_len =
    // the longest row unless given; positions past a row's length hold `pad`; slots 7 * pos + t).
    struct Batch {
        Tensor scores, slots, request, limit, pos, out;
        int64_t T = 0, max_len = 0, k = 0;
    };
    static void host_inputs(const Rows& rows, int64_t max_len, float pad, Tensor& scores, Tensor& slots,
                            std::vector<int32_t>& request, std::vector<int32_t>& limit) {
        const int64_t T = static_cast<int64_t>(rows.size());
        scores = Tensor::empty({T, max_len}, DType::kF32);
        slots = Tensor::empty({T, max_len}, DType::kI32);
        request.assign(T, 0);
        limit.assign(T, 0);
        for (int64_t t = 0; t < T; ++t) {
            for (int64_t s = 0; s < max_len; ++s) {
                const bool in = s < static_cast<int64_t>(rows[t].size());
                scores.data<float>()[t * max_len + s] = in ? rows[t][s] : pad;
                slots.data<int32_t>()[t * max_len + s] = static_cast<int32_t>(7 * s + t);
            }
            request[t] = static_cast<int32_t>(t);
            limit[t] = static_cast<int32_t>(rows[t].size()) - 1;
        }
    }
    Batch upload(const Rows& rows, int64_t k, int64_t max_len, float pad) {
        Batch b;
        b.T = static_cast<int64_t>(rows.size());
        for (const auto& r : rows) max_len = std::max<int64_t>(max_len, static_cast<int64_t>(r.size()));
        b.max_len = max_len;
        b.k = k;
        Tensor scores, slots;
        std::vector<int32_t> request, limit;
        host_inputs(rows, max_len, pad, scores, slots, request, limit);
        b.scores = gpu_->to_device(scores);
        b.slots = gpu_->to_device(slots);
        b.request = gpu_->to_device(i32_tensor(request));
        b.limit = gpu_->to_device(i32_tensor(limit));
        b.pos = Tensor::empty({b.T, k}, DType::kI32, Device::kCUDA);
        b.out = Tensor::empty({b.T, k}, DType::kI32, Device::kCUDA);
        return b;
    }
    // New rows (as many, no longer than b.max_len) into b's device buffers, in place (for a graph replay).
    void reupload(Batch& b, const Rows& rows, float pad) {
        Tensor scores, slots;
        std::vector<int32_t> request, limit;
        host_inputs(rows, b.max_len, pad, scores, slots, request, limit);
        ASSERT_EQ(cudaMemcpy(b.scores.data<float>(), scores.data<float>(), b.T * b.max_len * 4, cudaMemcpyHostToDevice),
                  cudaSuccess);
        ASSERT_EQ(cudaMemcpy(b.limit.data<int32_t>(), limit.data(), b.T * 4, cudaMemcpyHostToDevice), cudaSuccess);
    }
    void launch(Batch& b) {
        cuda::launch_indexer_topk(
            {b.scores.data<float>(), b.slots.data<int32_t>(), b.request.data<int32_t>(), b.limit.data<int32_t>(),
             b.pos.data<int32_t>(), b.out.data<int32_t>(), b.T, b.T, b.max_len, b.k},
            cuda().stream());
    }
    // Checks every row of b's outputs against host_topk of `rows`.
    void verify(const char* kernel, const std::string& name, const Rows& rows, const Batch& b) {
        ASSERT_EQ(cudaStreamSynchronize(cuda().stream()), cudaSuccess) << name;
        Tensor pos = gpu_->to_host(b.pos), out = gpu_->to_host(b.out);
        const int64_t k = b.k;
        int64_t bad_rows = 0;
        for (int64_t t = 0; t < b.T; ++t) {
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
        std::cout << "[ metric ] indexer_topk_kernel " << kernel << (position_order_ ? " position-order " : " ") << name
                  << " rows=" << b.T << " max_len=" << b.max_len << " bad_rows=" << bad_rows << std::endl;
    }
    void select(const char* kernel) {
        setenv("DSA_INDEXER_TOPK", kernel, 1);
        setenv("DSA_INDEXER_TOPK_ORDER", position_order_ ? "position" : "score", 1);
    }

    // Runs launch_indexer_topk on the rows (see upload) and checks every row against host_topk.
    void check(const char* kernel, const std::string& name, const Rows& rows, int64_t k, int64_t max_len = 0,
               float pad = std::numeric_limits<float>::quiet_NaN()) {
        select(kernel);
        Batch b = upload(rows, k, max_len, pad);
        launch(b);
        verify(kernel, name, rows, b);
    }

    // A CUDA graph of one launch on `first`, replayed on `second` (the same shape) in the same buffers.
    void check_graph(const char* kernel, const std::string& name, const Rows& first, const Rows& second, int64_t k,
                     int64_t max_len, float pad) {
        select(kernel);
        Batch b = upload(first, k, max_len, pad);
        launch(b);  // eager first: kernel attributes set outside the capture
        verify(kernel, name + " eager", first, b);
        auto graph = gpu_->capture_graph([&] { launch(b); });
        ASSERT_TRUE(graph.is_ok()) << graph.status().message();
        reupload(b, second, pad);
        gpu_->replay_graph(**graph);
        verify(kernel, name + " replay", second, b);
    }

    std::vector<float> normal_row(int64_t n, float stddev = 1.0f) {
        std::normal_distribution<float> d(0.0f, stddev);
        std::vector<float> r(n);
        for (float& x : r) x = d(rng_);
        return r;
    }

    void run_all(const char* kernel);
    void run_padded(const char* kernel);
    void run_widths(const char* kernel);
};

void IndexerTopkKernelTest::run_all(const char* kernel) {
    constexpr int64_t kK = 2048;
    // Lengths around k, one row each (batch 1: the widest cluster).
    for (const int64_t n : {int64_t{1}, int64_t{2}, int64_t{2047}, int64_t{2048}, int64_t{2049}, int64_t{4096},
                            int64_t{5001}, int64_t{65536}, int64_t{131072}}) {
        check(kernel, "random n=" + std::to_string(n), {normal_row(n)}, kK);
    }
    // Rows of every length in one batch, max_len wider than every row.
    check(kernel, "mixed lengths",
          {normal_row(1), normal_row(2048), normal_row(2049), normal_row(3000), normal_row(40000), normal_row(100)}, kK,
          50000);
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
    for (const auto& [n, above, period] :
         {std::array<size_t, 3>{6000, 6, 4}, std::array<size_t, 3>{6000, 4, 8}, std::array<size_t, 3>{4000, 2, 40}}) {
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

// Decode-like widths 2048..131072 at B = 1, 3, 64: real lengths below the width (a padded graph bucket, +inf past
// them), rows shorter than k, an all -inf row, duplicated scores (ties at the threshold), a row of the full width.
void IndexerTopkKernelTest::run_widths(const char* kernel) {
    constexpr int64_t kK = 2048;
    const float inf = std::numeric_limits<float>::infinity();
    for (const int64_t width : {int64_t{2048}, int64_t{4096}, int64_t{8192}, int64_t{12288}, int64_t{16384},
                                int64_t{65536}, int64_t{131072}}) {
        for (const int64_t batch : {int64_t{1}, int64_t{3}, int64_t{64}}) {
            if (width >= 65536 && batch == 64) continue;  // the host reference's time; 64 x 64K runs in run_all
            Rows rows;
            for (int64_t i = 0; i < batch; ++i) {
                const int64_t full = width - 4 * i;  // real lengths below the width
                switch (i % 6) {
                    case 0:
                        rows.push_back(normal_row(std::max<int64_t>(full, 1)));
                        break;
                    case 1:
                        rows.push_back(normal_row(std::min<int64_t>(kK - 1 - i, full)));  // shorter than k
                        break;
                    case 2:  // all -inf (more than k positions where the width allows)
                        rows.push_back(std::vector<float>(std::min<int64_t>(full, kK + 100 + i), -inf));
                        break;
                    case 3: {  // duplicated scores: 16 values, crowded ties at the threshold
                        std::vector<float> r = normal_row(std::max<int64_t>(full / 2 + 3, 1));
                        for (float& x : r) x = std::round(x * 4.0f) / 4.0f;
                        rows.push_back(r);
                        break;
                    }
                    case 4:  // duplicated pairs (every score twice)
                    {
                        std::vector<float> r = normal_row(std::max<int64_t>(full - 1001, 1));
                        for (size_t j = 1; j < r.size(); j += 2) r[j] = r[j - 1];
                        rows.push_back(r);
                        break;
                    }
                    default:
                        rows.push_back(normal_row(std::max<int64_t>(full / 3 + 7 * i, 1)));
                }
            }
            check(kernel, "width " + std::to_string(width) + " batch " + std::to_string(batch), rows, kK, width, inf);
        }
    }
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

// DSA_INDEXER_TOPK=fast: its own kernel (the candidate path, the radix fallback for crowded threshold bins such as
// the all-equal and spike rows; the write pass from the masks on 32K segments (batch 64 x 64K, 34 x 128K), from the
// bins on shorter ones; rows within one segment of <= 16K positions on lean_row); score order runs cand.
TEST_F(IndexerTopkKernelTest, FastKernelPositionOrder) {
    position_order_ = true;
    run_all("fast");
    run_widths("fast");
}

TEST_F(IndexerTopkKernelTest, FastKernelExact) { run_all("fast"); }

// DSA_INDEXER_TOPK=lean: the rows in registers, one CTA per row up to 16K positions, clusters of up to 8 CTAs of
// <= 8K (wider rows, odd widths: the fast kernel): lengths around k, crowded bins (its radix fallback alone and in
// a cluster, the bitonic ranking of up to 2048 candidates), decode-like widths and padded buckets.
TEST_F(IndexerTopkKernelTest, LeanKernelPositionOrder) {
    position_order_ = true;
    run_all("lean");
    run_widths("lean");
    run_padded("lean");
}

// Padded widths for every kernel (position order, the default) and for the default dispatch in score order.
TEST_F(IndexerTopkKernelTest, PaddedWidthsPositionOrder) {
    position_order_ = true;
    for (const char* kernel : {"auto", "global", "smem", "cand", "fast"}) run_padded(kernel);
}

TEST_F(IndexerTopkKernelTest, PaddedWidthsScoreOrder) { run_padded("auto"); }

TEST_F(IndexerTopkKernelTest, DefaultWidthsPositionOrder) {
    position_order_ = true;
    run_widths("auto");
}

// A small set for compute-sanitizer (memcheck, racecheck): the lean kernel alone and in clusters, the fast kernel's
// lone-CTA (lean_row) and cluster rows, crowded bins (radix fallback), a bitonic candidate ranking, padded rows.
TEST_F(IndexerTopkKernelTest, SanitizerSubsetPositionOrder) {
    position_order_ = true;
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> eight(10000);
    for (size_t i = 0; i < eight.size(); ++i) eight[i] = static_cast<float>((i * 37) % 8) - 3.0f;
    for (const char* kernel : {"lean", "fast"}) {
        check(kernel, "sanitizer 4K", {normal_row(4096)}, 2048);
        check(kernel, "sanitizer equal", {std::vector<float>(6000, 0.5f)}, 2048, 8192, inf);
        check(kernel, "sanitizer 8 values", {eight}, 2048, 16384, inf);
        check(kernel, "sanitizer B=3 16K", {normal_row(16000), normal_row(1000), normal_row(9000)}, 2048, 16384, inf);
        check(kernel, "sanitizer 64K", {normal_row(65536)}, 2048);
        check(kernel, "sanitizer equal 64K", {std::vector<float>(65536, 0.25f)}, 2048);
    }
}

// A CUDA graph of one launch replayed on new rows of other lengths (the work follows the device-side limits):
// B = 1 / 4K, B = 3 in a 16K bucket, B = 64 / 4K, B = 1 / 64K and B = 2 in a 128K bucket.
TEST_F(IndexerTopkKernelTest, GraphReplayPositionOrder) {
    position_order_ = true;
    const float inf = std::numeric_limits<float>::infinity();
    struct Case {
        int64_t batch, width;
    };
    for (const char* kernel : {"auto", "fast", "lean", "cand"}) {
        for (const Case c : {Case{1, 4096}, Case{3, 16384}, Case{64, 4096}, Case{1, 65536}, Case{2, 131072}}) {
            Rows first, second;
            for (int64_t i = 0; i < c.batch; ++i) {
                first.push_back(normal_row(c.width - 8 * i));
                second.push_back(normal_row(i % 2 ? c.width / 2 + 5 : std::max<int64_t>(c.width - 3 * i - 1, 1)));
            }
            check_graph(kernel, "graph B=" + std::to_string(c.batch) + " width " + std::to_string(c.width), first,
                        second, 2048, c.width, inf);
        }
    }
}

}  // namespace
}  // namespace dsa::backend::testing
