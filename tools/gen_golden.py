#!/usr/bin/env python3
"""Generate the golden parity fixtures under tests/golden/.

Usage:
    python3 tools/gen_golden.py OUTDIR [--only NAME[,NAME...]] [--no-reference] [--device cpu|cuda]

For every fixture it writes OUTDIR/<name>/ with
    config.json, generation_config.json, model.safetensors.index.json, shards   (the checkpoint)
    reference.safetensors                                                       (reference outputs)
    meta.json                                                                   (diagnostics only)

The checkpoint is a tiny random model in the exact on-disk format of the real
DeepSeek-V3.2 / GLM-5-FP8 checkpoints: real tensor names (one tensor per routed
expert), F8_E4M3 weights with float32 `weight_scale_inv` over 128x128 blocks for
every tensor the real checkpoint quantizes, BF16/F32 for the rest, several shards
with an index.json. Every FP8 block scale is a power of two and every BF16 value
is stored exactly, so the dequantized weights are exact in bf16 and in fp32.

The reference is Hugging Face transformers (DeepseekV32ForCausalLM /
GlmMoeDsaForCausalLM) in float32 with eager attention, run on the DEQUANTIZED
weights, i.e. on exactly the model that the checkpoint describes. transformers
does not build the MTP layer; it is computed here from the transformers decoder
layer class plus enorm / hnorm / eh_proj / shared_head (MODEL_SPEC section 6).

The checkpoint part needs only numpy; the reference part needs torch and
transformers (tested with torch 2.11, transformers 5.17). See tests/golden/README.md.
"""

import argparse
import copy
import json
import math
import os
import struct
import sys

import numpy as np

TOPK_WIDTH = 64  # stored width of every top-k row (== index_topk of all fixtures)
N_LAST = 16  # logits are stored for the last min(n, N_LAST) positions
N_GREEDY = 8  # greedy continuation length
PROMPT_LENGTHS = [1, 8, 100, 600]

# --------------------------------------------------------------------------------------
# Fixture definitions
# --------------------------------------------------------------------------------------

DS_QUANT = {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "scale_fmt": "ue8m0",
    "weight_block_size": [128, 128],
}
GLM_QUANT = {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": [128, 128],
}


