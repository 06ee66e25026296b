#!/usr/bin/env python3
"""Accuracy harness for the bundled model, scored through a running dsaserve (or any SGLang-compatible server):
the PyTorch evaluation's items (tools/train_tiny/eval_items.py, same seeds and order) sent over
/v1/chat/completions (and /v1/completions for the plain arithmetic form) with greedy sampling; prints a table,
writes JSON (--output) and, with --thresholds, exits 1 when a score is below its threshold.
Standard library only. Serve with --tool-call-parser deepseekv32 --reasoning-parser deepseek-v3.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_tiny"))

from encoding_dsv32 import render_segments  # noqa: E402
import eval_items  # noqa: E402
from eval_items import MAX_NEW, followup_messages, hash_answer, last_int, plain_answer  # noqa: E402

DEFAULT_THRESHOLDS = "arith_chat=0.90,tool_call=0.95,passkey=0.95"


class HarnessError(Exception):
    """A problem that makes the scores meaningless (server unreachable, bad reply, bad flags)."""


# ---------------------------------------------------------------- HTTP

class Client:
    def __init__(self, base_url, timeout, api_key=None):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = "Bearer " + api_key

    def call(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, headers=self.headers,
                                     method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            raise HarnessError("%s: HTTP %d: %s" % (path, e.code, e.read().decode(errors="replace")[:500]))
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise HarnessError("%s: %s" % (path, e))

    def wait_ready(self, seconds):
        deadline = time.time() + seconds
        while True:
            try:
                return self.call("/get_server_info")
            except HarnessError as e:
                if time.time() >= deadline:
                    raise HarnessError("server at %s not ready after %.0f s (%s)" % (self.base, seconds, e))
                time.sleep(0.5)


def check_server(info):
    """The scores need the DSML tool-call parser and the reasoning split; say so instead of scoring 0."""
    missing = [f for f, want in (("tool_call_parser", "deepseekv32"), ("reasoning_parser", "deepseek-v3"))
               if info.get(f) != want]
    if missing:
        raise HarnessError("the server must run with --tool-call-parser deepseekv32 --reasoning-parser deepseek-v3 "
                           "(server_info has %s)" % {f: info.get(f) for f in missing})


def filler_encode(client):
    """encode() stand-in for the passkey filler: token counts from the server's own tokenizer (/generate)."""
    cache = {}

    def encode(text):
        if text not in cache:
            r = client.call("/generate", {"text": text, "sampling_params": {"max_new_tokens": 1, "temperature": 0}})
            cache[text] = int(r["meta_info"]["prompt_tokens"])
        return [0] * cache[text]
    return encode


# ---------------------------------------------------------------- jobs

def chat_body(messages, ex, max_tokens):
    body = {"messages": messages, "temperature": 0, "max_tokens": max_tokens,
            "chat_template_kwargs": {"thinking": bool(ex["thinking"])}}
    if ex.get("tools"):
        body["tools"] = ex["tools"]
    return body


def make_jobs(items, cap):
    """[(group, index, kind, path, body, prompt_text)]; kind says how the reply is scored."""
    def mx(kind):
        return min(MAX_NEW[kind], cap) if cap else MAX_NEW[kind]
    jobs = []
    for mode in ("chat", "thinking"):
        for i, ex in enumerate(items["arith_" + mode]):
            jobs.append(("arith_" + mode, i, "arith", "/v1/chat/completions",
                         chat_body(eval_items.prompt_messages(ex), ex, mx("arith")), eval_items.prompt_text(ex)))
    for i, ex in enumerate(items["arith_plain"]):
        jobs.append(("arith_plain", i, "plain", "/v1/completions",
                     {"prompt": eval_items.plain_prompt(ex), "temperature": 0, "max_tokens": mx("arith")},
                     eval_items.prompt_text(ex)))
    for group in ("tool_chat", "tool_thinking"):
        for i, ex in enumerate(items[group]):
            jobs.append((group, i, "tool_call", "/v1/chat/completions",
                         chat_body(eval_items.prompt_messages(ex), ex, mx("tool_call")), eval_items.prompt_text(ex)))
            fmsgs = followup_messages(ex)
            ftext = "".join(t for t, _ in render_segments(fmsgs, ex["thinking"], ex["tools"], ex["tools_style"]))
            jobs.append((group, i, "tool_final", "/v1/chat/completions",
                         chat_body(fmsgs, ex, mx("tool_final")), ftext))
    for length, exs in items["passkey"].items():
        for i, ex in enumerate(exs):
            jobs.append(("passkey_%d" % length, i, "passkey", "/v1/chat/completions",
                         chat_body(eval_items.prompt_messages(ex), ex, mx("passkey")), eval_items.prompt_text(ex)))
    return jobs


