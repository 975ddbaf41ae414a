"""Seeded verifiable prompts for demos and tests: every problem carries its exact gold answer."""

from __future__ import annotations

import json
import random
from fractions import Fraction

KINDS = ("arithmetic", "expression", "countdown")  # the default set (seeds keep their output)
ALL_KINDS = (*KINDS, "word")  # word: one-step problems in many phrasings

_NAMES = ["Ann", "Ben", "Carla", "Dev", "Eli", "Fatima", "Goro", "Hana"]
_ITEMS = ["apples", "pencils", "marbles", "stickers", "books", "coins"]


def _arithmetic(rng: random.Random, level: int) -> dict:
    """One-step word problems; level 1 keeps numbers single-digit (a weak teacher can pass)."""
    hi = 9 if level <= 1 else 50 if level == 2 else 500
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(1, hi), rng.randint(1, hi)
    op = rng.choice(["add", "sub", "mul"] if level > 1 else ["add", "mul"])
    if op == "add":
        text = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
        ans = a + b
    elif op == "sub":
        a, b = max(a, b), min(a, b)
        text = f"{name} has {a} {item} and gives away {b}. How many {item} are left?"
        ans = a - b
    else:
        text = f"{name} buys {a} bags with {b} {item} in each bag. How many {item} in total?"
        ans = a * b
    return {"problem": text, "answer": str(ans), "domain": "math",
            "meta": {"kind": "arithmetic", "level": level, "op": op, "a": a, "b": b,
                     "name": name, "item": item}}


def _expression(rng: random.Random, level: int) -> dict:
    """Multi-step expressions with exact (possibly fractional) answers."""
    steps = 1 + level
    hi = 9 if level <= 1 else 20
    expr = str(rng.randint(1, hi))
    value = Fraction(int(expr))
    trace = []  # (value before, op, operand, value after): the worked solution of a cold start
    for _ in range(steps):
        op, n = rng.choice("+-*/"), rng.randint(1, hi)
        expr = f"({expr} {op} {n})" if op in "+-" else f"{expr} {op} {n}"
        before = value
        value = {"+": value + n, "-": value - n, "*": value * n, "/": value / n}[op]
        trace.append([str(before), op, n, str(value)])
    expr = expr[1:-1] if expr.startswith("(") and expr.endswith(")") and expr.count("(") == 1 \
        else expr
    sign = "-" if value < 0 else ""
    ans = str(value.numerator) if value.denominator == 1 else \
        f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"
    latex = expr.replace("*", "\\times").replace("/", "\\div")
    return {"problem": f"Compute ${latex}$. Give the exact value.",
            "answer": ans, "domain": "math",
            "meta": {"kind": "expression", "level": level, "expression": expr,
                     "steps": trace}}


def _countdown(rng: random.Random, level: int) -> dict:
    """Countdown (TinyZero): combine the numbers, each at most once, to reach the target."""
    count = 2 + level
    nums = [rng.randint(1, 10 if level <= 1 else 25) for _ in range(count)]
    # Build a reachable target from a random left-to-right combination.
    order = nums[:]
    rng.shuffle(order)
    value, expr = order[0], str(order[0])
    trace = []
    for n in order[1:]:
        op = rng.choice("+-*" if value < 200 else "+-")
        trace.append([value, op, n, {"+": value + n, "-": value - n, "*": value * n}[op]])
        value = trace[-1][3]
        expr = f"({expr} {op} {n})"
    nums_txt = ", ".join(map(str, nums))
    return {"problem": f"Using the numbers [{nums_txt}], create an equation that equals {value}. "
                       "You can use + - * / and each number at most once.",
            "answer": str(value), "domain": "countdown",
            "meta": {"kind": "countdown", "level": level, "numbers": nums, "target": value,
                     "solution": expr, "steps": trace}}


# --- more phrasings: one-step word problems written many ways (training side) -------------------
# The templates the exam holds out live in r1data.exam; tests/core/test_exam.py checks that no
# template here shares a (number-masked) word n-gram with them.
WORD_TEMPLATES = {
    "add": [
        "{name} collected {a} {item} on Monday and {b} {item} on Tuesday. How many {item} did "
        "{name} collect in all?",
        "A jar holds {a} {item}. {name} puts in {b} more. How many {item} are in the jar?",
        "{name} had {a} {item}, then found {b}. What is the number of {item} {name} has?",
        "If you have {a} {item} and a friend gives you {b}, how many {item} do you have?",
        "Add {b} {item} to a pile of {a} {item}. How big is the pile?",
    ],
    "sub": [
        "{name} baked {a} {item} and ate {b} of them. How many {item} does {name} still have?",
        "There were {a} {item} in a box. {b} were taken out. How many {item} stay in the box?",
        "{name} owns {a} {item} and sells {b}. How many {item} are not sold?",
        "From {a} {item}, {name} loses {b}. How many {item} remain?",
        "What is left when {b} {item} are removed from {a} {item}?",
    ],
    "mul": [
        "{name} fills {a} boxes with {b} {item} each. How many {item} are packed?",
        "Each of {a} friends has {b} {item}. How many {item} do the friends have together?",
        "{name} reads {b} {item} a day for {a} days. How many {item} is that?",
        "A row has {b} {item} and there are {a} rows. Count all the {item}.",
        "What do {a} groups of {b} {item} come to?",
    ],
}


def _word(rng: random.Random, level: int) -> dict:
    """A one-step word problem in one of WORD_TEMPLATES' phrasings (level sets the numbers)."""
    hi = 9 if level <= 1 else 50 if level == 2 else 500
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    op = rng.choice(sorted(WORD_TEMPLATES))
    template = rng.randrange(len(WORD_TEMPLATES[op]))
    a, b = rng.randint(1, hi), rng.randint(1, hi)
    if op == "sub":
        a, b = max(a, b), min(a, b)
    ans = {"add": a + b, "sub": a - b, "mul": a * b}[op]
    text = WORD_TEMPLATES[op][template].format(name=name, item=item, a=a, b=b)
    return {"problem": text, "answer": str(ans), "domain": "math",
            "meta": {"kind": "word", "level": level, "op": op, "template": f"{op}{template}",
                     "a": a, "b": b, "name": name, "item": item}}


_MAKERS = {"arithmetic": _arithmetic, "expression": _expression, "countdown": _countdown,
           "word": _word}


def synth_prompts(kinds: list[str] | tuple[str, ...] = KINDS, n: int = 16, *, seed: int = 0,
                  level: int = 1) -> list[dict]:
    """n prompts per kind, reproducible from the seed; rows fit the prompts table (meta as JSON)."""
    from r1data.errors import ConfigError

    unknown = [k for k in kinds if k not in _MAKERS]
    if unknown:
        raise ConfigError(f"unknown synthetic kind(s) {unknown}; known: {', '.join(ALL_KINDS)}")
    rows = []
    for kind in kinds:
        rng = random.Random(f"{seed}:{kind}:{level}")
        seen: set[str] = set()
        tries = 0
        while sum(1 for r in rows if r["meta"]["kind"] == kind) < n and tries < n * 50:
            tries += 1
            row = _MAKERS[kind](rng, level)
            if row["problem"] in seen:
                continue
            seen.add(row["problem"])
            rows.append(row)
    for r in rows:
        r["source"] = f"synth/{r['meta']['kind']}"
        r["tests"] = None
        r["meta"] = json.dumps(r["meta"])
    return rows

