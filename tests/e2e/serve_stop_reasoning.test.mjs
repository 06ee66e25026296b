// Stop handling, reasoning separation and /generate extras end to end. The random-weight model's greedy
// output is learned first (plain requests), then the same request with a stop string / stop token id taken
// from that output must end exactly there, in chat, completions and /generate, streamed or not, and a stream
// must never send any part of the stop string. Reasoning: the chat answer must be the raw text split at the
// first </think> as the deepseek-v3 parser does (logit_bias on </think> makes the model emit it mid-answer).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { SRC, startServer, streamChat, generate } from './serve_helpers.mjs';

let srv;
const THINK_END = 261;  // "</think>" in the byte-level fixture tokenizer

before(async () => {
  srv = await startServer(['--reasoning-parser', 'deepseek-v3', '--tool-call-parser', 'deepseekv32']);
});

after(async () => { await srv?.stop(); });

const PROMPTS = ['Tell me about stop strings.', 'Count to ten, please.', 'What is a prefix?', 'Write a haiku.',
  'Describe the sea.', 'List three colours.'];

// A stop string from `text`: `len` printable ASCII characters starting at p >= 2, first occurring at p.
function pickStop(text, len = 2) {
  for (let p = 2; p + len <= text.length; ++p) {
    const s = text.slice(p, p + len);
    if (/^[\x21-\x7e]+$/.test(s) && text.indexOf(s) === p) return { stop: s, before: text.slice(0, p) };
  }
  return null;
}

// The first prompt whose greedy output (from `run`) contains a usable stop string.
async function findStop(run) {
  for (const p of PROMPTS) {
    const text = await run(p);
    const pick = pickStop(text);
    if (pick) return { prompt: p, text, ...pick };
  }
  assert.fail('no greedy output with a printable two-character stop string');
}

function renderDsv32(messages, extra = {}) {
  const input = JSON.stringify({ format: 'dsv32', messages, ...extra });
  return execFileSync('/usr/bin/python3', [SRC + '/tests/e2e/render_prompt.py', SRC], { input }).toString();
}

const chat = (content, extra = {}) => ({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 48,
  temperature: 0, separate_reasoning: false, ignore_eos: true, ...extra });

// Every prefix of the streamed text must be a prefix of `expected` (nothing past the stop point is ever sent).
function assertStreamedPrefixes(deltas, expected, field = 'content') {
  let sent = '';
  for (const d of deltas) {
    sent += d[field] ?? '';
    assert.ok(expected.startsWith(sent), `streamed ${JSON.stringify(sent)} is not a prefix of ${JSON.stringify(expected)}`);
  }
  assert.equal(sent, expected);
}

test('chat: stop string trims the answer, streamed or not, and no part of it is ever streamed', async () => {
  const found = await findStop(async (p) => (await srv.client.chat.completions.create(chat(p))).choices[0].message.content);
  const params = chat(found.prompt, { stop: ['never-in-output', found.stop] });
  const r = await srv.client.chat.completions.create(params);
  assert.equal(r.choices[0].message.content, found.before);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].matched_stop, found.stop);
  const s = await streamChat(srv.client, params);
  assert.equal(s.finish, 'stop');
  assertStreamedPrefixes(s.deltas, found.before);
  const kept = await srv.client.chat.completions.create({ ...params, no_stop_trim: true });
  assert.equal(kept.choices[0].message.content, found.before + found.stop);
});

test('completions: stop string, streamed or not', async () => {
  const run = async (p) => (await srv.client.completions.create({ model: 'tiny', prompt: p, max_tokens: 48,
    temperature: 0, ignore_eos: true })).choices[0].text;
  const found = await findStop(run);
  const params = { model: 'tiny', prompt: found.prompt, max_tokens: 48, temperature: 0, ignore_eos: true, stop: found.stop };
  const r = await srv.client.completions.create(params);
  assert.equal(r.choices[0].text, found.before);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const stream = await srv.client.completions.create({ ...params, stream: true });
  let sent = '', finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      sent += c.text;
      assert.ok(found.before.startsWith(sent), 'streamed past the stop point: ' + JSON.stringify(sent));
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(sent, found.before);
  assert.equal(finish, 'stop');
});

test('/generate: stop string gives matched_stop in meta_info, cumulative stream stops before it', async () => {
  const sp = { max_new_tokens: 48, temperature: 0, ignore_eos: true };
  const found = await findStop(async (p) => (await generate(srv.base, { text: p, sampling_params: sp })).text);
  const r = await generate(srv.base, { text: found.prompt, sampling_params: { ...sp, stop: [found.stop] } });
  assert.equal(r.text, found.before);
  assert.deepEqual(r.meta_info.finish_reason, { type: 'stop', matched: found.stop });
  const res = await fetch(srv.base + '/generate', { method: 'POST',
    body: JSON.stringify({ text: found.prompt, stream: true, sampling_params: { ...sp, stop: found.stop } }) });
  const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: ') && !e.includes('[DONE]'))
    .map((e) => JSON.parse(e.slice(6)));
  assert.ok(events.length > 0);
  for (const e of events) assert.ok(found.before.startsWith(e.text), 'streamed past the stop point: ' + JSON.stringify(e.text));
  assert.equal(events.at(-1).text, found.before);
  assert.deepEqual(events.at(-1).meta_info.finish_reason, { type: 'stop', matched: found.stop });
});

