"""Seeded IFEval-style prompts (Zhou et al. 2023): a general task plus one to three verifiable
instructions, for R1's second RL stage ("RL for all scenarios").

Every instruction is one that r1data.filters.instructions checks, written with IFEval's ids
and keyword arguments, so the `instructions` reward grades the answers as it grades IFEval or
IFBench rows. Instructions that contradict each other (JSON and a required ending, all capitals
and all lower case) are never drawn together. Rows fit the prompts table: domain `general`, no
gold answer, the instructions in `meta` as `instruction_id_list` and `kwargs`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

_TASKS = [
    "Write a short note to a neighbour about {topic}.",
    "Describe {topic} to a ten-year-old.",
    "Give advice to someone who is new to {topic}.",
    "Write a product description for a book about {topic}.",
    "Explain why {topic} matters to a small town.",
    "Write a diary entry about a day spent on {topic}.",
    "Summarise the main ideas of {topic} for a busy reader.",
    "Write a short speech that opens a club devoted to {topic}.",
]
_TOPICS = ["gardening", "bird watching", "baking bread", "cycling to work", "learning chess",
           "saving water", "public libraries", "night skies", "recycling", "rainy weekends",
           "old maps", "street markets", "learning a language", "keeping bees"]
_WORDS = ["river", "lantern", "window", "garden", "journey", "silver", "morning", "bridge",
          "harvest", "compass", "meadow", "whistle"]
_ENDINGS = ["Is there anything else I can help with?", "Thank you for reading.",
            "That is all for today."]
_RELATIONS = ["less than", "at least"]


def _words(rng: random.Random) -> tuple[dict, str]:
    rel = rng.choice(_RELATIONS)
    n = rng.choice([40, 60, 80]) if rel == "less than" else rng.choice([20, 30, 50])
    return {"relation": rel, "num_words": n}, f"Answer with {rel} {n} words."


def _sentences(rng: random.Random) -> tuple[dict, str]:
    rel = rng.choice(_RELATIONS)
    n = rng.choice([3, 4, 6]) if rel == "less than" else rng.choice([2, 3, 4])
    return ({"relation": rel, "num_sentences": n},
            f"Your response should contain {rel} {n} sentences.")


def _existence(rng: random.Random, used: set[str]) -> tuple[dict, str]:
    kws = rng.sample([w for w in _WORDS if w not in used], 2)
    used.update(kws)
    return {"keywords": kws}, f"Include the keywords {kws[0]} and {kws[1]} in the response."


def _frequency(rng: random.Random, used: set[str]) -> tuple[dict, str]:
    kw = rng.choice([w for w in _WORDS if w not in used])
    used.add(kw)
    n = rng.choice([2, 3])
    return ({"keyword": kw, "frequency": n, "relation": "at least"},
            f"In your response, the word {kw} should appear at least {n} times.")


def _forbidden(rng: random.Random, used: set[str]) -> tuple[dict, str]:
    ws = rng.sample([w for w in _WORDS if w not in used], 2)
    used.update(ws)
    return ({"forbidden_words": ws},
            f"Do not include the words {ws[0]} or {ws[1]} in the response.")


def _bullets(rng: random.Random) -> tuple[dict, str]:
    n = rng.choice([2, 3, 4, 5])
    return ({"num_bullets": n}, f"Your answer must contain exactly {n} bullet points. Use "
            "markdown bullet points such as:\n* This is point 1.\n* This is point 2")


def _ending(rng: random.Random) -> tuple[dict, str]:
    end = rng.choice(_ENDINGS)
    return ({"end_phrase": end}, f"Finish your response with this exact phrase: {end} "
            "No other words should follow this phrase.")


def _plain(phrase: str) -> Callable[[random.Random], tuple[dict, str]]:
    return lambda rng: ({}, phrase)


# id -> (slot, maker): one instruction per slot, so no two of a kind.
_MAKERS: dict[str, tuple[str, Callable]] = {
    "length_constraints:number_words": ("length", _words),
    "length_constraints:number_sentences": ("length", _sentences),
    "keywords:existence": ("keywords", _existence),
    "keywords:frequency": ("keywords", _frequency),
    "keywords:forbidden_words": ("forbidden", _forbidden),
    "detectable_format:number_bullet_lists": ("shape", _bullets),
    "detectable_format:json_format": ("shape", _plain(
        "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.")),
    "startend:quotation": ("shape", _plain("Wrap your entire response with double quotation "
                                           "marks.")),
    "startend:end_checker": ("ending", _ending),
    "punctuation:no_comma": ("comma", _plain("In your entire response, refrain from the use of "
                                             "any commas.")),
    "change_case:english_lowercase": ("case", _plain(
        "Your entire response should be in English, and in all lowercase letters. No capital "
        "letters are allowed.")),
    "change_case:english_capital": ("case", _plain(
        "Your entire response should be in English, and in all capital letters.")),
}
_TAKES_USED = {"keywords:existence", "keywords:frequency", "keywords:forbidden_words"}
# Pairs no answer can satisfy together (a JSON or quoted answer cannot end with a phrase).
_CONFLICTS = {frozenset({"detectable_format:json_format", "startend:end_checker"}),
              frozenset({"startend:quotation", "startend:end_checker"}),
              frozenset({"detectable_format:json_format", "length_constraints:number_sentences"}),
              frozenset({"change_case:english_capital", "startend:end_checker"}),
              frozenset({"change_case:english_lowercase", "startend:end_checker"})}
INSTRUCTION_IDS = tuple(_MAKERS)


def _row(rng: random.Random, max_instructions: int) -> dict:
    task = rng.choice(_TASKS).format(topic=rng.choice(_TOPICS))
    ids: list[str] = []
    want = rng.randint(1, max_instructions)
    for iid in rng.sample(INSTRUCTION_IDS, len(INSTRUCTION_IDS)):
        if len(ids) == want:
            break
        if any(_MAKERS[i][0] == _MAKERS[iid][0] or frozenset({i, iid}) in _CONFLICTS
               for i in ids):
            continue
        ids.append(iid)
    used: set[str] = set()
    kwargs, phrases = [], []
    for iid in ids:
        maker = _MAKERS[iid][1]
        kw, phrase = maker(rng, used) if iid in _TAKES_USED else maker(rng)
        kwargs.append(kw)
        phrases.append(phrase)
    return {"problem": " ".join([task, *phrases]), "answer": None, "domain": "general",
            "tests": None, "source": "ifgen",
            "meta": json.dumps({"instruction_id_list": ids, "kwargs": kwargs})}


def ifgen_prompts(n: int = 100, *, seed: int = 0, max_instructions: int = 3) -> list[dict]:
    """n distinct prompts, the same for the same seed (rows of the prompts table, no id)."""
    from r1data.errors import ConfigError

    if n < 1 or not 1 <= max_instructions <= 3:
        raise ConfigError("ifgen: n must be >= 1 and max_instructions in 1..3")
    rng = random.Random(f"ifgen:{seed}")
    rows, seen, tries = [], set(), 0
    while len(rows) < n and tries < n * 50:
        tries += 1
        row = _row(rng, max_instructions)
        if row["problem"] not in seen:
            seen.add(row["problem"])
            rows.append(row)
    return rows
