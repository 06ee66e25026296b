// CUDA vs CPU for the lightning indexer at DeepSeek-V3.2 shapes (H_I 64, dim 128, index_topk 2048) and other
// head counts: key writes byte-exact in both store formats; F32-key logits bit-exact (positions equal the CPU's in
// order); FP8 logits (the default tmaef kernel; the others in EveryFp8LogitsKernel and Tma*) within a stated bound
// per row (expect_scores_close); every row's positions equal the exact top-k of the GPU's own scores, and differ
// from the CPU's selection only by near ties. Rows of duplicated keys (exact ties) match the CPU's positions.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>
#include <set>
#include <string>

#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

constexpr int64_t kHeads = 64, kDim = kIndexerHeadDim, kTopk = 2048;

Numerics fp8_numerics(bool ue8m0) {
    Numerics n = Numerics::bf16();
    n.indexer_fp8 = true;
    n.ue8m0_scales = ue8m0;
    return n;
}

// logits_kernel: the FP8 logits kernel (DSA_INDEXER_LOGITS; nullptr: the default, tmaef). all_cases() runs the
// default; EveryFp8LogitsKernel runs each kernel.
struct Case {
    const char* name;
    Numerics numerics;
    const char* logits_kernel = nullptr;
};

std::vector<Case> all_cases() {
    return {{"fp8_ue8m0", fp8_numerics(true)},
            {"fp8_f32_scales", fp8_numerics(false)},
            {"f32_keys", Numerics::bf16()}};
}

// A paged store of both backends holding the same bytes.
struct Stores {
    IndexerKeyStore cpu, gpu;
};

IndexerKeyStore zero_store(IndexerKeyFormat f, int64_t pages) {
    IndexerKeyStore s{Tensor::empty({pages, indexer_page_bytes(f)}, DType::kU8), f};
    std::memset(s.data.raw_data(), 0, s.data.nbytes());
    return s;
}

// Bound of the wgmma kernel's max |score diff| / max sum of |terms| per row (RowStats::worst_term_rel): the H200
// gave 5-9e-5 of max |score| on rows whose max |score| is about a third of their max sum of |terms| (~3e-5).
constexpr double kWgmmaTermTol = 2e-4;
// The same bound for the chained kernels (the default, chain, chain4, tma*: a block's 4 k-steps accumulate in the
// tensor core, as in DeepGEMM's MQA logits that SGLang runs): the H200 gave 1.3-4.7e-4 of the max sum of |terms|.
constexpr double kChainTermTol = 1e-3;

// Whether DSA_INDEXER_LOGITS = kernel (nullptr: unset, the default) runs a chained wgmma kernel.
bool chained_logits(const char* kernel) {
    return kernel == nullptr || std::strcmp(kernel, "auto") == 0 || std::strcmp(kernel, "chain") == 0 ||
           std::strcmp(kernel, "chain4") == 0 || std::strncmp(kernel, "tma", 3) == 0;
}

// Rows whose threshold gap exceeds twice the kernel's error are checked strictly: at least 1 / share of the long
// rows must be (2: half; 4 for the chained FP8 kernels, whose larger error leaves fewer such gaps: 15-20 of 40 on
// the H200).
int64_t strict_share(bool fp8, const char* kernel) { return fp8 && chained_logits(kernel) ? 4 : 2; }

struct RowStats {
    int64_t long_rows = 0;  // rows with more than index_topk visible keys
    int64_t eligible = 0;   // long rows whose threshold gap exceeds twice their max |score diff|
    double worst_rel = 0;   // max over rows of max |score diff| / max |score|
    // max over rows of max |score diff| / the row's largest sum of |terms| (sum_h |w_h| ReLU(q_h . k) times the key
    // scale): the error measure of a kernel whose products are summed in limited precision, which a row of few
    // keys whose weighted ReLUs nearly cancel does not inflate (0 when not computed).
    double worst_term_rel = 0;
    bool has_terms = false;  // worst_term_rel was computed
};

// The score tolerance of a case: F32 keys and the mma.sync FP8 kernels (f16, e4m3) 1e-4 of the row's max
// |score| (measured < 4e-7); the wgmma kernel (the FP8 default) kWgmmaTermTol of the row's max sum of |terms|
// (its FP8 tensor-core sums; max |score| would blow up on rows whose weighted ReLUs cancel).
void expect_scores_close(const Case& c, const RowStats& st, const std::string& name) {
    const bool chained = chained_logits(c.logits_kernel);
    const bool wgmma = c.numerics.indexer_fp8 && (chained || std::strcmp(c.logits_kernel, "wgmma") == 0);
    if (wgmma) {
        EXPECT_TRUE(st.has_terms) << name << ": the sums of |terms| were not computed";
        EXPECT_LE(st.worst_term_rel, chained ? kChainTermTol : kWgmmaTermTol) << name;
    } else {
        EXPECT_LE(st.worst_rel, 1e-4) << name;
    }
}

class IndexerOpsTest : public CudaVsCpuTest {
protected:
    IndexerOpsTest() {
        const char* v = std::getenv(kKernelEnv);
        saved_kernel_ = v != nullptr ? std::optional<std::string>(v) : std::nullopt;
    }
    ~IndexerOpsTest() override {
        if (saved_kernel_) {
            setenv(kKernelEnv, saved_kernel_->c_str(), 1);
        } else {
            unsetenv(kKernelEnv);
        }
    }