test('stop_token_ids end the answer at that token in /generate and chat', async () => {
  const messages = [{ role: 'user', content: PROMPTS[0] }];
  const prompt = renderDsv32(messages);
  const sp = { max_new_tokens: 32, temperature: 0 };
  const full = await generate(srv.base, { text: prompt, sampling_params: sp });
  const k = full.output_ids.findIndex((id, i) => i >= 3 && full.output_ids.indexOf(id) === i);
  assert.ok(k > 0, 'no token id occurs first after position 3: ' + JSON.stringify(full.output_ids));
  const id = full.output_ids[k];
  const cut = await generate(srv.base, { text: prompt, sampling_params: { ...sp, stop_token_ids: [id] } });
  assert.deepEqual(cut.output_ids, full.output_ids.slice(0, k));
  assert.deepEqual(cut.meta_info.finish_reason, { type: 'stop', matched: id });
  assert.equal(cut.meta_info.completion_tokens, k + 1);
  const c = await srv.client.chat.completions.create({ model: 'tiny', messages, max_tokens: 32, temperature: 0,
    stop_token_ids: [id], separate_reasoning: false });
  assert.equal(c.choices[0].finish_reason, 'stop');
  assert.equal(c.choices[0].matched_stop, id);
  assert.equal(c.usage.completion_tokens, k + 1);
  assert.equal(c.choices[0].message.content, cut.text);
});

// What the deepseek-v3 parser must make of `raw` when the prompt opened a reasoning block.
function splitReasoning(raw) {
  let text = raw;
  while (text.startsWith('<think>')) text = text.slice('<think>'.length);
  const end = text.indexOf('</think>');
  if (end < 0) return { reasoning: text, content: '' };
  return { reasoning: text.slice(0, end), content: text.slice(end + '</think>'.length) };
}

test('reasoning: thinking prompts split at </think>; separate_reasoning false keeps the raw text; streaming agrees', async () => {
  const seen = { closed: 0, open: 0 };
  for (const bias of [0, 2, 3, 4]) {
    for (const p of PROMPTS.slice(0, 3)) {
      const params = { model: 'tiny', messages: [{ role: 'user', content: p }], max_tokens: 24, temperature: 0,
        chat_template_kwargs: { thinking: true }, logit_bias: { [THINK_END]: bias } };
      const raw = (await srv.client.chat.completions.create({ ...params, separate_reasoning: false })).choices[0].message;
      assert.equal(raw.reasoning_content ?? null, null);
      const want = splitReasoning(raw.content);
      const got = (await srv.client.chat.completions.create(params)).choices[0].message;
      assert.equal(got.reasoning_content ?? '', want.reasoning, 'bias ' + bias + ': ' + JSON.stringify(raw.content));
      assert.equal(got.content ?? '', want.content);
      const s = await streamChat(srv.client, params);
      assert.equal(s.reasoning, want.reasoning);
      assert.equal(s.text, want.content);
      if (raw.content.includes('</think>') && want.reasoning && want.content) seen.closed++;
      if (!raw.content.includes('</think>') && raw.content) seen.open++;
    }
  }
  assert.ok(seen.open > 0, 'no answer without </think>: the all-reasoning case was not exercised');
  assert.ok(seen.closed > 0, 'no answer with </think> between reasoning and content');
});

test('reasoning: without thinking the answer is content only', async () => {
  const params = { model: 'tiny', messages: [{ role: 'user', content: PROMPTS[1] }], max_tokens: 16, temperature: 0 };
  const raw = (await srv.client.chat.completions.create({ ...params, separate_reasoning: false })).choices[0].message;
  const r = (await srv.client.chat.completions.create(params)).choices[0].message;
  assert.ok(!raw.content.includes('<think>'), 'the model opened a reasoning block itself; pick another prompt');
  assert.equal(r.content, raw.content);
  assert.equal(r.reasoning_content ?? null, null);
});

test('/generate: n > 1 returns one greedy sample per n, streamed with an index', async () => {
  const sp = { max_new_tokens: 8, temperature: 0 };
  const one = await generate(srv.base, { text: PROMPTS[2], sampling_params: sp });
  const many = await generate(srv.base, { text: PROMPTS[2], sampling_params: { ...sp, n: 3 } });
  assert.ok(Array.isArray(many) && many.length === 3, JSON.stringify(many));
  for (const m of many) {
    assert.equal(m.text, one.text);
    assert.deepEqual(m.output_ids, one.output_ids);
  }
  assert.equal(new Set(many.map((m) => m.meta_info.id)).size, 3);
  const res = await fetch(srv.base + '/generate', { method: 'POST',
    body: JSON.stringify({ text: PROMPTS[2], stream: true, sampling_params: { ...sp, n: 2 } }) });
  const last = {};
  for (const e of (await res.text()).split('\n\n')) {
    if (!e.startsWith('data: ') || e.includes('[DONE]')) continue;
    const j = JSON.parse(e.slice(6));
    last[j.index] = j;
  }
  assert.deepEqual(Object.keys(last).sort(), ['0', '1']);
  for (const j of Object.values(last)) assert.equal(j.text, one.text);
});

test('/generate: output logprobs; input logprobs are refused clearly', async () => {
  const r = await generate(srv.base, { text: PROMPTS[3], return_logprob: true, top_logprobs_num: 2,
    sampling_params: { max_new_tokens: 4, temperature: 0 } });
  assert.equal(r.meta_info.output_token_logprobs.length, 4);
  r.meta_info.output_token_logprobs.forEach(([lp, id], i) => {
    assert.ok(lp <= 0);
    assert.equal(id, r.output_ids[i]);
    assert.equal(r.meta_info.output_top_logprobs[i].length, 2);
  });
  const bad = await fetch(srv.base + '/generate', { method: 'POST', body: JSON.stringify({ text: 'x',
    return_logprob: true, logprob_start_len: 0, sampling_params: { max_new_tokens: 2 } }) });
  assert.ok(bad.status >= 400 && bad.status < 600 && bad.status !== 500, 'status ' + bad.status);
  assert.match(await bad.text(), /input token logprobs/);
});
