#!/usr/bin/env python3
"""Independent prompt renderer for the end-to-end tests: reads {"format", "messages", "tools", "thinking"} as
JSON on stdin and prints the prompt text. "dsv32": the Python DeepSeek-V3.2 encoder of tools/train_tiny (SGLang's
tools-block style); "v31": templates/deepseek_v31.jinja through jinja2 configured as transformers does.
Usage: python3 render_prompt.py REPO_ROOT < request.json
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tools" / "train_tiny"))


def main():
    req = json.load(sys.stdin)
    tools = req.get("tools") or None
    thinking = bool(req.get("thinking", False))
    if req["format"] == "dsv32":
        import encoding_dsv32
        text = encoding_dsv32.encode_messages(req["messages"], thinking=thinking, tools=tools, tools_style="sglang")
    elif req["format"] == "v31":
        import gen_jinja_fixtures_py as fixtures
        source = (ROOT / "templates" / "deepseek_v31.jinja").read_text(encoding="utf-8")
        template = fixtures.make_env().from_string(source)
        kwargs = {"thinking": thinking} if "thinking" in req else {}
        text = template.render(messages=req["messages"], tools=tools, add_generation_prompt=True,
                               bos_token=fixtures.BOS, eos_token=fixtures.EOS, **kwargs)
    else:
        raise SystemExit("unknown format " + req["format"])
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
