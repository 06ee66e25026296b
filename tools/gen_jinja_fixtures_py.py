#!/usr/bin/env python3
"""Second oracle for the chat-template fixtures: renders every case written by tools/gen_jinja_fixtures.mjs
with Python jinja2 configured as transformers configures it (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, its tojson / raise_exception / strftime_now), stores that rendering as the
expected output, and reports every case where @huggingface/jinja disagrees (Python wins).
Usage: python3 tools/gen_jinja_fixtures_py.py   (after node tools/gen_jinja_fixtures.mjs)
"""
import json
import pathlib
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "golden" / "chat_templates"
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(template, case):
    context = dict(messages=case["messages"], tools=case["tools"], add_generation_prompt=case["add_generation_prompt"],
                   bos_token=BOS, eos_token=EOS)
    context.update(case["kwargs"])
    try:
        return template.render(**context), None
    except Exception as e:  # noqa: BLE001 - any template failure is an expected-error fixture
        return None, f"{type(e).__name__}: {e}"


def describe_diff(py_out, js_out):
    if py_out is None or js_out is None:
        return f"jinja2={py_out!r:.80} hfjs={js_out!r:.80}"
    i = next((k for k in range(min(len(py_out), len(js_out))) if py_out[k] != js_out[k]), min(len(py_out), len(js_out)))
    lo = max(0, i - 30)
    return f"at {i}: jinja2=...{py_out[lo:i + 40]!r} hfjs=...{js_out[lo:i + 40]!r}"


def process(path, env):
    data = json.loads(path.read_text(encoding="utf-8"))
    template = env.from_string((ROOT / data["template"]).read_text(encoding="utf-8"))
    disagreements = []
    for case in data["cases"]:
        out, err = render(template, case)
        case["expected"] = out
        case["expected_error"] = err
        js_out, js_err = case.pop("hfjs_output", None), case.pop("hfjs_error", None)
        case.pop("hfjs_disagrees", None)
        if (out is None) != (js_out is None) or (out is not None and out != js_out):
            case["hfjs_disagrees"] = {"output": js_out, "error": js_err}
            disagreements.append(case["name"])
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    errors = sum(1 for c in data["cases"] if c["expected_error"])
    print(f"{path.name}: {len(data['cases'])} cases, {errors} render errors (jinja2), "
          f"{len(disagreements)} disagreements with @huggingface/jinja")
    for name in disagreements:
        case = next(c for c in data["cases"] if c["name"] == name)
        print(f"  {name}: {describe_diff(case['expected'], case['hfjs_disagrees']['output'])}")
    return len(disagreements)


def main():
    env = make_env()
    files = sorted(FIXTURES.glob("*.json"))
    if not files:
        sys.exit("no fixtures: run node tools/gen_jinja_fixtures.mjs first")
    for f in files:
        process(f, env)


if __name__ == "__main__":
    main()
