// Constrained decoding end to end: `dsaserve serve` on the random-weight DeepSeek-V3.2 golden fixture (byte-level
// tokenizer) with --tool-call-parser deepseekv32. A random model never writes a tool call by itself, so a parsed
// call in the answer can only come from the grammar mask: tool_choice "required" / named must return tool_calls
// (finish_reason "tool_calls") whose arguments match the schema, and response_format must return matching JSON.
// The tools take only bounded values (enums, integers, booleans) so every constrained answer fits max_tokens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';

const SRC = process.env.DSA_SOURCE_DIR;
const BIN = process.env.DSASERVE;
const require = createRequire(SRC + '/package.json');
const OpenAI = require('openai').default ?? require('openai');

let proc, base, client, logs = '';

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

before(async () => {
  const port = await freePort();
  proc = spawn(BIN, ['serve', '--port', String(port), '--model-path', SRC + '/tests/golden/deepseek_v32_tiny',
    '--tokenizer-path', SRC + '/tests/golden/byte_tokenizer', '--served-model-name', 'tiny',
    '--tool-call-parser', 'deepseekv32'],
  { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DSA_CPU_KV_CACHE_BYTES: String(64 << 20) } });
  proc.stdout.on('data', (d) => { logs += d; });
  proc.stderr.on('data', (d) => { logs += d; });
  base = `http://127.0.0.1:${port}`;
  const end = Date.now() + 120000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error('server exited during start-up:\n' + logs);
    try { if ((await fetch(base + '/health')).status === 200) break; } catch {}
    if (Date.now() > end) throw new Error('server did not become healthy:\n' + logs);
    await new Promise((r) => setTimeout(r, 200));
  }
  client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 300000 });
});

after(async () => {
  if (proc && proc.exitCode === null) {
    const exited = new Promise((r) => proc.on('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }
});

const tools = [
  { type: 'function', function: { name: 'set_mode', parameters: { type: 'object',
    properties: { mode: { type: 'string', enum: ['eco', 'turbo'] }, level: { type: 'integer' } },
    required: ['mode', 'level'] } } },
  { type: 'function', function: { name: 'toggle', parameters: { type: 'object',
    properties: { on: { type: 'boolean' } }, required: ['on'] } } },
];

const chat = (extra) => ({ model: 'tiny', messages: [{ role: 'user', content: 'Pick a setting.' }],
  max_tokens: 400, temperature: 1, seed: 1, ...extra });

function checkCall(call) {
  const args = JSON.parse(call.function.arguments);
  if (call.function.name === 'set_mode') {
    assert.ok(['eco', 'turbo'].includes(args.mode), call.function.arguments);
    assert.ok(Number.isInteger(args.level), call.function.arguments);
    assert.deepEqual(Object.keys(args).sort(), ['level', 'mode']);
  } else {
    assert.equal(call.function.name, 'toggle');
    assert.equal(typeof args.on, 'boolean', call.function.arguments);
  }
}

// With parallel_tool_calls false the answer is exactly one call (otherwise a random model may keep adding calls
// until max_tokens; several calls per answer are covered by the unit random walks).
test('tool_choice "required" returns a parsed tool call of one of the given tools', async () => {
  for (const temperature of [0, 1]) {
    const r = await client.chat.completions.create(chat({ tools, tool_choice: 'required', temperature,
      parallel_tool_calls: false }));
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
    assert.equal(c.message.tool_calls.length, 1);
    checkCall(c.message.tool_calls[0]);
  }
});

test('a named tool_choice returns exactly one call of that function', async () => {
  const r = await client.chat.completions.create(chat({ tools,
    tool_choice: { type: 'function', function: { name: 'toggle' } } }));
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
  assert.equal(c.message.tool_calls.length, 1);
  assert.equal(c.message.tool_calls[0].function.name, 'toggle');
  checkCall(c.message.tool_calls[0]);
});

test('streaming with tool_choice "required" streams the call', async () => {
  const stream = await client.chat.completions.create({ ...chat({ tools, tool_choice: 'required',
    parallel_tool_calls: false }), stream: true });
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      for (const t of ch.delta?.tool_calls ?? []) {
        calls[t.index] ??= { function: { name: '', arguments: '' } };
        if (t.function?.name) calls[t.index].function.name = t.function.name;
        calls[t.index].function.arguments += t.function?.arguments ?? '';
      }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(calls.length, 1);
  for (const call of calls) checkCall(call);
});

test('response_format json_schema and json_object constrain chat and completions', async () => {
  const schema = { type: 'object', properties: { ok: { type: 'boolean' }, n: { type: 'integer' },
    pick: { enum: ['a', 'b', 3] } }, required: ['ok', 'n', 'pick'] };
  const r = await client.chat.completions.create(chat({
    response_format: { type: 'json_schema', json_schema: { name: 's', schema } } }));
  const v = JSON.parse(r.choices[0].message.content);
  assert.equal(typeof v.ok, 'boolean');
  assert.ok(Number.isInteger(v.n));
  assert.ok(['a', 'b', 3].includes(v.pick));
  assert.equal(r.choices[0].finish_reason, 'stop');
  const c = await client.completions.create({ model: 'tiny', prompt: 'JSON:', max_tokens: 400, temperature: 1, seed: 3,
    response_format: { type: 'json_schema', json_schema: { name: 's', schema } } });
  assert.equal(typeof JSON.parse(c.choices[0].text).ok, 'boolean');
  // json_object: an object of any shape; a small max_tokens may cut it, so only the start is checked.
  const o = await client.chat.completions.create(chat({ response_format: { type: 'json_object' }, max_tokens: 8 }));
  assert.equal(o.choices[0].message.content.trimStart()[0], '{');
});

test('bad schemas and tool choices are 400s', async () => {
  const post = (body) => fetch(base + '/v1/chat/completions', { method: 'POST',
    headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  for (const body of [
    chat({ response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'strin' } } } }),
    chat({ response_format: { type: 'json_schema', json_schema: { name: 's' } } }),
    chat({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object',
      properties: { a: { type: 'nope' } } } } }], tool_choice: 'required' }),
    chat({ tools, tool_choice: { type: 'function', function: { name: 'missing' } } }),
  ]) {
    const res = await post(body);
    assert.equal(res.status, 400, JSON.stringify(body) + ' -> ' + (await res.text()));
  }
});
