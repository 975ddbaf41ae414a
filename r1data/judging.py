"""The judge check of `r1data filter`: the LLM judge (r1data.filters.judge) over a run's
samples, with the store's judgements table as its cache.

The judge runs once, in the filtering process, before the verdict shards are written: one
engine (a vLLM model or an OpenAI-compatible server) for the whole run, not one per worker.
Judgements already in the store are not asked again, and the engine is not even started when
all are. The verdict workers then read the judgements (`with_judgements`) like the prompts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from r1data.chat import prompt_text, split_think
from r1data.errors import ConfigError
from r1data.filters import judge as J
from r1data.filters.judge import RETRIED, JudgeConfig, cache_key, in_scope, judge
from r1data.filters.rewards import Reward, _column, _texts  # columns read as every reward
from r1data.store import Store


class JudgeEngine:
    """The judge's engine, started when first needed (a rerun served from the cache starts
    none): greedy, one reply a question, no system prompt and no R1 suffix."""

    def __init__(self, cfg: JudgeConfig):
        self.cfg, self.engine, self.started = cfg, None, 0

    def get(self):
        if self.engine is None:
            from r1data.config import GenerateConfig
            from r1data.engines import make_engine

            c = self.cfg
            self.engine = make_engine(GenerateConfig(
                model=c.model, engine=c.engine, base_url=c.base_url, n=1, temperature=0.0,
                top_p=1.0, max_tokens=c.max_tokens, system_prompt=None, user_suffix="",
                timeout=c.timeout, retries=c.retries))
            self.started += 1
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def config(cfg: dict | None) -> JudgeConfig:
    if not cfg:
        raise ConfigError("the judge check needs a judge model (--judge-model)")
    return JudgeConfig(**cfg)


def _item(sample: dict, prompt: dict) -> dict:
    final = sample.get("final")
    if final is None:
        final = split_think(sample["completion"] or "")[1]
    return {"problem": prompt["problem"], "reference": prompt["answer"], "answer": final or ""}


def judge_pass(store: Store, shards: list[Path], cfg: dict | None) -> dict[str, int]:
    """Judge the in-scope samples of these sample shards; counts: judged (asked now),
    cached (served from the store), failed (of those asked now), out_of_scope."""
    import pyarrow.parquet as pq

    jc = config(cfg)
    prompts = {r["prompt_id"]: r for r in store.read(
        "prompts", columns=["prompt_id", "problem", "answer", "domain", "tests"]).to_pylist()}
    items = []
    counts: Counter[str] = Counter()
    for shard in shards:
        cols = ["prompt_id", "completion", "final"]
        for s in pq.read_table(shard, columns=cols).to_pylist():
            p = prompts.get(s["prompt_id"])
            if p is None or not in_scope(jc, p["domain"], p["answer"], p["tests"]):
                counts["out_of_scope"] += 1
                continue
            items.append(_item(s, p))
    cache = store.judge_cache()
    keys = {cache_key(jc.model, it["problem"], it["reference"], it["answer"]) for it in items}
    cached = {k for k, r in cache.get(list(keys)).items() if r["error"] not in RETRIED}
    engine = JudgeEngine(jc)
    try:
        rows = judge(items, jc, engine, cache)
    finally:
        engine.close()
    for key, row in {cache_key(jc.model, it["problem"], it["reference"], it["answer"]): r
                     for it, r in zip(items, rows, strict=True)}.items():
        counts["cached" if key in cached else "judged"] += 1
        counts["failed"] += key not in cached and row["error"] is not None
    return dict(counts)


_LATEST: dict[str, dict[str, dict]] = {}  # per worker process: store root -> key -> row


def _latest(store_root: str) -> dict[str, dict]:
    """Each key's newest judgement, read once per process."""
    if store_root not in _LATEST:
        rows = Store(store_root, create=False).read("judgements").to_pylist()
        rows.sort(key=lambda r: r["created_at"])
        _LATEST[store_root] = {r["key"]: r for r in rows}
    return _LATEST[store_root]


def with_judgements(store_root: str, items: list[dict], cfg: dict | None) -> list[dict]:
    """The verdict items with the judge's columns, and `judge_reason` where the judge check
    fails them: judge_rejected, or the judge's failure (judge_unparsable, judge_unreachable,
    judge_missing when no judgement was made)."""
    jc = config(cfg)
    latest = _latest(store_root)
    out = []
    for it in items:
        if not in_scope(jc, it["domain"], it["gold"], it["tests"]):
            out.append(it)
            continue
        q = _item(it, {"problem": it["problem"], "answer": it["gold"]})
        row = latest.get(cache_key(jc.model, q["problem"], q["reference"], q["answer"]))
        if row is None:
            extra = {"judge_model": jc.model, "judge_reason": "judge_missing"}
        else:
            extra = {"judge_verdict": row["verdict"], "judge_score": row["score"],
                     "judge_model": row["judge_model"], "judge_rationale": row["rationale"],
                     "judge_reason": row["error"] or (None if row["verdict"]
                                                      else "judge_rejected")}
        out.append(it | extra)
    return out


def forget(store_root: str) -> None:
    """Drop this process's copy of the judgements (a new pass has written more)."""
    _LATEST.pop(store_root, None)


def make_judge_reward(spec: str) -> Reward:
    """`judge:MODEL` (a local model on vLLM) or `judge:MODEL@URL` (an OpenAI-compatible
    server): the judge's score in [0, 1] for the samples no rule can check (general prompts,
    no gold answer, no tests), None for the others and where the judge failed (never a
    pass). Judgements are cached in memory for the run; the engine starts on first use."""
    cfg = J.parse_reward_name(spec)
    cache, engine = J.MemoryCache(), JudgeEngine(cfg)

    def judge_reward(completions: list, **columns) -> list[float | None]:
        n = len(completions)
        prompts = _column(columns, "prompts", n) if "prompts" in columns else \
            _column(columns, "prompt", n)
        problems = [p or prompt_text(q) for p, q in zip(_column(columns, "problem", n), prompts,
                                                        strict=True)]
        golds, tests = _column(columns, "answer", n), _column(columns, "tests", n)
        domains = _column(columns, "domain", n, "math")
        idx = [i for i in range(n) if J.in_scope(cfg, domains[i], golds[i], tests[i])]
        finals = [split_think(t)[1] for t in _texts(completions)]
        rows = J.judge([{"problem": problems[i] or "", "reference": golds[i] or None,
                         "answer": finals[i]} for i in idx], cfg, engine, cache)
        out: list[float | None] = [None] * n
        for i, r in zip(idx, rows, strict=True):
            out[i] = None if r["error"] else r["score"]
        return out

    judge_reward.engine = engine  # the caller may close it (tests); it dies with the process
    return judge_reward
