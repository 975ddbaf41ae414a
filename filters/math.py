"""Math correctness: extract the final answer, normalise it, decide equivalence symbolically.

Three tiers, cheapest first: exact rationals (filters/numbers.py: integers, decimals, fractions,
mixed numbers, percents) are decided in this process with Fraction, linear in the text's length
and independent of machine load; other answers up to MAX_TEXT_CHARS are normalised here (every
regex below runs on whitespace-collapsed text of bounded length, so none can backtrack for long);
what still needs sympy goes to math-verify's LaTeX parser (latex2sympy2_extended, never sympify
or parse_expr: they eval) in worker processes that are killed when a check overruns. Answers or
golds beyond MAX_TEXT_CHARS that are not plain numbers are unverified (None), never guessed.
"""

from __future__ import annotations

import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from r1data.errors import InputError
from r1data.filters.bounded import BoundedPool
from r1data.filters.extract import boxed_spans, extract_answer, last_boxed, split_think
from r1data.filters.numbers import exact, same

MAX_ANSWER_CHARS = 400  # a longer "answer" is not an answer for sympy; refused before parsing
MAX_TEXT_CHARS = 2000  # beyond this (spaces collapsed) only plain numbers are decided
UNVERIFIED = "unverified"  # _quick_verdict: too large to decide, the verdict is None
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?[.:]?$")
_CHOICE_IN = re.compile(r"^\(?([A-E])\)?(?:[.:\s]|$)")
_CHOICE_LEAD = re.compile(r"^\(([A-E])\)\s*")
_THOUSANDS = re.compile(r"(?<![\d.])([1-9]\d{0,2}(?:,\d{3})+)(?![\d,])")
_THOUSANDS_SPACE = re.compile(r"(?<![\d.])(\d{1,3}(?: \d{3})+)(?![\d])")
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")  # "2,74": a decimal comma or a list, see _decimal
# A unit after a number: 5 \text{ cm}^2, 5\,\mathrm{m/s}, \frac12 \text{ hours}
_TEXT_UNIT = re.compile(r"(?<=[\d}])\s*\\(?:text|mathrm|mbox)\s*\{\s*[A-Za-z][A-Za-z/ .]*\}"
                        r"(?:\^\s*\{?\d\}?)?\s*\.?$")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")
_UNIT_WORDS = re.compile(
    r"\s*(?:dollars?|cents?|units?|degrees?|cm|mm|km|m|kg|g|mph|hours?|minutes?|seconds?|"
    r"days?|years?|feet|foot|inches|inch|meters?|miles?|apples|books|pencils|marbles|coins|"
    r"stickers|people|students|sq\.?\s*units?)\.?\s*$", re.IGNORECASE)
# Between a short gold's boxes: at most three short words ("papers and"), math delimiters.
_LABEL_GAP = re.compile(r"[\s$,;.()\\]*(?:[A-Za-z]{1,12}[\s$,;.()\\]*){0,3}")
_TEXT_ANSWERS = {"yes", "no", "true", "false", "none", "impossible"}
MAX_EXPONENT = 10_000  # 2^{2023} is an answer; 10^{100000000} is an attack
_BIG_FACTORIAL = re.compile(r"\d{4,}\s*!|!\s*!")
_EXPONENT_TOKEN = re.compile(r"\s*(\\[A-Za-z]+|\d+|.)")  # unbraced: one token, as LaTeX


def normalise(ans: str) -> str:
    """Surface forms that mean the same thing: $, \\dfrac, units, degrees, thousands separators,
    percent (a unit: dropped, see filters/numbers.py). Runs of whitespace are collapsed first,
    so no `\\s*` below can scan a long run more than once."""
    s = " ".join(ans.split())
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r",\\!\s*", ",", s)  # 11,\! 111 -> 11,111
    s = s.replace("{,}", ",")  # 1{,}000
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = re.sub(r"(?<!\\)\\[!,;: ]|~", " ", s)  # thin spaces, not the \\ row separator
    s = re.sub(r"\^\s*\{?\\circ\}?|°|\\degree", "", s)
    s = s.replace("\\%", "").replace("%", "")
    s = _TEXT_UNIT.sub("", s)
    s = _TEXT.sub(lambda m: m.group(1), s)
    if not re.search(r"[(\[{]", s):  # inside tuples and intervals a comma separates: (2,12)
        s = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), s)
    s = _THOUSANDS_SPACE.sub(lambda m: m.group(1).replace(" ", ""), s)
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)  # .4 -> 0.4
    for a, b in ((">=", "\\geq "), ("<=", "\\leq "), ("!=", "\\neq "), ("\\lt", "<"),
                 ("\\gt", ">"), ("\\cfrac", "\\frac")):
        s = s.replace(a, b)
    s = _UNIT_WORDS.sub("", s)
    s = re.sub(r"(?<=[\w})])\s+(?:and|or)\s+(?=[-\w\\({])", ", ", s)  # "6 and 8" -> "6, 8"
    s = s.strip().rstrip(".").strip()
    return s


