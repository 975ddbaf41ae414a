"""Instruction-following checks in the style of IFEval (Zhou et al. 2023), for the second RL stage.

Each check takes the response (the part after </think>) and the instruction's keyword
arguments, and says whether the instruction was followed. Ids follow IFEval's names, so IFEval /
IFBench rows (`instruction_id_list`, `kwargs`) can be used as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from r1data.errors import ConfigError

_WORDS = re.compile(r"\b\w+\b", re.UNICODE)
_SENTENCES = re.compile(r"[^.!?]+[.!?]+|[^.!?]+$")


def _compare(value: int, limit: int, relation: str) -> bool:
    if relation in ("less than", "<"):
        return value < limit
    if relation in ("at least", ">="):
        return value >= limit
    if relation in ("at most", "<="):
        return value <= limit
    if relation in ("exactly", "=="):
        return value == limit
    raise ConfigError(f"unknown relation {relation!r} (less than, at least, at most, exactly)")


def _json(text: str, **_) -> bool:
    body = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def _language(text: str, language: str, **_) -> bool:
    from r1data.filters.language import detect

    return detect(text)[0] == language


def _bullets(text: str, num_bullets: int, **_) -> bool:
    return len(re.findall(r"^\s*[*-]\s", text, flags=re.MULTILINE)) == num_bullets


CHECKS: dict[str, Callable[..., bool]] = {
    "length_constraints:number_words": lambda t, num_words, relation="at least", **_:
        _compare(len(_WORDS.findall(t)), num_words, relation),
    "length_constraints:number_sentences": lambda t, num_sentences, relation="at least", **_:
        _compare(len([s for s in _SENTENCES.findall(t) if s.strip()]), num_sentences, relation),
    "keywords:existence": lambda t, keywords, **_:
        all(re.search(rf"\b{re.escape(k)}\b", t, re.IGNORECASE) for k in keywords),
    "keywords:forbidden_words": lambda t, forbidden_words, **_:
        not any(re.search(rf"\b{re.escape(k)}\b", t, re.IGNORECASE) for k in forbidden_words),
    "keywords:frequency": lambda t, keyword, frequency, relation="at least", **_:
        _compare(len(re.findall(rf"\b{re.escape(keyword)}\b", t, re.IGNORECASE)), frequency,
                 relation),
    "detectable_format:json_format": _json,
    "detectable_format:number_bullet_lists": _bullets,
    "punctuation:no_comma": lambda t, **_: "," not in t,
    "change_case:english_lowercase": lambda t, **_: t == t.lower() and any(c.isalpha() for c in t),
    "change_case:english_capital": lambda t, **_: t == t.upper() and any(c.isalpha() for c in t),
    "startend:end_checker": lambda t, end_phrase, **_:
        t.strip().lower().endswith(end_phrase.strip().lower()),
    "startend:quotation": lambda t, **_: len(t.strip()) > 1 and t.strip()[0] == t.strip()[-1]
        == '"',
    "language:response_language": _language,
}


def followed(response: str, instruction_ids: list[str], kwargs: list[dict | None]) -> list[bool]:
    """Per instruction: was it followed? Unknown ids raise ConfigError naming the known ones."""
    out = []
    for iid, kw in zip(instruction_ids, kwargs, strict=True):
        check = CHECKS.get(iid)
        if check is None:
            raise ConfigError(f"unknown instruction {iid!r}; known: {', '.join(sorted(CHECKS))}")
        kw = {k: v for k, v in (kw or {}).items() if v is not None}
        out.append(bool(check(response, **kw)))
    return out
