"""Readability: R1 format, not truncated, no repetition loops (Gopher rules), optional CoT rules.

Each rejection has a fixed snake_case reason; `check_format` returns the first that applies.
Repetition thresholds are those of Gopher (Rae et al. 2021, table A1), as datatrove uses them.
"""

from __future__ import annotations

import re
from collections import Counter

from r1data.errors import ConfigError
from r1data.filters.extract import last_boxed, split_think

DUP_LINE_FRAC = 0.30
DUP_PARA_FRAC = 0.30
DUP_LINE_CHAR_FRAC = 0.20
DUP_PARA_CHAR_FRAC = 0.20
TOP_NGRAM_FRAC = ((2, 0.20), (3, 0.18), (4, 0.16))
DUP_NGRAM_FRAC = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
MIN_WORDS_FOR_NGRAMS = 30  # n-gram fractions of a two-line answer are noise
MAX_CHARS = 200_000  # a longer completion is a runaway generation: too_long
_WORD = re.compile(r"\S+")


def _dup_fraction(items: list[str]) -> tuple[float, float]:
    """(fraction of items that repeat an earlier one, fraction of their characters)."""
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup, dup_chars = 0, 0
    for it in items:
        if it in seen:
            dup += 1
            dup_chars += len(it)
        seen.add(it)
    return dup / len(items), dup_chars / max(1, sum(len(i) for i in items))


def _top_ngram_char_frac(words: list[str], n: int) -> float:
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0.0
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return 0.0
    return sum(len(w) for w in gram) * count / max(1, sum(len(w) for w in words))


def _dup_ngram_char_frac(words: list[str], n: int) -> float:
    """Characters of words covered by an n-gram that already appeared (Gopher's definition)."""
    if len(words) < n:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(words)
    for i in range(len(words) - n + 1):
        g = tuple(words[i:i + n])
        if g in seen:
            for j in range(i, i + n):
                covered[j] = True
        seen.add(g)
    total = sum(len(w) for w in words)
    return sum(len(w) for w, c in zip(words, covered, strict=True) if c) / max(1, total)


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a fraction in [0, 1], got {value}")


def repetition_stats(text: str, *, dup_line_frac: float = DUP_LINE_FRAC,
                     dup_para_frac: float = DUP_PARA_FRAC,
                     dup_line_char_frac: float = DUP_LINE_CHAR_FRAC,
                     dup_para_char_frac: float = DUP_PARA_CHAR_FRAC,
                     top_ngram_frac: tuple[tuple[int, float], ...] = TOP_NGRAM_FRAC,
                     dup_ngram_frac: tuple[tuple[int, float], ...] = DUP_NGRAM_FRAC,
                     min_words: int = MIN_WORDS_FOR_NGRAMS) -> tuple[str | None, float]:
    """(first Gopher rule broken or None, score): one pass over lines and words for both.

    Thresholds default to Gopher's (Rae et al. 2021, table A1); a rule is broken when its
    fraction is above the threshold. The score, 0 (none) to 1, is the larger of the
    duplicated-line and duplicated-10-gram character fractions.
    """
    for name, v in (("dup_line_frac", dup_line_frac), ("dup_para_frac", dup_para_frac),
                    ("dup_line_char_frac", dup_line_char_frac),
                    ("dup_para_char_frac", dup_para_char_frac),
                    *((f"top_{n}gram", t) for n, t in top_ngram_frac),
                    *((f"duplicated_{n}gram", t) for n, t in dup_ngram_frac)):
        _check_fraction(name, v)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    words = _WORD.findall(text)
    line_frac, line_chars = _dup_fraction(lines)
    dup10 = _dup_ngram_char_frac(words, 10) if len(words) >= 10 else 0.0
    score = max(line_chars, dup10)
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    para_frac, para_chars = _dup_fraction(paras)
    checks = [("dup_para_frac", para_frac > dup_para_frac),
              ("dup_para_char_frac", para_chars > dup_para_char_frac),
              ("dup_line_frac", line_frac > dup_line_frac),
              ("dup_line_char_frac", line_chars > dup_line_char_frac)]
    for reason, failed in checks:
        if failed:
            return reason, score
    if len(words) < min_words:
        return None, score
    for n, limit in top_ngram_frac:
        if _top_ngram_char_frac(words, n) > limit:
            return f"top_{n}gram", score
    for n, limit in dup_ngram_frac:
        frac = dup10 if n == 10 else _dup_ngram_char_frac(words, n)
        if frac > limit:
            return f"duplicated_{n}gram", score
    return None, score


