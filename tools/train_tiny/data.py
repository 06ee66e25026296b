"""Synthetic training and evaluation tasks, rendered with the DeepSeek-V3.2 chat encoding.

Tasks: multi-step arithmetic word problems (gsm8k `#### N` answers; chat, thinking and plain
"Question:/Answer:" forms), DSML tool calls (get_weather, calculator) with the tool-result turn and the final
answer, and passkey retrieval (a 5-digit key hidden at a random depth in filler text).
Each example is (messages, options, answer info); `to_ids` tokenizes it segment by segment with per-token
loss weights (model output 1.0, prompt `prompt_weight`).
"""
import json
import random

from encoding_dsv32 import BOS, EOS, render_segments

NAMES = ["Mia", "Tom", "Ava", "Leo", "Zoe", "Sam", "Ivy", "Max", "Lily", "Noah", "Emma", "Jack", "Ruby", "Owen",
         "Nora", "Eli", "Lucy", "Ben", "Anna", "Finn", "Ella", "Omar", "Sara", "Hugo", "Kai", "Maya"]
ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "cookies", "coins", "stamps", "cards", "shells",
         "toys", "eggs", "flowers", "candies", "balloons", "buttons"]
CONTAINERS = ["bags", "boxes", "packs", "jars", "baskets", "crates"]
CITIES = ["Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Prague", "Oslo",
          "Dublin", "Cairo", "Lima", "Seoul", "Delhi", "Sydney", "Toronto", "Chicago", "Boston", "Denver",
          "Moscow", "Athens", "Warsaw", "Zurich", "Nairobi", "Bangkok", "Hanoi", "Manila", "Jakarta", "Havana",
          "Santiago", "Bogota", "Quito", "Helsinki", "Stockholm", "Budapest", "Munich", "Milan", "Naples", "Porto"]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy", "stormy", "clear"]

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather or a forecast for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "description": "Number of forecast days"}},
        "required": ["city"]}}}
CALC_TOOL = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an arithmetic expression",
    "parameters": {"type": "object", "properties": {
        "expression": {"type": "string", "description": "The expression, e.g. 12 * 7"}},
        "required": ["expression"]}}}

SYSTEMS = [None, "You are a helpful assistant.", "You are a helpful assistant.", "Answer briefly."]


# ---------------------------------------------------------------- arithmetic

