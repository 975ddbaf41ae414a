"""An LLM judge for answers no rule can check (R1 §2.3.3: DeepSeek-V3 as a generative reward
model for the data without rule-checkable answers).

The judge model reads the question, the reference answer or a rubric, and the answer, and
replies with a verdict, a score and a short rationale. Its reply is hostile text like any model
output: read with linear-time regexes, cut to bounded lengths, never evaluated. A reply that
says nothing readable, or a judge that cannot be reached, is a failure with its reason, never a
pass. Judgements are cached by (judge model, template, question, reference, answer): the cache
is any object with `get(keys)` and `put(rows)` (the filter stage gives the store's judgements
table; the `judge:MODEL` reward keeps one in memory), so a rerun costs nothing. The engine
is given by the caller (r1data.judging starts it only when something is not cached): a
verifier neither starts models nor reads the store.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from r1data.errors import ConfigError, EngineError

TEMPLATE_VERSION = "1"  # part of the cache key: a new template is a new judgement
TEMPLATE = """You are a strict grader. Judge whether the ANSWER to the QUESTION is correct and \
follows every instruction in it{against}.

QUESTION:
{problem}
{reference}
ANSWER:
{answer}

Reply in exactly this format:
Verdict: correct or incorrect
Score: a number from 0 to 10
Rationale: one short sentence"""
MAX_PROBLEM, MAX_ANSWER = 8000, 8000  # characters shown to the judge
MAX_RATIONALE = 400  # characters kept of the judge's reason
_VERDICT = re.compile(r"verdict\W{0,8}(correct|incorrect|pass|fail|yes|no)\b", re.IGNORECASE)
_LEADING = re.compile(r"\W{0,8}(correct|incorrect|pass|fail|yes|no)\b", re.IGNORECASE)
_SCORE = re.compile(r"score\W{0,8}(\d{1,3}(?:\.\d{1,3})?)(?:\s{0,3}/\s{0,3}(\d{1,3}))?",
                    re.IGNORECASE)
_RATIONALE = re.compile(r"rationale\W{0,8}([^\n]{1,400})", re.IGNORECASE)
# A small judge often answers in prose ("The answer is correct."): its first correct/incorrect
# word is read, negated by a "not" just before it.
_PROSE = re.compile(r"\b(not\s+|n't\s+)?(correct|incorrect|right|wrong)\b", re.IGNORECASE)
_POSITIVE = {"correct", "pass", "yes", "right"}


@dataclass
class JudgeConfig:
    model: str  # judge model: a local HF folder (vllm) or the server's model name (openai)
    engine: Literal["vllm", "openai"] = "vllm"
    base_url: list[str] = field(default_factory=list)  # openai: the judge server(s)
    max_tokens: int = 128  # a verdict, a score and one sentence
    scope: Literal["unverifiable", "all"] = "unverifiable"  # which samples the judge grades:
    # those without a rule-checkable answer (general prompts, no gold, no tests), or all
    rubric: str | None = None  # used where a prompt has no reference answer
    batch: int = 64  # judgements per engine call and cache write (a kill loses one batch)
    timeout: float = 120.0  # openai: seconds per request
    retries: int = 1

    def __post_init__(self):
        if not self.model or not self.model.strip():
            raise ConfigError("judge: model is empty")
        if self.engine not in ("vllm", "openai"):
            raise ConfigError(f"judge: unknown engine {self.engine!r} (vllm or openai)")
        if self.engine == "openai" and not self.base_url:
            raise ConfigError("judge: the openai engine needs a base_url")
        if self.scope not in ("unverifiable", "all"):
            raise ConfigError(f"judge: unknown scope {self.scope!r} (unverifiable or all)")
        if self.batch < 1 or self.max_tokens < 8:
            raise ConfigError("judge: batch must be >= 1 and max_tokens >= 8")


# Failures asked again on a rerun; an unreadable reply is not (the judge is greedy: the same
# question gets the same reply), so a rerun costs nothing.
RETRIED = ("judge_unreachable",)


class Cache(Protocol):
    def get(self, keys: Sequence[str]) -> dict[str, dict]: ...  # key -> its newest row
    def put(self, rows: list[dict]) -> None: ...


class MemoryCache:
    """A cache in this process (the GRPO reward's)."""

    def __init__(self):
        self.rows: dict[str, dict] = {}

    def get(self, keys: Sequence[str]) -> dict[str, dict]:
        return {k: self.rows[k] for k in keys if k in self.rows}

    def put(self, rows: list[dict]) -> None:
        self.rows.update({r["key"]: r for r in rows})


def in_scope(cfg: JudgeConfig, domain: str | None, gold: str | None, tests: str | None) -> bool:
    """Does the judge grade this sample? With scope `unverifiable`, only what no rule can."""
    if cfg.scope == "all":
        return True
    return domain == "general" or (not gold and not tests)


def cache_key(model: str, problem: str, reference: str | None, answer: str) -> str:
    blob = json.dumps([model, TEMPLATE_VERSION, problem, reference, answer])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def judge_messages(problem: str, reference: str | None, answer: str, rubric: str | None
                   ) -> list[dict]:
    if reference:
        against, ref = " given the reference answer", f"\nREFERENCE ANSWER:\n{reference}\n"
    elif rubric:
        against, ref = " by the rubric", f"\nRUBRIC:\n{rubric}\n"
    else:
        against, ref = "", ""
    text = TEMPLATE.format(against=against, problem=(problem or "")[:MAX_PROBLEM], reference=ref,
                           answer=(answer or "")[:MAX_ANSWER])
    return [{"role": "user", "content": text}]


def parse(reply: str) -> tuple[bool, float, str]:
    """(verdict, score in [0, 1], rationale) from the judge's reply ("Verdict: correct",
    "Score: 7/10", else its first correct/incorrect word); ValueError if it gives neither a
    verdict nor a score. A missing score is 1 or 0 by the verdict; a missing verdict
    is score >= 0.5."""
    text = (reply or "")[:4000]
    m = _VERDICT.search(text) or _LEADING.match(text)
    verdict = None if m is None else m.group(1).lower() in _POSITIVE
    if m is None and (p := _PROSE.search(text)):
        verdict = (p.group(2).lower() in _POSITIVE) != bool(p.group(1))
    s = _SCORE.search(text)
    score = None
    if s:
        top = float(s.group(2)) if s.group(2) else 10.0
        score = min(1.0, max(0.0, float(s.group(1)) / top)) if top > 0 else None
    if verdict is None and score is None:
        raise ValueError("judge_unparsable")
    if verdict is None:
        verdict = score >= 0.5
    if score is None:
        score = 1.0 if verdict else 0.0
    r = _RATIONALE.search(text)
    rationale = (r.group(1) if r else text).strip()[:MAX_RATIONALE]
    return verdict, score, rationale


class Engine(Protocol):
    def get(self): ...  # the started engine (r1data.engines): `generate(conversations, ns)`


def judge(items: Sequence[dict], cfg: JudgeConfig, engine: Engine, cache: Cache, *,
          now=None) -> list[dict]:
    """One judgement row an item ({problem, reference, answer}): key, judge_model, verdict,
    score, rationale, error (None, or why the judge failed: judge_unparsable,
    judge_unreachable), created_at. Cached ones are served from `cache`; the engine starts
    only if some are not, and new judgements are put in batches of cfg.batch, failures too
    (those in RETRIED are asked again by a rerun)."""
    import datetime as dt

    keys = [cache_key(cfg.model, it["problem"], it.get("reference"), it["answer"])
            for it in items]
    got = {k: r for k, r in cache.get(list(dict.fromkeys(keys))).items()
           if r["error"] not in RETRIED}
    pending = list({k: it for k, it in zip(keys, items, strict=True) if k not in got}.items())
    for i in range(0, len(pending), cfg.batch):
        rows = _judge_chunk(engine, pending[i:i + cfg.batch], cfg,
                            now or dt.datetime.now(dt.UTC))
        cache.put(rows)
        got.update({r["key"]: r for r in rows})
    return [got[k] for k in keys]


def _judge_chunk(engine, chunk: list[tuple[str, dict]], cfg: JudgeConfig, now) -> list[dict]:
    convs = [judge_messages(it["problem"], it.get("reference"), it["answer"], cfg.rubric)
             for _, it in chunk]
    try:
        replies = [c[0].text if c else "" for c in engine.get().generate(convs,
                                                                          [1] * len(convs))]
        errors = [None] * len(convs)
    except EngineError as e:
        replies, errors = [""] * len(convs), [f"judge_unreachable: {str(e)[:300]}"] * len(convs)
    rows = []
    for (key, _), reply, err in zip(chunk, replies, errors, strict=True):
        verdict = score = rationale = None
        if err is None:
            try:
                verdict, score, rationale = parse(reply)
            except ValueError as e:
                err, rationale = str(e), (reply or "").strip()[:MAX_RATIONALE]
        rows.append({"key": key, "judge_model": cfg.model, "verdict": verdict, "score": score,
                     "rationale": rationale if err is None else (rationale or err),
                     "error": err.split(":")[0] if err else None, "created_at": now})
    return rows


def parse_reward_name(spec: str) -> JudgeConfig:
    """`judge:MODEL` (a local model on vLLM) or `judge:MODEL@URL` (an OpenAI-compatible
    server serving MODEL)."""
    model, at, url = spec.partition("@")
    if at and not url.strip():
        raise ConfigError(f"judge:{spec}: no server after @ (a base_url, e.g. "
                          "http://127.0.0.1:8000/v1)")
    if url:
        return JudgeConfig(model=model, engine="openai", base_url=[url])
    return JudgeConfig(model=model)
