"""Math correctness: extract the final answer, normalise it, decide equivalence symbolically.

LaTeX is parsed by math-verify's LaTeX extraction (latex2sympy2_extended), never by sympify or
parse_expr (they eval). Symbolic work runs in worker processes that are killed when a check
overruns, so every call returns in bounded time, from any thread.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from functools import lru_cache

from r1data.filters.bounded import BoundedPool
from r1data.filters.extract import extract_answer, last_boxed, split_think

MAX_ANSWER_CHARS = 400  # a longer "answer" is not an answer; refuse before any parsing
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?[.:]?$")
_CHOICE_IN = re.compile(r"^\(?([A-E])\)?(?:[.:\s]|$)")
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_THOUSANDS_SPACE = re.compile(r"(?<![\d.])(\d{1,3}(?: \d{3})+)(?![\d])")
_DECIMAL_COMMA = re.compile(r"^-?(?:0|\d{4,}|\d+(?=,\d{1,2}$|,\d{4,}$)),\d+$")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")
_UNIT_WORDS = re.compile(
    r"\s*(?:dollars?|cents?|units?|degrees?|cm|mm|km|m|kg|g|mph|hours?|minutes?|seconds?|"
    r"days?|years?|feet|foot|inches|inch|meters?|miles?|apples|books|pencils|marbles|coins|"
    r"stickers|people|students|sq\.?\s*units?)\.?\s*$", re.IGNORECASE)
_TEXT_ANSWERS = {"yes", "no", "true", "false", "none", "impossible"}
_TOWER = re.compile(r"\^\s*\{?\s*[\d(]+[^{}]*\^|\*\*[^*]*\*\*")
_BIG_EXP = re.compile(r"\^\s*\{?\s*\(?\s*(\d{4,})")


def normalise(ans: str) -> str:
    """Surface forms that mean the same thing: $, \\dfrac, units, degrees, thousands separators."""
    s = ans.strip()
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r",\\!\s*", ",", s)  # 11,\! 111 -> 11,111
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = re.sub(r"(?<!\\)\\[!,;: ]|~", " ", s)  # thin spaces, not the \\ row separator
    s = re.sub(r"\^\s*\{?\\circ\}?|°|\\degree", "", s)
    s = s.replace("\\%", "%")
    s = _TEXT.sub(lambda m: m.group(1), s)
    s = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), s)
    s = _THOUSANDS_SPACE.sub(lambda m: m.group(1).replace(" ", ""), s)
    if _DECIMAL_COMMA.match(s):  # 1,22 / 0,111 / 1000,99: a decimal comma, not thousands
        s = s.replace(",", ".")
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)  # .4 -> 0.4
    for a, b in ((">=", "\\geq "), ("<=", "\\leq "), ("!=", "\\neq "), ("\\lt", "<"),
                 ("\\gt", ">"), ("\\cfrac", "\\frac")):
        s = s.replace(a, b)
    s = _UNIT_WORDS.sub("", s)
    s = s.strip().rstrip(".").strip()
    return s


def gold_answer(gold: str) -> str:
    """Gold answers sometimes come as worked solutions: take their boxed or final answer."""
    if "\\boxed" in gold or "\\fbox" in gold:
        return last_boxed(gold) or gold
    if len(gold) > 80:
        return extract_answer(gold) or gold
    return gold


def _choice(s: str) -> str | None:
    m = _CHOICE.match(s.strip())
    return m.group(1).upper() if m else None


_ASSIGN = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*([^=<>]+)$")
_INT_OR_DEC = re.compile(r"^-?\d+(?:\.\d+)?$")
_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(\d+)\}$|^(-?\d+)\s*/\s*(\d+)$")


def _exact_number(s: str) -> Fraction | None:
    """Integers, decimals and integer fractions, exactly: most answers never need sympy."""
    s = s.replace(" ", "")
    if _INT_OR_DEC.match(s) and len(s) < 40:
        return Fraction(s)
    m = _FRAC.match(s)
    if m and len(s) < 40:
        if m.group(2) is not None:
            num, den = int(m.group(2)), int(m.group(3))
            num = -num if m.group(1) else num
        else:
            num, den = int(m.group(4)), int(m.group(5))
        return Fraction(num, den) if den else None
    return None


def _pathological(s: str) -> bool:
    """Cheap refusals before sympy: power towers, huge exponents, deep nesting, huge inputs."""
    if len(s) > MAX_ANSWER_CHARS or s.count("{") > 60 or s.count("(") > 60:
        return True
    return bool(_TOWER.search(s) or _BIG_EXP.search(s) or "!!" in s or re.search(r"\d{60,}", s))


def _symbolic(gold: str, answer: str) -> bool:
    """Runs inside a worker process: math-verify's LaTeX parsing and comparison, no timeouts."""
    from math_verify import LatexExtractionConfig, parse, verify

    cfg = [LatexExtractionConfig(boxed_match_priority=0)]
    g = parse(f"\\boxed{{{gold}}}", extraction_config=cfg, parsing_timeout=None)
    a = parse(f"\\boxed{{{answer}}}", extraction_config=cfg, parsing_timeout=None)
    if not g or not a:
        return False
    return bool(verify(g, a, timeout_seconds=None))


