// The real server, end to end: `dsaserve serve` on the random-weight DeepSeek-V3.2 golden fixture with the
// byte-level tokenizer, on a loopback port, driven by the official openai client as a user's code would.
// Greedy decoding makes every answer reproducible, so streamed == non-streamed and concurrent == alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer } from './serve_helpers.mjs';

let srv, base, client;

before(async () => {
  srv = await startServer(['--enable-metrics', '--enable-cache-report', '--reasoning-parser', 'deepseek-v3',
    '--tool-call-parser', 'deepseekv32']);
  ({ base, client } = srv);
});

after(async () => { await srv?.stop(); });

const ask = (content, extra = {}) => ({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 12,
  temperature: 0, ...extra });

async function streamText(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish, usage };
}

test('models list names the served model', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['tiny']);
});

test('chat: non-streaming answer with usage', async () => {
  const r = await client.chat.completions.create(ask('Hello there, how are you?'));
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 12);
  assert.ok(r.usage.prompt_tokens > 20);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 12);
});

test('chat: streamed text equals the non-streamed text (greedy)', async () => {
  const params = ask('Tell me a story about a cat.');
  const full = await client.chat.completions.create(params);
  const s = await streamText(params);
  assert.equal(s.text, full.choices[0].message.content ?? '');
  assert.equal(s.finish, 'length');
  assert.equal(s.usage.completion_tokens, 12);
});

test('16 concurrent streams each equal the same request served alone', async () => {
  const prompts = Array.from({ length: 16 }, (_, i) => 'Question ' + i + ': ' + 'why? '.repeat(1 + (i % 5) * 7));
  const alone = [];
  for (const p of prompts.slice(0, 4)) alone.push((await client.chat.completions.create(ask(p))).choices[0].message.content);
  const together = await Promise.all(prompts.map((p) => streamText(ask(p))));
  for (let i = 0; i < 4; ++i) assert.equal(together[i].text, alone[i] ?? '', 'prompt ' + i);
  for (const t of together) assert.equal(t.finish, 'length');
});

// The value of the first sample of `name` in the /metrics text.
async function metric(name) {
  const text = await (await fetch(base + '/metrics')).text();
  const m = text.match(new RegExp('^' + name + '\\{[^}]*\\} (\\S+)$', 'm'));
  assert.ok(m, name + ' missing from /metrics');
  return Number(m[1]);
}

test('a repeated prompt hits the prefix cache, gives the same answer and moves the hit counter', async () => {
  const params = ask('A long shared prefix. '.repeat(12) + 'End.');
  const a = await client.chat.completions.create(params);
  const cachedBefore = await metric('sglang:cached_tokens_total');
  const b = await client.chat.completions.create(params);
  assert.equal(b.choices[0].message.content, a.choices[0].message.content);
  assert.ok(b.usage.prompt_tokens_details?.cached_tokens >= 64, JSON.stringify(b.usage));
  assert.equal(await metric('sglang:cached_tokens_total'), cachedBefore + b.usage.prompt_tokens_details.cached_tokens);
});

test('completions, n > 1 and logprobs', async () => {
  const c = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, temperature: 0 });
  assert.equal(c.object, 'text_completion');
  assert.equal(c.usage.completion_tokens, 5);
  const r = await client.chat.completions.create(ask('Pick two.', { n: 2, logprobs: true, top_logprobs: 2, max_tokens: 4 }));
  assert.equal(r.choices.length, 2);
  assert.equal(r.choices[0].message.content, r.choices[1].message.content);  // greedy: both choices agree
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, 4);
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 2);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
  }
});

test('bad requests get OpenAI-style 400 errors', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: [], max_tokens: 4 }),
    (e) => e.status === 400);
  await assert.rejects(client.chat.completions.create(ask('x', { temperature: -1 })), (e) => e.status === 400);
  await assert.rejects(client.chat.completions.create(ask('x', { max_tokens: 10_000_000 })), (e) => e.status === 400);
});

test('abort mid-stream leaves the server healthy', async () => {
  const ac = new AbortController();
  const stream = await client.chat.completions.create(
    { ...ask('Keep going', { max_tokens: 3000, ignore_eos: true }), stream: true }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const _ of stream) { if (++n === 3) ac.abort(); }
  } catch (e) {
    assert.equal(e.name, 'AbortError');  // the client either ends the iteration or throws AbortError
  }
  assert.ok(n < 100, 'the stream ran on after the abort: ' + n + ' chunks');
  const r = await client.chat.completions.create(ask('Still there?'));
  assert.equal(r.usage.completion_tokens, 12);
});

test('/metrics parses as Prometheus text with SGLang names', async () => {
  const text = await (await fetch(base + '/metrics')).text();
  const py = 'import sys\nfrom prometheus_client.parser import text_string_to_metric_families as f\n' +
    'print(",".join(sorted(m.name for m in f(sys.stdin.read()))))';
  const names = execFileSync('/usr/bin/python3', ['-c', py], { input: text }).toString();
  assert.match(names, /sglang:prompt_tokens/);
  assert.match(names, /sglang:generation_tokens/);
  assert.match(names, /sglang:time_to_first_token_seconds/);
  assert.match(names, /sglang:kv_used_tokens/);
  assert.match(names, /sglang:kv_available_tokens/);
});