def gold_answer(gold: str) -> str:
    """Gold answers sometimes come as worked solutions: take their boxed or final answer.

    A short gold that boxes each part (`\\boxed{1} papers and \\boxed{2} bins`) means all of
    them; a long solution means its last box.
    """
    if "\\boxed" in gold or "\\fbox" in gold:
        spans = boxed_spans(gold)
        gaps = [gold[a[1]:b[0]] for a, b in zip(spans, spans[1:], strict=False)]
        if gaps and len(gold) < 200 and all(_LABEL_GAP.fullmatch(_TEXT.sub(r"\1", g))
                                            for g in gaps):
            return ", ".join(dict.fromkeys(b[2] for b in spans))
        return last_boxed(gold) or gold
    if len(gold) > 80:
        return extract_answer(gold) or gold
    return gold


def _decimal(s: str, other: str) -> str:
    """"2,74" is 2.74 when the other side is one number, the list 2, 74 when it has commas."""
    if _DECIMAL_COMMA.match(s) and "," not in other:
        return s.replace(",", ".")
    return s


_SPACE_AROUND = re.compile(r"\s*([^\w\s\\])\s*")


def _squash(s: str) -> str:
    """Spacing that never changes meaning: around operators and brackets."""
    return " ".join(_SPACE_AROUND.sub(r"\1", s).split())


def _choice(s: str) -> str | None:
    m = _CHOICE.match(s.strip())
    return m.group(1).upper() if m else None


_ASSIGN = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*([^=<>]+)$")


# An answer that restates the question (`8 + 8`, `(6+8)\\div 4`, `2\\times 3`) is no answer:
# math-verify evaluates it and calls it equal to the value, so a policy rewarded by it learns
# to copy the question. Such an answer is a chain of number literals and binary operators
# (\\frac{p}{q} is p/q); a single p/q is a value (7/2, \\frac{7}{2}), and so is scientific
# notation (3\\times 10^{8}). Each pass is one linear scan: operators become one character,
# literals N, brackets go; what is left must be N op N op ... N.
_OPERATOR = re.compile(r"\\(?:times|cdot|div|ast)(?![A-Za-z])|[×÷·*]")
_FRAC_OVER = re.compile(r"\\frac(?=\{)|\}\{")  # \\frac{p}{q} -> {p/q}
_LITERAL = re.compile(r"\d+(?:\.\d+)?")
_BRACKETS = re.compile(r"[(){}\[\]]")
_CHAIN = re.compile(r"-?N(?:[-+*/^]-?N)+")
_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?\*10\^-?\d+")


def _arithmetic(s: str) -> bool:
    """True when s is an unevaluated arithmetic expression of number literals."""
    if len(s) > MAX_ANSWER_CHARS:
        return False
    s = _OPERATOR.sub("*", "".join(s.split()).replace("\u2212", "-"))
    s = _BRACKETS.sub("", _FRAC_OVER.sub(lambda m: "" if m.group() == "\\frac" else "/", s))
    if _SCIENTIFIC.fullmatch(s):
        return False
    chain = _LITERAL.sub("N", s)
    return bool(_CHAIN.fullmatch(chain)) and chain.lstrip("-") != "N/N"


def _exact_verdict(g: str, a: str) -> bool | str | None:
    """Both sides exact numbers: True/False, or UNVERIFIED when too big to decide; None when
    either side is not an exact number."""
    gn, an = exact(g), exact(a)
    if gn is None or an is None:
        return None
    verdict = same(gn, an)
    return UNVERIFIED if verdict is None else verdict


def _exponent(s: str, i: int) -> tuple[str, int]:
    """The exponent after the `^` at i, and where it ends (a braced group or one token)."""
    j = i + 1
    while j < len(s) and s[j] == " ":
        j += 1
    if j < len(s) and s[j] == "{":
        depth = 0
        for k in range(j, min(len(s), j + MAX_ANSWER_CHARS)):
            depth += {"{": 1, "}": -1}.get(s[k], 0)
            if depth == 0:
                return s[j + 1:k], k + 1
        return s[j + 1:], len(s)
    m = _EXPONENT_TOKEN.match(s, i + 1)
    return (m.group(1), m.end()) if m else ("", len(s))


