#!/usr/bin/env python3
"""Print and check the inventory of the golden fixtures (tests/golden/<fixture>/).

Usage: python3 tools/check_golden.py [FIXTURE_DIR_OR_PARENT ...]   (default: tests/golden)

Needs only the Python standard library; uses numpy for value checks when it is installed.
Checks: every index.json entry exists in its shard with a sane header; every F8_E4M3 weight has a
float32 weight_scale_inv of shape [ceil(out/128), ceil(in/128)] (possibly in another shard) whose
values are powers of two; tensor names, dtypes and shapes agree with config.json (MODEL_SPEC 2.2 /
2.3); reference.safetensors holds the documented tensors with consistent shapes.
Exit status 1 on any problem.
"""

import json
import math
import os
import struct
import sys

try:
    import numpy as np
except ImportError:  # value checks are skipped
    np = None

DT_SIZE = {"F8_E4M3": 1, "BF16": 2, "F16": 2, "F32": 4, "I32": 4, "I64": 8}
problems = []


def bad(msg):
    problems.append(msg)
    print("  PROBLEM: " + msg)


def read_header(path):
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: truncated")
        n = struct.unpack("<Q", raw)[0]
        size = os.path.getsize(path)
        if n > size - 8:
            raise ValueError(f"{path}: header length {n} exceeds file")
        hdr = json.loads(f.read(n).decode("utf-8"))
    data_len = size - 8 - n
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        cnt = math.prod(v["shape"]) if v["shape"] else 1
        if e - b != cnt * DT_SIZE[v["dtype"]] or e > data_len:
            raise ValueError(f"{path}: bad offsets for {k}")
    return hdr, 8 + n


def load_tensor(path, hdr, base, name):
    v = hdr[name]
    b, e = v["data_offsets"]
    with open(path, "rb") as f:
        f.seek(base + b)
        raw = f.read(e - b)
    dt = {"F32": np.float32, "I32": np.int32, "BF16": np.uint16, "F8_E4M3": np.uint8}[v["dtype"]]
    a = np.frombuffer(raw, dtype=dt).reshape(v["shape"])
    if v["dtype"] == "BF16":
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a


def expected_tensors(cfg, has_mtp_copies):
    """name -> (dtype class, shape). dtype class: 'FP8', 'BF16', 'NORM' (F32 or BF16), 'F32'."""
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    nh = cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    rq, rkv = cfg["q_lora_rank"], cfg["kv_lora_rank"]
    hi, di = cfg["index_n_heads"], cfg["index_head_dim"]
    L, E, I = cfg["num_hidden_layers"], cfg["n_routed_experts"], cfg["moe_intermediate_size"]
    pat = cfg.get("index_topk_pattern")
    if pat is None:
        freq, off = cfg.get("index_topk_freq", 1), cfg.get("index_skip_topk_offset", 2)
        pat = "".join("F" if max(i - off + 1, 0) % freq == 0 else "S" for i in range(L))
    ex = {"model.embed_tokens.weight": ("BF16", [V, H]), "model.norm.weight": ("NORM", [H]),
          "lm_head.weight": ("BF16", [V, H])}
    for i in range(L + cfg.get("num_nextn_predict_layers", 0)):
        p = f"model.layers.{i}."
        ex[p + "input_layernorm.weight"] = ("NORM", [H])
        ex[p + "post_attention_layernorm.weight"] = ("NORM", [H])
        a = p + "self_attn."
        ex[a + "q_a_proj.weight"] = ("FP8", [rq, H])
        ex[a + "q_a_layernorm.weight"] = ("NORM", [rq])
        ex[a + "q_b_proj.weight"] = ("FP8", [nh * (dn + dr), rq])
        ex[a + "kv_a_proj_with_mqa.weight"] = ("FP8", [rkv + dr, H])
        ex[a + "kv_a_layernorm.weight"] = ("NORM", [rkv])
        ex[a + "kv_b_proj.weight"] = ("FP8", [nh * (dn + dv), rkv])
        ex[a + "o_proj.weight"] = ("FP8", [H, nh * dv])
        if i >= L or pat[i] == "F":
            ex[a + "indexer.wq_b.weight"] = ("FP8", [hi * di, rq])
            ex[a + "indexer.wk.weight"] = ("FP8", [di, H])
            ex[a + "indexer.k_norm.weight"] = ("NORM", [di])
            ex[a + "indexer.k_norm.bias"] = ("NORM", [di])
            ex[a + "indexer.weights_proj.weight"] = ("BF16", [hi, H])
        m = p + "mlp."
        if i < cfg["first_k_dense_replace"]:
            F = cfg["intermediate_size"]
            ex[m + "gate_proj.weight"] = ("FP8", [F, H])
            ex[m + "up_proj.weight"] = ("FP8", [F, H])
            ex[m + "down_proj.weight"] = ("FP8", [H, F])
        else:
            ex[m + "gate.weight"] = ("BF16", [E, H])
            ex[m + "gate.e_score_correction_bias"] = ("F32", [E])
            for e in range(E):
                ex[m + f"experts.{e}.gate_proj.weight"] = ("FP8", [I, H])
                ex[m + f"experts.{e}.up_proj.weight"] = ("FP8", [I, H])
                ex[m + f"experts.{e}.down_proj.weight"] = ("FP8", [H, I])
            Fs = I * cfg["n_shared_experts"]
            ex[m + "shared_experts.gate_proj.weight"] = ("FP8", [Fs, H])
            ex[m + "shared_experts.up_proj.weight"] = ("FP8", [Fs, H])
            ex[m + "shared_experts.down_proj.weight"] = ("FP8", [H, Fs])
        if i >= L:
            ex[p + "enorm.weight"] = ("NORM", [H])
            ex[p + "hnorm.weight"] = ("NORM", [H])
            ex[p + "eh_proj.weight"] = ("BF16", [H, 2 * H])
            ex[p + "shared_head.norm.weight"] = ("NORM", [H])
            if has_mtp_copies:
                ex[p + "embed_tokens.weight"] = ("BF16", [V, H])
                ex[p + "shared_head.head.weight"] = ("BF16", [V, H])
    return ex, pat