    // Backends for the case, with its FP8 logits kernel selected.
    void make_case(const Case& c) {
        make(c.numerics);
        if (c.logits_kernel != nullptr) {
            setenv(kKernelEnv, c.logits_kernel, 1);
        } else {
            unsetenv(kKernelEnv);
        }
    }

    // Requests with the given lengths: keys (random, or `distinct` vectors repeated when > 0) written by the CPU
    // backend into shuffled slots (paged_slots_: page by page, see paged_slot_rows); the GPU store gets the same
    // bytes. key_slots is [requests, max(lengths, width)] (-1 past each length), as a padded graph buffer would be.
    void build(const std::vector<int64_t>& lengths, int distinct = 0, int64_t width = 0) {
        const int64_t total = std::accumulate(lengths.begin(), lengths.end(), int64_t{0});
        max_len_ = std::max(width, *std::max_element(lengths.begin(), lengths.end()));
        key_slots_ = Tensor::empty({static_cast<int64_t>(lengths.size()), max_len_}, DType::kI32);
        std::vector<int32_t> written;
        const int64_t pages = paged_slots_ ? paged_slot_rows(lengths, written) : shuffled_slot_rows(lengths, written);
        Tensor k = random_act({total, kDim}, rng_);
        if (distinct > 0) {
            for (int64_t i = distinct; i < total; ++i) {
                std::memcpy(k.data<float>() + i * kDim, k.data<float>() + (i % distinct) * kDim, kDim * 4);
            }
        }
        const IndexerKeyFormat f = cpu_->numerics().indexer_key_format();
        stores_.cpu = zero_store(f, pages);
        cpu_->indexer_k_write({k, i32_tensor(written), &stores_.cpu});
        stores_.gpu = {gpu_->to_device(stores_.cpu.data), f};
    }

    // key_slots_ rows of distinct slots shuffled one by one (no block is a page); `written` gets the slots in key
    // order. Returns the store's page count.
    int64_t shuffled_slot_rows(const std::vector<int64_t>& lengths, std::vector<int32_t>& written) {
        const int64_t total = std::accumulate(lengths.begin(), lengths.end(), int64_t{0});
        const int64_t pages = (total + kIndexerPageSize - 1) / kIndexerPageSize + 3;
        std::vector<int32_t> perm(pages * kIndexerPageSize);
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng_);
        for (size_t r = 0; r < lengths.size(); ++r) {
            for (int64_t p = 0; p < max_len_; ++p) {
                int32_t slot = -1;
                if (p < lengths[r]) {
                    slot = perm[written.size()];
                    written.push_back(slot);
                }
                key_slots_.data<int32_t>()[r * max_len_ + p] = slot;
            }
        }
        return pages;
    }

    // key_slots_ rows as the page allocator lays them out: each 64-key block of a request is one page (pages in
    // shuffled order), except every 13th block, whose page has two slots swapped, and every 17th, which is a
    // contiguous run starting mid-page (slots 32.. of a page pair of its own): both must take a gather path.
    int64_t paged_slot_rows(const std::vector<int64_t>& lengths, std::vector<int32_t>& written) {
        int64_t blocks = 0;
        for (const int64_t len : lengths) blocks += (len + kIndexerPageSize - 1) / kIndexerPageSize;
        const int64_t shifted = blocks / 17 + 1, pages = blocks + 2 * shifted + 3;
        std::vector<int32_t> perm(blocks + 3);
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng_);
        int64_t block = 0, next_page = 0, next_pair = blocks + 3;
        for (size_t r = 0; r < lengths.size(); ++r) {
            int32_t* row = key_slots_.data<int32_t>() + r * max_len_;
            std::fill(row, row + max_len_, -1);
            for (int64_t b = 0; b * kIndexerPageSize < lengths[r]; ++b, ++block) {
                int64_t base = 0;
                if (block % 17 == 16) {
                    base = next_pair * kIndexerPageSize + 32;
                    next_pair += 2;
                } else {
                    base = perm[next_page++] * kIndexerPageSize;
                }
                for (int64_t k = 0; k < kIndexerPageSize && b * kIndexerPageSize + k < lengths[r]; ++k) {
                    const int64_t kk = block % 13 == 12 && (k == 1 || k == 2) ? 3 - k : k;  // swap keys 1 and 2
                    row[b * kIndexerPageSize + k] = static_cast<int32_t>(base + kk);
                }
            }
        }
        std::vector<bool> used(pages * kIndexerPageSize, false);
        for (size_t r = 0; r < lengths.size(); ++r) {
            for (int64_t p = 0; p < lengths[r]; ++p) {
                const int32_t slot = key_slots_.data<int32_t>()[r * max_len_ + p];
                EXPECT_TRUE(slot >= 0 && slot < pages * kIndexerPageSize && !used[slot]) << "slot " << slot;
                if (slot >= 0 && slot < pages * kIndexerPageSize) used[slot] = true;
                written.push_back(slot);
            }
        }
        return pages;
    }

    IndexerTopkParams params(const IndexerKeyStore& store, const Tensor& q, const Tensor& w, bool scores) const {
        return {q, w, &store, key_slots_, i32_tensor(request_), i32_tensor(limit_), kTopk, scores};
    }

    // Both backends on the current requests with random q and weights (the GPU's index tensors on the device
    // when device_index), every row checked by check_rows.
    RowStats compare_backends(const char* name, bool device_index);
    // DecodeBatch's requests and rows, compared by compare_backends.
    RowStats run_decode_batch(const char* name, bool device_index);
    // EveryFp8LogitsKernel's batch (64 requests, one of 40000 keys) at 64, 4, 12 and 32 heads on one kernel.
    void every_head_count(const char* kernel, bool ue8m0);
    // WgmmaLayoutProbe's one-hot head weights on one kernel.
    void layout_probe(const char* kernel);

    static constexpr const char* kKernelEnv = "DSA_INDEXER_LOGITS";
    std::optional<std::string> saved_kernel_;
    int64_t heads_ = kHeads;  // indexer heads of compare_backends
    int64_t max_len_ = 0;
    bool paged_slots_ = false;  // build(): page-aligned key blocks (paged_slot_rows) instead of shuffled slots
    Tensor key_slots_;
    Stores stores_;
    std::vector<int32_t> request_, limit_;
};

