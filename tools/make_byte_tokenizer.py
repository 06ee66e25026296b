#!/usr/bin/env python3
"""Writes a minimal byte-level BPE tokenizer in Hugging Face's tokenizer.json format: the 256 byte symbols,
no merges, DeepSeek-V3's pre-tokenizer and decoder, and DeepSeek-V3.2's chat special tokens as added tokens
(ids 256..261). It pairs with the random-weight golden fixtures (vocab 512) so that the real server can be
run end to end on them. Usage: make_byte_tokenizer.py DEEPSEEK_TOKENIZER_JSON OUTDIR"""
import json
import os
import sys


def byte_symbols():
    """GPT-2 byte-level alphabet: byte value -> printable symbol."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    symbols = {}
    extra = 0
    for b in range(256):
        if b in keep:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return symbols


def main():
    src, out = sys.argv[1], sys.argv[2]
    ds = json.load(open(src, encoding="utf-8"))
    vocab = {sym: b for b, sym in byte_symbols().items()}
    specials = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"]
    added = []
    for i, s in enumerate(specials):
        vocab[s] = 256 + i
        added.append({"id": 256 + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": i < 2})
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
           "normalizer": ds.get("normalizer"), "pre_tokenizer": ds["pre_tokenizer"], "post_processor": None,
           "decoder": ds["decoder"],
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                     "merges": []}}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": specials[0], "eos_token": specials[1]}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