def _pathological(s: str) -> bool:
    """Cheap refusals before sympy: numeric power towers (9^{9^9}, 9^9^9), exponents above
    MAX_EXPONENT, big factorials, deep nesting, huge inputs. x^2 + y^2 is fine. Whatever
    passes is still bounded by the worker timeout."""
    if len(s) > MAX_ANSWER_CHARS or s.count("{") > 60 or s.count("(") > 60:
        return True
    if _BIG_FACTORIAL.search(s) or "**" in s or re.search(r"\d{60,}", s):
        return True
    for m in re.finditer(r"\^", s):
        exp, end = _exponent(s, m.start())
        numeric = not re.search(r"[A-Za-z]", re.sub(r"\\(?:cdot|times|frac)", "", exp))
        if "!" in exp or numeric and ("^" in exp or s[end:end + 3].lstrip().startswith("^")):
            return True  # a numeric tower (9^{9^9}, 9^9^9); e^{-x^2} is fine
        digits = re.sub(r"[\s{}()]", "", exp)
        if digits.isdigit() and int(digits[:8]) > MAX_EXPONENT:
            return True
    return False


def _symbolic(gold: str, answer: str) -> bool:
    """Runs inside a worker process: math-verify's LaTeX parsing and comparison, no timeouts."""
    from math_verify import LatexExtractionConfig, parse, verify

    cfg = [LatexExtractionConfig(boxed_match_priority=0)]
    g = parse(f"\\boxed{{{gold}}}", extraction_config=cfg, parsing_timeout=None)
    a = parse(f"\\boxed{{{answer}}}", extraction_config=cfg, parsing_timeout=None)
    if not g or not a:
        return False
    return bool(verify(g, a, timeout_seconds=None))


def _warm() -> None:
    """Worker start-up, before it says ready: import math-verify and sympy, parse once."""
    _symbolic("\\frac{\\sqrt{8}}{2}", "\\sqrt{2}")


_POOL: BoundedPool | None = None
_POOL_LOCK = threading.Lock()


