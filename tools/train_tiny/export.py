"""Export in the DeepSeek-V3.2 checkpoint format: FP8 e4m3 weights with float32 `weight_scale_inv`
[ceil(out/128), ceil(in/128)] (128x128 blocks, power-of-two scales, partial edge blocks), BF16/F32 for the
tensors the real checkpoint keeps unquantized, sharded safetensors + model.safetensors.index.json, config.json,
generation_config.json. Also the reverse (load + dequantize) used to evaluate exactly what was exported.
FP8 and safetensors are implemented here with numpy so that no torch 2.x dtype or extra package is needed.
"""
import json
import math
import os
import struct

import numpy as np
import torch

BLOCK = 128

# ---------------------------------------------------------------- FP8 e4m3fn


def _e4m3_table():
    vals = np.zeros(256, dtype=np.float64)
    for c in range(256):
        s, e, m = c >> 7, (c >> 3) & 0xF, c & 7
        v = (m / 8.0) * 2.0 ** -6 if e == 0 else (1 + m / 8.0) * 2.0 ** (e - 7)
        vals[c] = -v if s else v
    vals[0x7F] = vals[0xFF] = np.nan
    return vals


E4M3_VALUES = _e4m3_table()
_POS = E4M3_VALUES[:0x7F]  # codes 0..126, ascending, 0 .. 448


def fp8_e4m3_encode(x):
    """float array (already scaled) -> uint8 codes, round to nearest even, saturating at +-448."""
    x = np.asarray(x, dtype=np.float64)
    a = np.minimum(np.abs(x), 448.0)
    hi = np.clip(np.searchsorted(_POS, a, side="left"), 0, len(_POS) - 1)
    lo = np.clip(hi - 1, 0, len(_POS) - 1)
    dlo, dhi = a - _POS[lo], _POS[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo).astype(np.uint8)
    code = np.where(a == 0, 0, code).astype(np.uint8)
    return code | np.where(np.signbit(x) & (code != 0), 0x80, 0).astype(np.uint8)


def fp8_e4m3_decode(codes):
    return E4M3_VALUES[np.asarray(codes, dtype=np.uint8)]


def quantize_block_fp8(w):
    """w [out, in] float -> (codes uint8 [out, in], scale_inv float32 [ceil(out/128), ceil(in/128)])."""
    w = np.asarray(w, dtype=np.float64)
    out_f, in_f = w.shape
    nb_o, nb_i = math.ceil(out_f / BLOCK), math.ceil(in_f / BLOCK)
    pad = np.zeros((nb_o * BLOCK, nb_i * BLOCK))
    pad[:out_f, :in_f] = w
    blocks = pad.reshape(nb_o, BLOCK, nb_i, BLOCK)
    amax = np.abs(blocks).max(axis=(1, 3))
    scale = np.where(amax > 0, 2.0 ** np.ceil(np.log2(np.maximum(amax, 1e-30) / 448.0)), 1.0)
    q = fp8_e4m3_encode(blocks / scale[:, None, :, None])
    codes = q.reshape(nb_o * BLOCK, nb_i * BLOCK)[:out_f, :in_f]
    return np.ascontiguousarray(codes), scale.astype(np.float32)


def dequantize_block_fp8(codes, scale_inv):
    vals = fp8_e4m3_decode(codes)
    s = np.repeat(np.repeat(scale_inv.astype(np.float64), BLOCK, 0), BLOCK, 1)[:vals.shape[0], :vals.shape[1]]
    return (vals * s).astype(np.float32)


# ---------------------------------------------------------------- BF16


def to_bf16_bits(x):
    b = np.ascontiguousarray(np.asarray(x, dtype=np.float32)).view(np.uint32)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return r