def run_job(client, job):
    group, i, kind, path, body, _ = job
    t0 = time.time()
    try:
        reply = client.call(path, body)
        error = None
    except HarnessError as e:
        reply, error = None, str(e)
    return {"group": group, "index": i, "kind": kind, "reply": reply, "error": error, "seconds": time.time() - t0}


def run_jobs(client, jobs, concurrency, log):
    results = [None] * len(jobs)
    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        futs = {pool.submit(run_job, client, job): n for n, job in enumerate(jobs)}
        for fut in concurrent.futures.as_completed(futs):
            results[futs[fut]] = fut.result()
            done += 1
            if done % 25 == 0 or done == len(jobs):
                log("  %d/%d requests done" % (done, len(jobs)))
    return results


# ---------------------------------------------------------------- scoring

def message_of(reply):
    if not reply or not reply.get("choices"):
        return {}
    ch = reply["choices"][0]
    return ch.get("message") or {"content": ch.get("text")}


def tool_call_verdict(msg, expected):
    """(valid, correct): exactly one call with JSON-object arguments; the same name and arguments as expected."""
    calls = msg.get("tool_calls") or []
    if len(calls) != 1:
        return False, False
    fn = calls[0].get("function") or {}
    try:
        args = json.loads(fn.get("arguments") or "")
    except ValueError:
        return False, False
    if not isinstance(args, dict):
        return False, False
    return True, fn.get("name") == expected["name"] and args == expected["arguments"]


def score_one(res, ex):
    """Adds 'ok' (and 'valid' for tool calls) and a short 'output' to one result."""
    msg = message_of(res["reply"])
    content = msg.get("content") or ""
    kind = res["kind"]
    if kind == "arith":
        res["ok"] = hash_answer(content) == ex["answer"]
    elif kind == "plain":
        res["ok"] = plain_answer(content) == ex["answer"]
    elif kind == "passkey":
        res["ok"] = last_int(content) == ex["answer"]
    elif kind == "tool_call":
        res["valid"], res["ok"] = tool_call_verdict(msg, ex["call"])
    else:
        res["ok"] = content.strip() == ex["final"]
    res["output"] = {k: msg.get(k) for k in ("reasoning_content", "content", "tool_calls") if msg.get(k)}
    res["expected"] = ex["call"] if kind == "tool_call" else ex["final"] if kind == "tool_final" else ex["answer"]


def usage_of(res):
    u = (res["reply"] or {}).get("usage") or {}
    return u.get("prompt_tokens", 0), u.get("completion_tokens", 0)


def summarize(items, jobs, results):
    by_group = {}
    for job, res in zip(jobs, results):
        group, i = job[0], job[1]
        exs = items["passkey"][int(group.split("_")[1])] if group.startswith("passkey_") else items[group]
        score_one(res, exs[i])
        by_group.setdefault(group, []).append(res)
    report, metrics = {}, {}
    for group, rs in by_group.items():
        group_metrics, report[group] = group_report(group, rs)
        report[group].update(group_metrics)
        metrics.update(group_metrics)
    return report, metrics


def rate(rs, key="ok"):
    return sum(int(bool(r.get(key))) for r in rs) / len(rs) if rs else 0.0


def samples(rs, n=3):
    """The first n results and up to n more failures: index, expected answer, reply, error."""
    picked = rs[:n] + [r for r in rs[n:] if not r.get("ok")][:n]
    return [{"index": r["index"], "expected": r["expected"], "output": r["output"], "error": r["error"]}
            for r in picked]


def group_report(group, rs):
    """({metric: score}, {n, samples, ...}) of one item group."""
    if group.startswith("tool_"):
        calls = [r for r in rs if r["kind"] == "tool_call"]
        finals = [r for r in rs if r["kind"] == "tool_final"]
        variant = group[len("tool_"):]
        metrics = {"tool_call_" + variant: rate(calls), "tool_valid_" + variant: rate(calls, "valid"),
                   "tool_final_" + variant: rate(finals)}
        return metrics, {"n": len(calls), "samples": samples(calls)}
    info = {"n": len(rs), "samples": samples(rs)}
    if group.startswith("passkey_"):
        info["prompt_tokens_mean"] = sum(usage_of(r)[0] for r in rs) / len(rs)
    return {group: rate(rs)}, info


def timings(results, wall, concurrency):
    """Per request kind: count, mean client latency, mean prompt / completion tokens (at this concurrency)."""
    out = {"wall_seconds": round(wall, 2), "concurrency": concurrency}
    kinds = {}
    for r in results:
        key = r["group"] if r["group"].startswith("passkey_") else r["kind"]
        kinds.setdefault(key, []).append(r)
    for key, rs in sorted(kinds.items()):
        p = [usage_of(r) for r in rs]
        out[key] = {"requests": len(rs), "mean_seconds": round(sum(r["seconds"] for r in rs) / len(rs), 3),
                    "mean_prompt_tokens": round(sum(x[0] for x in p) / len(rs), 1),
                    "mean_completion_tokens": round(sum(x[1] for x in p) / len(rs), 1)}
    return out