def _pool(workers: int | None = None) -> BoundedPool:
    """The symbolic workers, started (and warmed) on first need, before any check's clock."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            size = workers or int(os.environ.get("R1DATA_MATH_WORKERS") or os.cpu_count() or 1)
            _POOL = BoundedPool("r1data.filters.math:_symbolic", size,
                                warm="r1data.filters.math:_warm")
        return _POOL


def answers_equal(gold: str, answer: str | None, *, timeout: float = 5.0) -> bool | None:
    """Equivalence of two extracted answers; None when the check ran out of time or the
    answer is too large to decide (see MAX_TEXT_CHARS)."""
    got = _local(gold, answer)
    return _symbolically(str(gold), answer, got, timeout) if isinstance(got, tuple) else got


def _local(gold: str, answer: str | None) -> bool | None | tuple[str, str]:
    """The verdict without the worker pool (True, False, None for unverified), or the
    normalised pair that needs sympy. Most pairs end here, so a batch needs no thread per pair."""
    gold = str(gold)  # datasets hand over integer golds too
    if answer is None or not gold.strip():
        return False
    verdict = _CACHE.get((gold, answer))  # one lookup: another thread may clear the cache
    if verdict is not None:
        return verdict
    got = _quick_verdict(gold, answer)
    if got is UNVERIFIED:
        return None
    if isinstance(got, bool):
        _remember((gold, answer), got)
    return got


def _symbolically(gold: str, answer: str, pair: tuple[str, str], timeout: float) -> bool | None:
    verdict = _pool().call(list(pair), timeout)
    if verdict is not None:  # a timeout may pass on a quieter machine: not cached
        _remember((gold, answer), verdict)
    return verdict


def _remember(key: tuple[str, str], verdict: bool) -> None:
    if len(key[0]) + len(key[1]) > MAX_TEXT_CHARS:
        return  # huge pairs are decided in linear time anyway; do not hold them in memory
    if len(_CACHE) >= CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = verdict


CACHE_SIZE = 200_000  # per process: a run repeats the same (gold, answer) across prompts
_CACHE: dict[tuple[str, str], bool] = {}


def _assigned(s: str) -> str | None:
    """"x = 3" -> "3"; "x = 2, x = 3" or "x=2 or x=3" -> "2, 3"; None if not assignments."""
    items = [p.strip() for p in re.split(r",\s*(?=[A-Za-z](?:_\{?\w+\}?)?\s*=)", s)]
    found = [_ASSIGN.match(p) for p in items]
    if not all(found):
        return None
    names = {p.split("=")[0].strip() for p in items}
    return ", ".join(m.group(1).strip() for m in found) if len(names) == 1 else None


def _quick_verdict(gold: str, answer: str) -> bool | str | tuple[str, str]:
    """The verdict from exact numbers and normalised strings, UNVERIFIED when the text is too
    large to decide, or the normalised pair that needs the symbolic check."""
    verdict = _exact_verdict(gold, answer)  # a plain-number gold as it stands, any length
    if verdict is not None:
        return verdict
    g = gold_answer(gold)
    verdict = _exact_verdict(g, answer) if g != gold else None
    if verdict is not None:
        return verdict
    if len(g) > MAX_TEXT_CHARS or len(answer) > MAX_TEXT_CHARS:
        gs, as_ = " ".join(g.split()), " ".join(answer.split())
        if gs == as_:
            return True
        if len(gs) > MAX_TEXT_CHARS or len(as_) > MAX_TEXT_CHARS:
            return UNVERIFIED
    g, a = normalise(g), normalise(answer)
    if not a:
        return False
    if "=" not in g and "=" in a:  # "x = 3" answers "3" (math-verify agrees)
        a = _assigned(a) or a
    g, a = _decimal(g, a), _decimal(a, g)
    if g == a or _squash(g) == _squash(a):
        return True
    if _arithmetic(a) and not _arithmetic(g):  # the question restated, not its value
        return False
    verdict = _exact_verdict(g, a)  # numbers once units, $ and \\text are gone
    if verdict is not None:
        return verdict
    gc = _choice(g)
    if gc:  # multiple choice: letters compare as letters ("(C) 12" answers C)
        lead = _CHOICE_IN.match(a)
        return gc == (_choice(a) or (lead.group(1) if lead else None))
    lead = _CHOICE_LEAD.match(a)
    if lead and a[lead.end():].strip():  # "(C) 12" against the gold value 12
        a = a[lead.end():].strip()
        if _squash(g) == _squash(a):
            return True
    if g.lower() in _TEXT_ANSWERS or a.lower() in _TEXT_ANSWERS:
        return g.lower() == a.lower()
    if re.fullmatch(r"[A-Za-z][A-Za-z\s'-]{2,}", g):  # free text answers (names, words)
        return g.lower().split() == a.lower().split()
    if _pathological(a) or _pathological(g):
        return False
    return g, a


def final_part(completion: str) -> str:
    """Where the answer lives: after </think> when the block closed, else the whole text."""
    return split_think(completion)[1]


def verify_one(completion: str, gold: str, *, timeout: float = 5.0) -> bool | None:
    """Scalar check that keeps "could not decide in time" apart: True, False or None."""
    return answers_equal(gold, extract_answer(final_part(completion)), timeout=timeout)


def is_correct(completion: str, gold: str, *, timeout: float = 5.0) -> bool:
    """Scalar API: does the completion's final answer equal the gold answer? Bounded in time
    (a check that overruns `timeout` seconds counts as not correct)."""
    return verify_one(completion, gold, timeout=timeout) is True


def verify_batch(completions: list[str], golds: list[str], *, timeout: float = 5.0,
                 workers: int | None = None) -> list[bool | None]:
    """Each distinct (gold, extracted answer) is checked once; None where time ran out."""
    if len(completions) != len(golds):
        raise InputError(f"{len(completions)} completions but {len(golds)} gold answers",
                         field="golds")
    return verify_answers([extract_answer(final_part(c)) for c in completions], golds,
                          timeout=timeout, workers=workers)


def verify_answers(answers: list[str | None], golds: list[str], *, timeout: float = 5.0,
                   workers: int | None = None) -> list[bool | None]:
    """verify_batch for answers already extracted (the filter runner extracts once)."""
    results = {p: _local(*p) for p in dict.fromkeys(zip(golds, answers, strict=True))}
    symbolic = [(p, v) for p, v in results.items() if isinstance(v, tuple)]
    if symbolic:
        workers = workers or int(os.environ.get("R1DATA_MATH_WORKERS") or os.cpu_count() or 1)
        _pool(workers)
        with ThreadPoolExecutor(max_workers=workers) as ex:
            results.update(zip((p for p, _ in symbolic), ex.map(
                lambda pv: _symbolically(str(pv[0][0]), pv[0][1], pv[1], timeout), symbolic),
                strict=True))
    return [results[(g, a)] for g, a in zip(golds, answers, strict=True)]
