"""Byte-level BPE tokenizer in the format of DeepSeek-V3.x's tokenizer.json (same pre-tokenizer chain, same
special and added token strings), trained here in pure Python so that the same code runs everywhere.

Digits are never merged (each digit is one token), which makes arithmetic learnable for a tiny model; the
DeepSeek pre-tokenizer still isolates runs of at most 3 digits. When the `tokenizers` package is installed,
`load_fast` returns the reference implementation for the saved tokenizer.json (used for encoding, and
`check_against_fast` compares the two).
"""
import collections
import json
import os

import regex

from encoding_dsv32 import BOS, EOS

# DeepSeek-V3 pre-tokenizer: three Split(Isolated) passes, then ByteLevel without its own regex.
SPLIT_PATTERNS = [
    r"\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]
_SPLIT_RES = [regex.compile(p) for p in SPLIT_PATTERNS]

PAD = "<｜▁pad▁｜>"
# (content, special). Ids: BOS 0, EOS 1, pad 2 at the front as in DeepSeek; the rest after the BPE vocab.
HEAD_TOKENS = [(BOS, True), (EOS, True), (PAD, True)]
TAIL_TOKENS = [
    ("<｜fim▁hole｜>", True), ("<｜fim▁begin｜>", True), ("<｜fim▁end｜>", True),
    ("<｜User｜>", True), ("<｜Assistant｜>", True), ("<|EOT|>", True),
    ("<｜tool▁calls▁begin｜>", False), ("<｜tool▁calls▁end｜>", False), ("<｜tool▁call▁begin｜>", False),
    ("<｜tool▁call▁end｜>", False), ("<｜tool▁outputs▁begin｜>", False), ("<｜tool▁outputs▁end｜>", False),
    ("<｜tool▁output▁begin｜>", False), ("<｜tool▁output▁end｜>", False), ("<｜tool▁sep｜>", False),
    ("<think>", False), ("</think>", False), ("｜DSML｜", False),
]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENC = bytes_to_unicode()
BYTE_DEC = {v: k for k, v in BYTE_ENC.items()}


def pre_tokenize(text):
    pieces = [text]
    for rx in _SPLIT_RES:
        out = []
        for p in pieces:
            pos = 0
            for m in rx.finditer(p):
                if m.start() > pos:
                    out.append(p[pos:m.start()])
                if m.end() > m.start():
                    out.append(m.group(0))
                pos = m.end()
            if pos < len(p):
                out.append(p[pos:])
        pieces = out
    return ["".join(BYTE_ENC[b] for b in p.encode("utf-8")) for p in pieces]


def _has_digit(sym):
    return any(c in "0123456789" for c in sym)


def train_bpe(texts, num_merges, min_count=2):
    """Classic BPE over pre-tokenized, byte-mapped words; merges never touch digit symbols."""
    word_counts = collections.Counter()
    for t in texts:
        word_counts.update(pre_tokenize(t))
    words = [list(w) for w in word_counts]
    counts = [word_counts[w] for w in word_counts]
    pair_counts = collections.Counter()
    where = collections.defaultdict(set)
    for wi, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            if _has_digit(a) or _has_digit(b):
                continue
            pair_counts[(a, b)] += counts[wi]
            where[(a, b)].add(wi)
    merges = []
    for _ in range(num_merges):
        if not pair_counts:
            break
        best, c = max(pair_counts.items(), key=lambda kv: (kv[1], kv[0]))
        if c < min_count:
            break
        merges.append(best)
        a, b = best
        new = a + b
        for wi in list(where.pop(best, ())):
            w = words[wi]
            cnt = counts[wi]
            for x, y in zip(w, w[1:]):
                if not (_has_digit(x) or _has_digit(y)):
                    pair_counts[(x, y)] -= cnt
                    if pair_counts[(x, y)] <= 0:
                        del pair_counts[(x, y)]
            i, out = 0, []
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for x, y in zip(out, out[1:]):
                if not (_has_digit(x) or _has_digit(y)):
                    pair_counts[(x, y)] += cnt
                    where[(x, y)].add(wi)
        pair_counts.pop(best, None)
    return merges


class Tokenizer:
    """Encoder/decoder for the saved tokenizer.json (added tokens split first, then pre-tokenize + BPE)."""

    def __init__(self, vocab, merges, added):
        self.vocab = vocab                      # str -> id (BPE part)
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.added = added                      # list of (content, id, special)
        self.id_to_token = {i: t for t, i in vocab.items()}
        for c, i, _ in added:
            self.id_to_token[i] = c
        self.added_ids = {c: i for c, i, _ in added}
        self.special_ids = {i for _, i, s in added if s}
        alts = sorted((c for c, _, _ in added), key=len, reverse=True)
        self.added_re = regex.compile("(" + "|".join(regex.escape(a) for a in alts) + ")")
        self.cache = {}
        self.bos_id = self.added_ids[BOS]
        self.eos_id = self.added_ids[EOS]

    @property
    def size(self):
        return max(self.id_to_token) + 1

    def _bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        syms = list(word)
        while len(syms) > 1:
            best, bi = None, -1
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            pair = (syms[bi], syms[bi + 1])
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == pair:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        ids = [self.vocab[s] for s in syms]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        for part in self.added_re.split(text):
            if not part:
                continue
            if part in self.added_ids:
                ids.append(self.added_ids[part])
            else:
                for w in pre_tokenize(part):
                    ids.extend(self._bpe(w))
        return ids

    def decode(self, ids, skip_special=False):
        out, buf = [], []
        for i in ids:
            t = self.id_to_token.get(int(i), "")
            if int(i) in self.added_ids.values() and t in self.added_ids:
                if buf:
                    out.append(bytes(buf).decode("utf-8", errors="replace"))
                    buf = []
                if not (skip_special and int(i) in self.special_ids):
                    out.append(t)
            else:
                buf.extend(BYTE_DEC[c] for c in t)
        if buf:
            out.append(bytes(buf).decode("utf-8", errors="replace"))
        return "".join(out)


def build(texts, vocab_target):
    """Train merges so that head + 256 bytes + merges + tail tokens fit in vocab_target ids."""
    n_merges = vocab_target - len(HEAD_TOKENS) - 256 - len(TAIL_TOKENS)
    merges = train_bpe(texts, n_merges)
    vocab = {}
    nid = len(HEAD_TOKENS)
    for b in range(256):
        vocab[BYTE_ENC[b]] = nid
        nid += 1
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = nid
            nid += 1
    added = [(c, i, s) for i, (c, s) in enumerate(HEAD_TOKENS)]
    for c, s in TAIL_TOKENS:
        added.append((c, nid, s))
        nid += 1
    return Tokenizer(vocab, [list(m) for m in merges], added)


def _added_entry(content, idx, special):
    return {"id": idx, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": True, "special": special}


def _added_token_obj(content):
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False,
            "single_word": False}


def save(tok, outdir, chat_template, model_max_length):
    added = sorted(tok.added, key=lambda x: x[1])
    # The added tokens are also entries of model.vocab (as in DeepSeek's file): the `tokenizers` library takes
    # an added token's id from the model vocab when it is there, and otherwise numbers it after the model
    # vocab, ignoring the "id" written in added_tokens.
    full_vocab = dict(tok.vocab)
    for c, i, _ in added:
        full_vocab[c] = i
    full_vocab = dict(sorted(full_vocab.items(), key=lambda kv: kv[1]))
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added_entry(c, i, s) for c, i, s in added],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": False}
            for p in SPLIT_PATTERNS] + [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": BOS, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {BOS: {"id": BOS, "ids": [tok.bos_id], "tokens": [BOS]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": full_vocab, "merges": [list(m) for m in sorted(tok.ranks, key=tok.ranks.get)]},
    }
    with open(os.path.join(outdir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=2)
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": _added_token_obj(BOS),
        "clean_up_tokenization_spaces": False,
        "eos_token": _added_token_obj(EOS),
        "legacy": True,
        "model_max_length": model_max_length,
        "pad_token": _added_token_obj(EOS),
        "sp_model_kwargs": {},
        "unk_token": None,
        "tokenizer_class": "LlamaTokenizerFast",
        "chat_template": chat_template,
    }
    with open(os.path.join(outdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)


def load(outdir):
    with open(os.path.join(outdir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    added = [(a["content"], a["id"], a["special"]) for a in tj["added_tokens"]]
    names = {a[0] for a in added}
    vocab = {t: i for t, i in tj["model"]["vocab"].items() if t not in names}
    return Tokenizer(vocab, tj["model"]["merges"], added)


def load_fast(outdir):
    """The `tokenizers` reference implementation of the saved file, or None when it is not installed."""
    try:
        import tokenizers
    except ImportError:
        return None
    return tokenizers.Tokenizer.from_file(os.path.join(outdir, "tokenizer.json"))


def check_against_fast(tok, fast, texts):
    """Fraction of texts whose ids agree between this encoder and `tokenizers` (add_special_tokens=False)."""
    same, diffs = 0, []
    for t in texts:
        a = tok.encode(t)
        b = fast.encode(t, add_special_tokens=False).ids
        same += int(a == b)
        if a != b and len(diffs) < 3:
            k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            diffs.append({"text": t[:160], "first_diff": k, "ours": [tok.id_to_token.get(i) for i in a[max(0, k - 3):k + 5]],
                          "tokenizers": [fast.id_to_token(i) for i in b[max(0, k - 3):k + 5]]})
    dec = [fast.decode(tok.encode(t), skip_special_tokens=False) for t in texts]
    dec_same = sum(int(d == t) for d, t in zip(dec, texts))
    bad = [(d, t) for d, t in zip(dec, texts) if d != t][:2]
    return {"encode_agree": same / max(1, len(texts)), "decode_roundtrip": dec_same / max(1, len(texts)),
            "encode_diffs": diffs, "decode_diffs": [{"decoded": d[:160], "text": t[:160]} for d, t in bad]}