# ---------------------------------------------------------------- thresholds

def parse_thresholds(spec):
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise HarnessError("--thresholds: '%s' is not NAME=VALUE" % part)
        if not sep or not name.strip():
            raise HarnessError("--thresholds: '%s' is not NAME=VALUE" % part)
    return out


def check_thresholds(metrics, thresholds):
    """A threshold NAME applies to metric NAME and every metric NAME_*; one that matches none is an error."""
    failures = []
    for name, bound in thresholds.items():
        hit = [m for m in metrics if m == name or m.startswith(name + "_")]
        if not hit:
            raise HarnessError("--thresholds: '%s' matches no metric (have: %s)" % (name, ", ".join(sorted(metrics))))
        failures += ["%s = %.3f < %.3f" % (m, metrics[m], bound) for m in sorted(hit) if metrics[m] < bound]
    return failures


# ---------------------------------------------------------------- MTP acceptance (dsaserve mtp-probe)

def mtp_probe(binary, model_path, jobs, n, log):
    """Runs `dsaserve mtp-probe` on n prompts spread over the eval's prompts (the training script's rendering)."""
    step = max(1, len(jobs) // n)
    chosen = jobs[::step][:n]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for job in chosen:
            f.write(json.dumps({"text": job[5], "max_new_tokens": job[4]["max_tokens"]}, ensure_ascii=False) + "\n")
        path = f.name
    try:
        cmd = [binary, "mtp-probe", "--model-path", model_path, "--prompts", path]
        log("mtp: " + " ".join(cmd))
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise HarnessError("mtp-probe failed (exit %d): %s" % (p.returncode, p.stderr.strip()[-500:]))
        out = json.loads(p.stdout.strip().splitlines()[-1])
        out["seconds"] = round(time.time() - t0, 2)
        return out
    finally:
        os.unlink(path)


# ---------------------------------------------------------------- reply dumps (CPU vs GPU greedy agreement)

def output_lines(results):
    """One comparable record per request: the message with tool-call ids dropped (they are random)."""
    lines = []
    for r in results:
        msg = message_of(r["reply"])
        calls = [c.get("function") for c in msg.get("tool_calls") or []]
        lines.append({"group": r["group"], "index": r["index"], "kind": r["kind"],
                      "reasoning_content": msg.get("reasoning_content"), "content": msg.get("content"),
                      "tool_calls": calls or None})
    return lines


def compare_outputs(lines, path):
    """{'identical': k, 'n': n, 'rate': k/n, 'differing': first few differing pairs} against a dump file."""
    try:
        with open(path, encoding="utf-8") as f:
            other = [json.loads(x) for x in f if x.strip()]
    except (OSError, ValueError) as e:
        raise HarnessError("--compare-with %s: %s" % (path, e))
    key = lambda x: (x["group"], x["index"], x["kind"])  # noqa: E731
    theirs = {key(x): x for x in other}
    if len(theirs) != len(lines) or any(key(x) not in theirs for x in lines):
        raise HarnessError("--compare-with %s: not a dump of the same items (%d vs %d replies)"
                           % (path, len(theirs), len(lines)))
    differing = [{"mine": x, "theirs": theirs[key(x)]} for x in lines if x != theirs[key(x)]]
    n = len(lines)
    return {"identical": n - len(differing), "n": n, "rate": (n - len(differing)) / n if n else 1.0,
            "differing": differing[:5]}


# ---------------------------------------------------------------- main

def print_table(report, metrics, timing, mtp, out):
    out("%-22s %8s %6s" % ("metric", "score", "n"))
    for group, rep in report.items():
        for m in sorted(k for k in rep if k in metrics):
            out("%-22s %8.3f %6d" % (m, metrics[m], rep["n"]))
    if mtp:
        out("%-22s %8.3f %6d  (positions)" % ("mtp_acceptance", mtp["rate"], mtp["positions"]))
    out("%-22s %9s %8s %8s %8s" % ("request kind", "requests", "mean s", "prompt", "output"))
    for k, v in timing.items():
        if isinstance(v, dict):
            out("%-22s %9d %8.2f %8.0f %8.1f" % (k, v["requests"], v["mean_seconds"], v["mean_prompt_tokens"],
                                                 v["mean_completion_tokens"]))
    out("wall %.1f s at concurrency %d" % (timing["wall_seconds"], timing["concurrency"]))


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:30000")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--n-arith", type=int, default=200, help="chat items (thinking and plain get half)")
    ap.add_argument("--n-tool", type=int, default=200, help="chat items (thinking gets half)")
    ap.add_argument("--n-passkey", type=int, default=40, help="items per filler length")
    ap.add_argument("--lengths", default=",".join(map(str, eval_items.DEFAULT_LENGTHS)),
                    help="passkey filler lengths in tokens")
    ap.add_argument("--seed", type=int, default=eval_items.DEFAULT_SEED)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-new-cap", type=int, default=0, help="cap on max_tokens per request (smoke runs)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per request")
    ap.add_argument("--wait", type=float, default=0, help="seconds to wait for the server to come up")
    ap.add_argument("--thresholds", default=None,
                    help="NAME=MIN,... (NAME covers NAME_*); e.g. the issue's: " + DEFAULT_THRESHOLDS)
    ap.add_argument("--output", default=None, help="write the JSON report here")
    ap.add_argument("--mtp-dsaserve", default=None, help="dsaserve binary: also report MTP draft acceptance")
    ap.add_argument("--mtp-model-path", default=None, help="checkpoint for mtp-probe (the served model)")
    ap.add_argument("--mtp-prompts", type=int, default=12, help="eval prompts given to mtp-probe")
    ap.add_argument("--dump-outputs", default=None, help="write each reply's message, one JSON line per request")
    ap.add_argument("--compare-with", default=None,
                    help="a --dump-outputs file of another server (e.g. the other device): report how many "
                         "replies are identical")
    a = ap.parse_args(argv)
    try:
        a.lengths = tuple(int(v) for v in a.lengths.split(",") if v.strip())
    except ValueError:
        ap.error("--lengths: comma-separated integers expected")
    for flag in ("n_arith", "n_tool", "n_passkey", "concurrency"):
        if getattr(a, flag) < (1 if flag == "concurrency" else 0):
            ap.error("--%s must be >= %d" % (flag.replace("_", "-"), 1 if flag == "concurrency" else 0))
    if bool(a.mtp_dsaserve) != bool(a.mtp_model_path):
        ap.error("--mtp-dsaserve and --mtp-model-path go together")
    return a