TEST_F(IndexerOpsTest, KeyWriteIsByteExact) {
    for (const Case& c : all_cases()) {
        make_case(c);
        const IndexerKeyFormat f = c.numerics.indexer_key_format();
        const int64_t pages = 7, tokens = 300;
        std::vector<int32_t> perm(pages * kIndexerPageSize);
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng_);
        std::vector<int32_t> slots(perm.begin(), perm.begin() + tokens);
        for (int64_t i = 0; i < tokens; i += 17) slots[i] = -1;  // skipped tokens
        Tensor k = random_act({tokens, kDim}, rng_, 2.0f);
        k.data<float>()[5 * kDim + 3] = 0.0f;
        for (int64_t i = 0; i < kDim; ++i) k.data<float>()[9 * kDim + i] = 0.0f;  // amax below the 1e-4 floor
        IndexerKeyStore cpu_store = zero_store(f, pages);
        IndexerKeyStore gpu_store{gpu_->to_device(cpu_store.data), f};
        cpu_->indexer_k_write({k, i32_tensor(slots), &cpu_store});
        gpu_->indexer_k_write({up(k), i32_tensor(slots), &gpu_store});
        Tensor got = gpu_->to_host(gpu_store.data);
        int64_t diff = 0, nonzero = 0;
        for (int64_t i = 0; i < got.numel(); ++i) {
            diff += got.data<uint8_t>()[i] != cpu_store.data.data<uint8_t>()[i];
            nonzero += cpu_store.data.data<uint8_t>()[i] != 0;
        }
        std::cout << "[ metric ] indexer_k_write " << c.name << " differing bytes=" << diff << " of " << got.numel()
                  << "\n";
        EXPECT_EQ(diff, 0) << c.name;
        EXPECT_GT(nonzero, got.numel() / 4) << c.name << ": the reference wrote almost nothing";
    }
}

