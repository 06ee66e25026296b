// Builds the chat-template golden fixtures (deterministic: a fixed-seed PRNG) and renders each case with
// @huggingface/jinja (pinned in package.json). Writes tests/golden/chat_templates/<template>.json with the
// cases and the JavaScript rendering; tools/gen_jinja_fixtures_py.py then renders the same cases with Python
// jinja2 the way transformers does, records that as the expected output, and reports disagreements.
// Usage: node tools/gen_jinja_fixtures.mjs   (from the repository root)
import fs from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const OUT_DIR = path.join(ROOT, "tests/golden/chat_templates");
const CASES_PER_TEMPLATE = 60;

// mulberry32: a tiny deterministic PRNG.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TEXTS = [
  "Hello!", "What's the weather in Paris?", "2+2?", "Write a haiku about autumn.",
  "请用中文回答：北京今天天气怎么样？", "Ça va? Très bien, merci — à bientôt.", "emoji test 🚀🔥 done",
  "  leading and trailing spaces  ", "line one\nline two\n\nline four", "quotes: \"double\" and 'single' and \\backslash",
  "tab\tseparated\tvalues", "مرحبا بالعالم", "Ｆｕｌｌｗｉｄｔｈ text", "<b>html-ish</b> & entities",
  "{{ not a template }} {% neither %}", "", "Résumé naïve café", "日本語のテキストです。", "\u00a0non-breaking\u3000space\u00a0",
];
const SYSTEMS = ["You are a helpful assistant.", "You are DeepSeek. Answer concisely.", "系统提示：请简洁回答。",
                 "Follow the rules:\n1. Be kind\n2. Be brief", "  padded system prompt  "];
const REASONING = ["Let me think step by step.", "  The user wants a short answer.\n", "首先分析问题。", "Need the weather tool."];