def check_fixture(d):
    name = os.path.basename(os.path.normpath(d))
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    wm = idx["weight_map"]
    shards = sorted(set(wm.values()))
    print(f"== {name}: model_type {cfg['model_type']}, layers {cfg['num_hidden_layers']} + MTP "
          f"{cfg.get('num_nextn_predict_layers', 0)}, hidden {cfg['hidden_size']}, heads "
          f"{cfg['num_attention_heads']}, vocab {cfg['vocab_size']}, experts {cfg['n_routed_experts']} "
          f"top-{cfg['num_experts_per_tok']} (groups {cfg['n_group']}/{cfg['topk_group']}), index "
          f"{cfg['index_n_heads']}x{cfg['index_head_dim']} top-{cfg['index_topk']}")
    headers = {}
    total = 0
    for s in shards:
        path = os.path.join(d, s)
        hdr, base = read_header(path)
        headers[s] = (path, hdr, base)
        names = [k for k in hdr if k != "__metadata__"]
        print(f"  shard {s}: {len(names)} tensors, {os.path.getsize(path)} bytes")
        for k in names:
            if wm.get(k) != s:
                bad(f"{s} holds {k}, which the index maps to {wm.get(k)}")
            v = hdr[k]
            total += (math.prod(v["shape"]) if v["shape"] else 1) * DT_SIZE[v["dtype"]]
    if idx.get("metadata", {}).get("total_size") != total:
        bad(f"index total_size {idx.get('metadata', {}).get('total_size')} != {total}")
    info = {k: headers[s][1][k] for k, s in wm.items() if k in headers[s][1]}
    for k in wm:
        if k not in info:
            bad(f"{k} is in the index but not in {wm[k]}")
    has_copies = f"model.layers.{cfg['num_hidden_layers']}.embed_tokens.weight" in wm
    ex, pat = expected_tensors(cfg, has_copies)
    norm_dt = "F32" if cfg["model_type"] == "deepseek_v32" else "BF16"
    counts = {}
    cross = []
    for k, (cls, shape) in ex.items():
        if k not in info:
            bad(f"missing tensor {k}")
            continue
        v = info[k]
        counts[v["dtype"]] = counts.get(v["dtype"], 0) + 1
        want = {"FP8": "F8_E4M3", "BF16": "BF16", "F32": "F32", "NORM": norm_dt}[cls]
        if v["dtype"] != want or v["shape"] != shape:
            bad(f"{k}: {v['dtype']} {v['shape']}, expected {want} {shape}")
        if cls == "FP8":
            sk = k[: -len("weight")] + "weight_scale_inv"
            sshape = [-(-shape[0] // 128), -(-shape[1] // 128)]
            if sk not in info:
                bad(f"missing {sk}")
                continue
            counts["F32"] = counts.get("F32", 0) + 1
            if info[sk]["dtype"] != "F32" or info[sk]["shape"] != sshape:
                bad(f"{sk}: {info[sk]['dtype']} {info[sk]['shape']}, expected F32 {sshape}")
            if wm[sk] != wm[k]:
                cross.append(sk)
            if np is not None:
                path, hdr, base = headers[wm[sk]]
                s = load_tensor(path, hdr, base, sk)
                m, _ = np.frexp(s)
                if not np.all(m == 0.5):
                    bad(f"{sk}: not all powers of two")
    extra = sorted(set(info) - set(ex) - {k[: -len("weight")] + "weight_scale_inv" for k, (c, _) in ex.items()
                                           if c == "FP8"})
    for k in extra:
        bad(f"unexpected tensor {k}")
    print(f"  tensors: {len(info)} ({', '.join(f'{c} {k}' for k, c in sorted(counts.items()))}); "
          f"indexer pattern {pat}; MTP embed/head copies: {has_copies}")
    print(f"  scales in another shard than their weight: {cross}")
    if not cross:
        bad("no weight_scale_inv sits in another shard than its weight")

    ref = os.path.join(d, "reference.safetensors")
    if not os.path.exists(ref):
        bad("reference.safetensors missing")
        return
    hdr, base = read_header(ref)
    V = cfg["vocab_size"]
    L = cfg["num_hidden_layers"]
    f_layers = [i for i in range(L) if pat[i] == "F"]
    pis = sorted({int(k.split(".")[0][1:]) for k in hdr if k.startswith("p")})
    print(f"  reference: {len(hdr) - 1} tensors, {len(pis)} prompts")
    for pi in pis:
        def sh(nm):
            return hdr.get(f"p{pi}.{nm}", {}).get("shape")
        n = sh("input_ids")[0]
        m = min(n, 16)
        want = {"input_ids": [n], "logits": [m, V], "logits_pos0": [1], "greedy_ids": [8]}
        for li in f_layers:
            want[f"topk.l{li}"] = [n, 64]
            want[f"topk_gap.l{li}"] = [n]
        if n >= 2:
            mm = min(n - 1, 16)
            want.update({"mtp_logits": [mm, V], "mtp_logits_pos0": [1], "mtp_topk": [n - 1, 64],
                         "mtp_topk_gap": [n - 1]})
        for k, s in want.items():
            if sh(k) != s:
                bad(f"p{pi}.{k}: shape {sh(k)}, expected {s}")
        have = sorted(k[len(f"p{pi}."):] for k in hdr if k.startswith(f"p{pi}."))
        for k in have:
            if k not in want:
                bad(f"unexpected reference tensor p{pi}.{k}")
        line = f"    p{pi}: n={n}"
        if np is not None:
            lg = load_tensor(ref, hdr, base, f"p{pi}.logits")
            g = load_tensor(ref, hdr, base, f"p{pi}.greedy_ids")
            srt = np.sort(lg, axis=-1)
            marg = srt[:, -1] - srt[:, -2]
            line += (f" logits std {lg.std():.3f} top1-margin min {marg.min():.2e}; greedy "
                     f"{g.tolist()}")
            for li in f_layers:
                t = load_tensor(ref, hdr, base, f"p{pi}.topk.l{li}")
                gap = load_tensor(ref, hdr, base, f"p{pi}.topk_gap.l{li}")
                for i in range(n):
                    r = t[i][t[i] >= 0]
                    if len(r) != min(i + 1, 64) or np.any(np.diff(r) <= 0) or r.max() > i \
                            or np.any(t[i][len(r):] != -1):
                        bad(f"p{pi}.topk.l{li} row {i} malformed")
                        break
                fin = gap[np.isfinite(gap)]
                if len(fin):
                    line += f"; l{li} gap min {fin.min():.1e} (<1e-5: {int((fin < 1e-5).sum())})"
            if n >= 2:
                ml = load_tensor(ref, hdr, base, f"p{pi}.mtp_logits")
                line += f"; mtp std {ml.std():.3f}"
        print(line)


def main():
    args = sys.argv[1:] or [os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")]
    dirs = []
    for a in args:
        if os.path.exists(os.path.join(a, "config.json")):
            dirs.append(a)
        else:
            dirs += sorted(os.path.join(a, x) for x in os.listdir(a)
                           if os.path.exists(os.path.join(a, x, "config.json")))
    if not dirs:
        print("no fixtures found")
        return 1
    for d in dirs:
        try:
            check_fixture(d)
        except Exception as ex:  # noqa: BLE001
            bad(f"{d}: {ex!r}")
    print(f"{len(dirs)} fixtures, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
