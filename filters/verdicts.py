"""One verification function per check, over a batch: `r1data filter` and the GRPO rewards
both call these, so what RL optimises is by construction what curation keeps.

- correct_batch: correctness by domain (math: symbolic equivalence of the extracted answer;
  countdown: safe arithmetic on the given numbers; code: the tests in the sandbox)
- format_batch: the R1 format, not truncated, and the Gopher repetition rules
- language_batch: the answer's language and the chain of thought's consistency (R1 §2.3.2)
- instructions_batch: IFEval-style instructions the final answer follows

They are the batched, columnar implementations (one fastText call, one repetition pass, each
distinct math answer checked once): a reward over a batch is as fast as the filter.
"""

from __future__ import annotations

import json
import os
import re

from r1data.chat import prompt_text, split_think

_NUMBER_LIST = re.compile(r"\[\s*(-?\d+(?:\s*,\s*-?\d+)+)\s*\]")
_EQUALS = re.compile(r"(?:equals?|equal to|reach(?:es)?|target(?: number)?(?: is|:)?|=)\s*"
                     r"(-?\d+)", re.IGNORECASE)
MIN_CONSISTENCY = 0.9  # share of target-language words in the chain of thought (R1 §2.3.2)


def final_answers(completions: list[str], finals: list[str | None] | None = None
                  ) -> tuple[list[str], list[str | None]]:
    """(final part, extracted answer) per completion; each distinct final is read once
    (samples of one prompt repeat their answers). `finals` as the store holds them, if known."""
    from r1data.filters.extract import extract_answer

    finals = [f if f is not None else split_think(c)[1]
              for c, f in zip(completions, finals or [None] * len(completions), strict=True)]
    found = {f: extract_answer(f) for f in dict.fromkeys(finals)}
    return finals, [found[f] for f in finals]


def countdown_task(numbers=None, target=None, *, meta=None, answer=None, problem=None
                   ) -> tuple[list[int], int] | None:
    """(numbers, target) from the first source that has them: the columns, the prompt's meta,
    a JSON answer ({"numbers": [...], "target": N}), a plain integer answer for the target,
    and the problem text ("Using the numbers [3, 5, 7], create an equation that equals 22")."""
    from r1data.filters.logic import clamp_int  # a 5,000-digit target: no int() crash

    for source in (meta, answer):
        if isinstance(source, str) and source.lstrip().startswith("{"):
            try:
                source = json.loads(source, parse_int=clamp_int)
            except json.JSONDecodeError:
                source = None
        if isinstance(source, dict):
            numbers = numbers if numbers is not None else source.get("numbers",
                                                                     source.get("nums"))
            target = target if target is not None else source.get("target")
    if target is None and isinstance(answer, (int, str)) and str(answer).strip().lstrip(
            "-").isdigit():
        target = clamp_int(answer)
    text = prompt_text(problem)
    if numbers is None and text:
        m = _NUMBER_LIST.search(text)
        numbers = [clamp_int(x) for x in m.group(1).split(",")] if m else None
    if target is None and text:
        m = _EQUALS.search(text)
        target = clamp_int(m.group(1)) if m else None
    if numbers is None or target is None:
        return None
    try:
        return [int(x) for x in numbers], int(target)
    except (TypeError, ValueError):
        return None


def _code_correct(completions: list[str], tests: list, entry_points: list, idx: list[int],
                  timeout: float, workers: int | None) -> list[bool]:
    """The code rows' tests, each in its own sandboxed process, a thread pool over them."""
    from concurrent.futures import ThreadPoolExecutor

    from r1data.filters import code

    def one(i: int) -> bool:
        return code.code_correct(completions[i], tests[i], entry_point=entry_points[i],
                                 timeout=timeout)

    with ThreadPoolExecutor(max_workers=min(len(idx), workers or os.cpu_count() or 1)) as pool:
        return list(pool.map(one, idx))