_POOL: BoundedPool | None = None


def _pool(workers: int | None = None) -> BoundedPool:
    global _POOL
    if _POOL is None:
        size = workers or int(os.environ.get("R1DATA_MATH_WORKERS") or os.cpu_count() or 1)
        _POOL = BoundedPool("r1data.filters.math:_symbolic", size)
    return _POOL


def answers_equal(gold: str, answer: str | None, *, timeout: float = 5.0) -> bool | None:
    """Equivalence of two extracted answers; None when the check ran out of time."""
    if answer is None or not gold.strip():
        return False
    return _answers_equal(gold, answer, timeout)


@lru_cache(maxsize=200_000)
def _answers_equal(gold: str, answer: str, timeout: float) -> bool | None:
    """Cached per process: a run repeats the same (gold, answer) across prompts and shards."""
    g, a = normalise(gold_answer(gold)), normalise(answer)
    if not a:
        return False
    assign = _ASSIGN.match(a)
    if assign and "=" not in g:  # "x = 3" answers "3" (math-verify agrees)
        a = assign.group(1).strip()
    if g == a:
        return True
    gn, an = _exact_number(g), _exact_number(a)
    if gn is not None and an is not None:
        if gn == an:
            return True
        if gn.denominator == an.denominator == 1 and "." not in g + a:
            return False  # two different integers; decimals go on to tolerant comparison
    gc, ac = _choice(g), _choice(a) or (_CHOICE_IN.match(a).group(1) if _choice(g) and
                                        _CHOICE_IN.match(a) else None)
    if gc:  # multiple choice: letters compare as letters
        return gc == ac
    if g.lower() in _TEXT_ANSWERS or a.lower() in _TEXT_ANSWERS:
        return g.lower() == a.lower()
    if re.fullmatch(r"[A-Za-z][A-Za-z\s'-]{2,}", g):  # free text answers (names, words)
        return g.lower().split() == a.lower().split()
    if _pathological(a) or _pathological(g):
        return False
    return _pool().call([g, a], timeout)


def final_part(completion: str) -> str:
    """Where the answer lives: after </think> when the block closed, else the whole text."""
    return split_think(completion)[1]


def is_correct(completion: str, gold: str, *, timeout: float = 5.0) -> bool:
    """Scalar API: does the completion's final answer equal the gold answer? Bounded in time."""
    return answers_equal(gold, extract_answer(final_part(completion)), timeout=timeout) is True


def verify_batch(completions: list[str], golds: list[str], *, timeout: float = 5.0,
                 workers: int | None = None) -> list[bool | None]:
    """Each distinct (gold, extracted answer) is checked once; None where time ran out."""
    if len(completions) != len(golds):
        raise ValueError("completions and golds differ in length")
    return verify_answers([extract_answer(final_part(c)) for c in completions], golds,
                          timeout=timeout, workers=workers)


def verify_answers(answers: list[str | None], golds: list[str], *, timeout: float = 5.0,
                   workers: int | None = None) -> list[bool | None]:
    """verify_batch for answers already extracted (the filter runner extracts once)."""
    pairs = list(dict.fromkeys(zip(golds, answers, strict=True)))
    workers = workers or int(os.environ.get("R1DATA_MATH_WORKERS") or os.cpu_count() or 1)
    _pool(workers)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        results = dict(zip(pairs, ex.map(lambda p: answers_equal(p[0], p[1], timeout=timeout),
                                          pairs), strict=True))
    return [results[(g, a)] for g, a in zip(golds, answers, strict=True)]