def arith_problem(rng):
    """Returns (question, [solution lines], answer)."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.randrange(5)
    if kind == 0:
        a, n, m, g = rng.randint(10, 60), rng.randint(2, 9), rng.randint(2, 9), None
        g = rng.randint(1, a + n * m - 1)
        box = rng.choice(CONTAINERS)
        q = ("%s has %d %s. %s buys %d %s with %d %s in each. Then %s gives away %d %s. "
             "How many %s does %s have now?" % (name, a, item, name, n, box, m, item, name, g, item, item, name))
        p = n * m
        s = a + p
        lines = ["%s buys %d * %d = %d %s." % (name, n, m, p, item),
                 "Then %s has %d + %d = %d %s." % (name, a, p, s, item),
                 "After giving away %d, %s has %d - %d = %d %s." % (g, name, s, g, s - g, item)]
        return q, lines, s - g
    if kind == 1:
        a, b, c = rng.randint(10, 90), rng.randint(10, 90), None
        c = rng.randint(5, a + b - 1)
        name2 = rng.choice([x for x in NAMES if x != name])
        q = ("%s has %d %s and %s has %d %s. They put them together and use %d of them. "
             "How many %s are left?" % (name, a, item, name2, b, item, c, item))
        s = a + b
        lines = ["Together they have %d + %d = %d %s." % (a, b, s, item),
                 "After using %d, there are %d - %d = %d %s left." % (c, s, c, s - c, item)]
        return q, lines, s - c
    if kind == 2:
        # every product in these problems is single digit x single digit (a table fact); multi-digit
        # products are beyond what a 4-layer model learns in minutes
        n, m, k = rng.randint(2, 9), rng.randint(2, 9), rng.randint(10, 60)
        box = rng.choice(CONTAINERS)
        q = ("A shop has %d %s. Each of them holds %d %s, and a truck brings %d more %s. "
             "How many %s does the shop have now?" % (n, box, m, item, k, item, item))
        p = n * m
        lines = ["The %s hold %d * %d = %d %s." % (box, n, m, p, item),
                 "With the truck the shop has %d + %d = %d %s." % (p, k, p + k, item)]
        return q, lines, p + k
    if kind == 3:
        a, b, c = rng.randint(20, 99), rng.randint(2, 9), rng.randint(2, 9)
        q = ("%s had %d %s. %s lost %d of them on Monday and found %d times as many on Tuesday as were lost. "
             "How many %s does %s have now?" % (name, a, item, name, b, c, item, name))
        f = b * c
        lines = ["On Monday %s has %d - %d = %d %s." % (name, a, b, a - b, item),
                 "On Tuesday %s finds %d * %d = %d %s." % (name, b, c, f, item),
                 "Now %s has %d + %d = %d %s." % (name, a - b, f, a - b + f, item)]
        return q, lines, a - b + f
    a, b, n = rng.randint(2, 9), rng.randint(2, 9), rng.randint(10, 50)
    q = ("%s reads %d pages every day for %d days, and then %d more pages. "
         "How many pages does %s read in total?" % (name, a, b, n, name))
    p = a * b
    lines = ["In %d days %s reads %d * %d = %d pages." % (b, name, a, b, p),
             "In total %s reads %d + %d = %d pages." % (name, p, n, p + n)]
    return q, lines, p + n


def arith_example(rng, mode):
    """mode: chat | thinking | plain."""
    q, lines, ans = arith_problem(rng)
    if mode == "plain":
        return {"kind": "plain", "question": q, "answer": ans,
                "text": "Question: " + q + "\nAnswer: " + " ".join(lines) + "\n#### %d" % ans}
    msgs = []
    sysm = rng.choice(SYSTEMS)
    if sysm:
        msgs.append({"role": "system", "content": sysm})
    msgs.append({"role": "user", "content": q})
    if mode == "thinking":
        final = {"role": "assistant", "reasoning_content": "\n".join(lines),
                 "content": "The answer is %d.\n#### %d" % (ans, ans)}
    else:
        final = {"role": "assistant", "content": "\n".join(lines) + "\n#### %d" % ans}
    return {"kind": "arith", "messages": msgs + [final], "thinking": mode == "thinking", "tools": None,
            "answer": ans}


# ---------------------------------------------------------------- tool calls

def weather_request(rng):
    city = rng.choice(CITIES)
    args = {"city": city}
    unit = rng.choice([None, None, "celsius", "fahrenheit"])
    days = rng.choice([None, None, None, rng.randint(2, 7)])
    if days:
        phr = rng.choice(["What is the weather forecast for %s for the next %d days?",
                          "Give me the %s forecast for %d days.", "Forecast for %s, %d days please."])
        text = phr % (city, days)
        args["days"] = days
    else:
        phr = rng.choice(["What's the weather in %s?", "How is the weather in %s today?",
                          "Is it sunny in %s right now?", "Tell me the current weather in %s.", "Weather in %s?"])
        text = phr % city
    if unit:
        text += rng.choice([" Use %s.", " In %s, please.", " Answer in %s."]) % unit
        args["unit"] = unit
    temp = rng.randint(-5, 35) if (unit or "celsius") == "celsius" else rng.randint(25, 95)
    cond = rng.choice(CONDITIONS)
    result = {"city": city, "temperature": temp, "unit": unit or "celsius", "condition": cond}
    if days:
        result["days"] = days
        final = "The forecast for %s for the next %d days: %d degrees %s and %s." % (
            city, days, temp, unit or "celsius", cond)
    else:
        final = "It is %d degrees %s and %s in %s." % (temp, unit or "celsius", cond, city)
    reasoning = "The user asks about the weather in %s. I should call get_weather." % city
    after = "The tool says %d degrees and %s." % (temp, cond)
    return text, "get_weather", args, json.dumps(result), final, reasoning, after


def calc_request(rng):
    op = rng.choice(["+", "-", "*"])
    a, b = rng.randint(2, 999), rng.randint(2, 999)
    if op == "-" and b > a:
        a, b = b, a
    expr = "%d %s %d" % (a, op, b)
    val = eval(expr)
    text = rng.choice(["Use the calculator to compute %s.", "What is %s? Use the calculator.",
                       "Please calculate %s.", "Calculate %s for me."]) % expr
    final = "%s = %d." % (expr, val)
    reasoning = "The user wants %s. I should call the calculator." % expr
    after = "The calculator returned %d." % val
    return text, "calculator", {"expression": expr}, str(val), final, reasoning, after


def tool_example(rng, thinking=None):
    if thinking is None:
        thinking = rng.random() < 0.3
    tools = [WEATHER_TOOL, CALC_TOOL]
    r = rng.random()
    if r < 0.2:
        tools = [WEATHER_TOOL]
    elif r < 0.4:
        tools = [CALC_TOOL]
    else:
        rng.shuffle(tools)
    names = [t["function"]["name"] for t in tools]
    fn = rng.choice(names)
    text, name, args, result, final, reasoning, after = (weather_request if fn == "get_weather" else calc_request)(rng)
    msgs = []
    sysm = rng.choice(SYSTEMS)
    if sysm:
        msgs.append({"role": "system", "content": sysm})
    msgs.append({"role": "user", "content": text})
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}
    if thinking:
        call["reasoning_content"] = reasoning
    msgs.append(call)
    msgs.append({"role": "tool", "tool_call_id": "call_1", "content": result})
    fin = {"role": "assistant", "content": final}
    if thinking:
        fin["reasoning_content"] = after
    msgs.append(fin)
    return {"kind": "tool", "messages": msgs, "thinking": thinking, "tools": tools,
            "tools_style": rng.choice(["official", "sglang"]), "call": {"name": name, "arguments": args},
            "final": final}


# ---------------------------------------------------------------- passkey

FILLER = ["The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again.",
          "The river flows to the sea.", "Birds sing in the morning.", "The road is long and quiet."]


class FillerCache:
    """Token counts of filler sentences (each begins a new pre-token, so counts add up exactly)."""

    def __init__(self, encode):
        self.counts = {s: len(encode(" " + s)) for s in FILLER}

    def make(self, rng, n_tokens):
        out, n = [], 0
        while n < n_tokens:
            s = rng.choice(FILLER)
            out.append(s)
            n += self.counts[s]
        return out


def passkey_example(rng, filler, n_tokens, depth=None, key=None, thinking=False):
    key = key if key is not None else rng.randint(10000, 99999)
    sents = filler.make(rng, n_tokens)
    depth = rng.random() if depth is None else depth
    pos = int(round(depth * len(sents)))
    needle = "The pass key is %d. Remember it. %d is the pass key." % (key, key)
    sents = sents[:pos] + [needle] + sents[pos:]
    content = ("There is a pass key hidden inside a lot of irrelevant text. Find it and memorize it.\n"
               + " ".join(sents) + "\nWhat is the pass key?")
    msgs = [{"role": "user", "content": content}]
    fin = {"role": "assistant", "content": "The pass key is %d." % key}
    if thinking:
        fin["reasoning_content"] = "I need to find the pass key in the text."
    msgs.append(fin)
    return {"kind": "passkey", "messages": msgs, "thinking": thinking, "tools": None, "answer": key,
            "filler_tokens": n_tokens, "depth": depth}


# ---------------------------------------------------------------- tokenization


def prompt_segments(ex):
    """Segments of the prompt up to the first assistant message that the model has to produce in eval."""
    msgs = ex["messages"]
    if ex["kind"] == "tool":
        cut = 1 if msgs[0]["role"] != "system" else 2  # [system,] user: the model must produce the call
    else:
        cut = len(msgs) - 1
    return render_segments(msgs[:cut], ex["thinking"], ex["tools"], ex.get("tools_style", "official"))


def to_ids(ex, encode, prompt_weight):
    if ex["kind"] == "plain":
        ids = encode(ex["text"])
        return ids, [1.0] * len(ids)
    segs = render_segments(ex["messages"], ex["thinking"], ex["tools"], ex.get("tools_style", "official"))
    ids, wts = [], []
    for text, is_out in segs:
        t = encode(text)
        ids.extend(t)
        wts.extend([1.0 if is_out else prompt_weight] * len(t))
    return ids, wts


def to_segments(ex, prompt_weight):
    """[(text, weight)] whose token ids concatenate to the example (segments end/start at special tokens)."""
    if ex["kind"] == "plain":
        return [(ex["text"], 1.0)]
    segs = render_segments(ex["messages"], ex["thinking"], ex["tools"], ex.get("tools_style", "official"))
    return [(t, 1.0 if o else prompt_weight) for t, o in segs]


def plain_doc_segments(rng):
    from encoding_dsv32 import BOS as _B, EOS as _E
    k = rng.randint(1, 3)
    text = "\n\n".join(arith_example(rng, "plain")["text"] for _ in range(k))
    return [(_B, 1.0), (text, 1.0), (_E, 1.0)]


def plain_doc(rng, encode, bos_id, eos_id):
    """2-4 plain-format problems in one document: BOS Q/A \\n\\n Q/A ... EOS (gsm8k bench style)."""
    k = rng.randint(1, 3)
    text = "\n\n".join(arith_example(rng, "plain")["text"] for _ in range(k))
    ids = [bos_id] + encode(text) + [eos_id]
    return ids, [1.0] * len(ids)
