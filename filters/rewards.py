"""Verifiers as GRPO rewards: `fn(completions, **columns) -> list[float | None]` (open-r1/TRL).

The same functions decide rejection sampling, so RL optimises exactly what curation keeps.
None means "cannot be verified" (no gold, time ran out), not 0. Completions may be strings or
chat messages (`[{"role": "assistant", "content": ...}]`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from r1data.chat import completion_text, prompt_text, split_think
from r1data.errors import ConfigError

Reward = Callable[..., list[float | None]]


_text = completion_text


def _column(columns: dict, name: str, n: int, default=None) -> list:
    v = columns.get(name)
    if v is None:
        return [default] * n
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ConfigError(f"column {name!r} has {len(v)} values for {n} completions")
        return list(v)
    return [v] * n


_NUMBER_LIST = re.compile(r"\[\s*(-?\d+(?:\s*,\s*-?\d+)+)\s*\]")
_EQUALS = re.compile(r"(?:equals?|equal to|reach(?:es)?|target(?: number)?(?: is|:)?|=)\s*"
                     r"(-?\d+)", re.IGNORECASE)


def countdown_task(numbers=None, target=None, *, meta=None, answer=None, problem=None
                   ) -> tuple[list[int], int] | None:
    """(numbers, target) from the first source that has them: the columns, the prompt's meta,
    a JSON answer ({"numbers": [...], "target": N}), a plain integer answer for the target,
    and the problem text ("Using the numbers [3, 5, 7], create an equation that equals 22")."""
    for source in (meta, answer):
        if isinstance(source, str) and source.lstrip().startswith("{"):
            try:
                source = json.loads(source)
            except json.JSONDecodeError:
                source = None
        if isinstance(source, dict):
            numbers = numbers if numbers is not None else source.get("numbers",
                                                                     source.get("nums"))
            target = target if target is not None else source.get("target")
    if target is None and isinstance(answer, (int, str)) and str(answer).strip().lstrip(
            "-").isdigit():
        target = int(answer)
    text = prompt_text(problem)
    if numbers is None and text:
        m = _NUMBER_LIST.search(text)
        numbers = [int(x) for x in m.group(1).split(",")] if m else None
    if target is None and text:
        m = _EQUALS.search(text)
        target = int(m.group(1)) if m else None
    if numbers is None or target is None:
        return None
    try:
        return [int(x) for x in numbers], int(target)
    except (TypeError, ValueError):
        return None


def accuracy_reward(completions: list, **columns) -> list[float | None]:
    """1.0 if correct: math by symbolic equivalence, countdown by safe arithmetic, code by tests.

    Columns: `answer` (gold), `domain` (math when absent), for countdown `numbers`/`target`
    or `meta`, else parsed from the answer or the prompt; code needs r1data.filters.code.
    """
    from r1data.filters import logic
    from r1data.filters import math as math_v

    n = len(completions)
    texts = [_text(c) for c in completions]
    golds = _column(columns, "answer", n)
    domains = [d or "math" for d in _column(columns, "domain", n, "math")]
    out: list[float | None] = [None] * n
    math_idx = [i for i in range(n) if domains[i] == "math" and golds[i] not in (None, "")]
    if math_idx:
        res = math_v.verify_batch([texts[i] for i in math_idx], [str(golds[i]) for i in math_idx])
        for i, r in zip(math_idx, res, strict=True):
            out[i] = None if r is None else float(r)
    numbers, targets = _column(columns, "numbers", n), _column(columns, "target", n)
    metas = _column(columns, "meta", n)
    problems = _column(columns, "problem", n)
    prompts = _column(columns, "prompts", n) if "prompts" in columns else \
        _column(columns, "prompt", n)
    for i in range(n):
        if domains[i] != "countdown":
            continue
        task = countdown_task(numbers[i], targets[i], meta=metas[i], answer=golds[i],
                              problem=problems[i] or prompts[i])
        if task is not None:
            out[i] = float(logic.countdown_correct(texts[i], *task))
    code_idx = [i for i in range(n) if domains[i] == "code"]
    if code_idx:
        try:
            from r1data.filters import code
        except ModuleNotFoundError as e:  # the code sandbox is optional: unverifiable
            if e.name != "r1data.filters.code":
                raise
            return out
        sub = {k: [v[i] for i in code_idx] if isinstance(v, (list, tuple)) else v
               for k, v in columns.items()}
        for i, r in zip(code_idx, code.code_reward([texts[i] for i in code_idx], **sub),
                        strict=True):
            out[i] = r
    return out


def format_reward(completions: list, **columns) -> list[float | None]:
    """1.0 for the R1 format (one think block, boxed answer for math, not truncated)."""
    from r1data.filters.readability import check_format

    n = len(completions)
    domains = _column(columns, "domain", n, "math")
    finish = _column(columns, "finish_reason", n)
    return [float(check_format(_text(c), f, domain=d, check_repetition=False)[0])
            for c, d, f in zip(completions, domains, finish, strict=True)]


def language_reward(completions: list, **columns) -> list[float | None]:
    """R1 §2.3.2: share of target-language words in the chain of thought."""
    from r1data.filters.language import consistency_batch

    n = len(completions)
    targets = _column(columns, "target_language", n, "en")
    texts = [split_think(_text(c))[0] or _text(c) for c in completions]
    out: list[float | None] = [0.0] * n
    for lang in set(targets):
        idx = [i for i in range(n) if targets[i] == lang]
        for i, v in zip(idx, consistency_batch([texts[i] for i in idx], lang), strict=True):
            out[i] = v
    return out


def repetition_reward(completions: list, **columns) -> list[float | None]:
    """Penalty in [-1, 0]: minus the repeated fraction (lines or 10-grams)."""
    from r1data.filters.readability import repetition_score

    return [-repetition_score(_text(c)) for c in completions]


def make_length_reward(max_tokens: int = 1024, *, chars_per_token: float = 4.0) -> Reward:
    """Penalty growing linearly past max_tokens, floor -1: 0 up to max_tokens, -1 at twice it.
    Tokens come from a `num_tokens` column when given, else are estimated from characters."""
    if max_tokens <= 0 or chars_per_token <= 0:
        raise ConfigError("length reward: max_tokens and chars_per_token must be positive")

    def length_reward(completions: list, **columns) -> list[float | None]:
        counts = _column(columns, "num_tokens", len(completions))
        out: list[float | None] = []
        for c, k in zip(completions, counts, strict=True):
            tokens = k if k is not None else len(_text(c)) / chars_per_token
            out.append(max(-1.0, min(0.0, (max_tokens - tokens) / max_tokens)))
        return out

    return length_reward


def instructions_reward(completions: list, **columns) -> list[float | None]:
    """IFEval-style: share of a row's instructions the final answer follows; None without any.

    Columns (IFEval / IFBench names): `instruction_id_list` and `kwargs` (one dict per id).
    """
    from r1data.filters.instructions import followed

    n = len(completions)
    ids = _column(columns, "instruction_id_list", n)
    kws = _column(columns, "kwargs", n)
    out: list[float | None] = []
    for c, iid, kw in zip(completions, ids, kws, strict=True):
        if not iid:
            out.append(None)
            continue
        kw = json.loads(kw) if isinstance(kw, str) else (kw or [{}] * len(iid))
        ok = followed(split_think(_text(c))[1], list(iid), list(kw))
        out.append(sum(ok) / len(ok))
    return out


def make_reward_model_reward(path: str, *, batch_size: int = 8, max_length: int = 1024
                             ) -> Reward:
    """A learned reward: any local AutoModelForSequenceClassification folder (one logit), scoring
    the prompt and the final answer as a chat; returns its raw score."""
    from pathlib import Path

    if not (Path(path) / "config.json").exists():
        raise ConfigError(f"reward model {path}: no config.json (a local folder is needed)")

    state: dict = {}

    def reward_model(completions: list, **columns) -> list[float | None]:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not state:
            state["tok"] = AutoTokenizer.from_pretrained(path)
            if state["tok"].pad_token is None:
                state["tok"].pad_token = state["tok"].eos_token
            state["model"] = AutoModelForSequenceClassification.from_pretrained(path).eval()
        tok, model = state["tok"], state["model"]
        prompts = _column(columns, "prompt", len(completions), "")
        texts = []
        for p, c in zip(prompts, completions, strict=True):
            user = p if isinstance(p, str) else (p[-1]["content"] if p else "")
            chat = [{"role": "user", "content": user},
                    {"role": "assistant", "content": split_think(_text(c))[1]}]
            texts.append(tok.apply_chat_template(chat, tokenize=False) if tok.chat_template
                         else f"{user}\n{chat[1]['content']}")
        scores: list[float | None] = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True,
                          truncation=True, max_length=max_length)
                scores += model(**enc).logits[:, 0].float().tolist()
        return scores

    return reward_model


REWARDS: dict[str, Reward] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "language": language_reward,
    "repetition": repetition_reward,
    "length": make_length_reward(),
    "instructions": instructions_reward,
}


def get_reward(name: str) -> Reward:
    """A registered reward by name: a key of REWARDS, `code` (the sandbox, imported on first
    use) or `rm:PATH` (a learned reward model). Unknown names raise ConfigError listing the
    known ones. Configurable rewards are built by their factories (make_length_reward)."""
    if name.startswith("rm:"):
        return make_reward_model_reward(name[3:])
    if name == "code":
        try:
            from r1data.filters.code import code_reward
        except ModuleNotFoundError as e:
            if e.name != "r1data.filters.code":
                raise
            raise ConfigError("reward 'code' needs r1data.filters.code (the sandbox)") from None
        return code_reward
    try:
        return REWARDS[name]
    except KeyError:
        known = ", ".join(sorted([*REWARDS, "code", "rm:PATH"]))
        raise ConfigError(f"unknown reward {name!r}; known: {known}") from None
