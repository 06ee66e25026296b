"""Task evaluation of a DSV32 module (greedy decoding with the sparse indexer on, full recompute per step):
arithmetic accuracy, tool-call correctness, passkey retrieval by context length, MTP draft acceptance.
The items come from eval_items.build_items, which tools/eval_tiny.py also uses to score a running server."""
import torch

from data import render_segments
from encoding_dsv32 import EOS, parse_completion
from eval_items import (DEFAULT_LENGTHS, DEFAULT_SEED, MAX_NEW, build_items, hash_answer, last_int, plain_answer,
                        prompt_segs)


@torch.no_grad()
def greedy_generate(model, prompts, eos_id, max_new, device, token_budget=60000, pad_id=2, mode="sparse_eval"):
    """prompts: list of id lists -> list of generated id lists (EOS included when produced)."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results = [None] * len(prompts)
    i = 0
    while i < len(order):
        n = 1  # sorted by length: grow the group while (size x longest) fits the token budget
        while i + n < len(order) and (n + 1) * (len(prompts[order[i + n]]) + max_new) <= token_budget:
            n += 1
        group = order[i:i + n]
        i += n
        seqs = {j: list(prompts[j]) for j in group}
        gen = {j: [] for j in group}
        active = list(group)
        for _ in range(max_new):
            if not active:
                break
            L = max(len(seqs[j]) for j in active)
            x = torch.full((len(active), L), pad_id, dtype=torch.long)
            for r, j in enumerate(active):
                x[r, :len(seqs[j])] = torch.tensor(seqs[j])
            logits = model(x.to(device), mode=mode, with_mtp=False)["logits"]
            pos = torch.tensor([len(seqs[j]) - 1 for j in active], device=device)
            nxt = logits[torch.arange(len(active), device=device), pos].argmax(-1).tolist()
            still = []
            for j, t in zip(active, nxt):
                seqs[j].append(t)
                gen[j].append(t)
                if t != eos_id:
                    still.append(j)
            active = still
        for j in group:
            results[j] = gen[j]
    return results


@torch.no_grad()
def mtp_acceptance(model, prompts, gens, device, token_budget=60000):
    """Fraction of generated positions where the MTP head's argmax (from h_t and token t+1) equals the
    greedy token t+2: the acceptance rate of a one-token MTP draft under greedy decoding."""
    acc, tot = 0, 0
    items = [(p, g) for p, g in zip(prompts, gens) if len(g) >= 2]
    items.sort(key=lambda pg: len(pg[0]) + len(pg[1]))
    i = 0
    while i < len(items):
        n = 1
        while i + n < len(items) and (n + 1) * (len(items[i + n][0]) + len(items[i + n][1])) <= token_budget:
            n += 1
        chunk = items[i:i + n]
        i += n
        L = max(len(p) + len(g) for p, g in chunk)
        x = torch.full((len(chunk), L), 2, dtype=torch.long)
        for r, (p, g) in enumerate(chunk):
            x[r, :len(p) + len(g)] = torch.tensor(p + g)
        out = model(x.to(device), mode="sparse_eval", with_mtp=True)
        pred = out["mtp_logits"].argmax(-1).cpu()
        for r, (p, g) in enumerate(chunk):
            n_tok = len(p) + len(g)
            for t in range(len(p) - 1, n_tok - 2):
                acc += int(pred[r, t] == x[r, t + 2])
                tot += 1
    return acc / max(1, tot), tot


def run_eval(model, tok, encode, device, n_arith=200, n_tool=200, n_pass=40, pass_lengths=DEFAULT_LENGTHS,
             seed=DEFAULT_SEED, token_budget=60000, log=print, on_update=None, max_new_cap=None):
    items = build_items(encode, n_arith, n_tool, n_pass, pass_lengths, seed)
    res = {}
    eos = tok.eos_id
    all_prompts, all_gens = [], []

    def enc_segs(segs):
        ids = []
        for t, _ in segs:
            ids.extend(encode(t))
        return ids

    def gen(prompts, max_new):
        max_new = min(max_new, max_new_cap or max_new)
        g = greedy_generate(model, prompts, eos, max_new, device, token_budget)
        all_prompts.extend(prompts)
        all_gens.extend(g)
        return g

    def text_of(ids):
        s = tok.decode(ids)
        return s[:-len(EOS)] if s.endswith(EOS) else s

    # arithmetic: chat (the headline number), thinking, plain gsm8k-bench style
    for mode in ("chat", "thinking", "plain"):
        exs = items["arith_" + mode]
        if mode == "plain":
            prompts = [[tok.bos_id] + encode("Question: " + e["question"] + "\nAnswer:") for e in exs]
        else:
            prompts = [enc_segs(prompt_segs(e)) for e in exs]
        outs = gen(prompts, MAX_NEW["arith"])
        ok, samples = 0, []
        for e, o in zip(exs, outs):
            t = text_of(o)
            if mode == "plain":
                pred = plain_answer(t)
                t = t.split("Question")[0]
            else:
                pc = parse_completion(t, thinking=(mode == "thinking"))
                pred = hash_answer(pc["content"])
            ok += int(pred == e["answer"])
            if len(samples) < 3:
                samples.append({"output": t, "answer": e["answer"]})
        res["arith_" + mode] = {"accuracy": ok / len(exs), "n": len(exs), "samples": samples}
        if on_update:
            on_update(res)
        log("eval arith %s: %.3f" % (mode, ok / len(exs)))

    # tool calls: the call turn (name + arguments), then the final answer after the tool result
    for thinking in (False, True):
        exs = items["tool_thinking" if thinking else "tool_chat"]
        prompts = [enc_segs(prompt_segs(e)) for e in exs]
        outs = gen(prompts, MAX_NEW["tool_call"])
        ok, valid, samples = 0, 0, []
        for e, o in zip(exs, outs):
            pc = parse_completion(text_of(o), thinking=thinking)
            calls = pc["tool_calls"]
            valid += int(len(calls) == 1)
            good = len(calls) == 1 and calls[0]["name"] == e["call"]["name"] and calls[0]["arguments"] == e["call"]["arguments"]
            ok += int(good)
            if len(samples) < 3 or not good and len(samples) < 6:
                samples.append({"output": text_of(o), "expected": e["call"]})
        # final answers (teacher-forced conversation up to the tool result)
        fprompts = []
        for e in exs:
            segs = render_segments(e["messages"][:-1], e["thinking"], e["tools"], e["tools_style"])
            fprompts.append(enc_segs(segs))
        fouts = gen(fprompts, MAX_NEW["tool_final"])
        fok = sum(int(parse_completion(text_of(o), thinking)["content"].strip() == e["final"]) for e, o in zip(exs, fouts))
        key = "tool_thinking" if thinking else "tool_chat"
        res[key] = {"call_correct": ok / len(exs), "call_valid": valid / len(exs), "final_answer_exact": fok / len(exs),
                    "n": len(exs), "samples": samples}
        if on_update:
            on_update(res)
        log("eval %s: call %.3f valid %.3f final %.3f" % (key, ok / len(exs), valid / len(exs), fok / len(exs)))

    # passkey retrieval by context length (filler tokens); index_topk keys per query
    res["passkey"] = {}
    for L in pass_lengths:
        exs = items["passkey"][L]
        prompts = [enc_segs(prompt_segs(e)) for e in exs]
        outs = gen(prompts, MAX_NEW["passkey"])
        ok = 0
        for e, o in zip(exs, outs):
            ok += int(last_int(parse_completion(text_of(o))["content"]) == e["answer"])
        res["passkey"][str(L)] = {"accuracy": ok / len(exs), "n": len(exs),
                                 "prompt_tokens_mean": sum(map(len, prompts)) / len(prompts),
                                 "sample": text_of(outs[0])}
        log("eval passkey %d: %.3f" % (L, ok / len(exs)))
        if on_update:
            on_update(res)

    # the same passkey prompts with dense attention (indexer bypassed), for comparison
    res["passkey_dense_attention"] = {}
    for L, exs in items["passkey_dense"].items():
        prompts = [enc_segs(prompt_segs(e)) for e in exs]
        max_new = min(MAX_NEW["passkey"], max_new_cap or MAX_NEW["passkey"])
        outs = greedy_generate(model, prompts, eos, max_new, device, token_budget, mode="dense")
        ok = sum(int(last_int(parse_completion(text_of(o))["content"]) == e["answer"]) for e, o in zip(exs, outs))
        res["passkey_dense_attention"][str(L)] = {"accuracy": ok / len(exs), "n": len(exs)}
        log("eval passkey %d with dense attention: %.3f" % (L, ok / len(exs)))

    acc, n = mtp_acceptance(model, all_prompts, all_gens, device, token_budget)
    res["mtp_acceptance"] = {"rate": acc, "positions": n}
    log("eval mtp acceptance: %.3f over %d positions" % (acc, n))
    return res