def from_bf16_bits(u16):
    return (np.asarray(u16, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


# ---------------------------------------------------------------- safetensors


def write_safetensors(path, tensors):
    """tensors: {name: (dtype_str, shape, bytes)}; dtype_str in F8_E4M3 / BF16 / F32."""
    header, off, blobs = {}, 0, []
    for name in sorted(tensors):
        dt, shape, data = tensors[name]
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        b, e = meta["data_offsets"]
        raw = data[b:e]
        dt = {"F8_E4M3": np.uint8, "BF16": np.uint16, "F32": np.float32}[meta["dtype"]]
        out[name] = (meta["dtype"], np.frombuffer(raw, dtype=dt).reshape(meta["shape"]))
    return out


# ---------------------------------------------------------------- names


def hf_state(model):
    """Model parameters under the HF checkpoint names (MTP layer as model.layers.{L})."""
    L = model.cfg["num_hidden_layers"]
    sd = {}
    for n, p in model.state_dict().items():
        if n == "inv_freq":
            continue
        t = p.detach().float().cpu()
        if n.startswith("mtp."):
            rest = n[4:].replace("shared_head_norm", "shared_head.norm")
            sd["model.layers.%d.%s" % (L, rest)] = t
        elif n == "lm_head.weight":
            sd[n] = t
        else:
            sd["model." + n] = t
    if model.mtp is not None:
        sd["model.layers.%d.embed_tokens.weight" % L] = sd["model.embed_tokens.weight"].clone()
        sd["model.layers.%d.shared_head.head.weight" % L] = sd["lm_head.weight"].clone()
    return sd


def is_fp8(name, shape):
    if len(shape) != 2:
        return False
    keep = ("embed_tokens.weight", "lm_head.weight", "shared_head.head.weight", "eh_proj.weight",
            "weights_proj.weight", "mlp.gate.weight")
    return not name.endswith(keep)


def bf16_2d(name):
    return name.endswith(("embed_tokens.weight", "lm_head.weight", "shared_head.head.weight", "eh_proj.weight",
                          "weights_proj.weight", "mlp.gate.weight"))


def export(model, outdir, shard_bytes=9 * 1024 * 1024):
    """Writes shards + index; returns {name: dtype} for the report."""
    os.makedirs(outdir, exist_ok=True)
    sd = hf_state(model)
    L = model.cfg["num_hidden_layers"]
    tensors = {}
    for name, t in sd.items():
        a = t.numpy()
        if is_fp8(name, a.shape):
            codes, scale = quantize_block_fp8(a)
            tensors[name] = ("F8_E4M3", a.shape, codes.tobytes())
            sname = name[:-len("weight")] + "weight_scale_inv"
            tensors[sname] = ("F32", scale.shape, scale.tobytes())
        elif bf16_2d(name):
            tensors[name] = ("BF16", a.shape, to_bf16_bits(a).tobytes())
        else:
            tensors[name] = ("F32", a.shape, a.astype(np.float32).tobytes())

    def order(n):  # main layers in order, globals, the MTP layer last (as in the real checkpoint)
        if n.startswith("model.layers."):
            i = int(n.split(".")[2])
            return (1 if i >= L else 0, i, n)
        return (0, L, n)

    names = sorted(tensors, key=order)
    shards, cur, cur_size = [], {}, 0
    for n in names:
        size = len(tensors[n][2])
        if cur and cur_size + size > shard_bytes:
            shards.append(cur)
            cur, cur_size = {}, 0
        cur[n] = tensors[n]
        cur_size += size
    if cur:
        shards.append(cur)
    weight_map, total = {}, 0
    for i, sh in enumerate(shards):
        fname = "model-%05d-of-%06d.safetensors" % (i + 1, len(shards))
        write_safetensors(os.path.join(outdir, fname), sh)
        for n, v in sh.items():
            weight_map[n] = fname
            total += len(v[2])
    with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    return {n: v[0] for n, v in tensors.items()}


def load_dequantized(outdir):
    """Reads the exported checkpoint back -> {hf name: float32 torch tensor} (FP8 dequantized)."""
    with open(os.path.join(outdir, "model.safetensors.index.json")) as f:
        idx = json.load(f)
    raw = {}
    for fname in sorted(set(idx["weight_map"].values())):
        raw.update(read_safetensors(os.path.join(outdir, fname)))
    out = {}
    for name, (dt, a) in raw.items():
        if name.endswith("weight_scale_inv"):
            continue
        if dt == "F8_E4M3":
            scale = raw[name[:-len("weight")] + "weight_scale_inv"][1]
            out[name] = torch.from_numpy(dequantize_block_fp8(a, scale))
        elif dt == "BF16":
            out[name] = torch.from_numpy(from_bf16_bits(a).copy())
        else:
            out[name] = torch.from_numpy(a.astype(np.float32).copy())
    return out


def load_into(model, hf):
    """Inverse of hf_state: copies an HF-named state into the training module."""
    L = model.cfg["num_hidden_layers"]
    sd = {}
    for n, t in hf.items():
        if n.startswith("model.layers.%d." % L):
            rest = n[len("model.layers.%d." % L):]
            if rest in ("embed_tokens.weight", "shared_head.head.weight"):
                continue
            sd["mtp." + rest.replace("shared_head.norm", "shared_head_norm")] = t
        elif n == "lm_head.weight":
            sd[n] = t
        else:
            sd[n[len("model."):]] = t
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m != "inv_freq"]
    assert not missing and not unexpected, (missing, unexpected)


def write_configs(cfg, outdir):
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    gen = {"_from_model_config": True, "bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
           "do_sample": True, "temperature": 1.0, "top_p": 0.95, "transformers_version": "4.44.2"}
    with open(os.path.join(outdir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
