#!/usr/bin/env python3
"""The golden fixtures' formats (numpy only), shared by tools/gen_golden.py and tools/golden_reference.py: the stored
widths and prompt lengths, the indexer layer kinds of a config, the e4m3 / bf16 number formats and the 128x128
FP8 block quantization, safetensors reading and writing, and the seeded prompts."""

import json
import math
import struct

import numpy as np

TOPK_WIDTH = 64  # stored width of every top-k row (== index_topk of all fixtures)
N_LAST = 16  # logits are stored for the last min(n, N_LAST) positions
N_GREEDY = 8  # greedy continuation length
PROMPT_LENGTHS = [1, 8, 100, 600]


def indexer_layer_kinds(cfg):
    """'F' (own indexer) or 'S' (shared) for each main layer, per MODEL_SPEC 8.2."""
    n = cfg["num_hidden_layers"]
    pat = cfg.get("index_topk_pattern")
    if pat is not None:
        assert len(pat) == n and pat[0] == "F", pat
        return list(pat)
    freq = cfg.get("index_topk_freq", 1)
    off = cfg.get("index_skip_topk_offset", 2)
    return ["F" if max(i - off + 1, 0) % freq == 0 else "S" for i in range(n)]



# --------------------------------------------------------------------------------------
# Number formats (numpy only)
# --------------------------------------------------------------------------------------


def _e4m3_table():
    vals = np.zeros(256, dtype=np.float64)
    for c in range(256):
        s = -1.0 if c & 0x80 else 1.0
        e = (c >> 3) & 0xF
        m = c & 7
        if e == 15 and m == 7:
            vals[c] = np.nan
        elif e == 0:
            vals[c] = s * (m / 8.0) * 2.0**-6
        else:
            vals[c] = s * (1.0 + m / 8.0) * 2.0 ** (e - 7)
    return vals


E4M3 = _e4m3_table()
_POS_CODES = np.arange(0, 127)  # 0x00..0x7e: the finite non-negative values, increasing
_POS_VALS = E4M3[_POS_CODES]
assert np.all(np.diff(_POS_VALS) > 0) and _POS_VALS[-1] == 448.0


def e4m3_encode(x):
    """Round-to-nearest e4m3fn codes (uint8) of x (already divided by its scale)."""
    a = np.minimum(np.abs(x.astype(np.float64)), 448.0)
    hi = np.clip(np.searchsorted(_POS_VALS, a), 1, 126)
    lo = hi - 1
    pick_hi = (_POS_VALS[hi] - a) < (a - _POS_VALS[lo])
    code = np.where(pick_hi, _POS_CODES[hi], _POS_CODES[lo]).astype(np.uint8)
    neg = (x < 0) & (code != 0)
    return np.where(neg, code | 0x80, code).astype(np.uint8)


def e4m3_decode(code):
    return E4M3[code].astype(np.float32)


def bf16_round(x):
    """float32 -> (bf16 bits as uint16, the exact float32 value), round to nearest even."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    bits = b.astype(np.uint16)
    val = (bits.astype(np.uint32) << 16).view(np.float32)
    return bits, val


def quantize_fp8_blocks(w):
    """w float [out, in] -> (codes uint8 [out,in], scale_inv f32 [ceil(out/128), ceil(in/128)], dequant f32).

    Each 128x128 block (edge blocks partial) gets scale 2^ceil(log2(amax/448)): a power of two,
    so code * scale is exact in fp32 and bf16."""
    out_f, in_f = w.shape
    nb_o, nb_i = -(-out_f // 128), -(-in_f // 128)
    scale = np.ones((nb_o, nb_i), dtype=np.float32)
    codes = np.zeros(w.shape, dtype=np.uint8)
    for bo in range(nb_o):
        for bi in range(nb_i):
            blk = w[bo * 128:(bo + 1) * 128, bi * 128:(bi + 1) * 128]
            amax = float(np.max(np.abs(blk)))
            s = 2.0 ** math.ceil(math.log2(amax / 448.0)) if amax > 0 else 1.0
            scale[bo, bi] = s
            codes[bo * 128:(bo + 1) * 128, bi * 128:(bi + 1) * 128] = e4m3_encode(blk / s)
    rs = np.repeat(np.repeat(scale, 128, axis=0), 128, axis=1)[:out_f, :in_f]
    deq = (e4m3_decode(codes) * rs).astype(np.float32)
    return codes, scale, deq


# --------------------------------------------------------------------------------------
# safetensors (numpy only)
# --------------------------------------------------------------------------------------

_ST_DTYPES = {"F8_E4M3": 1, "BF16": 2, "F32": 4, "I32": 4}


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype_str, shape, numpy array holding the raw storage)."""
    header = {}
    blobs = []
    off = 0
    for name, dt, shape, arr in tensors:
        raw = np.ascontiguousarray(arr).tobytes()
        n = int(np.prod(shape)) if len(shape) else 1
        assert len(raw) == n * _ST_DTYPES[dt], (name, dt, shape, len(raw))
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = metadata or {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """-> {name: (dtype, shape, raw bytes)}"""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], data[b:e])
    return out


def draw_prompt(spec, pi, attempt):
    """Prompt pi: PROMPT_LENGTHS[pi] random ids (special ids excluded), seeded by (fixture, pi, attempt)."""
    rng = np.random.default_rng([spec["seed"], 7, pi, attempt])
    V = spec["config"]["vocab_size"]
    allowed = np.array([t for t in range(V) if t not in spec["special_ids"]])
    return rng.choice(allowed, size=PROMPT_LENGTHS[pi]).astype(np.int64)


MIN_GREEDY_DISTINCT = 6  # redraw a prompt (attempt+1) whose greedy continuation loops
MAX_ATTEMPTS = 8