// Per row: count/padding/slot checks; the GPU's positions equal an exact host sort of the GPU's own scores
// (score descending, equal scores by ascending position: recall 1.0 on its own logits; under
// the default position order (DSA_INDEXER_TOPK_ORDER unset) the same first min(k, n) in ascending position order); against the CPU's
// selection only near-tie swaps: a position in one set but not the other must have a CPU score within twice the
// row's max |score diff| of the CPU's k-th score. Rows whose threshold gap exceeds that bound count as "eligible"
// (their sets must be equal, which the near-tie rule then implies).
// terms (optional): the CPU's scores of the same rows with |w| (the sums of |terms|).
RowStats check_rows(const IndexerTopkResult& got, const IndexerTopkResult& ref, const Tensor& key_slots,
                    const std::vector<int32_t>& request, const std::vector<int32_t>& limit, const char* name,
                    const IndexerTopkResult* terms = nullptr) {
    const int64_t rows = static_cast<int64_t>(limit.size()), max_len = key_slots.dim(1);
    const char* order = std::getenv("DSA_INDEXER_TOPK_ORDER");
    const bool position_order = order == nullptr || std::strcmp(order, "score") != 0;  // position order: default
    int64_t eligible = 0, long_rows = 0;
    double worst_rel = 0, recall_sum = 0, worst_mag = 0, worst_term_rel = 0;
    int64_t worst_row = -1, worst_keys = 0, swaps = 0;
    for (int64_t t = 0; t < rows; ++t) {
        const int32_t* gp = got.positions.data<int32_t>() + t * kTopk;
        const int32_t* gs = got.slots.data<int32_t>() + t * kTopk;
        const int32_t* cp = ref.positions.data<int32_t>() + t * kTopk;
        const float* gsc = got.scores.data<float>() + t * max_len;
        const float* csc = ref.scores.data<float>() + t * max_len;
        const int64_t n = limit[t] + 1, keep = std::min(kTopk, n);
        double delta = 0, mag = 0, term_mag = 0;
        for (int64_t s = 0; s < max_len; ++s) {
            if (s >= n) {
                EXPECT_TRUE(std::isinf(gsc[s]) && gsc[s] < 0) << name << " row " << t << " pos " << s;
                continue;
            }
            EXPECT_TRUE(std::isfinite(gsc[s])) << name << " row " << t << " pos " << s;
            delta = std::max(delta, std::fabs(static_cast<double>(gsc[s]) - csc[s]));
            mag = std::max(mag, std::fabs(static_cast<double>(csc[s])));
            if (terms != nullptr)
                term_mag = std::max(term_mag, static_cast<double>(terms->scores.data<float>()[t * max_len + s]));
        }
        const double rel = mag > 0 ? delta / mag : delta;
        if (terms != nullptr) worst_term_rel = std::max(worst_term_rel, term_mag > 0 ? delta / term_mag : delta);
        if (rel > worst_rel || worst_row < 0) {
            worst_rel = rel;
            worst_row = t;
            worst_keys = n;
            worst_mag = mag;
        }
        // Exact top-k of the GPU's own scores.
        std::vector<int32_t> own(n);
        std::iota(own.begin(), own.end(), 0);
        std::stable_sort(own.begin(), own.end(), [&](int32_t a, int32_t b) { return gsc[a] > gsc[b]; });
        if (position_order) std::sort(own.begin(), own.begin() + keep);
        std::set<int32_t> gset;
        for (int64_t i = 0; i < kTopk; ++i) {
            const int32_t want = i < keep ? own[i] : -1;
            if (gp[i] != want) {
                ADD_FAILURE() << name << " row " << t << " entry " << i << " = " << gp[i] << ", the exact top-k of the "
                              << "GPU's scores has " << want;
                break;
            }
            if (want < 0) {
                EXPECT_EQ(gs[i], -1) << name << " row " << t << " entry " << i;
                continue;
            }
            EXPECT_EQ(gs[i], key_slots.data<int32_t>()[request[t] * max_len + gp[i]]) << name << " row " << t;
            gset.insert(gp[i]);
        }
        if (n <= kTopk) {
            recall_sum += 1.0;
            continue;
        }
        long_rows += 1;
        std::vector<float> sorted(csc, csc + n);
        std::sort(sorted.begin(), sorted.end(), std::greater<float>());
        const double kth = sorted[kTopk - 1], bound = 2 * delta + 1e-30;
        eligible += sorted[kTopk - 1] - sorted[kTopk] > 2 * delta;
        std::set<int32_t> cset(cp, cp + keep);
        int64_t hits = 0;
        for (const int32_t g : gset) {
            if (cset.count(g)) {
                ++hits;
                continue;
            }
            ++swaps;
            EXPECT_LE(std::fabs(csc[g] - kth), bound) << name << " row " << t << ": GPU-only position " << g
                                                       << " is no near tie (CPU score " << csc[g] << ", k-th " << kth
                                                       << ", max diff " << delta << ")";
        }
        for (const int32_t c : cset) {
            if (gset.count(c) == 0) {
                EXPECT_LE(std::fabs(csc[c] - kth), bound) << name << " row " << t << ": CPU-only position " << c
                                                           << " is no near tie";
            }
        }
        recall_sum += static_cast<double>(hits) / keep;
    }
    std::cout << "[ metric ] indexer_topk " << name << " rows=" << rows << " long_rows=" << long_rows
              << " eligible_long_rows=" << eligible << " recall_vs_cpu=" << (rows ? recall_sum / rows : 0)
              << " near_tie_swaps=" << swaps << " max_rel_score_diff=" << worst_rel << " (row " << worst_row << ": "
              << worst_keys << " keys, max |score| " << worst_mag << ")";
    if (terms != nullptr) std::cout << " max_score_diff_over_terms=" << worst_term_rel;
    std::cout << std::endl;
    return {long_rows, eligible, worst_rel, worst_term_rel, terms != nullptr};
}

RowStats IndexerOpsTest::compare_backends(const char* name, bool device_index) {
    const int64_t tokens = static_cast<int64_t>(limit_.size());
    Tensor q = random_act({tokens, heads_, kDim}, rng_);
    Tensor w = random_act({tokens, heads_}, rng_, 0.5f);
    const IndexerTopkResult ref = cpu_->indexer_topk(params(stores_.cpu, q, w, true));
    Tensor w_abs = Tensor::empty(w.shape(), DType::kF32);
    for (int64_t i = 0; i < w.numel(); ++i) w_abs.data<float>()[i] = std::fabs(w.data<float>()[i]);
    const IndexerTopkResult terms = cpu_->indexer_topk(params(stores_.cpu, q, w_abs, true));
    IndexerTopkParams gp = params(stores_.gpu, up(q), w, true);
    if (device_index) {
        gp.key_slots = gpu_->to_device(gp.key_slots);
        gp.query_request = gpu_->to_device(gp.query_request);
        gp.query_limit = gpu_->to_device(gp.query_limit);
    }
    const IndexerTopkResult dev = gpu_->indexer_topk(gp);
    const IndexerTopkResult got{gpu_->to_host(dev.positions), gpu_->to_host(dev.slots), gpu_->to_host(dev.scores)};
    return check_rows(got, ref, key_slots_, request_, limit_, name, &terms);
}

RowStats IndexerOpsTest::run_decode_batch(const char* name, bool device_index) {
    std::vector<int64_t> lengths(64);
    for (int64_t r = 0; r < 64; ++r) lengths[r] = r == 0 ? 1 : (r % 4 == 0 ? 2048 + r : 64 * r);
    build(lengths);
    request_.clear();
    limit_.clear();
    for (int32_t rep = 0; rep < 2; ++rep) {
        for (int32_t r = 0; r < 64; ++r) {
            request_.push_back(r);
            limit_.push_back(static_cast<int32_t>(rep == 0 ? lengths[r] - 1 : lengths[r] / 2));
        }
    }
    return compare_backends(name, device_index);
}

