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

The checkpoint part (here, with the formats in golden_format.py) needs only numpy; the
reference part (golden_reference.py) needs torch and transformers (tested with torch
2.11, transformers 5.17). See tests/golden/README.md.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

from golden_format import (bf16_round, indexer_layer_kinds, quantize_fp8_blocks,
                           write_safetensors)
from golden_reference import run_reference


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
