"""DeepSeek-V3.2 chat encoding ("dsv32"): OpenAI-style messages -> prompt text, plus DSML tool-call parsing.

Follows the reference encoder's rules: BOS + system (+ tools block) + user/assistant/tool turns, the
<think>/</think> suffix rules, reasoning dropped before the last user message, DSML tool calls, grouped
<function_results>. `render_segments` also says which pieces are model output (used as training targets).
"""
import json
import re

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
DSML = "｜DSML｜"

_TOOLS_PARAGRAPHS = [
    "## Tools",
    "You have access to a set of tools you can use to answer the user's question.\n"
    "You can invoke functions by writing a \"<｜DSML｜function_calls>\" block like the following as part of your "
    "reply to the user:\n"
    "<｜DSML｜function_calls>\n"
    "<｜DSML｜invoke name=\"$FUNCTION_NAME\">\n"
    "<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</｜DSML｜parameter>\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"$FUNCTION_NAME2\">\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "</｜DSML｜function_calls>",
    "String and scalar parameters should be specified as is without any escaping or quotes, while lists and "
    "objects should use JSON format. The \"string\" attribute should be set to \"true\" for string type parameters "
    "and \"false\" for other types (numbers, booleans, arrays, objects).",
    "If the thinking_mode is enabled, then after function results you should strongly consider outputting a "
    "thinking block. Here is an example:",
    "<｜DSML｜function_calls>\n...\n</｜DSML｜function_calls>",
    "<function_results>\n...\n</function_results>",
    "<think>...thinking about results</think>",
    "Here are the functions available in JSONSchema format:\n<functions>\n{TOOL_LINES}\n</functions>\n",
]


def to_json(value):
    """Compact JSON with ', ' / ': ' separators and non-ASCII kept (the encoder's json.dumps)."""
    return json.dumps(value, ensure_ascii=False)


def tool_line(tool, style):
    fn = tool["function"] if "function" in tool else tool
    if style == "sglang":
        fn = {"description": fn.get("description"), "name": fn["name"], "parameters": fn.get("parameters"),
              "strict": bool(fn.get("strict", False))}
    return to_json(fn)


def tools_block(tools, style="official"):
    """style 'official': paragraphs separated by blank lines (HF test vector); 'sglang': by single newlines."""
    sep = "\n\n" if style == "official" else "\n"
    text = sep.join(_TOOLS_PARAGRAPHS)
    return text.replace("{TOOL_LINES}", "\n".join(tool_line(t, style) for t in tools))


def _arguments(tc):
    args = tc["function"]["arguments"] if "function" in tc else tc["arguments"]
    if isinstance(args, str):
        args = json.loads(args) if args.strip() else {}
    return args


def render_tool_calls(tool_calls):
    invokes = []
    for tc in tool_calls:
        name = tc["function"]["name"] if "function" in tc else tc["name"]
        params = []
        for k, v in _arguments(tc).items():
            if isinstance(v, str):
                params.append('<｜DSML｜parameter name="%s" string="true">%s</｜DSML｜parameter>' % (k, v))
            else:
                params.append('<｜DSML｜parameter name="%s" string="false">%s</｜DSML｜parameter>' % (k, to_json(v)))
        invokes.append('<｜DSML｜invoke name="%s">\n' % name + "\n".join(params) + "\n</｜DSML｜invoke>")
    return "\n\n<｜DSML｜function_calls>\n" + "\n".join(invokes) + "\n</｜DSML｜function_calls>"


def render_segments(messages, thinking=False, tools=None, tools_style="official", add_bos=True):
    """Returns [(text, is_model_output)] whose concatenation is the prompt (or the full conversation)."""
    msgs = [dict(m) for m in messages]
    if tools:
        if not msgs or msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": ""})
    last_user = max([i for i, m in enumerate(msgs) if m["role"] in ("user", "developer")], default=-1)
    segs = [(BOS, False)] if add_bos else []
    pending_calls = 0   # tool calls of the last assistant message not yet answered
    seen_results = 0
    for i, m in enumerate(msgs):
        role = m["role"]
        if role == "system":
            text = m.get("content") or ""
            if tools and i == 0:
                text += "\n\n" + tools_block(tools, tools_style)
            segs.append((text, False))
        elif role in ("user", "developer"):
            content = m.get("content") or ""
            if role == "developer":
                content = "\n\n# The user's message is: " + content
            suffix = THINK_OPEN if (thinking and i == last_user) else THINK_CLOSE
            segs.append((USER + content + ASSISTANT + suffix, False))
        elif role == "assistant":
            text = ""
            if thinking and i > last_user:
                rc = m.get("reasoning_content")
                if rc is None and not m.get("tool_calls"):
                    raise ValueError("thinking-mode assistant message needs reasoning_content or tool_calls")
                text += (rc or "") + THINK_CLOSE
            text += m.get("content") or ""
            calls = m.get("tool_calls") or []
            if calls:
                text += render_tool_calls(calls)
            text += EOS
            segs.append((text, True))
            pending_calls, seen_results = len(calls), 0
        elif role == "tool":
            if seen_results >= pending_calls:
                raise ValueError("No tool calls but found tool output")
            seen_results += 1
            text = "\n\n<function_results>" if seen_results == 1 else ""
            text += "\n<result>" + (m.get("content") or "") + "</result>"
            if seen_results == pending_calls:
                text += "\n</function_results>"
                text += "\n\n" + (THINK_OPEN if (thinking and i > last_user) else THINK_CLOSE)
            segs.append((text, False))
        else:
            raise ValueError("unknown role " + role)
    return segs


def encode_messages(messages, thinking=False, tools=None, tools_style="official", add_bos=True):
    return "".join(t for t, _ in render_segments(messages, thinking, tools, tools_style, add_bos))


# ---------------------------------------------------------------- output parsing (eval)
_CALLS_RE = re.compile(r"<｜DSML｜function_calls>(.*?)</｜DSML｜function_calls>", re.S)
_INVOKE_RE = re.compile(r'<｜DSML｜invoke\s+name="([^"]+)"\s*>(.*?)</｜DSML｜invoke>', re.S)
_PARAM_RE = re.compile(r'<｜DSML｜parameter\s+name="([^"]+)"\s+string="(true|false)"\s*>(.*?)</｜DSML｜parameter>', re.S)


def parse_completion(text, thinking=False):
    """Split a completion (text generated after the prompt, EOS stripped) into reasoning, content, tool calls.
    Mirrors the tolerant deepseekv32 detector: string params are stripped, others parsed as JSON."""
    reasoning = None
    if thinking:
        if THINK_CLOSE in text:
            reasoning, text = text.split(THINK_CLOSE, 1)
        else:
            return {"reasoning": text, "content": "", "tool_calls": []}
    calls = []
    idx = text.find("<｜DSML｜function_calls>")
    content = text
    if idx >= 0:
        content = text[:idx]
        if content.endswith("\n\n"):
            content = content[:-2]
        m = _CALLS_RE.search(text)
        if m:
            for name, body in _INVOKE_RE.findall(m.group(1)):
                args = {}
                for k, s, v in _PARAM_RE.findall(body):
                    if s == "true":
                        args[k] = v.strip()
                    else:
                        try:
                            args[k] = json.loads(v.strip())
                        except ValueError:
                            args[k] = v.strip()
                calls.append({"name": name, "arguments": args})
    return {"reasoning": reasoning, "content": content, "tool_calls": calls}