TEST_F(IndexerOpsTest, TopkMatchesCpu) {
    const EnvScope order("DSA_INDEXER_TOPK_ORDER", "score");  // the CPU's order: f32 rows compared entry by entry
    for (const Case& c : all_cases()) {
        make_case(c);
        // Requests of 8192, 3000, 2049, 2048, 700 and 1 keys; limits below, at and above index_topk.
        build({8192, 3000, 2049, 2048, 700, 1});
        request_ = {0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5};
        limit_ = {8191, 6000, 4095, 2048, 2047, 100, 2999, 2500, 2048, 2047, 699, 0};
        const int64_t tokens = static_cast<int64_t>(limit_.size());
        Tensor q = random_act({tokens, kHeads, kDim}, rng_);
        Tensor w = random_act({tokens, kHeads}, rng_, 0.5f);
        const IndexerTopkResult ref = cpu_->indexer_topk(params(stores_.cpu, q, w, true));
        Tensor w_abs = Tensor::empty(w.shape(), DType::kF32);
        for (int64_t i = 0; i < w.numel(); ++i) w_abs.data<float>()[i] = std::fabs(w.data<float>()[i]);
        const IndexerTopkResult terms = cpu_->indexer_topk(params(stores_.cpu, q, w_abs, true));
        const IndexerTopkResult dev = gpu_->indexer_topk(params(stores_.gpu, up(q), w, true));
        const IndexerTopkResult got{gpu_->to_host(dev.positions), gpu_->to_host(dev.slots), gpu_->to_host(dev.scores)};
        const RowStats st = check_rows(got, ref, key_slots_, request_, limit_, c.name, &terms);
        EXPECT_GT(st.long_rows, 0);
        EXPECT_GE(st.eligible * strict_share(c.numerics.indexer_fp8, c.logits_kernel), st.long_rows)
            << c.name << ": too few rows with a clear threshold gap";
        expect_scores_close(c, st, c.name);
        if (!c.numerics.indexer_fp8) {
            // Same float operations in the same order: identical scores and identical ordered positions.
            const Diff d = compare(got.scores, ref.scores);
            std::cout << "[ metric ] indexer_topk f32 scores max_abs=" << d.max_abs << "\n";
            EXPECT_EQ(d.max_abs, 0.0);
            EXPECT_EQ(std::memcmp(got.positions.raw_data(), ref.positions.raw_data(), got.positions.nbytes()), 0);
            EXPECT_EQ(std::memcmp(got.slots.raw_data(), ref.slots.raw_data(), got.slots.nbytes()), 0);
        }
        // Without scores: the same positions (the -inf fill is the only difference in the kernels).
        const IndexerTopkResult plain = gpu_->indexer_topk(params(stores_.gpu, up(q), w, false));
        EXPECT_FALSE(plain.scores.defined());
        Tensor pos = gpu_->to_host(plain.positions);
        EXPECT_EQ(std::memcmp(pos.raw_data(), got.positions.raw_data(), pos.nbytes()), 0) << c.name;
    }
}

// One request of 128K keys: the logits of a single query are spread over every SM (strided key blocks).
TEST_F(IndexerOpsTest, OneLongRequest) {
    for (const Case& c : all_cases()) {
        make_case(c);
        build({131072});
        request_ = {0};
        limit_ = {131071};
        const RowStats st = compare_backends(c.name, true);
        EXPECT_EQ(st.long_rows, 1);
        expect_scores_close(c, st, c.name);
    }
}

// 64 requests (one query each, as in decode) with lengths from 1 to 4096 and limits below, at and above
// index_topk, plus 64 more queries (128 rows: fewer CTAs per row).
TEST_F(IndexerOpsTest, DecodeBatch) {
    for (const Case& c : all_cases()) {
        make_case(c);
        const RowStats st = run_decode_batch(c.name, c.numerics.ue8m0_scales);
        EXPECT_GT(st.long_rows, 10);
        EXPECT_GE(st.eligible * strict_share(c.numerics.indexer_fp8, c.logits_kernel), st.long_rows)
            << c.name << ": too few rows with a clear threshold gap";
        expect_scores_close(c, st, c.name);
    }
}

// The wgmma logits kernel (selected explicitly) on DecodeBatch's first case (the same data: the fixture's
// generator starts from its seed): the selection checks as everywhere; scores within kWgmmaTermTol of the row's
// largest sum of |terms|.
// (On the H200 its max |diff| / max |score| was 1.65e-3 here, most likely row 64: one key whose 64 weighted ReLUs
// cancel to 0.0042 out of a 0.98 sum of |terms|, a ratio 235 where a typical row's is ~3.)
TEST_F(IndexerOpsTest, WgmmaDecodeBatch) {
    const Case c{"wgmma_ue8m0", fp8_numerics(true), "wgmma"};
    make_case(c);
    const RowStats st = run_decode_batch(c.name, true);
    EXPECT_GT(st.long_rows, 10);
    EXPECT_GE(st.eligible * 2, st.long_rows) << c.name << ": too few rows with a clear threshold gap";
    EXPECT_LE(st.worst_term_rel, kWgmmaTermTol) << c.name;
}

