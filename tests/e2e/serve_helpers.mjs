// Shared plumbing for the end-to-end tests: start `dsaserve serve` on a free loopback port (random-weight
// DeepSeek-V3.2 golden fixture, byte-level tokenizer) with extra flags / environment, stop it, and small
// clients for streaming chat, /generate and the KV page counters in /get_server_info.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';

export const SRC = process.env.DSA_SOURCE_DIR;
export const BIN = process.env.DSASERVE;
const require = createRequire(SRC + '/package.json');
export const OpenAI = require('openai').default ?? require('openai');

export async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// Starts a server and waits for /health. Returns { base, client, proc, logs() }.
export async function startServer(extraArgs = [], env = {}) {
  const port = await freePort();
  const args = ['serve', '--port', String(port), '--model-path', SRC + '/tests/golden/deepseek_v32_tiny',
    '--tokenizer-path', SRC + '/tests/golden/byte_tokenizer', '--served-model-name', 'tiny', ...extraArgs];
  // A small KV pool by default: allocating the 1 GiB default is slow on a loaded machine.
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DSA_CPU_KV_CACHE_BYTES: String(64 << 20), ...env } });
  let logs = '';
  proc.stdout.on('data', (d) => { logs += d; });
  proc.stderr.on('data', (d) => { logs += d; });
  const exited = new Promise((r) => proc.on('exit', r));
  const base = `http://127.0.0.1:${port}`;
  const end = Date.now() + 120000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error('server exited during start-up:\n' + logs);
    try { if ((await fetch(base + '/health')).status === 200) break; } catch {}
    if (Date.now() > end) throw new Error('server did not become healthy:\n' + logs);
    await new Promise((r) => setTimeout(r, 200));
  }
  const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 300000 });
  return {
    base, client, proc, logs: () => logs,
    stop: async () => { if (proc.exitCode === null) { proc.kill('SIGTERM'); await exited; } },
  };
}

export const ask = (content, extra = {}) => ({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 12,
  temperature: 0, ...extra });

// Streams a chat completion; returns the joined content / reasoning deltas, every delta, finish reason and usage.
export async function streamChat(client, params, options = {}) {
  const stream = await client.chat.completions.create(
    { ...params, stream: true, stream_options: { include_usage: true } }, options);
  const out = { text: '', reasoning: '', deltas: [], finish: null, matched_stop: undefined, usage: null };
  for await (const chunk of stream) {
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      out.deltas.push(c.delta ?? {});
      out.text += c.delta?.content ?? '';
      out.reasoning += c.delta?.reasoning_content ?? '';
      if (c.finish_reason) { out.finish = c.finish_reason; out.matched_stop = c.matched_stop; }
    }
  }
  return out;
}

// POST /generate; returns the parsed JSON (throws on a non-200 status with the body).
export async function generate(base, body) {
  const r = await fetch(base + '/generate', { method: 'POST', body: JSON.stringify(body) });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`/generate -> ${r.status}: ${text}`);
  return JSON.parse(text);
}

// The first scheduler's state in /get_server_info (memory_usage has the KV page counters).
export async function serverState(base) {
  return (await (await fetch(base + '/get_server_info')).json()).internal_states[0];
}

// Polls until the engine holds no KV pages for requests (stats are published once per engine step).
export async function waitPagesReleased(base, ms = 10000) {
  const end = Date.now() + ms;
  let s;
  do {
    s = await serverState(base);
    if (s.memory_usage.kv_pages_used === 0 && s.num_running_reqs === 0 && s.num_queue_reqs === 0) return s;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < end);
  return s;
}
