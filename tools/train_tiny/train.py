#!/usr/bin/env python3
"""Train, export and evaluate the tiny DeepSeek-V3.2-architecture model.

Usage: python3 tools/train_tiny/train.py OUTDIR [--max-minutes 7] [--preset full|smoke]

Steps: (1) train a byte-level BPE tokenizer on generated task text; (2) train the model in three stages --
dense attention (LM + MTP loss), indexer warm-up (main model frozen, dense attention, indexer KL to the summed
attention distribution), sparse training (top-k attention on, LM + MTP loss for the model, indexer KL on the
selected set with detached inputs); (3) export FP8 safetensors + configs + tokenizer into OUTDIR/model;
(4) reload the export (FP8 dequantized) and evaluate the tasks -> OUTDIR/eval.json.
"""
import argparse
import collections
import json
import math
import multiprocessing
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import bpe_tokenizer  # noqa: E402
import data  # noqa: E402
import evaluate  # noqa: E402
import export  # noqa: E402
import model as model_mod  # noqa: E402
from model import DSV32  # noqa: E402

PRESETS = {
    "full": dict(hidden_size=320, num_hidden_layers=4, first_k_dense_replace=1, num_attention_heads=4,
                 q_lora_rank=256, intermediate_size=960, moe_intermediate_size=160, n_routed_experts=16,
                 num_experts_per_tok=4, n_group=4, topk_group=2, index_n_heads=4, vocab_target=4096,
                 token_budget=32768, tok_corpus=6000),
    "smoke": dict(hidden_size=64, num_hidden_layers=2, first_k_dense_replace=1, num_attention_heads=2,
                  q_lora_rank=64, intermediate_size=128, moe_intermediate_size=32, n_routed_experts=8,
                  num_experts_per_tok=2, n_group=4, topk_group=2, index_n_heads=2, vocab_target=1024,
                  token_budget=2048, tok_corpus=400),
}


def make_config(p, vocab_size):
    return {
        "architectures": ["DeepseekV32ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "ep_size": 1,
        "first_k_dense_replace": p["first_k_dense_replace"],
        "hidden_act": "silu",
        "hidden_size": p["hidden_size"],
        "index_head_dim": 128,
        "index_n_heads": p["index_n_heads"],
        "index_topk": 64,
        "initializer_range": 0.02,
        "intermediate_size": p["intermediate_size"],
        "kv_lora_rank": 512,
        "max_position_embeddings": 163840,
        "model_type": "deepseek_v32",
        "moe_intermediate_size": p["moe_intermediate_size"],
        "moe_layer_freq": 1,
        "n_group": p["n_group"],
        "n_routed_experts": p["n_routed_experts"],
        "n_shared_experts": 1,
        "norm_topk_prob": True,
        "num_attention_heads": p["num_attention_heads"],
        "num_experts_per_tok": p["num_experts_per_tok"],
        "num_hidden_layers": p["num_hidden_layers"],
        "num_key_value_heads": p["num_attention_heads"],
        "num_nextn_predict_layers": 1,
        "q_lora_rank": p["q_lora_rank"],
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                "scale_fmt": "ue8m0", "weight_block_size": [128, 128]},
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                         "original_max_position_embeddings": 4096, "type": "yarn"},
        "rope_theta": 10000,
        "routed_scaling_factor": 2.5,
        "scoring_func": "sigmoid",
        "tie_word_embeddings": False,
        "topk_group": p["topk_group"],
        "topk_method": "noaux_tc",
        "torch_dtype": "bfloat16",
        "transformers_version": "4.44.2",
        "use_cache": True,
        "v_head_dim": 128,
        "vocab_size": vocab_size,
    }