// The shared-memory top-k kernel (DSA_INDEXER_TOPK=smem) behind the default logits: DecodeBatch's rows and one
// request of 128K keys (a cluster of 8 CTAs), with the same checks (positions = exact top-k of the GPU's scores).
TEST_F(IndexerOpsTest, SmemTopkDecodeBatch) {
    struct Env {
        Env() { setenv("DSA_INDEXER_TOPK", "smem", 1); }
        ~Env() { unsetenv("DSA_INDEXER_TOPK"); }
    } env;
    const Case c{"smem_topk_ue8m0", fp8_numerics(true)};
    make_case(c);
    RowStats st = run_decode_batch(c.name, true);
    EXPECT_GT(st.long_rows, 10);
    expect_scores_close(c, st, c.name);
    build({131072});
    request_ = {0};
    limit_ = {131071};
    st = compare_backends("smem_topk 128K", true);
    EXPECT_EQ(st.long_rows, 1);
    expect_scores_close(c, st, "smem_topk 128K");
}

// The top-k in ascending position order (DSA_INDEXER_TOPK_ORDER=position, the default, set explicitly) on the
// global, shared-memory, fast and lean top-k kernels:
// DecodeBatch's rows, limits 0 / 1 / 2047 / 2048 / 2049 with padded key_slots, one request of 128K keys; the same
// checks with the expected positions of each row in ascending order.
TEST_F(IndexerOpsTest, PositionOrderTopk) {
    struct Env {
        Env() { setenv("DSA_INDEXER_TOPK_ORDER", "position", 1); }
        ~Env() {
            unsetenv("DSA_INDEXER_TOPK_ORDER");
            unsetenv("DSA_INDEXER_TOPK");
        }
    } env;
    for (const char* kernel : {"global", "smem", "fast", "lean"}) {
        setenv("DSA_INDEXER_TOPK", kernel, 1);
        const std::string name = std::string("position_order_") + kernel;
        const Case c{name.c_str(), fp8_numerics(true)};
        make_case(c);
        RowStats st = run_decode_batch(c.name, true);
        EXPECT_GT(st.long_rows, 10);
        expect_scores_close(c, st, c.name);
        build({3000, 2100, 5, 2049}, 0, 32768);
        request_ = {0, 1, 2, 0, 1, 3, 3, 3};
        limit_ = {2999, 2099, 4, 0, 2047, 2048, 2047, 1};
        st = compare_backends((name + " padded limits").c_str(), true);
        EXPECT_EQ(st.long_rows, 3);
        build({131072});
        request_ = {0};
        limit_ = {131071};
        st = compare_backends((name + " 128K").c_str(), true);
        EXPECT_EQ(st.long_rows, 1);
    }
}

// key_slots padded to 32K positions (-1 past each request's length) while every limit is < 3000: the kernels
// must follow the device-side limits, never touch the padding, and give the same lists.
TEST_F(IndexerOpsTest, PaddedKeySlotsFollowTheLimits) {
    for (const Case& c : all_cases()) {
        make_case(c);
        build({3000, 2100, 5}, 0, 32768);
        request_ = {0, 1, 2, 0, 1};
        limit_ = {2999, 2099, 4, 0, 2047};
        const RowStats st = compare_backends(c.name, true);
        EXPECT_EQ(st.long_rows, 2);
        expect_scores_close(c, st, c.name);
    }
}

// Head counts other than 64 (the golden fixtures have 4): FP8 pads q to 8, 16, 32 or 64 heads with zero heads
// of weight 0; F32 runs the heads as they are. Every row is checked as in the other cases; the share of strictly
// checked rows is counted over the head counts >= 4 of a case (3 long rows each: one head count alone is too few,
// the chained default left 0 of 3 at 8 heads on the H200 and 4-5 of 12 over the four).
TEST_F(IndexerOpsTest, AnyHeadCount) {
    for (const Case& c : all_cases()) {
        make_case(c);
        build({5000, 2100, 300});
        request_ = {0, 0, 1, 2};
        limit_ = {4999, 2500, 2099, 299};
        int64_t eligible = 0, long_rows = 0;
        for (const int64_t heads : {4, 12, 1, 40, 8}) {
            heads_ = heads;
            const std::string name = std::string(c.name) + " heads=" + std::to_string(heads);
            const RowStats st = compare_backends(name.c_str(), heads % 2 == 0);
            EXPECT_EQ(st.long_rows, 3) << name;
            expect_scores_close(c, st, name);
            if (heads >= 4) eligible += st.eligible, long_rows += st.long_rows;
        }
        EXPECT_GE(eligible * strict_share(c.numerics.indexer_fp8, c.logits_kernel), long_rows)
            << c.name << ": too few rows with a clear gap";
    }
}

// Every FP8 logits kernel (DSA_INDEXER_LOGITS = f16 and e4m3: the mma.sync kernels; wgmma, the default; chain and
// chain4: wgmma with the k-steps chained in the tensor core, under kChainTermTol) under
// the same checks: a decode batch of 64 requests (one of 40000 keys split over many CTAs, the others 64..4096
// keys, lengths that are not multiples of 64, limits around index_topk) at 64, 4, 12 and 32 heads; both scale
// formats on the wgmma kernels (the scale format does not change the mma.sync kernels' code).
void IndexerOpsTest::every_head_count(const char* kernel, bool ue8m0) {
    const std::string cname = std::string(kernel) + (ue8m0 ? "_ue8m0" : "_f32_scales");
    const Case c{cname.c_str(), fp8_numerics(ue8m0), kernel};
    make_case(c);
    std::vector<int64_t> lengths(64);
    for (int64_t r = 0; r < 64; ++r) lengths[r] = r == 0 ? 40000 : (r % 4 == 0 ? 2048 + r : 64 * r + r % 3);
    build(lengths);
    request_.clear();
    limit_.clear();
    for (int32_t r = 0; r < 64; ++r) {
        request_.push_back(r);
        limit_.push_back(static_cast<int32_t>(lengths[r] - 1));
    }
    for (const int64_t heads : {int64_t{64}, int64_t{4}, int64_t{12}, int64_t{32}}) {
        heads_ = heads;
        const std::string name = cname + " heads=" + std::to_string(heads);
        const RowStats st = compare_backends(name.c_str(), true);
        EXPECT_GT(st.long_rows, 10) << name;
        EXPECT_GE(st.eligible * strict_share(true, kernel), st.long_rows)
            << name << ": too few rows with a clear threshold gap";
        expect_scores_close(c, st, name);
    }
}

