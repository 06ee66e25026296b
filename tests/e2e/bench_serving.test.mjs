// `dsaserve bench-serving` end to end: a real `dsaserve serve` on the random-weight DeepSeek-V3.2 golden
// fixture (byte-level tokenizer) on a loopback port, benchmarked through all three backends with the shipped
// ShareGPT-format sample and the random dataset; checks the JSON lines, the console report and the sweep plot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

const SRC = process.env.DSA_SOURCE_DIR;
const BIN = process.env.DSASERVE;
const SAMPLE = SRC + '/tests/data/sharegpt_sample.json';
const TOKENIZER = SRC + '/tests/golden/byte_tokenizer';
let server, port, dir, logs = '';

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function waitHealthy(url, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { if ((await fetch(url + '/health')).status === 200) return; } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('server did not become healthy:\n' + logs);
}

// Runs bench-serving; resolves with { code, stdout, stderr }.
function bench(args) {
  return new Promise((resolve) => {
    execFile(BIN, ['bench-serving', '--port', String(port), ...args], { timeout: 240000 },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
}

const jsonLines = (file) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

before(async () => {
  port = await freePort();
  dir = mkdtempSync(join(tmpdir(), 'bench-serving-e2e-'));
  server = spawn(BIN, ['serve', '--port', String(port), '--model-path', SRC + '/tests/golden/deepseek_v32_tiny',
    '--tokenizer-path', TOKENIZER, '--served-model-name', 'tiny'], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (d) => { logs += d; });
  server.stderr.on('data', (d) => { logs += d; });
  await waitHealthy(`http://127.0.0.1:${port}`, 60000);
});

after(async () => {
  if (server) {
    server.kill('SIGTERM');
    await new Promise((r) => server.on('exit', r));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const SGLANG_KEYS = ['backend', 'dataset_name', 'request_rate', 'max_concurrency', 'sharegpt_output_len',
  'random_input_len', 'random_output_len', 'random_range_ratio', 'duration', 'completed', 'total_input_tokens',
  'total_output_tokens', 'total_output_tokens_retokenized', 'request_throughput', 'input_throughput',
  'output_throughput', 'mean_e2e_latency_ms', 'median_e2e_latency_ms', 'std_e2e_latency_ms', 'p99_e2e_latency_ms',
  'mean_ttft_ms', 'median_ttft_ms', 'std_ttft_ms', 'p99_ttft_ms', 'mean_tpot_ms', 'median_tpot_ms', 'std_tpot_ms',
  'p99_tpot_ms', 'mean_itl_ms', 'median_itl_ms', 'std_itl_ms', 'p95_itl_ms', 'p99_itl_ms', 'concurrency'];

for (const backend of ['sglang', 'sglang-oai', 'sglang-oai-chat']) {
  test(`sharegpt sample through ${backend}`, async () => {
    const out = join(dir, `${backend}.jsonl`);
    const r = await bench(['--backend', backend, '--dataset-name', 'sharegpt', '--dataset-path', SAMPLE,
      '--tokenizer', TOKENIZER, '--num-prompts', '5', '--sharegpt-output-len', '6', '--max-concurrency', '2',
      '--output-file', out, '--disable-tqdm']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const [j] = jsonLines(out);
    for (const k of SGLANG_KEYS) assert.ok(k in j, `missing ${k}`);
    assert.equal(j.backend, backend);
    assert.equal(j.dataset_name, 'sharegpt');
    assert.equal(j.completed, 5);
    assert.equal(j.max_concurrency, 2);
    assert.equal(j.sharegpt_output_len, 6);
    assert.equal(j.total_output_tokens, 30);  // ignore_eos: every request generates exactly 6 tokens
    // The byte-level tokenizer makes prompt lengths byte counts of the sample's human turns.
    assert.ok(j.total_input_tokens > 5 * 2, `input tokens ${j.total_input_tokens}`);
    assert.ok(j.total_output_tokens_retokenized > 0);
    assert.ok(j.mean_ttft_ms > 0 && j.mean_ttft_ms <= j.mean_e2e_latency_ms);
    assert.ok(j.p99_e2e_latency_ms >= j.median_e2e_latency_ms);
    assert.ok(j.mean_itl_ms > 0);
    assert.match(r.stdout, /Serving Benchmark Result/);
    assert.match(r.stdout, new RegExp(`Backend:\\s+${backend} *\\n`));
    assert.match(r.stdout, /Successful requests:\s+5 *\n/);
  });
}

test('random ids, tokenizer found through /get_model_info, concurrency sweep and SVG plot', async () => {
  const out = join(dir, 'sweep.jsonl');
  const svg = join(dir, 'sweep.svg');
  const r = await bench(['--backend', 'sglang-oai-chat', '--dataset-name', 'random', '--num-prompts', '4',
    '--random-input-len', '24', '--random-output-len', '5', '--random-range-ratio', '1',
    '--max-concurrency-range', '1,4', '--output-file', out, '--plot', svg]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /tokenizer: .*byte_tokenizer/);
  assert.match(r.stderr, /\[#+\] 4\/4 100%/);  // the plain progress lines (stderr is a pipe here)
  const lines = jsonLines(out);
  assert.deepEqual(lines.map((l) => l.max_concurrency), [1, 4]);
  for (const l of lines) {
    assert.equal(l.completed, 4);
    assert.equal(l.total_output_tokens, 20);
    assert.equal(l.random_input_len, 24);
  }
  assert.match(r.stdout, /c=1 .*\nc=4 /);  // the sweep summary table
  assert.ok(existsSync(svg));
  const text = readFileSync(svg, 'utf8');
  assert.ok(text.startsWith('<?xml') && text.trim().endsWith('</svg>'));
  assert.equal((text.match(/<circle class="point"/g) || []).length, 8);
});

test('bad input is a clear error, not a crash', async () => {
  const noFile = await bench(['--dataset-name', 'sharegpt', '--tokenizer', TOKENIZER]);
  assert.equal(noFile.code, 2);
  assert.match(noFile.stderr, /--dataset-path is required/);
  const badBackend = await bench(['--backend', 'trt', '--dataset-name', 'random']);
  assert.equal(badBackend.code, 2);
  assert.match(badBackend.stderr, /--backend trt: not supported/);
  const png = await bench(['--dataset-name', 'random', '--plot', join(dir, 'x.png')]);
  assert.equal(png.code, 2);
  assert.match(png.stderr, /only SVG/);
  const down = await bench(['--dataset-name', 'random', '--num-prompts', '1', '--base-url', 'http://127.0.0.1:1']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /warmup failed.*cannot connect/);
});
