// Tool-call round trips on the request side, end to end, for both DeepSeek formats: the dsv32 encoder
// (--tool-call-parser deepseekv32) and the V3.1 Jinja template (--chat-template, --tool-call-parser deepseekv31).
// A conversation with an assistant tool call and a `tool` result must be accepted and encoded exactly as an
// independent renderer (tests/e2e/render_prompt.py) encodes it: the same prompt through /generate gives the same
// token count and the same greedy answer. tool_choice "none" keeps the tools in dsv32 and hides them in Jinja.
// (The random-weight model cannot produce a tool call; the response side is covered by the parser tests.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { SRC, startServer, generate } from './serve_helpers.mjs';

const servers = {};

before(async () => {
  servers.dsv32 = await startServer(['--tool-call-parser', 'deepseekv32']);
  servers.v31 = await startServer(['--tool-call-parser', 'deepseekv31', '--chat-template', SRC + '/templates/deepseek_v31.jinja']);
});

after(async () => { await Promise.all(Object.values(servers).map((s) => s.stop())); });

const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather forecast for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } } }];

const messages = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is the weather in Paris for the next 2 days?' },
  { role: 'assistant', content: '', tool_calls: [{ id: 'call_0', type: 'function',
    function: { name: 'get_weather', arguments: '{"city": "Paris", "days": 2}' } }] },
  { role: 'tool', tool_call_id: 'call_0', content: '{"forecast": ["sunny", "rain"]}' },
];

// The renderer takes tool-call arguments as objects (the server parses the JSON strings first, as SGLang).
function render(format, withTools) {
  const msgs = messages.map((m) => (m.tool_calls ? { ...m, tool_calls: m.tool_calls.map((t) =>
    ({ ...t, function: { ...t.function, arguments: JSON.parse(t.function.arguments) } })) } : m));
  const input = JSON.stringify({ format, messages: msgs, tools: withTools ? tools : [] });
  return execFileSync('/usr/bin/python3', [SRC + '/tests/e2e/render_prompt.py', SRC], { input }).toString();
}

const MAX = 16;
const chat = (srv, extra) => srv.client.chat.completions.create({ model: 'tiny', messages, max_tokens: MAX,
  temperature: 0, ...extra });

for (const format of ['dsv32', 'v31']) {
  test(`${format}: a tool-call round trip is encoded as the reference renders it`, async () => {
    const srv = servers[format];
    const r = await chat(srv, { tools });
    assert.ok(['length', 'stop'].includes(r.choices[0].finish_reason), r.choices[0].finish_reason);
    const ref = await generate(srv.base, { text: render(format, true),
      sampling_params: { max_new_tokens: MAX, temperature: 0, skip_special_tokens: false } });
    assert.equal(r.usage.prompt_tokens, ref.meta_info.prompt_tokens);
    assert.equal(r.usage.completion_tokens, ref.meta_info.completion_tokens);
    assert.equal(r.choices[0].message.content ?? '', ref.text);
    assert.equal(r.choices[0].message.tool_calls ?? null, null);
  });

  test(`${format}: tool_choice "none" is accepted and handled as SGLang does`, async () => {
    const srv = servers[format];
    const auto = await chat(srv, { tools, tool_choice: 'auto' });
    const none = await chat(srv, { tools, tool_choice: 'none' });
    const bare = await chat(srv, {});
    assert.ok(auto.usage.prompt_tokens > bare.usage.prompt_tokens, 'the tools were not rendered');
    const ref = await generate(srv.base, { text: render(format, false), sampling_params: { max_new_tokens: 1 } });
    assert.equal(bare.usage.prompt_tokens, ref.meta_info.prompt_tokens);
    // dsv32 attaches the tools whatever tool_choice says; a Jinja template does not see them with "none".
    const toolsShown = format === 'dsv32';
    assert.equal(none.usage.prompt_tokens, (toolsShown ? auto : bare).usage.prompt_tokens);
    const refNone = await generate(srv.base, { text: render(format, toolsShown),
      sampling_params: { max_new_tokens: MAX, temperature: 0 } });  // "none": special tokens skipped again
    assert.equal(none.usage.prompt_tokens, refNone.meta_info.prompt_tokens);
    assert.equal(none.choices[0].message.content ?? '', refNone.text);
  });
}

test('tool-call arguments in the history that are not JSON are a 400', async () => {
  const srv = servers.dsv32;
  await assert.rejects(srv.client.chat.completions.create({ model: 'tiny', max_tokens: 2, messages: [
    { role: 'user', content: 'hi' }, { role: 'assistant', content: '', tool_calls: [{ id: 'c', type: 'function',
      function: { name: 'get_weather', arguments: '{not json' } }] }] }), (e) => e.status === 400);
});