TEST_F(IndexerOpsTest, EveryFp8LogitsKernel) {
    for (const char* kernel : {"wgmma", "chain", "chain4", "f16", "e4m3"}) {
        for (const bool ue8m0 : {true, false}) {
            if (!ue8m0 && std::strcmp(kernel, "wgmma") != 0 && !chained_logits(kernel)) continue;
            every_head_count(kernel, ue8m0);
        }
    }
}

// DSA_INDEXER_LOGITS=tma, tma3, tmaef and auto (the default, tmaef: chained, key blocks that are pages loaded by
// tensor-map copies) under the chained bound: on shuffled slots (every block takes the cp.async gather), and on
// page-aligned blocks (the tensor copies, with blocks of swapped slots or mid-page runs mixed in, and partial last
// pages).
TEST_F(IndexerOpsTest, TmaLogitsGatheredSlots) {
    for (const bool ue8m0 : {true, false}) every_head_count("tma", ue8m0);
    every_head_count("tma3", true);
}

TEST_F(IndexerOpsTest, TmaLogitsPagedSlots) {
    paged_slots_ = true;
    for (const bool ue8m0 : {true, false}) every_head_count("tma", ue8m0);
    every_head_count("tma3", true);
    every_head_count("tmaef", false);
    every_head_count("auto", true);
}

// Causal prefill rows (consecutive queries of one request, each seeing one key more) and a second request's
// chunk, on the default (wgmma) logits kernel: limits inside, at and across 64-key block edges.
TEST_F(IndexerOpsTest, CausalPrefillRows) {
    for (const Case& c : all_cases()) {
        make_case(c);
        build({5000, 2200});
        request_.clear();
        limit_.clear();
        for (int32_t l = 4990; l < 5000; ++l) {
            request_.push_back(0);
            limit_.push_back(l);
        }
        for (int32_t l = 2040; l < 2060; ++l) {
            request_.push_back(1);
            limit_.push_back(l);
        }
        for (const int64_t heads : {int64_t{64}, int64_t{4}}) {
            heads_ = heads;
            const std::string name = std::string(c.name) + " prefill heads=" + std::to_string(heads);
            const RowStats st = compare_backends(name.c_str(), heads == 64);
            EXPECT_EQ(st.long_rows, 10 + 12) << name;
            expect_scores_close(c, st, name);
        }
    }
}

// Layout probe of the wgmma FP8 logits kernel: one-hot head weights make each score one head's
// ReLU(q_h . k) * scale, so a wrong (key, head) fragment mapping or a wrong swizzle shows up per key; a mismatch
// names the (key, head) of the CPU table whose score the GPU produced, which tells the broken assumption.
void IndexerOpsTest::layout_probe(const char* kernel) {
    const std::string cname = std::string(kernel) + "_probe";
    make_case({cname.c_str(), fp8_numerics(true), kernel});
    build({200});  // 4 key blocks, the last one partial
    request_ = {0};
    limit_ = {199};
    const double tol = chained_logits(kernel) ? 1e-3 : 1e-4;  // of the head's largest |score|; a wrong key is O(1)
    for (const int64_t heads : {int64_t{8}, int64_t{64}}) {
        heads_ = heads;
        Tensor q = random_act({1, heads, kDim}, rng_);
        auto scores = [&](Backend& be, const IndexerKeyStore& store, const Tensor& qq, int64_t head) {
            Tensor w = Tensor::empty({1, heads}, DType::kF32);
            for (int64_t h = 0; h < heads; ++h) w.data<float>()[h] = h == head ? 1.0f : 0.0f;
            const IndexerTopkResult r = be.indexer_topk(params(store, qq, w, true));
            return r.scores.device() == Device::kCPU ? r.scores : gpu_->to_host(r.scores);
        };
        std::vector<Tensor> table;  // CPU scores with head h alone
        for (int64_t h = 0; h < heads; ++h) table.push_back(scores(*cpu_, stores_.cpu, q, h));
        int64_t bad = 0;
        for (const int64_t head : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{7}, heads - 1, heads / 2 + 3}) {
            const Tensor got = scores(*gpu_, stores_.gpu, up(q), head);
            const float* ref = table[head].data<float>();
            double mag = 0;
            for (int64_t s = 0; s < 200; ++s) mag = std::max(mag, std::fabs(static_cast<double>(ref[s])));
            for (int64_t s = 0; s < 200 && bad < 8; ++s) {
                const float g = got.data<float>()[s];
                if (std::fabs(static_cast<double>(g) - ref[s]) <= tol * mag) continue;
                ++bad;
                std::string match = "no (key, head) of the CPU table";
                for (int64_t h = 0; h < heads; ++h) {
                    for (int64_t k = 0; k < 200; ++k) {
                        const float c = table[h].data<float>()[k];
                        if (c != 0.0f && std::fabs(static_cast<double>(g) - c) <= tol * mag) {
                            match = "CPU key " + std::to_string(k) + " head " + std::to_string(h);
                        }
                    }
                }
                ADD_FAILURE() << "heads=" << heads << " head " << head << " key " << s << ": GPU " << g << " CPU "
                              << ref[s] << "; the GPU value is that of " << match;
            }
        }
        std::cout << "[ metric ] indexer " << kernel << " layout probe heads=" << heads << " mismatching keys=" << bad
                  << "\n";
    }
}

