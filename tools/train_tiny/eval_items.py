"""The evaluation items of the bundled model, shared by the PyTorch evaluation (evaluate.py) and the harness
that scores a running server (tools/eval_tiny.py): one function draws every item with the same seed and in the
same order, so both score the same prompts. Also the request pieces (messages per turn) and the answer
extractors. Standard library + data.py only (no torch), so the harness runs with a plain Python 3.
"""
import random
import re

from data import FillerCache, arith_example, passkey_example, tool_example
from encoding_dsv32 import BOS, render_segments

DEFAULT_SEED = 12345
DEFAULT_LENGTHS = (256, 512, 1024, 2048, 4096)
# max new tokens per prompt kind (the PyTorch evaluation's budgets)
MAX_NEW = {"arith": 120, "tool_call": 120, "tool_final": 80, "passkey": 16}


def build_items(encode, n_arith=200, n_tool=200, n_pass=40, pass_lengths=DEFAULT_LENGTHS, seed=DEFAULT_SEED):
    """encode: text -> token list (only its length is used: filler sentences are sized in tokens).
    Returns {"arith_chat", "arith_thinking", "arith_plain", "tool_chat", "tool_thinking": [example],
    "passkey": {length: [example]}, "passkey_dense": {length: [example]}}; chat arithmetic and chat tool calls
    get n items, their thinking (and plain) variants n // 2."""
    rng = random.Random(seed)
    items = {}
    for mode in ("chat", "thinking", "plain"):
        items["arith_" + mode] = [arith_example(rng, mode) for _ in range(n_arith if mode == "chat" else n_arith // 2)]
    for thinking in (False, True):
        key = "tool_thinking" if thinking else "tool_chat"
        items[key] = [tool_example(rng, thinking=thinking) for _ in range(n_tool if not thinking else n_tool // 2)]
    filler = FillerCache(encode)
    items["passkey"] = {}
    for length in pass_lengths:
        items["passkey"][length] = [passkey_example(rng, filler, length, depth=(k + 0.5) / n_pass)
                                    for k in range(n_pass)]
    # the dense-attention comparison: the first two lengths >= 1024, each from its own seed
    items["passkey_dense"] = {}
    for length in [v for v in pass_lengths if v >= 1024][:2]:
        rng2 = random.Random(seed + length)
        items["passkey_dense"][length] = [passkey_example(rng2, filler, length, depth=(k + 0.5) / n_pass)
                                          for k in range(n_pass)]
    return items


# ---------------------------------------------------------------- request pieces

def plain_prompt(ex):
    """The gsm8k-bench style completion prompt of a plain arithmetic item (BOS written as text)."""
    return BOS + "Question: " + ex["question"] + "\nAnswer:"


def prompt_messages(ex):
    """Messages of the turn the model answers first (for a tool item: the tool-call turn, i.e. everything before
    the first assistant message; data.prompt_segments cuts one message later and so includes the call)."""
    msgs = ex["messages"]
    if ex["kind"] == "tool":
        return msgs[:next(i for i, m in enumerate(msgs) if m["role"] == "assistant")]
    return msgs[:-1]


def prompt_segs(ex):
    """[(text, is_output)] of the first turn's prompt (chat items)."""
    return render_segments(prompt_messages(ex), ex["thinking"], ex["tools"], ex.get("tools_style", "official"))


def followup_messages(ex):
    """A tool item's conversation up to the tool result (the expected call teacher-forced)."""
    return ex["messages"][:-1]


def prompt_text(ex):
    """The rendered prompt of the first turn, as the PyTorch evaluation builds it."""
    if ex["kind"] == "plain":
        return plain_prompt(ex)
    return "".join(t for t, _ in prompt_segs(ex))


# ---------------------------------------------------------------- answer extraction

def last_int(text):
    m = re.findall(r"\d+", (text or "").replace(",", ""))
    return int(m[-1]) if m else None


def hash_answer(text):
    m = re.search(r"####\s*(-?\d+)", text or "")
    return int(m.group(1)) if m else None


def plain_answer(text):
    """A plain completion continues with the next 'Question': the answer is the last integer before it."""
    return last_int((text or "").split("Question")[0])
