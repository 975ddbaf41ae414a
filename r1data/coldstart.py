"""Cold-start data (R1 stage 1): a few worked solutions in the R1 format, before any RL.

DeepSeek-R1 fine-tunes the base model on a few thousand long chains of thought so that RL
starts from readable `<think>` … `</think>` answers. Here they are written from the synthetic
tasks' own arithmetic, so a small model learns the format and the task without a hub download.
"""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

from r1data.chat import boxed, chat_messages, join_think

_OPS = {"+": ("add", "adding"), "-": ("subtract", "subtracting"),
        "*": ("multiply by", "multiplying by"), "/": ("divide by", "dividing by")}
_STEP = ["Next I {verb} {n}, which gives {after}.", "Then {ing} {n} leaves {after}.",
         "After that, {ing} {n} makes it {after}.", "Last, I {verb} {n} and get {after}."]
_SYM = {"+": "+", "-": "-", "*": "\\times", "/": "\\div"}


def _latex(v: str | int | Fraction) -> str:
    f = Fraction(v)
    if f.denominator == 1:
        return str(f.numerator)
    sign = "-" if f < 0 else ""
    return f"{sign}\\frac{{{abs(f.numerator)}}}{{{f.denominator}}}"


def _arithmetic(m: dict, rng: random.Random) -> tuple[list[str], str]:
    a, b, name, item = m["a"], m["b"], m["name"], m["item"]
    if m["op"] == "add":
        ans = a + b
        steps = [f"{name} starts with {a} {item} and gets {b} more, so I add them.",
                 f"{a} + {b} = {ans}.",
                 f"Check: {ans} - {b} = {a}, which matches the start."]
        final = f"{name} has {a} + {b} = {ans} {item} now."
    elif m["op"] == "sub":
        ans = a - b
        steps = [f"{name} has {a} {item} and gives away {b}, so I subtract.",
                 f"{a} - {b} = {ans}.",
                 f"Check: {ans} + {b} = {a}, which matches."]
        final = f"{a} - {b} = {ans} {item} are left."
    else:
        ans = a * b
        steps = [f"There are {a} bags with {b} {item} each, so I multiply.",
                 f"{a} \\times {b} = {ans}.",
                 f"Check: {ans} / {a} = {b}, which matches the bags."]
        final = f"{a} \\times {b} = {ans} {item} in total."
    if rng.random() < 0.5:
        steps.insert(0, "Let me read the problem carefully.")
    return steps, f"{final} The answer is {boxed(ans)}."


def _expression(m: dict, rng: random.Random) -> tuple[list[str], str]:
    latex = m["expression"].replace("*", "\\times").replace("/", "\\div")
    steps = [f"I work from left to right: ${latex}$."]
    for k, (before, op, n, after) in enumerate(m["steps"]):
        if k == 0:
            steps.append(f"{_latex(before)} {_SYM[op]} {n} = {_latex(after)}.")
        else:  # varied words: restating each step the same way reads as a repetition loop
            verb, ing = _OPS[op]
            steps.append(_STEP[k % len(_STEP)].format(verb=verb, ing=ing, n=n,
                                                      after=_latex(after)))
    ans = _latex(m["steps"][-1][3])
    if rng.random() < 0.5:
        steps.append("The result is already in lowest terms.")
    return steps, f"The exact value is {boxed(ans)}."


def _countdown(m: dict, rng: random.Random) -> tuple[list[str], str]:
    steps = [f"I need to reach {m['target']} using {m['numbers']}, each number at most once."]
    for before, op, n, after in m["steps"]:
        steps.append(f"{before} {op} {n} = {after}.")
    steps.append(f"That reaches {m['target']}.")
    expr = m["solution"]
    expr = expr[1:-1] if expr.startswith("(") and expr.endswith(")") else expr
    return steps, "The equation is " + boxed(f"{expr} = {m['target']}") + "."


def _word(m: dict, rng: random.Random) -> tuple[list[str], str]:
    a, b, item = m["a"], m["b"], m["item"]
    sym, verb = {"add": ("+", "add"), "sub": ("-", "subtract"),
                 "mul": ("\\times", "multiply")}[m["op"]]
    ans = {"add": a + b, "sub": a - b, "mul": a * b}[m["op"]]
    steps = [f"The numbers are {a} and {b}, and the question needs me to {verb} them.",
             f"{a} {sym} {b} = {ans}."]
    if rng.random() < 0.5:
        steps.append(f"So the count of {item} is {ans}.")
    return steps, f"The answer is \\boxed{{{ans}}}."


_WRITERS = {"arithmetic": _arithmetic, "expression": _expression, "countdown": _countdown,
            "word": _word}


def worked_solution(meta: dict, rng: random.Random) -> str:
    """The assistant turn: reasoning in <think>, then the boxed answer (R1 §2.2's format)."""
    steps, final = _WRITERS[meta["kind"]](meta, rng)
    return join_think("\n".join(steps), final)


def cold_start_rows(kinds: list[str], n: int, *, seed: int = 1000, level: int = 1,
                    exclude: set[str] | frozenset = frozenset()) -> list[dict]:
    """SFT rows (`messages`) for n synthetic prompts per kind, none of whose problems is in
    `exclude` (the prompts to be curated or evaluated later must stay unseen)."""
    from r1data.synth import synth_prompts

    rng = random.Random(seed)
    rows = []
    for r in synth_prompts(kinds, n, seed=seed, level=level):
        if r["problem"] in exclude:
            continue
        meta = json.loads(r["meta"])
        rows.append({"messages": [
            *chat_messages(r["problem"], r["domain"]),
            {"role": "assistant", "content": worked_solution(meta, rng)}],
            "source": r["source"], "domain": r["domain"]})
    return rows


def write_cold_start(out: str | Path, kinds: list[str], n: int, *, seed: int = 1000,
                     level: int = 1, exclude: set[str] | frozenset = frozenset()) -> dict:
    """A DatasetDict (train only) in the SFT export's layout, ready for `r1data train sft`."""
    rows = cold_start_rows(kinds, n, seed=seed, level=level, exclude=exclude)
    save_sft_rows(out, rows, f"# r1data cold start\n\n{len(rows)} worked solutions in the R1 "
                  f"format (kinds {', '.join(kinds)}, level {level}, seed {seed}), written from "
                  "the synthetic tasks' own arithmetic; none of the excluded prompts appears.\n")
    return {"out": str(out), "rows": len(rows)}


def save_sft_rows(out: str | Path, rows: list[dict], card: str) -> Path:
    """SFT rows (`messages`) as a train-only DatasetDict in the SFT export's layout, with its
    card: what `r1data train sft` reads (the written and the harvested cold starts alike)."""
    import datasets

    from r1data.errors import InputError

    if not rows:
        raise InputError("no cold-start example left after excluding the curated prompts",
                         path=str(out))
    out = Path(out)
    ds = datasets.Dataset.from_list(rows)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(out))
    (out / "data").mkdir(exist_ok=True)
    ds.to_parquet(str(out / "data" / "train.parquet"))
    (out / "README.md").write_text(card)
    return out