const TOOLS = [
  { type: "function", function: { name: "get_weather", description: "Get weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } }, required: ["city"] } } },
  { type: "function", function: { name: "search", description: "Search the web (网页搜索)",
    parameters: { type: "object", properties: { query: { type: "string", description: "查询 — query" },
      top_k: { type: "integer", minimum: 1, maximum: 10 }, filters: { type: "object", properties: { lang: { type: "string", enum: ["en", "zh"] } } } },
      required: ["query"] } } },
  { type: "function", function: { name: "calc", description: "Evaluate an arithmetic expression",
    parameters: { type: "object", properties: { expression: { type: "string" }, precision: { type: "number" } }, required: ["expression"] } } },
  { type: "function", function: { name: "send_email", description: "Send an e-mail with \"quotes\" and a backslash \\",
    parameters: { type: "object", properties: { to: { type: "array", items: { type: "string" } }, subject: { type: "string" },
      urgent: { type: "boolean" }, cc: { type: ["string", "null"] } }, required: ["to", "subject"] } } },
];

const ARGS = [
  { city: "Paris", days: 2 }, { city: "北京" }, { query: "jinja2 trim_blocks", top_k: 3, filters: { lang: "en" } },
  { expression: "1/3", precision: 2.5 }, { to: ["a@example.com", "b@example.com"], subject: "Hi \"there\"", urgent: true, cc: null },
  { query: "emoji 🚀", top_k: 1 }, { expression: "2**10", precision: 1e-7 }, {},
];
const RESULTS = ["18C, sunny", "{\"temperature\": 21, \"unit\": \"C\"}", "搜索结果：3 条", "0.333", "sent", "error: timeout\nretry later"];

function pick(r, list) { return list[Math.floor(r() * list.length)]; }

function toolCall(r, i, argsAsString) {
  const args = pick(r, ARGS);
  const name = pick(r, TOOLS).function.name;
  return { id: `call_${i}`, type: "function", function: { name, arguments: argsAsString ? JSON.stringify(args) : args } };
}

// Builds one conversation. `style` adapts it to what each template accepts.
function conversation(r, style) {
  const msgs = [];
  if (r() < 0.6) msgs.push({ role: "system", content: pick(r, SYSTEMS) });
  if (style.multiSystem && r() < 0.15) msgs.push({ role: "system", content: pick(r, SYSTEMS) });
  const turns = 1 + Math.floor(r() * 3);
  for (let t = 0; t < turns; t++) {
    msgs.push({ role: "user", content: pick(r, TEXTS) || "hi" });
    const last = t === turns - 1;
    if (last && r() < 0.6) break;
    if (style.toolCalls && r() < 0.45) {
      const n = 1 + Math.floor(r() * 2);
      const calls = [];
      for (let i = 0; i < n; i++) calls.push(toolCall(r, t * 10 + i, style.stringArgs || (style.mixedArgs && r() < 0.5)));
      const m = { role: "assistant", content: style.toolContentNull ? null : (r() < 0.5 ? null : "Let me check."), tool_calls: calls };
      if (style.glm && r() < 0.5) m.reasoning_content = pick(r, REASONING);
      if (style.glm && m.content === null) m.content = "";
      msgs.push(m);
      for (let i = 0; i < n; i++) msgs.push({ role: "tool", tool_call_id: calls[i].id, content: pick(r, RESULTS) });
      if (last && r() < 0.5) break;
    }
    const answer = { role: "assistant", content: pick(r, TEXTS) };
    if (style.thinkInContent && r() < 0.3) answer.content = `<think>${pick(r, REASONING)}</think>${answer.content}`;
    if (style.glm && r() < 0.4) answer.reasoning_content = pick(r, REASONING);
    if (style.glm && r() < 0.1) answer.content = [{ type: "text", text: pick(r, TEXTS) }, { type: "text", text: "!" }];
    msgs.push(answer);
  }
  if (style.glm && r() < 0.15) msgs[msgs.length - 1].role === "user" && (msgs[msgs.length - 1].content = [{ type: "text", text: "part one " }, { type: "text", text: "part two" }]);
  return msgs;
}

const SPECS = [
  { name: "deepseek_v3", file: "templates/deepseek_v3.jinja", seed: 3,
    style: { toolCalls: true, stringArgs: true, toolContentNull: true, multiSystem: true },
    kwargs: () => ({}) },
  { name: "deepseek_v31", file: "templates/deepseek_v31.jinja", seed: 31,
    style: { toolCalls: true, mixedArgs: true, thinkInContent: true, multiSystem: true },
    kwargs: (r) => { const k = r(); return k < 0.35 ? { thinking: true } : k < 0.6 ? { thinking: false } : k < 0.7 ? { enable_thinking: true } : {}; } },
  { name: "glm5", file: "templates/glm5.jinja", seed: 5,
    style: { toolCalls: true, glm: true, thinkInContent: true },
    kwargs: (r) => { const k = r(); const o = k < 0.3 ? { enable_thinking: false } : k < 0.5 ? { enable_thinking: true } : {}; if (r() < 0.2) o.clear_thinking = false; return o; } },
];

function render(source, c) {
  try {
    const t = new Template(source);
    return { output: t.render({ messages: c.messages, tools: c.tools, add_generation_prompt: c.add_generation_prompt,
                                bos_token: "<｜begin▁of▁sentence｜>", eos_token: "<｜end▁of▁sentence｜>", ...c.kwargs }) };
  } catch (e) {
    return { error: String(e.message || e) };
  }
}

function buildCases(spec) {
  const r = rng(spec.seed);
  const cases = [];
  for (let i = 0; i < CASES_PER_TEMPLATE; i++) {
    const messages = conversation(r, spec.style);
    const withTools = r() < 0.5;
    const tools = withTools ? TOOLS.slice(0, 1 + Math.floor(r() * TOOLS.length)) : null;
    cases.push({ name: `${spec.name}_${String(i).padStart(3, "0")}`, messages, tools,
                 add_generation_prompt: r() < 0.7, kwargs: spec.kwargs(r) });
  }
  return cases;
}

fs.mkdirSync(OUT_DIR, { recursive: true });
for (const spec of SPECS) {
  const source = fs.readFileSync(path.join(ROOT, spec.file), "utf8");
  const cases = buildCases(spec).map((c) => {
    const js = render(source, c);
    return { ...c, hfjs_output: js.output ?? null, hfjs_error: js.error ?? null };
  });
  const file = path.join(OUT_DIR, `${spec.name}.json`);
  fs.writeFileSync(file, JSON.stringify({ template: spec.file, cases }, null, 1) + "\n");
  const errors = cases.filter((c) => c.hfjs_error).length;
  console.log(`${spec.name}: ${cases.length} cases, ${errors} errors in @huggingface/jinja -> ${path.relative(ROOT, file)}`);
}