def deepseek_config():
    return {
        "architectures": ["DeepseekV32ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "ep_size": 1,
        "first_k_dense_replace": 1,
        "hidden_act": "silu",
        "hidden_size": 256,
        "index_head_dim": 128,
        "index_n_heads": 4,
        "index_topk": 64,
        "initializer_range": 0.02,
        "intermediate_size": 320,
        "kv_lora_rank": 512,
        "max_position_embeddings": 163840,
        "model_type": "deepseek_v32",
        "moe_intermediate_size": 64,
        "moe_layer_freq": 1,
        "n_group": 4,
        "n_routed_experts": 16,
        "n_shared_experts": 1,
        "norm_topk_prob": True,
        "num_attention_heads": 2,
        "num_experts_per_tok": 4,
        "num_hidden_layers": 3,
        "num_key_value_heads": 2,
        "num_nextn_predict_layers": 1,
        "q_lora_rank": 192,
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "quantization_config": DS_QUANT,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {
            "beta_fast": 32,
            "beta_slow": 1,
            "factor": 40,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
            "original_max_position_embeddings": 4096,
            "type": "yarn",
        },
        "rope_theta": 10000,
        "routed_scaling_factor": 2.5,
        "scoring_func": "sigmoid",
        "tie_word_embeddings": False,
        "topk_group": 2,
        "topk_method": "noaux_tc",
        "torch_dtype": "bfloat16",
        "transformers_version": "4.44.2",
        "use_cache": True,
        "v_head_dim": 128,
        "vocab_size": 512,
    }


GLM_EOS = [500, 507, 509]  # real GLM-5: 154820, 154827, 154829 (same +0/+7/+9 offsets)


def glm_config(num_layers=3, pattern=None):
    c = {
        "architectures": ["GlmMoeDsaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "dtype": "bfloat16",
        "eos_token_id": list(GLM_EOS),
        "ep_size": 1,
        "first_k_dense_replace": 1,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 256,
        "index_head_dim": 128,
        "index_n_heads": 4,
        "index_topk": 64,
        "indexer_rope_interleave": True,
        "initializer_range": 0.02,
        "intermediate_size": 320,
        "kv_lora_rank": 512,
        "max_position_embeddings": 202752,
        "model_type": "glm_moe_dsa",
        "moe_intermediate_size": 64,
        "moe_layer_freq": 1,
        "n_group": 1,
        "n_routed_experts": 16,
        "n_shared_experts": 1,
        "norm_topk_prob": True,
        "num_attention_heads": 2,
        "num_experts_per_tok": 4,
        "num_hidden_layers": num_layers,
        "num_key_value_heads": 2,
        "num_nextn_predict_layers": 1,
        "pad_token_id": GLM_EOS[0],
        "pretraining_tp": 1,
        "q_lora_rank": 192,
        "qk_head_dim": 256,
        "qk_nope_head_dim": 192,
        "qk_rope_head_dim": 64,
        "quantization_config": GLM_QUANT,
        "rms_norm_eps": 1e-05,
        "rope_interleave": True,
        "rope_parameters": {"rope_theta": 1000000, "rope_type": "default"},
        "routed_scaling_factor": 2.5,
        "scoring_func": "sigmoid",
        "tie_word_embeddings": False,
        "topk_group": 1,
        "topk_method": "noaux_tc",
        "transformers_version": "5.0.2.dev0",
        "use_cache": True,
        "v_head_dim": 256,
        "vocab_size": 512,
    }
    if pattern is not None:
        c["index_topk_pattern"] = pattern
    return c


FIXTURES = {
    "deepseek_v32_tiny": dict(
        family="deepseek",
        config=deepseek_config(),
        generation_config={
            "_from_model_config": True,
            "bos_token_id": 0,
            "do_sample": True,
            "eos_token_id": 1,
            "temperature": 1.0,
            "top_p": 0.95,
            "transformers_version": "4.46.3",
        },
        norm_dtype="F32",
        mtp_has_embed_head=True,
        shard_name="model-{:05d}-of-{:06d}.safetensors",  # the real DeepSeek-V3.2 spelling
        n_main_shards=2,
        special_ids=[0, 1],
        seed=1001,
    ),
    "glm5_tiny": dict(
        family="glm",
        config=glm_config(3),
        generation_config={
            "do_sample": True,
            "eos_token_id": list(GLM_EOS),
            "pad_token_id": GLM_EOS[0],
            "temperature": 1.0,
            "top_p": 0.95,
            "transformers_version": "5.0.2.dev0",
        },
        norm_dtype="BF16",
        mtp_has_embed_head=False,
        shard_name="model-{:05d}-of-{:05d}.safetensors",
        n_main_shards=2,
        special_ids=list(GLM_EOS),
        seed=2002,
    ),
    "glm5_indexcache_tiny": dict(
        family="glm",
        config=glm_config(4, pattern="FSSF"),
        generation_config={
            "do_sample": True,
            "eos_token_id": list(GLM_EOS),
            "pad_token_id": GLM_EOS[0],
            "temperature": 1.0,
            "top_p": 0.95,
            "transformers_version": "5.0.2.dev0",
        },
        norm_dtype="BF16",
        mtp_has_embed_head=False,
        shard_name="model-{:05d}-of-{:05d}.safetensors",
        n_main_shards=2,
        special_ids=list(GLM_EOS),
        seed=3003,
    ),
}


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


# --------------------------------------------------------------------------------------
# Checkpoint generation (numpy only)
# --------------------------------------------------------------------------------------


class Builder:
    def __init__(self, seed, norm_dtype):
        self.rng = np.random.default_rng(seed)
        self.norm_dtype = norm_dtype
        self.tensors = []  # (name, dtype, shape, raw)
        self.deq = {}  # name -> float32 array (what the checkpoint means)

    def _add(self, name, dt, arr_raw, shape, val):
        self.tensors.append((name, dt, tuple(shape), arr_raw))
        self.deq[name] = val

    def fp8_linear(self, prefix, out_f, in_f, gain=1.0, modify=None):
        w = self.rng.standard_normal((out_f, in_f)) * (gain / math.sqrt(in_f))
        if modify is not None:
            modify(w)
        codes, scale, deq = quantize_fp8_blocks(w)
        self._add(prefix + ".weight", "F8_E4M3", codes, codes.shape, deq)
        self.tensors.append((prefix + ".weight_scale_inv", "F32", scale.shape, scale))

    def bf16(self, name, shape, std, mean=0.0, modify=None):
        w = (self.rng.standard_normal(shape) * std + mean).astype(np.float32)
        if modify is not None:
            modify(w)
        bits, val = bf16_round(w)
        self._add(name, "BF16", bits, shape, val)
        return val

    def bf16_from(self, name, val):
        bits, v = bf16_round(val)
        assert np.array_equal(v, val)
        self._add(name, "BF16", bits, val.shape, v)

    def f32(self, name, shape, std, mean=0.0):
        w = (self.rng.standard_normal(shape) * std + mean).astype(np.float32)
        self._add(name, "F32", w, shape, w)

    def norm(self, name, dim, dtype=None, bias=False):
        dt = dtype or self.norm_dtype
        # bf16-representable values even when stored as F32
        _, w = bf16_round((1.0 + 0.1 * self.rng.standard_normal(dim)).astype(np.float32))
        if dt == "F32":
            self._add(name, "F32", w, (dim,), w)
        else:
            self.bf16_from(name, w)


# The "carrier" channel. Hidden channel 0 of every embedding row is a constant CARRIER, and the
# residual writers (o_proj, down_proj) barely touch it, so every normalized hidden state carries a
# same-sign component. q_a_proj, the indexer's wq_b and the k_norm bias route it into a shared
# positive direction of the indexer q and k (in the unrotated dims 64..127), so q.k > 0 for almost
# every (query, key, head) and the ReLU of the index score is almost never exactly 0. Without it,
# rows whose index scores are exact zeros give exact top-k ties (about 5 % of the rows of a
# 600-token prompt), and the reference selection would be an arbitrary tie-break. lm_head and the
# router ignore channel 0, so logits and routing stay diverse.
CARRIER = 6.0


def _carrier_in(col_val):
    def f(w):
        w[0, :] *= 0.02
        w[0, 0] = col_val
    return f


def _damp_row0(w):
    w[0, :] *= 0.05


def _zero_col0(w):
    w[:, 0] = 0.0


def build_checkpoint(spec):
    cfg = spec["config"]
    b = Builder(spec["seed"], spec["norm_dtype"])
    H = cfg["hidden_size"]
    V = cfg["vocab_size"]
    nh = cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    rq, rkv = cfg["q_lora_rank"], cfg["kv_lora_rank"]
    hi, di = cfg["index_n_heads"], cfg["index_head_dim"]
    L = cfg["num_hidden_layers"]
    E, I = cfg["n_routed_experts"], cfg["moe_intermediate_size"]
    kinds = indexer_layer_kinds(cfg)

    def carrier_col(w):
        w[:, 0] = CARRIER

    emb = b.bf16("model.embed_tokens.weight", (V, H), 1.0, modify=carrier_col)
    b_dir = np.full(di - dr, 1.0 / math.sqrt(di - dr))  # shared direction in the indexer nope dims

    def wqb_mod(w):  # every indexer head gets q_nope += 1.0 * qr[0] * b_dir
        for j in range(hi):
            w[j * di + dr:(j + 1) * di, 0] = b_dir * 1.0

    def layer(i, has_indexer, moe):
        p = f"model.layers.{i}."
        b.norm(p + "input_layernorm.weight", H)
        b.fp8_linear(p + "self_attn.q_a_proj", rq, H, modify=_carrier_in(2.0))
        b.norm(p + "self_attn.q_a_layernorm.weight", rq)
        b.fp8_linear(p + "self_attn.q_b_proj", nh * (dn + dr), rq)
        b.fp8_linear(p + "self_attn.kv_a_proj_with_mqa", rkv + dr, H)
        b.norm(p + "self_attn.kv_a_layernorm.weight", rkv)
        b.fp8_linear(p + "self_attn.kv_b_proj", nh * (dn + dv), rkv)
        b.fp8_linear(p + "self_attn.o_proj", H, nh * dv, modify=_damp_row0)
        if has_indexer:
            b.fp8_linear(p + "self_attn.indexer.wq_b", hi * di, rq, modify=wqb_mod)
            b.fp8_linear(p + "self_attn.indexer.wk", di, H)
            b.norm(p + "self_attn.indexer.k_norm.weight", di)
            kb = 0.1 * b.rng.standard_normal(di)
            kb[dr:] += 6.0 * b_dir
            _, kb = bf16_round(kb.astype(np.float32))
            if b.norm_dtype == "F32":
                b._add(p + "self_attn.indexer.k_norm.bias", "F32", kb, (di,), kb)
            else:
                b.bf16_from(p + "self_attn.indexer.k_norm.bias", kb)
            b.bf16(p + "self_attn.indexer.weights_proj.weight", (hi, H), 1.0 / math.sqrt(H))
        b.norm(p + "post_attention_layernorm.weight", H)
        if not moe:
            F = cfg["intermediate_size"]
            b.fp8_linear(p + "mlp.gate_proj", F, H)
            b.fp8_linear(p + "mlp.up_proj", F, H)
            b.fp8_linear(p + "mlp.down_proj", H, F, modify=_damp_row0)
        else:
            b.bf16(p + "mlp.gate.weight", (E, H), 2.0 / math.sqrt(H), modify=_zero_col0)
            b.f32(p + "mlp.gate.e_score_correction_bias", (E,), 0.02)
            for e in range(E):
                b.fp8_linear(p + f"mlp.experts.{e}.gate_proj", I, H)
                b.fp8_linear(p + f"mlp.experts.{e}.up_proj", I, H)
                b.fp8_linear(p + f"mlp.experts.{e}.down_proj", H, I, modify=_damp_row0)
            Fs = I * cfg["n_shared_experts"]
            b.fp8_linear(p + "mlp.shared_experts.gate_proj", Fs, H)
            b.fp8_linear(p + "mlp.shared_experts.up_proj", Fs, H)
            b.fp8_linear(p + "mlp.shared_experts.down_proj", H, Fs, modify=_damp_row0)

    for i in range(L):
        layer(i, kinds[i] == "F", i >= cfg["first_k_dense_replace"])
    b.norm("model.norm.weight", H)
    head = b.rng.standard_normal((V, H)) * (2.0 / math.sqrt(H))
    head[:, 0] = 0.0
    for t in spec["special_ids"]:  # keep eos ids from winning greedy decoding
        head[t] *= 0.25
    head_bits, head_val = bf16_round(head.astype(np.float32))
    b._add("lm_head.weight", "BF16", head_bits, (V, H), head_val)
    n_main = len(b.tensors)

    # MTP layer model.layers.{L}: a full MoE decoder layer (always a full indexer) + MTP extras
    layer(L, True, True)
    p = f"model.layers.{L}."
    b.norm(p + "enorm.weight", H)
    b.norm(p + "hnorm.weight", H)
    def eh_mod(w):  # carry channel 0 of both halves into the MTP block's channel 0
        w[0, :] *= 0.02
        w[0, 0] = 0.5
        w[0, H] = 0.5

    b.bf16(p + "eh_proj.weight", (H, 2 * H), 1.0 / math.sqrt(2 * H), modify=eh_mod)
    b.norm(p + "shared_head.norm.weight", H)
    if spec["mtp_has_embed_head"]:
        b.bf16_from(p + "embed_tokens.weight", emb)  # copies, equal to the main tensors by design
        b.bf16_from(p + "shared_head.head.weight", head_val)
    return b, n_main


def write_checkpoint(spec, outdir):
    b, n_main = build_checkpoint(spec)
    cfg = spec["config"]
    L = cfg["num_hidden_layers"]
    main = b.tensors[:n_main]
    mtp = b.tensors[n_main:]
    nms = spec["n_main_shards"]
    nshards = nms + 1
    # split the main tensors into nms shards of about equal bytes; the MTP layer gets the last shard
    total_main = sum(t[3].nbytes for t in main)
    assign = {}
    acc = 0
    for t in main:
        assign[t[0]] = min(nms - 1, int(acc * nms // max(total_main, 1)))
        acc += t[3].nbytes
    for t in mtp:
        assign[t[0]] = nms
    # force scales into another shard than their weights (the loader must resolve both via the map)
    moved = []
    for name in ["model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv",
                 f"model.layers.{L}.mlp.experts.0.down_proj.weight_scale_inv"]:
        w = name.replace("weight_scale_inv", "weight")
        assign[name] = (assign[w] + 1) % nshards
        moved.append(name)
    # and the last main-layer scale of the first shard's boundary tensor, if it naturally splits
    for t in main:
        if t[0].endswith(".weight_scale_inv"):
            w = t[0].replace("weight_scale_inv", "weight")
            if assign[w] != assign[t[0]] and t[0] not in moved:
                moved.append(t[0])
    names = [spec["shard_name"].format(k + 1, nshards) for k in range(nshards)]
    weight_map = {}
    for k in range(nshards):
        ts = [t for t in b.tensors if assign[t[0]] == k]
        write_safetensors(os.path.join(outdir, names[k]), ts, {"format": "pt"})
        for t in ts:
            weight_map[t[0]] = names[k]
    total = sum(t[3].nbytes for t in b.tensors)
    with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total},
                   "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(outdir, "generation_config.json"), "w") as f:
        json.dump(spec["generation_config"], f, indent=2)
        f.write("\n")
    return b, {"shards": names, "cross_shard_scales": moved, "n_tensors": len(b.tensors),
               "total_bytes": total}


def draw_prompt(spec, pi, attempt):
    """Prompt pi: PROMPT_LENGTHS[pi] random ids (special ids excluded), seeded by (fixture, pi, attempt)."""
    rng = np.random.default_rng([spec["seed"], 7, pi, attempt])
    V = spec["config"]["vocab_size"]
    allowed = np.array([t for t in range(V) if t not in spec["special_ids"]])
    return rng.choice(allowed, size=PROMPT_LENGTHS[pi]).astype(np.int64)


MIN_GREEDY_DISTINCT = 6  # redraw a prompt (attempt+1) whose greedy continuation loops
MAX_ATTEMPTS = 8


# --------------------------------------------------------------------------------------
# Reference (torch + transformers)
# --------------------------------------------------------------------------------------


def _model_classes(family):
    import transformers
    if family == "deepseek":
        return transformers.DeepseekV32Config, transformers.DeepseekV32ForCausalLM
    return transformers.GlmMoeDsaConfig, transformers.GlmMoeDsaForCausalLM


def _make_config(family, cfg_dict):
    cfg_cls, _ = _model_classes(family)
    d = copy.deepcopy(cfg_dict)
    d.pop("quantization_config", None)  # we load dequantized fp32 weights directly
    d.pop("architectures", None)
    d.pop("model_type", None)
    d.pop("transformers_version", None)
    config = cfg_cls(**d)
    try:
        config._attn_implementation = "eager"
    except Exception:
        pass
    return config


def _build_model(family, config, torch):
    _, model_cls = _model_classes(family)
    try:
        m = model_cls._from_config(config, attn_implementation="eager", dtype=torch.float32)
    except TypeError:
        m = model_cls._from_config(config, attn_implementation="eager", torch_dtype=torch.float32)
    return m.float().eval()


def _fill_state(module, deq, prefix, E, torch, allow_missing=()):
    """Copy checkpoint tensors (dequantized) into a transformers module; fuse per-expert tensors."""
    sd = module.state_dict()
    missing, used = [], set()
    with torch.no_grad():
        for k, v in sd.items():
            full = prefix + k
            if k.endswith("mlp.experts.gate_up_proj"):
                base = full[: -len("gate_up_proj")]
                src = np.stack([np.concatenate([deq[f"{base}{e}.gate_proj.weight"],
                                                deq[f"{base}{e}.up_proj.weight"]], axis=0)
                                for e in range(E)])
                for e in range(E):
                    used.update([f"{base}{e}.gate_proj.weight", f"{base}{e}.up_proj.weight"])
            elif k.endswith("mlp.experts.down_proj"):
                base = full[: -len("down_proj")]
                src = np.stack([deq[f"{base}{e}.down_proj.weight"] for e in range(E)])
                used.update(f"{base}{e}.down_proj.weight" for e in range(E))
            elif full in deq:
                src = deq[full]
                used.add(full)
            else:
                missing.append(full)
                continue
            t = torch.from_numpy(np.ascontiguousarray(src))
            if tuple(t.shape) != tuple(v.shape):
                raise RuntimeError(f"shape mismatch for {full}: ckpt {tuple(t.shape)} vs model {tuple(v.shape)}")
            v.copy_(t.to(v.dtype))
    bad = [m for m in missing if not any(a in m for a in allow_missing)]
    if bad:
        raise RuntimeError(f"tensors missing from the checkpoint for {prefix}: {bad[:20]}")
    return missing, used


def _rows_from_indexer_output(out, n, torch):
    """Indexer output -> int32 [n, TOPK_WIDTH]: causal positions sorted ascending, -1 padded."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    t = out.detach().cpu()
    if t.is_floating_point() or t.dtype == torch.bool:
        # an additive / boolean mask [B, (1,) S, T] instead of indices
        m = t.reshape(-1, t.shape[-2], t.shape[-1])[0]
        sel = (m == 0) if t.is_floating_point() else m
        rows = [np.nonzero(sel[i].numpy())[0] for i in range(n)]
    else:
        idx = t.reshape(-1, t.shape[-2], t.shape[-1])[0].numpy().astype(np.int64)
        rows = [idx[i] for i in range(n)]
    res = np.full((n, TOPK_WIDTH), -1, dtype=np.int32)
    for i in range(n):
        r = np.unique(rows[i][(rows[i] >= 0) & (rows[i] <= i)])
        assert len(r) <= TOPK_WIDTH
        res[i, : len(r)] = r
    return res


def _gap_from_scores(scores, n, k):
    """Per row: the k-th best minus the (k+1)-th best visible index score (inf if <= k visible)."""
    gap = np.full(n, np.inf, dtype=np.float32)
    if scores is None:
        return None
    s = scores.reshape(-1, scores.shape[-2], scores.shape[-1])[0].numpy().astype(np.float64)
    for i in range(n):
        if i + 1 > k:
            row = np.sort(s[i, : i + 1])[::-1]
            gap[i] = row[k - 1] - row[k]
    return gap


def verify_with_safetensors(outdir, b, torch):
    """Re-read the written shards with the safetensors library and check that torch's float8_e4m3fn
    decoding times the scales gives exactly the values used for the reference."""
    from safetensors.torch import load_file
    idx = json.load(open(os.path.join(outdir, "model.safetensors.index.json")))
    loaded = {}
    for shard in sorted(set(idx["weight_map"].values())):
        for k, v in load_file(os.path.join(outdir, shard)).items():
            assert idx["weight_map"][k] == shard
            loaded[k] = v
    assert set(loaded) == set(idx["weight_map"]), "index and shards disagree"
    n_fp8 = 0
    for k, v in loaded.items():
        if k.endswith(".weight_scale_inv"):
            continue
        if v.dtype == torch.float8_e4m3fn:
            s = loaded[k[: -len("weight")] + "weight_scale_inv"].float()
            o, i = v.shape
            assert tuple(s.shape) == (-(-o // 128), -(-i // 128)), k
            full = s.repeat_interleave(128, 0).repeat_interleave(128, 1)[:o, :i]
            w = v.float() * full
            assert torch.equal(w.to(torch.bfloat16).float(), w), f"{k}: dequantized value not bf16-exact"
            m = torch.frexp(s)[0]
            assert bool((m == 0.5).all()), f"{k}: scale not a power of two"
            n_fp8 += 1
        else:
            w = v.float()
        assert torch.equal(w, torch.from_numpy(b.deq[k])), f"{k}: mismatch after reload"
    return {"safetensors_reload_ok": True, "n_fp8_weights": n_fp8, "n_tensors": len(loaded)}


def run_reference(name, spec, b, outdir, device):
    import torch
    import transformers

    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    family = spec["family"]
    cfgd = spec["config"]
    L = cfgd["num_hidden_layers"]
    E = cfgd["n_routed_experts"]
    V = cfgd["vocab_size"]
    kinds = indexer_layer_kinds(cfgd)
    dev = torch.device(device)
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "device": device}
    meta.update(verify_with_safetensors(outdir, b, torch))

    config = _make_config(family, cfgd)
    model = _build_model(family, config, torch)
    s_layers = [f"model.layers.{i}.self_attn.indexer." for i in range(L) if kinds[i] == "S"]
    missing, used = _fill_state(model, b.deq, "", E, torch, allow_missing=s_layers)
    meta["missing_in_checkpoint_random_in_model"] = missing
    unused = sorted(k for k in b.deq if k not in used and not k.startswith(f"model.layers.{L}."))
    if unused:
        raise RuntimeError(f"checkpoint tensors not used by transformers: {unused[:20]}")
    if model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr():
        raise RuntimeError("lm_head is tied to embed_tokens")
    model.to(dev)
    meta["config_seen_by_transformers"] = {
        k: (v if isinstance(v, (int, float, str, bool, list, dict, type(None))) else str(v))
        for k, v in model.config.to_dict().items()}

    # --- MTP layer: transformers decoder-layer class at index L, with a config of L+1 layers
    d2 = copy.deepcopy(cfgd)
    d2["num_hidden_layers"] = L + 1
    if "index_topk_pattern" in d2:
        d2["index_topk_pattern"] = d2["index_topk_pattern"] + "F"  # MTP always runs its own indexer
    config2 = _make_config(family, d2)
    layer_cls = type(model.model.layers[0])
    norm_cls = type(model.model.norm)
    mtp = layer_cls(config2, L).float().eval()
    _fill_state(mtp, b.deq, f"model.layers.{L}.", E, torch)
    eps = cfgd["rms_norm_eps"]
    mods = {}
    for nm in ["enorm", "hnorm", "shared_head.norm"]:
        m = norm_cls(cfgd["hidden_size"], eps=eps).float()
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(b.deq[f"model.layers.{L}.{nm}.weight"]))
        mods[nm] = m.to(dev)
    eh = torch.from_numpy(b.deq[f"model.layers.{L}.eh_proj.weight"]).to(dev)
    if spec["mtp_has_embed_head"]:
        mtp_emb = torch.from_numpy(b.deq[f"model.layers.{L}.embed_tokens.weight"]).to(dev)
        mtp_head = torch.from_numpy(b.deq[f"model.layers.{L}.shared_head.head.weight"]).to(dev)
    else:
        mtp_emb = torch.from_numpy(b.deq["model.embed_tokens.weight"]).to(dev)
        mtp_head = torch.from_numpy(b.deq["lm_head.weight"]).to(dev)
    mtp.to(dev)

    # --- rope / scale diagnostics
    try:
        rot = model.model.rotary_emb
        meta["rope_inv_freq"] = [float(x) for x in rot.inv_freq.detach().cpu().double()]
        meta["rope_attention_scaling"] = float(getattr(rot, "attention_scaling", float("nan")))
    except Exception as ex:  # noqa: BLE001
        meta["rope_inv_freq_error"] = repr(ex)
    att0 = model.model.layers[0].self_attn
    meta["attn_scaling"] = float(getattr(att0, "scaling", float("nan")))
    try:
        meta["indexer_k_norm_eps"] = float(att0.indexer.k_norm.eps)
        meta["q_a_layernorm_eps"] = float(att0.q_a_layernorm.variance_epsilon)
        meta["kv_a_layernorm_eps"] = float(att0.kv_a_layernorm.variance_epsilon)
        meta["input_layernorm_eps"] = float(model.model.layers[0].input_layernorm.variance_epsilon)
        meta["final_norm_eps"] = float(model.model.norm.variance_epsilon)
    except Exception as ex:  # noqa: BLE001
        meta["eps_error"] = repr(ex)
    meta["layer_skip_topk"] = [bool(getattr(l.self_attn, "skip_topk", False)) for l in model.model.layers]

    # --- hooks: indexer outputs (top-k) and the tensor handed to top-k (index scores)
    cap = {"active": None, "topk": {}, "scores": {}, "calls": []}
    orig_tensor_topk = torch.Tensor.topk
    orig_torch_topk = torch.topk

    def _note(x):
        if cap["active"] is not None and x.dim() >= 2:
            cap["scores"][cap["active"]] = x.detach().float().cpu()

    def tensor_topk(self, *a, **k):
        _note(self)
        return orig_tensor_topk(self, *a, **k)

    def torch_topk(x, *a, **k):
        _note(x)
        return orig_torch_topk(x, *a, **k)

    torch.Tensor.topk = tensor_topk
    torch.topk = torch_topk

    def pre(li):
        def f(mod, args):
            cap["active"] = li
        return f

    def post(li):
        def f(mod, args, out):
            cap["topk"][li] = out
            cap["calls"].append(li)
            cap["active"] = None
        return f

    hooks = []
    for li, lay in enumerate(list(model.model.layers) + [mtp]):
        ix = getattr(lay.self_attn, "indexer", None)
        if ix is not None:
            hooks.append(ix.register_forward_pre_hook(pre(li)))
            hooks.append(ix.register_forward_hook(post(li)))

    layer_kw = {}

    def cap_layer0(mod, args, kwargs):
        layer_kw["args"] = args
        layer_kw["kwargs"] = kwargs

    final_h = {}

    def cap_norm(mod, args, out):
        final_h["h"] = out

    hooks.append(model.model.layers[0].register_forward_pre_hook(cap_layer0, with_kwargs=True))
    hooks.append(model.model.norm.register_forward_hook(cap_norm))

    def forward(ids):
        cap["topk"].clear()
        cap["scores"].clear()
        cap["calls"].clear()
        with torch.no_grad():
            out = model(input_ids=torch.as_tensor(ids, device=dev).view(1, -1), use_cache=False)
        return out.logits[0].float().cpu()

    def greedy_of(ids):
        # greedy continuation: full re-prefill each step (no cache), argmax
        seq = list(int(x) for x in ids)
        gmarg = []
        for _ in range(N_GREEDY):
            lg = forward(seq)[-1].numpy()
            o = np.argsort(lg)
            gmarg.append(float(lg[o[-1]] - lg[o[-2]]))
            seq.append(int(o[-1]))
        return np.array(seq[len(ids):], dtype=np.int32), gmarg

    refs = []
    pstats = []
    for pi in range(len(PROMPT_LENGTHS)):
        for attempt in range(MAX_ATTEMPTS):
            ids = draw_prompt(spec, pi, attempt)
            greedy, gmarg = greedy_of(ids)
            if len(set(greedy.tolist())) >= MIN_GREEDY_DISTINCT:
                break
        n = len(ids)
        logits = forward(ids)
        st = {"n": n, "prompt_attempt": attempt}
        calls = sorted(set(cap["calls"]))
        expect = [i for i in range(L) if kinds[i] == "F"]
        st["indexer_layers_run"] = calls
        if calls != expect:
            print(f"[{name}] WARNING: indexer ran in layers {calls}, config says F layers {expect}")
        topk_rows = {li: _rows_from_indexer_output(cap["topk"][li], n, torch) for li in calls}
        gaps = {li: _gap_from_scores(cap["scores"].get(li), n, cfgd["index_topk"]) for li in calls}
        # consistency: the selection equals the top-k of the captured scores (exact ties excepted)
        for li in calls:
            sc = cap["scores"].get(li)
            if sc is None:
                continue
            s = sc.reshape(-1, sc.shape[-2], sc.shape[-1])[0].numpy()
            bad = 0
            for i in range(n):
                sel = topk_rows[li][i][topk_rows[li][i] >= 0]
                if i + 1 <= cfgd["index_topk"]:
                    bad += int(len(sel) != i + 1)
                    continue
                notsel = np.setdiff1d(np.arange(i + 1), sel)
                if len(notsel) and s[i, sel].min() < s[i, notsel].max():
                    bad += 1
            st[f"topk_inconsistent_rows.l{li}"] = bad
        m = min(n, N_LAST)
        refs.append((f"p{pi}.input_ids", "I32", (n,), np.asarray(ids, dtype=np.int32)))
        refs.append((f"p{pi}.logits", "F32", (m, V), logits[n - m:].numpy().astype(np.float32)))
        refs.append((f"p{pi}.logits_pos0", "I32", (1,), np.array([n - m], dtype=np.int32)))
        for li in calls:
            refs.append((f"p{pi}.topk.l{li}", "I32", (n, TOPK_WIDTH), topk_rows[li]))
            if gaps[li] is not None:
                refs.append((f"p{pi}.topk_gap.l{li}", "F32", (n,), gaps[li]))
                g = gaps[li][np.isfinite(gaps[li])]
                st[f"topk_exact_ties.l{li}"] = int(np.sum(g == 0))
                st[f"topk_gap_min.l{li}"] = float(g.min()) if len(g) else None
                st[f"topk_rows_gap_lt_1e-5.l{li}"] = int(np.sum(g < 1e-5))
        srt = np.sort(logits.numpy(), axis=-1)
        margins = srt[:, -1] - srt[:, -2]
        st["logit_std"] = float(logits.std())
        st["top1_margin_min"] = float(margins.min())
        st["top1_margin_median"] = float(np.median(margins))
        st["top1_exact_ties"] = int(np.sum(margins == 0))
        st["distinct_argmax_last16"] = int(len(set(np.argmax(logits.numpy()[n - m:], -1).tolist())))
        if "h" in final_h:
            st["final_hidden_rms"] = float(final_h["h"].float().pow(2).mean().sqrt())

        refs.append((f"p{pi}.greedy_ids", "I32", (N_GREEDY,), greedy))
        st["greedy_ids"] = greedy.tolist()
        st["greedy_margin_min"] = min(gmarg)
        st["greedy_distinct"] = int(len(set(greedy.tolist())))
        eos = cfgd["eos_token_id"] if isinstance(cfgd["eos_token_id"], list) else [cfgd["eos_token_id"]]
        st["greedy_hits_eos"] = bool(any(int(t) in eos for t in greedy))

        # transformers' own cached decode, for the record (README: prefill vs decode path)
        try:
            gen_ids = torch.as_tensor(ids, device=dev).view(1, -1)
            with torch.no_grad():
                g = model.generate(gen_ids, attention_mask=torch.ones_like(gen_ids),
                                   max_new_tokens=N_GREEDY, do_sample=False, use_cache=True,
                                   eos_token_id=None, pad_token_id=0, min_new_tokens=N_GREEDY)
            gl = g[0, n:].cpu().numpy().tolist()
            st["generate_cached_ids"] = gl
            st["generate_cached_matches_greedy"] = gl == greedy.tolist()
        except Exception as ex:  # noqa: BLE001
            st["generate_cached_error"] = repr(ex)[:500]

        # MTP over positions t = 0..n-2: input [enorm(embed(tok[t+1])) ; hnorm(h_t)]
        if n >= 2:
            forward(ids[: n - 1])  # captures layer kwargs (mask, rope) and h = model.norm output
            h = final_h["h"].float()
            kw = {k: v for k, v in layer_kw["kwargs"].items()
                  if "topk" not in k and k not in ("past_key_values", "past_key_value")}
            kw["use_cache"] = False
            args = layer_kw["args"][1:]
            tok1 = torch.as_tensor(ids[1:], device=dev)
            with torch.no_grad():
                e = mtp_emb[tok1].view(1, n - 1, -1)
                x = torch.cat([mods["enorm"](e), mods["hnorm"](h)], dim=-1) @ eh.t()
                cap["topk"].clear()
                cap["scores"].clear()
                cap["calls"].clear()
                out = mtp(x, *args, **kw)
                if isinstance(out, (tuple, list)):
                    out = out[0]
                mlog = (mods["shared_head.norm"](out) @ mtp_head.t())[0].float().cpu()
            mm = min(n - 1, N_LAST)
            refs.append((f"p{pi}.mtp_logits", "F32", (mm, V), mlog[n - 1 - mm:].numpy()))
            refs.append((f"p{pi}.mtp_logits_pos0", "I32", (1,), np.array([n - 1 - mm], dtype=np.int32)))
            if L in cap["topk"]:
                refs.append((f"p{pi}.mtp_topk", "I32", (n - 1, TOPK_WIDTH),
                             _rows_from_indexer_output(cap["topk"][L], n - 1, torch)))
                gp = _gap_from_scores(cap["scores"].get(L), n - 1, cfgd["index_topk"])
                if gp is not None:
                    refs.append((f"p{pi}.mtp_topk_gap", "F32", (n - 1,), gp))
            else:
                print(f"[{name}] WARNING: MTP indexer did not run")
            ms = np.sort(mlog.numpy(), axis=-1)
            st["mtp_logit_std"] = float(mlog.std())
            st["mtp_top1_margin_min"] = float((ms[:, -1] - ms[:, -2]).min())
        pstats.append(st)
        print(f"[{name}] prompt {pi}: " + json.dumps(st))

    for hk in hooks:
        hk.remove()
    torch.Tensor.topk = orig_tensor_topk
    torch.topk = orig_torch_topk
    meta["prompts"] = pstats
    write_safetensors(os.path.join(outdir, "reference.safetensors"), refs,
                      {"format": "pt", "generator": "tools/gen_golden.py",
                       "transformers": transformers.__version__, "torch": torch.__version__})
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--only", default="")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    names = [n for n in FIXTURES if not a.only or n in a.only.split(",")]
    ok = True
    for name in names:
        spec = FIXTURES[name]
        d = os.path.join(a.outdir, name)
        os.makedirs(d, exist_ok=True)
        b, info = write_checkpoint(spec, d)
        meta = {"fixture": name, "checkpoint": info,
                "indexer_layer_kinds": "".join(indexer_layer_kinds(spec["config"]))}
        print(f"[{name}] checkpoint: {info['n_tensors']} tensors, {info['total_bytes']} bytes, "
              f"shards {info['shards']}")
        if not a.no_reference:
            try:
                meta.update(run_reference(name, spec, b, d, a.device))
            except Exception:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                ok = False
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True, default=str)
            f.write("\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