def tokenizer_corpus(rng, n):
    texts = []
    for i in range(n):
        r = i % 4
        if r == 0:
            ex = data.arith_example(rng, rng.choice(["chat", "thinking"]))
        elif r == 1:
            texts.append(data.arith_example(rng, "plain")["text"])
            continue
        elif r == 2:
            ex = data.tool_example(rng)
        else:
            texts.append(" ".join(rng.choice(data.FILLER) for _ in range(20)) +
                         " The pass key is %d. Remember it. What is the pass key?" % rng.randint(10000, 99999))
            continue
        texts.append(data.encode_text(ex) if hasattr(data, "encode_text") else
                     "".join(t for t, _ in data.render_segments(ex["messages"], ex["thinking"], ex["tools"],
                                                                  ex.get("tools_style", "official"))))
    return texts


class Batcher:
    """Builds one padded batch of a task; all segments of the batch are tokenized in one call."""

    def __init__(self, rng, encode_many, budget, max_filler, min_filler, filler, prompt_weight=0.1):
        self.rng, self.encode_many, self.budget = rng, encode_many, budget
        self.max_filler, self.min_filler = max_filler, min_filler
        self.filler = filler
        self.pw = prompt_weight

    def segments(self, task):
        rng = self.rng
        if task == "plain":
            return data.plain_doc_segments(rng)
        if task == "arith":
            return data.to_segments(data.arith_example(rng, "thinking" if rng.random() < 0.27 else "chat"), self.pw)
        if task == "tool":
            return data.to_segments(data.tool_example(rng), self.pw)
        # the filler is thousands of easy tokens: weight it down so that the answer dominates the loss
        ex = data.passkey_example(rng, self.filler, self.pk_len, thinking=rng.random() < 0.15)
        return data.to_segments(ex, self.pw * 0.2)

    def batch(self, task):
        if task == "passkey":
            # log-uniform filler length so that short and long contexts both get steps
            lo, hi = math.log(self.min_filler), math.log(self.max_filler)
            self.pk_len = int(math.exp(self.rng.uniform(lo, hi)))
            n = max(1, self.budget // (self.pk_len + 60))
        else:
            if task == "arith" and self.rng.random() < 0.25:
                task = "plain"  # gsm8k-bench style documents, batched apart (they are 3x longer)
            n = max(1, self.budget // {"arith": 110, "plain": 300, "tool": 600}[task])
        segs = [self.segments(task) for _ in range(n)]
        flat = [t for sg in segs for t, _ in sg]
        ids_flat = self.encode_many(flat)
        exs, k = [], 0
        for sg in segs:
            ids, wts = [], []
            for _, wt in sg:
                ids.extend(ids_flat[k])
                wts.extend([wt] * len(ids_flat[k]))
                k += 1
            exs.append((ids, wts))
        L = max(len(i) for i, _ in exs)
        x = np.full((len(exs), L), 2, dtype=np.int64)  # numpy: worker processes must not touch torch
        w = np.zeros((len(exs), L), dtype=np.float32)
        for r, (ids, wts) in enumerate(exs):
            x[r, :len(ids)] = ids
            w[r, :len(ids)] = wts
        return x, w


_WORKER = {}


def _worker_init(make_batcher, base_seed, counter):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    with counter.get_lock():
        counter.value += 1
        k = counter.value
    _WORKER["batcher"] = make_batcher(random.Random(base_seed * 1000 + k))


def _worker_batch(task):
    return task, _WORKER["batcher"].batch(task)


class BatchPool:
    """Batches built ahead by forked worker processes, so the training loop does not wait for Python data
    generation and tokenization. Must be created before CUDA or torch thread pools start (fork safety)."""

    def __init__(self, make_batcher, n_workers, seed, depth):
        ctx = multiprocessing.get_context("fork")
        self.pool = ctx.Pool(n_workers, initializer=_worker_init,
                             initargs=(make_batcher, seed, ctx.Value("i", 0)))
        self.depth = depth
        self.pending = collections.deque()

    def get(self, next_task):
        """Queues `next_task()` until `depth` batches are pending, then returns the oldest (task, x, w)."""
        while len(self.pending) < self.depth:
            self.pending.append(self.pool.apply_async(_worker_batch, (next_task(),)))
        task, (x, w) = self.pending.popleft().get()
        return task, torch.from_numpy(x), torch.from_numpy(w)

    def close(self):
        self.pool.terminate()


def cached_encoders(fast, max_cache=50000, max_len=4000):
    """encode(text) and encode_many(texts) through the `tokenizers` package, with a cache of short texts."""
    cache = {}

    def encode_many(texts):
        out, todo = {}, []
        for t in set(texts):
            r = cache.get(t)
            if r is None:
                todo.append(t)
            else:
                out[t] = r
        if todo:
            for t, e in zip(todo, fast.encode_batch(todo, add_special_tokens=False)):
                out[t] = e.ids
            if len(cache) > max_cache:
                cache.clear()
            for t in todo:
                if len(t) < max_len:
                    cache[t] = out[t]
        return [list(out[t]) for t in texts]

    def encode(text):
        return encode_many([text])[0]

    return encode, encode_many


def lm_losses(out, x, w, mtp_weight):
    logits = out["logits"][:, :-1].float()
    tgt, wt = x[:, 1:], w[:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none").view_as(tgt)
    lm = (ce * wt).sum() / wt.sum().clamp_min(1)
    loss = lm
    mtp = torch.zeros((), device=x.device)
    if "mtp_logits" in out and x.shape[1] > 2:
        ml = out["mtp_logits"][:, :-1].float()
        t2, w2 = x[:, 2:], w[:, 2:]
        ce2 = F.cross_entropy(ml.reshape(-1, ml.shape[-1]), t2.reshape(-1), reduction="none").view_as(t2)
        mtp = (ce2 * w2).sum() / w2.sum().clamp_min(1)
        loss = loss + mtp_weight * mtp
    return loss, lm, mtp


def kl_loss(out, w):
    if not out["kl"]:
        return None
    valid = (w > 0).float()
    tot = 0
    for kl in out["kl"]:
        v = valid[:, :kl.shape[1]]
        tot = tot + (kl * v).sum() / v.sum().clamp_min(1)
    return tot / len(out["kl"])


def update_bias(model, gamma=1e-3):
    mods = [l.mlp for l in model.layers if hasattr(l.mlp, "gate")]
    if model.mtp is not None:
        mods.append(model.mtp.mlp)
    for m in mods:
        if m.last_load is not None:
            load = m.last_load.float()
            m.gate.e_score_correction_bias.add_(gamma * torch.sign(load.mean() - load))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--max-minutes", type=float, default=7.0, help="wall-clock budget for the training stages")
    ap.add_argument("--preset", default="full", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--indexer-lr", type=float, default=1e-3)
    ap.add_argument("--stage-fractions", default="0.55,0.10,0.35", help="dense, indexer warm-up, sparse")
    ap.add_argument("--task-weights", default="0.35,0.30,0.35", help="arith, tool, passkey")
    ap.add_argument("--min-filler", type=int, default=64)
    ap.add_argument("--max-filler", type=int, default=4096)
    ap.add_argument("--mtp-weight", type=float, default=0.3)
    ap.add_argument("--logit-cap", type=float, default=15.0,
                    help="penalize attention-logit bounds above this (0: off); training only, no model change")
    ap.add_argument("--logit-cap-weight", type=float, default=1e-2)
    ap.add_argument("--warmup-steps", type=int, default=500)
    ap.add_argument("--eval-arith", type=int, default=200)
    ap.add_argument("--eval-tool", type=int, default=200)
    ap.add_argument("--eval-passkey", type=int, default=40)
    ap.add_argument("--eval-lengths", default="256,512,1024,2048,4096")
    ap.add_argument("--eval-max-new", type=int, default=0, help="cap on generated tokens per eval prompt (smoke tests)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke tests)")
    ap.add_argument("--data-workers", type=int, default=min(8, max(0, (os.cpu_count() or 1) - 2)),
                    help="processes building batches ahead (0: build them in the training loop)")
    args = ap.parse_args()

    t_start = time.time()
    P = PRESETS[args.preset]
    os.makedirs(args.outdir, exist_ok=True)
    mdir = os.path.join(args.outdir, "model")
    os.makedirs(mdir, exist_ok=True)
    logf = open(os.path.join(args.outdir, "train_log.txt"), "a")

    def log(*a):
        s = "[%7.1fs] " % (time.time() - t_start) + " ".join(str(x) for x in a)
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log("torch", torch.__version__, "device", device)

    # 1. tokenizer
    corpus = tokenizer_corpus(random.Random(args.seed + 1), P["tok_corpus"])
    tok = bpe_tokenizer.build(corpus, P["vocab_target"])
    vocab_size = int(math.ceil(tok.size / 128.0) * 128)
    with open(os.path.join(HERE, "chat_template.jinja"), encoding="utf-8") as f:
        chat_template = f.read()
    bpe_tokenizer.save(tok, mdir, chat_template, model_max_length=163840)
    tok = bpe_tokenizer.load(mdir)
    fast = bpe_tokenizer.load_fast(mdir)
    report = {"tokenizer": {"size": tok.size, "vocab_size": vocab_size, "merges": len(tok.ranks)}}
    if fast is not None:
        chk = bpe_tokenizer.check_against_fast(tok, fast, corpus[:500])
        report["tokenizer"]["vs_tokenizers_package"] = chk
        log("tokenizer vs tokenizers package:", chk)
        wrong_ids = {c: fast.token_to_id(c) for c, i, _ in tok.added if fast.token_to_id(c) != i}
        if wrong_ids or chk["encode_agree"] < 1.0 or chk["decode_roundtrip"] < 1.0:
            # train on exactly the ids that the saved tokenizer.json gives under the reference library
            raise SystemExit("tokenizer.json disagrees with the `tokenizers` package: %s %s" % (wrong_ids, chk))
        encode, encode_many = cached_encoders(fast)
    else:
        encode = tok.encode

        def encode_many(texts):
            return [tok.encode(t) for t in texts]
        report["tokenizer"]["vs_tokenizers_package"] = "not installed here"
    log("tokenizer: %d tokens (%d merges), vocab_size %d" % (tok.size, len(tok.ranks), vocab_size))

    def make_batcher(r):
        return Batcher(r, encode_many, P["token_budget"], args.max_filler, args.min_filler, data.FillerCache(encode))
    # forked before the model touches CUDA; worker k draws its examples from Random(seed * 1000 + k)
    pool = BatchPool(make_batcher, args.data_workers, args.seed, 2 * args.data_workers) if args.data_workers else None
    log("data workers:", args.data_workers)

    # 2. model
    cfg = make_config(P, vocab_size)
    model = DSV32(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log("params: %.2fM" % (n_params / 1e6))
    sdpa = model_mod.enable_sdpa(model, device)
    log("fused dense attention:", sdpa)
    main_params = model.main_params()
    idx_params = model.indexer_params()
    decay = [p for p in main_params if p.dim() >= 2]
    no_decay = [p for p in main_params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    opt_idx = torch.optim.AdamW(idx_params, lr=args.indexer_lr, betas=(0.9, 0.95), weight_decay=0.0)
    fr = [float(f) for f in args.stage_fractions.split(",")]
    budget_s = args.max_minutes * 60.0
    bounds = [budget_s * fr[0], budget_s * (fr[0] + fr[1]), budget_s * sum(fr)]
    tw = [float(f) for f in args.task_weights.split(",")]
    batcher = make_batcher(rng) if pool is None else None
    use_amp = device == "cuda"
    t0 = time.time()
    step, stage_steps = 0, {"dense": 0, "warmup": 0, "sparse": 0}
    hist = []
    out = total = None
    warm = args.warmup_steps if args.preset == "full" else 5
    attn_mods = [l.self_attn for l in model.layers] + ([model.mtp.self_attn] if model.mtp is not None else [])
    while True:
        el = time.time() - t0
        if el >= bounds[2] or (args.max_steps and step >= args.max_steps):
            break
        if args.max_steps:
            frac_steps = step / args.max_steps
            stage = "dense" if frac_steps < fr[0] else ("warmup" if frac_steps < fr[0] + fr[1] else "sparse")
            prog = frac_steps
        else:
            stage = "dense" if el < bounds[0] else ("warmup" if el < bounds[1] else "sparse")
            prog = el / bounds[2]
        for p in main_params:
            p.requires_grad_(stage != "warmup")
        def next_task():
            return rng.choices(["arith", "tool", "passkey"], weights=tw)[0]
        if pool is not None:
            task, x, w = pool.get(next_task)
        else:
            task = next_task()
            x, w = (torch.from_numpy(a) for a in batcher.batch(task))
        if device == "cuda":  # pinned + non_blocking: no host sync, the CPU builds the next batch meanwhile
            x, w = x.pin_memory().to(device, non_blocking=True), w.pin_memory().to(device, non_blocking=True)
        lr_f = min(1.0, (stage_steps["dense"] + stage_steps["sparse"] + 1) / warm) * (0.1 + 0.45 * (1 + math.cos(math.pi * prog)))
        for g in opt.param_groups:
            g["lr"] = args.lr * lr_f
        for g in opt_idx.param_groups:
            g["lr"] = args.indexer_lr * min(1.0, (stage_steps["warmup"] + stage_steps["sparse"] + 1) / 50) * \
                (1.0 if stage == "warmup" else 0.5 + 0.5 * lr_f)
        if use_amp:
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                out = model(x, mode=stage, with_mtp=True)
        else:
            out = model(x, mode=stage, with_mtp=True)
        loss, lm, mtp = lm_losses(out, x, w, args.mtp_weight)
        kl = kl_loss(out, w)
        bounds_now = [a.logit_bound for a in attn_mods if a.logit_bound is not None]
        if args.logit_cap > 0 and stage != "warmup" and bounds_now:
            excess = sum(F.relu(b - args.logit_cap).pow(2).mean() for b in bounds_now) / len(bounds_now)
            loss = loss + args.logit_cap_weight * excess
        if stage == "warmup":
            total = kl
        elif stage == "sparse":
            total = loss + kl
        else:
            total = loss
        opt.zero_grad(set_to_none=True)
        opt_idx.zero_grad(set_to_none=True)
        total.backward()
        if stage != "warmup":
            torch.nn.utils.clip_grad_norm_(main_params, 1.0)
            opt.step()
            with torch.no_grad():
                update_bias(model)
        if stage != "dense":
            torch.nn.utils.clip_grad_norm_(idx_params, 1.0)
            opt_idx.step()
        stage_steps[stage] += 1
        step += 1
        if step % 50 == 0 or step <= 3 or (args.max_steps and step % 5 == 0):
            rec = {"step": step, "t": round(time.time() - t0, 1), "stage": stage, "task": task,
                   "shape": list(x.shape), "lm": round(lm.item(), 4), "mtp": round(mtp.item(), 4),
                   "kl": round(kl.item(), 4) if kl is not None else None, "lr": round(args.lr * lr_f, 6),
                   "logit_bound_p50": [round(b.float().median().item(), 1) for b in bounds_now]}
            hist.append(rec)
            log(json.dumps(rec))
    train_s = time.time() - t0
    if pool is not None:
        pool.close()
    log("training done: %d steps in %.1fs %s" % (step, train_s, stage_steps))
    if device == "cuda":
        log("peak GPU memory %.1f GB" % (torch.cuda.max_memory_allocated() / 1e9))
    torch.save({"config": cfg, "state_dict": model.state_dict()}, os.path.join(args.outdir, "ckpt.pt"))

    # 3. export
    dtypes = export.export(model, mdir)
    export.write_configs(cfg, mdir)
    sizes = {f: os.path.getsize(os.path.join(mdir, f)) for f in sorted(os.listdir(mdir))}
    log("export:", sizes, "total %.2f MB" % (sum(sizes.values()) / 1e6))
    report["export"] = {"files": sizes, "total_bytes": sum(sizes.values()),
                        "n_tensors": len(dtypes),
                        "dtype_counts": {d: list(dtypes.values()).count(d) for d in sorted(set(dtypes.values()))}}
    report["checks"] = cross_checks(mdir, log)

    # 4. evaluate the exported checkpoint (FP8 dequantized), sparse attention on
    del model, opt, opt_idx, out, total, main_params, idx_params, decay, no_decay
    if device == "cuda":
        torch.cuda.empty_cache()
    emodel = DSV32(json.load(open(os.path.join(mdir, "config.json")))).to(device)
    export.load_into(emodel, {k: v.to(device) for k, v in export.load_dequantized(mdir).items()})
    emodel.eval()
    lengths = tuple(int(v) for v in args.eval_lengths.split(","))
    t_eval = time.time()
    report["train"] = {"steps": step, "stage_steps": stage_steps, "train_seconds": round(train_s, 1), "sdpa": sdpa,
                       "params": n_params, "args": vars(args), "preset": P, "torch": torch.__version__,
                       "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                       "last_log": hist[-8:]}

    def save_partial(res):
        report["eval"] = res
        with open(os.path.join(args.outdir, "eval.json"), "w") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)

    res = evaluate.run_eval(emodel, tok, encode, device, n_arith=args.eval_arith, n_tool=args.eval_tool,
                            n_pass=args.eval_passkey, pass_lengths=lengths, log=log, on_update=save_partial,
                            max_new_cap=args.eval_max_new or None)
    report["eval"] = res
    report["eval_seconds"] = round(time.time() - t_eval, 1)
    with open(os.path.join(args.outdir, "eval.json"), "w") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    log("wrote eval.json; total %.1fs" % (time.time() - t_start))


def cross_checks(mdir, log):
    """Compare the numpy FP8/safetensors code with torch's float8 dtype and the safetensors package."""
    import numpy as np
    out = {}
    try:
        if hasattr(torch, "float8_e4m3fn"):
            x = torch.randn(100000) * 100
            ref = x.to(torch.float8_e4m3fn).view(torch.uint8).numpy()
            out["fp8_encode_vs_torch_float8_e4m3fn"] = float((ref == export.fp8_e4m3_encode(x.numpy())).mean())
            codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
            tv = codes.view(torch.float8_e4m3fn).float().numpy()
            mv = export.fp8_e4m3_decode(codes.numpy())
            out["fp8_decode_vs_torch"] = bool(np.array_equal(np.nan_to_num(tv, nan=1e9), np.nan_to_num(mv, nan=1e9)))
        else:
            out["fp8_encode_vs_torch_float8_e4m3fn"] = "torch has no float8 here"
    except Exception as e:  # a check must not lose the run
        out["fp8_error"] = repr(e)
    try:
        from safetensors.torch import load_file
        idx = json.load(open(os.path.join(mdir, "model.safetensors.index.json")))
        ok, n = True, 0
        for fname in sorted(set(idx["weight_map"].values())):
            lib = load_file(os.path.join(mdir, fname))
            mine = export.read_safetensors(os.path.join(mdir, fname))
            assert set(lib) == set(mine)
            for k, (dt, a) in mine.items():
                b = lib[k]
                want = {"F8_E4M3": torch.float8_e4m3fn, "BF16": torch.bfloat16, "F32": torch.float32}[dt]
                bb = b.contiguous().view(torch.uint8).numpy().tobytes() if b.dtype != torch.float32 else b.numpy().tobytes()
                ok &= b.dtype == want and list(b.shape) == list(a.shape) and bb == a.tobytes()
                n += 1
        out["safetensors_package_reads_same"] = bool(ok)
        out["safetensors_tensors_checked"] = n
    except ImportError:
        out["safetensors_package_reads_same"] = "not installed here"
    except Exception as e:
        out["safetensors_error"] = repr(e)
    log("checks:", out)
    return out


if __name__ == "__main__":
    main()