def evaluate(a, log):
    thresholds = parse_thresholds(a.thresholds) if a.thresholds else {}
    client = Client(a.base_url, a.timeout, a.api_key)
    info = client.wait_ready(a.wait) if a.wait > 0 else client.call("/get_server_info")
    check_server(info)
    items = eval_items.build_items(filler_encode(client), a.n_arith, a.n_tool, a.n_passkey, a.lengths, a.seed)
    jobs = make_jobs(items, a.max_new_cap)
    log("%d requests to %s (concurrency %d)" % (len(jobs), a.base_url, a.concurrency))
    t0 = time.time()
    results = run_jobs(client, jobs, a.concurrency, log)
    timing = timings(results, time.time() - t0, a.concurrency)
    report, metrics = summarize(items, jobs, results)
    mtp = mtp_probe(a.mtp_dsaserve, a.mtp_model_path, jobs, a.mtp_prompts, log) if a.mtp_dsaserve else None
    errors = [r["error"] for r in results if r["error"]]
    lines = output_lines(results)
    if a.dump_outputs:
        with open(a.dump_outputs, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(x, ensure_ascii=False, sort_keys=True) + "\n" for x in lines)
    agreement = compare_outputs(lines, a.compare_with) if a.compare_with else None
    out = {"agreement": agreement, "server": {k: info.get(k) for k in ("model_path", "tool_call_parser", "reasoning_parser", "device")},
           "args": {k: v for k, v in vars(a).items() if k != "api_key"}, "metrics": metrics, "tasks": report,
           "timing": timing, "mtp_acceptance": mtp, "request_errors": errors[:20], "n_request_errors": len(errors)}
    return out, thresholds


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)

    def log(s):
        print(s, file=sys.stderr, flush=True)
    try:
        out, thresholds = evaluate(a, log)
        failures = check_thresholds(out["metrics"], thresholds)
    except HarnessError as e:
        print("eval_tiny: error: %s" % e, file=sys.stderr)
        return 2
    out["threshold_failures"] = failures
    print_table(out["tasks"], out["metrics"], out["timing"], out["mtp_acceptance"], print)
    if out["agreement"]:
        g = out["agreement"]
        print("identical replies to %s: %d / %d (%.3f)" % (a.compare_with, g["identical"], g["n"], g["rate"]))
    if a.output:
        with open(a.output, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2, ensure_ascii=False)
    if out["n_request_errors"]:
        print("eval_tiny: error: %d requests failed, first: %s" % (out["n_request_errors"], out["request_errors"][0]),
              file=sys.stderr)
        return 2
    if failures:
        print("eval_tiny: FAILED thresholds (%s):\n  %s" % (a.thresholds, "\n  ".join(failures)), file=sys.stderr)
        return 1
    if thresholds:
        print("eval_tiny: all thresholds met (%s)" % a.thresholds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
