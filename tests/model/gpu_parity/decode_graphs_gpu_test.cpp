// CUDA graphs for decode (engine::DecodeGraphs) on the H200: the same decode steps run (a) through captured
// graphs, (b) eagerly through the same fixed device inputs (graphs off) and (c) through the host-batch
// forward(), each over its own KV stores. Graph replays must equal the eager device path bit for bit (same
// kernels, same inputs), and both must agree with forward() (same greedy tokens, tiny relative difference).
// Covers padded buckets, a second width bucket, batches beyond the largest bucket and repeated replays; and the
// side branch (DSA_SIDE_BRANCH) against the same steps without it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "engine/decode_graphs.h"
#include "gpu_fixture.h"
#include "model/forward_batch.h"
#include "tensor/numeric.h"

namespace dsa::engine {
namespace {

using model::gpu_testing::TwoBackendFixture;

constexpr int64_t kPage = 64;

struct Seq {
    std::vector<int32_t> tokens;
    std::vector<int32_t> pages;
};

int32_t argmax(const Tensor& logits, int64_t row) {
    const int64_t v = logits.dim(1);
    const float* r = logits.data<float>() + row * v;
    return static_cast<int32_t>(std::max_element(r, r + v) - r);
}

// Sequences of the given lengths with random tokens and consecutive pages from page 1.
std::vector<Seq> random_seqs(const std::vector<int64_t>& lengths, std::uniform_int_distribution<int32_t>& tok,
                             std::mt19937& rng) {
    std::vector<Seq> seqs;
    int32_t next_page = 1;
    for (int64_t len : lengths) {
        Seq s;
        for (int64_t i = 0; i < len; ++i) s.tokens.push_back(tok(rng));
        for (int64_t p = 0; p < (len + 16) / kPage + 1; ++p) s.pages.push_back(next_page++);
        seqs.push_back(std::move(s));
    }
    return seqs;
}

// Prefills every sequence alone into each of the stores.
void prefill(model::DsaModel& m, std::vector<Seq>& seqs, std::initializer_list<model::KvStores*> stores) {
    for (Seq& s : seqs) {
        model::SequenceStep st{s.tokens, 0, s.pages, false};
        for (model::KvStores* kv : stores) m.forward(model::build_forward_batch(std::span(&st, 1), kPage), *kv);
    }
}

// One decode step of the first n sequences (tokens `next`).
std::vector<model::SequenceStep> decode_steps(const std::vector<Seq>& seqs, const std::vector<int32_t>& next) {
    std::vector<model::SequenceStep> steps;
    for (size_t i = 0; i < next.size(); ++i) {
        steps.push_back({std::span<const int32_t>(&next[i], 1), static_cast<int64_t>(seqs[i].tokens.size()),
                         seqs[i].pages, false});
    }
    return steps;
}

TEST(DecodeGraphsGpu, ReplaysEqualEagerAndForward) {
    if (backend::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device present";
    TwoBackendFixture fx("deepseek_v32_tiny", backend::Numerics::deepseek_fp8());
    model::DsaModel& m = fx.gpu();
    backend::Backend& be = fx.backend_of(m);
    std::mt19937 rng(11);
    std::uniform_int_distribution<int32_t> tok(2, static_cast<int32_t>(fx.config().vocab_size - 1));
    // Lengths chosen so that decoding crosses the 1024-key width bucket (1020 -> 1026).
    std::vector<Seq> seqs = random_seqs({5, 70, 1020, 9, 64, 200, 33, 1, 100, 17}, tok, rng);
    const int32_t pages = seqs.back().pages.back() + 1;
    model::KvStores kv_graph = fx.new_kv(m, pages), kv_eager = fx.new_kv(m, pages), kv_ref = fx.new_kv(m, pages);
    prefill(m, seqs, {&kv_graph, &kv_eager, &kv_ref});
    DecodeGraphs graphs(m, kv_graph, kPage, 4096, DecodeGraphOptions{true, 8, {}});
    DecodeGraphs eager(m, kv_eager, kPage, 4096, DecodeGraphOptions{false, 8, {}});
    graphs.capture_all();  // the startup pass: sizes 1, 2, 4, 8 at width 1024 (padding rows write page 0 only)
    EXPECT_EQ(graphs.graphs_captured(), 4);

    // Batches: 3 (bucket 4) x3, 8 x2, 10 (beyond 8: no graph), 1 x2, 3 again; each step advances the sequences.
    const std::vector<size_t> batches = {3, 3, 3, 8, 8, 10, 1, 1, 3};
    int64_t rows_compared = 0;
    for (size_t step = 0; step < batches.size(); ++step) {
        const size_t n = batches[step];
        std::vector<int32_t> next(n);
        for (int32_t& x : next) x = tok(rng);
        const std::vector<model::SequenceStep> steps = decode_steps(seqs, next);
        Tensor g = be.to_host(graphs.run(steps));
        Tensor e = be.to_host(eager.run(steps));
        model::ForwardOptions fo;
        Tensor r = m.forward(model::build_forward_batch(steps, kPage), kv_ref, fo).logits;
        ASSERT_EQ(g.shape(), r.shape());
        for (int64_t i = 0; i < g.numel(); ++i) {
            ASSERT_EQ(g.data<float>()[i], e.data<float>()[i]) << "step " << step << " element " << i;
        }
        const double rel = model::gpu_testing::relative_l2(g, r);
        std::cout << "[ metric ] decode graphs step " << step << " batch " << n << " rel_l2 vs forward " << rel
                  << "\n";
        EXPECT_LT(rel, 2e-2) << "step " << step;
        for (size_t i = 0; i < n; ++i) {
            // Greedy agreement except at near-ties (the two paths may round differently in the top-k kernels).
            const int32_t a = argmax(g, static_cast<int64_t>(i)), b = argmax(r, static_cast<int64_t>(i));
            const float* gr = g.data<float>() + static_cast<int64_t>(i) * g.dim(1);
            if (a != b) {
                EXPECT_LT(std::abs(gr[a] - gr[b]), 1e-2f) << "step " << step << " row " << i;
            }
            ++rows_compared;
        }
        for (size_t i = 0; i < n; ++i) seqs[i].tokens.push_back(next[i]);
    }
    EXPECT_GT(rows_compared, 0);
    EXPECT_EQ(graphs.capture_failures(), 0);
    // Buckets (4, 1024), (8, 1024), (8, 2048) once the long sequence passes 1024 keys, (1, 1024), ...
    EXPECT_GE(graphs.graphs_captured(), 3);
    EXPECT_GE(graphs.graph_replays(), 3);
    EXPECT_EQ(eager.graphs_captured(), 0);
    EXPECT_GT(be.graph_pool_bytes(), 0);
}

// The side branch (DSA_SIDE_BRANCH: the absorbed query beside the indexer) changes no bit: decode steps with it,
// eagerly and from graphs, equal the same steps without it, and the branch is taken once per indexer layer.
TEST(DecodeGraphsGpu, SideBranchEqualsInOrder) {
    if (backend::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device present";
    TwoBackendFixture fx("deepseek_v32_tiny", backend::Numerics::deepseek_fp8());
    model::DsaModel& m = fx.gpu();
    auto& be = static_cast<backend::cuda::CudaBackend&>(fx.backend_of(m));
    std::mt19937 rng(5);
    std::uniform_int_distribution<int32_t> tok(2, static_cast<int32_t>(fx.config().vocab_size - 1));
    std::vector<Seq> seqs = random_seqs({40, 300, 7, 129}, tok, rng);
    const int32_t pages = seqs.back().pages.back() + 1;
    model::KvStores kv_off = fx.new_kv(m, pages), kv_on = fx.new_kv(m, pages), kv_graph = fx.new_kv(m, pages);
    prefill(m, seqs, {&kv_off, &kv_on, &kv_graph});
    DecodeGraphs off(m, kv_off, kPage, 4096, DecodeGraphOptions{false, 4, {}});
    DecodeGraphs on(m, kv_on, kPage, 4096, DecodeGraphOptions{false, 4, {}});
    DecodeGraphs graphs(m, kv_graph, kPage, 4096, DecodeGraphOptions{true, 4, {}});
    ::setenv("DSA_SIDE_BRANCH", "4", 1);
    graphs.capture_all();
    for (size_t n : {1, 2, 4, 3, 1}) {
        std::vector<int32_t> next(n);
        for (int32_t& x : next) x = tok(rng);
        const std::vector<model::SequenceStep> steps = decode_steps(seqs, next);
        ::setenv("DSA_SIDE_BRANCH", "0", 1);
        const int64_t before = be.side_branches_taken();
        const Tensor r = be.to_host(off.run(steps));
        EXPECT_EQ(be.side_branches_taken(), before) << "off: no branch";
        ::setenv("DSA_SIDE_BRANCH", "4", 1);
        const Tensor e = be.to_host(on.run(steps));
        EXPECT_GT(be.side_branches_taken(), before) << "on: branched";
        const Tensor g = be.to_host(graphs.run(steps));
        ASSERT_EQ(r.shape(), e.shape());
        for (int64_t i = 0; i < r.numel(); ++i) {
            ASSERT_EQ(r.data<float>()[i], e.data<float>()[i]) << "batch " << n << " element " << i << " (eager)";
            ASSERT_EQ(r.data<float>()[i], g.data<float>()[i]) << "batch " << n << " element " << i << " (graph)";
        }
        for (size_t i = 0; i < n; ++i) seqs[i].tokens.push_back(next[i]);
    }
    ::unsetenv("DSA_SIDE_BRANCH");
    EXPECT_GE(graphs.graph_replays(), 4);
    EXPECT_EQ(graphs.capture_failures(), 0);
}

// Backend-level graph mechanics: a replay re-reads its fixed inputs, and a body that synchronizes (here a
// download) ends the capture with an error instead of aborting, leaving the backend usable.
TEST(DecodeGraphsGpu, CaptureReplaysAndRefusesSynchronizingBodies) {
    if (backend::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device present";
    std::unique_ptr<backend::Backend> be = backend::make_cuda_backend(backend::Numerics::bf16(), 0);
    auto bf16_row = [](float base) {
        Tensor t = Tensor::empty({1, 256}, DType::kBF16);
        for (int64_t i = 0; i < 256; ++i) t.data<uint16_t>()[i] = f32_to_bf16(base + static_cast<float>(i));
        return t;
    };
    Tensor a = be->to_device(bf16_row(1.0f)), b = be->to_device(bf16_row(0.0f));
    Tensor out;
    auto graph = be->capture_graph([&] { out = be->add(a, b); });
    ASSERT_TRUE(graph.is_ok()) << graph.status().to_string();
    for (float base : {1.0f, 5.0f}) {
        be->copy_into(bf16_row(base), a);
        be->replay_graph(**graph);
        Tensor host = be->to_host(out);
        for (int64_t i = 0; i < 256; i += 51) {
            EXPECT_EQ(bf16_to_f32(host.data<uint16_t>()[i]), bf16_to_f32(f32_to_bf16(base + 2.0f * i))) << base;
        }
    }
    auto broken = be->capture_graph([&] { (void)be->to_host(be->add(a, b)); });
    ASSERT_FALSE(broken.is_ok());
    EXPECT_NE(broken.status().message().find("synchronized"), std::string::npos) << broken.status().to_string();
    Tensor after = be->to_host(be->add(a, b));  // eager work still runs
    EXPECT_EQ(bf16_to_f32(after.data<uint16_t>()[3]), bf16_to_f32(f32_to_bf16(5.0f + 6.0f)));
}

}  // namespace
}  // namespace dsa::engine
