#!/usr/bin/env python3
"""The reference half of tools/gen_golden.py (torch + transformers): runs Hugging Face transformers in float32 on the
dequantized weights of a generated checkpoint and writes reference.safetensors (logits, indexer top-k, greedy
continuations, MTP); see gen_golden.py's docstring."""

import copy
import json
import os

import numpy as np

from golden_format import (MAX_ATTEMPTS, MIN_GREEDY_DISTINCT, N_GREEDY, N_LAST, PROMPT_LENGTHS, TOPK_WIDTH,
                           draw_prompt, indexer_layer_kinds, write_safetensors)


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
