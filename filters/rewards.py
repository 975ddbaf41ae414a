"""Verifiers as GRPO rewards: `fn(completions, **columns) -> list[float | None]` (open-r1/TRL).

Each reward wraps a batch check of r1data.filters.verdicts, the function `r1data filter` calls
for the same verdict, so RL optimises exactly what curation keeps (tests/filters/
test_rewards_are_filters.py). None means "cannot be verified" (no gold, time ran out), not 0.
Completions may be strings or chat messages (`[{"role": "assistant", "content": ...}]`);
the columns a reward needs come as dataset columns (answer, domain, meta, tests, ...).
The name -> reward registry is r1data.filters.registry.
"""

from __future__ import annotations

from collections.abc import Callable

from r1data.chat import completion_text, prompt_text, split_think
from r1data.errors import ConfigError
from r1data.filters import verdicts as V

Reward = Callable[..., list[float | None]]


def _column(columns: dict, name: str, n: int, default=None) -> list:
    v = columns.get(name)
    if v is None:
        return [default] * n
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ConfigError(f"column {name!r} has {len(v)} values for {n} completions")
        return list(v)
    return [v] * n


def _texts(completions: list) -> list[str]:
    return [completion_text(c) for c in completions]


def _passed(ok: bool | None) -> float | None:
    return None if ok is None else float(ok)


def accuracy_reward(completions: list, **columns) -> list[float | None]:
    """1.0 if correct (the filter's `correct`): math by symbolic equivalence, countdown by safe
    arithmetic, code by its tests in the sandbox; None where it cannot be verified.

    Columns: `answer` (gold), `domain` (math when absent), for countdown `numbers`/`target`
    or `meta`, else parsed from the answer or the prompt; for code `tests` (+ `entry_point`).
    """
    n = len(completions)
    texts = _texts(completions)
    domains = [d or "math" for d in _column(columns, "domain", n, "math")]
    tests = _column(columns, "tests", n)
    if any(d == "code" and t for d, t in zip(domains, tests, strict=True)):
        from r1data.filters.sandbox import require_code_isolation

        require_code_isolation()  # RL runs model code: fail closed without namespaces
    prompts = _column(columns, "prompts", n) if "prompts" in columns else \
        _column(columns, "prompt", n)
    problems = [p or q for p, q in zip(_column(columns, "problem", n), prompts, strict=True)]
    return [_passed(ok) for ok in V.correct_batch(
        texts, _column(columns, "answer", n), domains, metas=_column(columns, "meta", n),
        problems=problems, tests=tests, entry_points=_column(columns, "entry_point", n),
        numbers=_column(columns, "numbers", n), targets=_column(columns, "target", n))]


def format_reward(completions: list, **columns) -> list[float | None]:
    """1.0 for the filter's format_ok: one think block, a boxed answer for math and countdown,
    not truncated (`finish_reason` column), no repetition loop (Gopher rules)."""
    n = len(completions)
    domains = [d or "math" for d in _column(columns, "domain", n, "math")]
    return [float(ok) for ok, _, _ in V.format_batch(
        _texts(completions), _column(columns, "finish_reason", n),
        domains)]


def make_language_reward(min_consistency: float = V.MIN_CONSISTENCY) -> Reward:
    """R1 §2.3.2: the share of target-language words in the chain of thought, 0 when the
    answer is in another language; it passes (>= min_consistency) exactly when the filter's
    language checks do. Column: `target_language` (default en)."""
    if not 0.0 < min_consistency <= 1.0:
        raise ConfigError(f"language reward: min_consistency must be in (0, 1], got "
                          f"{min_consistency}")

    def language_reward(completions: list, **columns) -> list[float | None]:
        n = len(completions)
        targets = _column(columns, "target_language", n, "en")
        parts = [split_think(t) for t in _texts(completions)]
        out: list[float | None] = [0.0] * n
        for lang in dict.fromkeys(targets):
            idx = [i for i in range(n) if targets[i] == lang]
            got = V.language_batch([parts[i][1] for i in idx], [parts[i][0] for i in idx], lang,
                                   min_consistency=min_consistency)
            for i, (_, _, cons, reason) in zip(idx, got, strict=True):
                out[i] = 0.0 if reason == "wrong_language" else cons
        return out

    return language_reward


def repetition_reward(completions: list, **columns) -> list[float | None]:
    """Penalty in [-1, 0]: minus the repeated fraction (lines or 10-grams), the filter's
    `repetition` column."""
    n = len(completions)
    return [-score for _, _, score in V.format_batch(
        _texts(completions), [None] * n, ["general"] * n)]


def make_length_reward(max_tokens: int = 1024, *, chars_per_token: float = 4.0) -> Reward:
    """Penalty growing linearly past max_tokens, floor -1: 0 up to max_tokens, -1 at twice it.
    Tokens come from a `num_tokens` column when given, else are estimated from characters."""
    if max_tokens <= 0 or chars_per_token <= 0:
        raise ConfigError("length reward: max_tokens and chars_per_token must be positive")

    def length_reward(completions: list, **columns) -> list[float | None]:
        counts = _column(columns, "num_tokens", len(completions))
        out: list[float | None] = []
        for c, k in zip(completions, counts, strict=True):
            tokens = k if k is not None else len(completion_text(c)) / chars_per_token
            out.append(max(-1.0, min(0.0, (max_tokens - tokens) / max_tokens)))
        return out

    return length_reward


def instructions_reward(completions: list, **columns) -> list[float | None]:
    """IFEval-style: share of a row's instructions the final answer follows; None without any.

    Columns (IFEval / IFBench names): `instruction_id_list` and `kwargs` (one dict per id),
    else the prompt's `meta` holding them (the ifgen and ifbench prompt sources); there an id
    r1data cannot check (most of IFBench's) makes the row None, not an error.
    """
    n = len(completions)
    ids, kwargs = _column(columns, "instruction_id_list", n), _column(columns, "kwargs", n)
    if "instruction_id_list" not in columns:
        ids, kwargs = _instructions_from_meta(_column(columns, "meta", n))
    return V.instructions_batch([split_think(t)[1] for t in _texts(completions)], ids, kwargs)


def _instructions_from_meta(metas: list) -> tuple[list, list]:
    import json

    from r1data.filters.instructions import CHECKS

    ids, kwargs = [], []
    for m in metas:
        try:
            m = json.loads(m) if isinstance(m, str) and m else (m or {})
        except ValueError:
            m = {}
        iid = m.get("instruction_id_list") if isinstance(m, dict) else None
        ok = isinstance(iid, list) and iid and all(i in CHECKS for i in iid)
        ids.append(iid if ok else None)
        kwargs.append(m.get("kwargs") if ok else None)
    return ids, kwargs


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
            user = prompt_text(p)
            chat = [{"role": "user", "content": user},
                    {"role": "assistant", "content": split_think(completion_text(c))[1]}]
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


def get_reward(name: str) -> Reward:
    """A registered reward by name (see r1data.filters.registry)."""
    from r1data.filters.registry import get_reward as lookup

    return lookup(name)