def repetition_reason(text: str, **thresholds) -> str | None:
    """The first Gopher repetition rule the text breaks, or None (thresholds as in
    repetition_stats)."""
    return repetition_stats(text, **thresholds)[0]


def repetition_score(text: str) -> float:
    """0 for no repetition, up to 1 (see repetition_stats)."""
    return repetition_stats(text)[1]


def check_format(completion: str, finish_reason: str | None = None, *, domain: str = "math",
                 min_chars: int = 1, max_chars: int = MAX_CHARS,
                 no_code_in_think: bool = False, max_paragraph_chars: int | None = None,
                 check_repetition: bool = True,
                 dup_line_frac: float = DUP_LINE_FRAC, dup_para_frac: float = DUP_PARA_FRAC,
                 dup_line_char_frac: float = DUP_LINE_CHAR_FRAC,
                 dup_para_char_frac: float = DUP_PARA_CHAR_FRAC,
                 top_ngram_frac: tuple[tuple[int, float], ...] = TOP_NGRAM_FRAC,
                 dup_ngram_frac: tuple[tuple[int, float], ...] = DUP_NGRAM_FRAC
                 ) -> tuple[bool, str | None]:
    """(ok, reason): R1 format, completeness, length, repetition, optional CoT rules.

    Reasons, in the order they are checked: truncated, too_short, too_long, multiple_think,
    no_think, empty_think, empty_final, no_boxed (math and countdown), code_in_think,
    long_paragraph, then the Gopher rule names of repetition_stats.
    """
    if min_chars < 0 or max_chars < min_chars:
        raise ConfigError(f"length bounds: need 0 <= min_chars <= max_chars, got {min_chars}, "
                          f"{max_chars}")
    if finish_reason == "length":
        return False, "truncated"
    if len(completion.strip()) < min_chars:
        return False, "too_short"
    if len(completion) > max_chars:
        return False, "too_long"
    if completion.count("</think>") > 1 or completion.count("<think>") > 1:
        return False, "multiple_think"
    reasoning, final = split_think(completion)
    if reasoning is None:
        return False, "no_think"
    if not reasoning:
        return False, "empty_think"
    if not final:
        return False, "empty_final"
    if domain in ("math", "countdown") and last_boxed(final) is None \
            and "<answer>" not in final:
        return False, "no_boxed"
    if no_code_in_think and "```" in reasoning:
        return False, "code_in_think"
    if max_paragraph_chars and any(len(p) > max_paragraph_chars
                                   for p in re.split(r"\n\s*\n", reasoning)):
        return False, "long_paragraph"
    if check_repetition:
        reason = repetition_reason(
            completion, dup_line_frac=dup_line_frac, dup_para_frac=dup_para_frac,
            dup_line_char_frac=dup_line_char_frac, dup_para_char_frac=dup_para_char_frac,
            top_ngram_frac=top_ngram_frac, dup_ngram_frac=dup_ngram_frac)
        if reason:
            return False, reason
    return True, None


def check_format_batch(completions: list[str], finish_reasons: list[str | None],
                       domains: list[str]) -> list[tuple[bool, str | None]]:
    """check_format(c, f, domain=d, check_repetition=False) for each sample (repetition is
    columnar, see repetition.py). Well-formed samples pass on cheap tests, with the boxed-answer
    scan once per distinct final answer; every rejection is named by check_format itself."""
    boxed: dict[str, bool] = {}

    def has_answer(final: str) -> bool:
        if final not in boxed:
            boxed[final] = last_boxed(final) is not None or "<answer>" in final
        return boxed[final]

    out: list[tuple[bool, str | None]] = []
    for completion, finish, domain in zip(completions, finish_reasons, domains, strict=True):
        if finish == "length" or not completion.strip() or len(completion) > MAX_CHARS \
                or completion.count("</think>") > 1 or completion.count("<think>") > 1:
            out.append(check_format(completion, finish, domain=domain, check_repetition=False))
            continue
        reasoning, final = split_think(completion)
        if reasoning is None or not reasoning or not final \
                or domain in ("math", "countdown") and not has_answer(final):
            out.append(check_format(completion, finish, domain=domain, check_repetition=False))
            continue
        out.append((True, None))
    return out