TEST_F(IndexerOpsTest, WgmmaLayoutProbe) { layout_probe("wgmma"); }

// The tensor-map copies' swizzle against the wgmma descriptors: 4 page blocks, the last one partial.
TEST_F(IndexerOpsTest, TmaLayoutProbe) {
    paged_slots_ = true;
    layout_probe("tma");
}

TEST_F(IndexerOpsTest, TiesFollowThePositionRule) {
    const EnvScope order("DSA_INDEXER_TOPK_ORDER", "score");  // ties in score order, compared entry by entry
    for (const Case& c : all_cases()) {
        make_case(c);
        // 8 distinct key vectors repeated: every score is one of 8 values (exact ties on both backends).
        build({6000, 2500}, 8);
        request_ = {0, 0, 1, 1};
        limit_ = {5999, 3000, 2499, 1500};
        const int64_t tokens = static_cast<int64_t>(limit_.size());
        Tensor q = random_act({tokens, kHeads, kDim}, rng_);
        for (int64_t i = 0; i < kHeads * kDim; ++i) q.data<float>()[3 * kHeads * kDim + i] = 0.0f;  // all scores 0
        Tensor w = random_act({tokens, kHeads}, rng_, 0.5f);
        const IndexerTopkResult ref = cpu_->indexer_topk(params(stores_.cpu, q, w, false));
        const IndexerTopkResult dev = gpu_->indexer_topk(params(stores_.gpu, up(q), w, false));
        Tensor pos = gpu_->to_host(dev.positions), slots = gpu_->to_host(dev.slots);
        int64_t mismatches = 0;
        for (int64_t i = 0; i < pos.numel(); ++i) {
            mismatches += pos.data<int32_t>()[i] != ref.positions.data<int32_t>()[i];
            mismatches += slots.data<int32_t>()[i] != ref.slots.data<int32_t>()[i];
        }
        std::cout << "[ metric ] indexer_topk ties " << c.name << " mismatches=" << mismatches << "\n";
        EXPECT_EQ(mismatches, 0) << c.name;
        for (int64_t i = 0; i < kTopk; ++i) {  // the all-zero query keeps positions 0..2047 in order
            EXPECT_EQ(pos.data<int32_t>()[3 * kTopk + i], i < 1501 ? i : -1) << c.name << " entry " << i;
        }
    }
}

TEST_F(IndexerOpsTest, CausalIndicesMatchCpu) {
    build({300, 5000, 17});
    request_ = {0, 1, 1, 2, 1};
    limit_ = {299, 4999, 0, 16, 2047};
    const CausalIndicesParams p{key_slots_, i32_tensor(request_), i32_tensor(limit_), 5000};
    const IndexerTopkResult ref = cpu_->causal_indices(p);
    const IndexerTopkResult dev = gpu_->causal_indices(p);
    Tensor pos = gpu_->to_host(dev.positions), slots = gpu_->to_host(dev.slots);
    EXPECT_EQ(std::memcmp(pos.raw_data(), ref.positions.raw_data(), pos.nbytes()), 0);
    EXPECT_EQ(std::memcmp(slots.raw_data(), ref.slots.raw_data(), slots.nbytes()), 0);
    // Device-resident index tensors give the same lists.
    const CausalIndicesParams pd{gpu_->to_device(key_slots_), gpu_->to_device(i32_tensor(request_)),
                                 gpu_->to_device(i32_tensor(limit_)), 5000};
    Tensor pos_d = gpu_->to_host(gpu_->causal_indices(pd).positions);
    EXPECT_EQ(std::memcmp(pos_d.raw_data(), ref.positions.raw_data(), pos_d.nbytes()), 0);
}

TEST_F(IndexerOpsTest, BadInputsAbortWithAMessage) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    build({100});
    request_ = {0};
    limit_ = {100};  // == max_len: out of range
    Tensor q = random_act({1, kHeads, kDim}, rng_);
    Tensor w = random_act({1, kHeads}, rng_);
    EXPECT_DEATH(gpu_->indexer_topk(params(stores_.gpu, up(q), w, false)), "limit 100 max_len 100");
    limit_ = {99};
    const IndexerKeyStore wrong = {gpu_->to_device(zero_store(IndexerKeyFormat::kFp8, 2).data), IndexerKeyFormat::kFp8};
    EXPECT_DEATH(gpu_->indexer_topk(params(wrong, up(q), w, false)), "the numerics need");
    EXPECT_DEATH(gpu_->causal_indices({key_slots_, i32_tensor(request_), i32_tensor(limit_), 50}), "> width 50");
}

}  // namespace
}  // namespace dsa::backend::testing
