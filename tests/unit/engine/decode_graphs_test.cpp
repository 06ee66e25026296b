// DecodeGraphs on the CPU backend (no graphs there: capture reports Unimplemented and every bucket runs
// eagerly): the device-input decode path (fixed buffers, page tables expanded by decode_slots, padding rows into
// the reserved page 0) gives exactly the logits of the host-batch forward, for padded buckets, the bucket-less
// path beyond the largest size, and steps after a failed capture, also after the startup pass over every size
// (which must not touch the sequences' KV). Also the bucket and width rules.
#include <gtest/gtest.h>

#include <random>

#include "backend/backend.h"
#include "engine/decode_graphs.h"
#include "golden_model.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/forward_batch.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace dsa::engine {
namespace {

constexpr int64_t kPage = 64;
constexpr int64_t kContext = 1024;

TEST(DecodeGraphSizes, DefaultListAndWidths) {
    EXPECT_EQ(default_graph_batch_sizes(8), (std::vector<int64_t>{1, 2, 4, 8}));
    EXPECT_EQ(default_graph_batch_sizes(30), (std::vector<int64_t>{1, 2, 4, 8, 12, 16, 24, 30}));
    EXPECT_EQ(default_graph_batch_sizes(1), (std::vector<int64_t>{1}));
    EXPECT_TRUE(default_graph_batch_sizes(0).empty());
    EXPECT_EQ(decode_width(5, 163840, 64), 1024);
    EXPECT_EQ(decode_width(1025, 163840, 64), 2048);
    EXPECT_EQ(decode_width(70000, 163840, 64), 131072);
    EXPECT_EQ(decode_width(140000, 163840, 64), 163840);  // capped at the context
    EXPECT_EQ(decode_width(100, 100, 64), 128);           // a page multiple
}

struct Tiny : test_models::GoldenModel {
    Tiny() : GoldenModel(kContext) {}
    model::KvStores stores(int64_t pages) {
        return model::allocate_kv_stores(config, numerics.mla_kv_format(), numerics.indexer_key_format(), pages,
                                         kPage, 0);
    }
};

struct Seq {
    std::vector<int32_t> tokens;  // every token so far
    std::vector<int32_t> pages;
};

// Prefills each sequence alone into `kv`.
void prefill(Tiny& t, model::KvStores& kv, std::vector<Seq>& seqs) {
    for (Seq& s : seqs) {
        model::SequenceStep st{s.tokens, 0, s.pages, false};
        t.model->forward(model::build_forward_batch(std::span(&st, 1), kPage), kv);
    }
}

std::vector<model::SequenceStep> decode_steps(std::vector<Seq>& seqs, std::vector<int32_t>& next) {
    std::vector<model::SequenceStep> steps;
    for (size_t i = 0; i < seqs.size(); ++i) {
        const auto cached = static_cast<int64_t>(seqs[i].tokens.size());
        steps.push_back({std::span<const int32_t>(&next[i], 1), cached, seqs[i].pages, false});
    }
    return steps;
}

TEST(DecodeGraphs, CpuDevicePathEqualsHostBatchForward) {
    Tiny t;
    std::mt19937 rng(7);
    std::uniform_int_distribution<int32_t> tok(2, static_cast<int32_t>(t.config.vocab_size - 1));
    // Sequences of 5, 70, 130, ... tokens with their own pages (page 0 stays reserved for padding rows).
    const std::vector<int64_t> lengths = {5, 70, 130, 9, 64, 200, 33, 1, 100};
    std::vector<Seq> seqs;
    int32_t next_page = 1;
    for (int64_t len : lengths) {
        Seq s;
        for (int64_t i = 0; i < len; ++i) s.tokens.push_back(tok(rng));
        for (int64_t p = 0; p < (len + 8) / kPage + 1; ++p) s.pages.push_back(next_page++);
        seqs.push_back(std::move(s));
    }
    // Two identical stores: the reference path and the DecodeGraphs path each keep their own KV.
    model::KvStores ref_kv = t.stores(next_page), dev_kv = t.stores(next_page);
    prefill(t, ref_kv, seqs);
    prefill(t, dev_kv, seqs);

    DecodeGraphs graphs(*t.model, dev_kv, kPage, kContext, DecodeGraphOptions{true, 8, {}});
    ASSERT_EQ(graphs.batch_sizes(), (std::vector<int64_t>{1, 2, 4, 8}));
    // The startup pass: padding-only steps for every size (they write only page 0, which no sequence owns).
    graphs.capture_all();
    EXPECT_EQ(graphs.capture_failures(), 4);  // Unimplemented on the CPU: each bucket then runs eagerly
    // 3 sequences (bucket 4, one padding row), then 9 (beyond max_bs: no bucket), then 3 again (the bucket's
    // capture failed on the CPU: eager), then 1.
    for (size_t n : {3u, 9u, 3u, 1u}) {
        std::vector<Seq> batch(seqs.begin(), seqs.begin() + static_cast<int64_t>(n));
        std::vector<int32_t> next(n);
        for (int32_t& x : next) x = tok(rng);
        std::vector<model::SequenceStep> steps = decode_steps(batch, next);
        ASSERT_TRUE(DecodeGraphs::is_decode(steps));
        Tensor want = t.model->forward(model::build_forward_batch(steps, kPage), ref_kv).logits;
        Tensor got = graphs.run(steps);
        ASSERT_EQ(got.shape(), want.shape()) << "batch " << n;
        for (int64_t i = 0; i < want.numel(); ++i) {
            ASSERT_EQ(got.data<float>()[i], want.data<float>()[i]) << "batch " << n << " element " << i;
        }
        for (size_t i = 0; i < n; ++i) seqs[i].tokens.push_back(next[i]);
    }
    EXPECT_EQ(graphs.graphs_captured(), 0);
    EXPECT_EQ(graphs.capture_failures(), 4);  // no new bucket after the startup pass (all at width 1024)
    EXPECT_EQ(graphs.graph_replays(), 0);
}

TEST(DecodeGraphs, PrefillStepsAreNotDecodeSteps) {
    std::vector<int32_t> two = {3, 4}, one = {5}, pages = {1};
    std::vector<model::SequenceStep> prefill = {{two, 0, pages, false}};
    EXPECT_FALSE(DecodeGraphs::is_decode(prefill));
    std::vector<model::SequenceStep> all_logits = {{one, 3, pages, true}};
    EXPECT_FALSE(DecodeGraphs::is_decode(all_logits));
    std::vector<model::SequenceStep> decode = {{one, 3, pages, false}};
    EXPECT_TRUE(DecodeGraphs::is_decode(decode));
    EXPECT_FALSE(DecodeGraphs::is_decode({}));
}

}  // namespace
}  // namespace dsa::engine