def correct_batch(completions: list[str], golds: list, domains: list[str], *,
                  answers: list[str | None] | None = None, metas: list | None = None,
                  problems: list | None = None, tests: list | None = None,
                  entry_points: list | None = None, numbers: list | None = None,
                  targets: list | None = None, timeout: float = 5.0,
                  workers: int | None = None) -> list[bool | None]:
    """Per sample: True/False, or None where it cannot be verified (no gold, no tests, no
    countdown task, time ran out). Math by the batch verifier on the extracted answers
    (`answers`, else extracted here), countdown by safe arithmetic, code in the sandbox."""
    from r1data.filters import logic
    from r1data.filters import math as math_v

    n = len(completions)
    none = [None] * n
    metas, problems, tests = metas or none, problems or none, tests or none
    entry_points, numbers, targets = entry_points or none, numbers or none, targets or none
    out: list[bool | None] = [None] * n
    math_idx = [i for i in range(n) if domains[i] == "math" and golds[i] not in (None, "")]
    if math_idx:
        if answers is None:
            answers = final_answers(completions)[1]
        verdicts = math_v.verify_answers([answers[i] for i in math_idx],
                                         [str(golds[i]) for i in math_idx],
                                         timeout=timeout, workers=workers)
        for i, v in zip(math_idx, verdicts, strict=True):
            out[i] = v
    for i in range(n):
        if domains[i] == "countdown":
            task = countdown_task(numbers[i], targets[i], meta=metas[i], answer=golds[i],
                                  problem=problems[i])
            if task is not None:
                out[i] = logic.countdown_correct(completions[i], *task)
    code_idx = [i for i in range(n) if domains[i] == "code" and tests[i]]
    if code_idx:
        for i, v in zip(code_idx, _code_correct(completions, tests, entry_points, code_idx,
                                                timeout, workers), strict=True):
            out[i] = v
    return out


def format_batch(completions: list[str], finish_reasons: list[str | None],
                 domains: list[str]) -> list[tuple[bool, str | None, float]]:
    """(ok, reason, repetition score) per sample: the R1 format checks of
    readability.check_format, then the Gopher repetition rules (columnar, repetition.py);
    the reason is the first failing check's (truncated, no_think, …, dup_line_frac, …)."""
    from r1data.filters.readability import check_format_batch
    from r1data.filters.repetition import repetition_batch

    formats = check_format_batch(completions, finish_reasons, domains)
    reps = repetition_batch(completions)
    out = []
    for (ok, reason), (rep_reason, score) in zip(formats, reps, strict=True):
        if ok and rep_reason:
            ok, reason = False, rep_reason
        out.append((ok, reason, score))
    return out


def language_batch(finals: list[str], reasonings: list[str | None], target: str, *,
                   min_consistency: float = MIN_CONSISTENCY
                   ) -> list[tuple[str, float, float, str | None]]:
    """(language of the answer, its probability, chain-of-thought consistency, reason) per
    sample, from one fastText call. Reason: wrong_language when the answer is in another
    (known) language, language_mixing when the chain of thought has less than min_consistency
    of target-language words, else None. A sample without a chain of thought has
    consistency 1.0 (nothing mixed)."""
    from r1data.filters import language

    langs, consist = language.language_batch(finals, [r or "" for r in reasonings], target)
    out = []
    for (lang, prob), cons, reasoning in zip(langs, consist, reasonings, strict=True):
        reason = None
        if lang not in (target, "unknown"):
            reason = "wrong_language"
        elif reasoning and cons < min_consistency:
            reason = "language_mixing"
        out.append((lang, prob, cons, reason))
    return out


def instructions_batch(finals: list[str], instruction_ids: list, kwargs: list
                       ) -> list[float | None]:
    """Share of a row's instructions (IFEval / IFBench ids and their kwargs) that its final
    answer follows; None for a row without instructions."""
    from r1data.filters.instructions import followed

    out: list[float | None] = []
    for final, iid, kw in zip(finals, instruction_ids, kwargs, strict=True):
        if not iid:
            out.append(None)
            continue
        kw = json.loads(kw) if isinstance(kw, str) else (kw or [{}] * len(iid))
        ok = followed(final, list(iid), list(kw))
        out.append(sum(ok) / len(ok))
    return out
