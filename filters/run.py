"""`r1data filter`: verdicts for every sample of a run, one verdict shard per sample shard.

Streams one sample shard at a time (bounded memory), writes its verdict shard atomically, and on a
rerun skips shards whose verdicts for the same settings exist, so a killed job resumes. Math is
checked once per distinct (gold, extracted answer) in a process pool that bounds every check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from r1data.errors import ConfigError, InputError
from r1data.store import VERDICTS_SCHEMA, Store, check_name, write_parquet_atomic

CHECKS = ("correct", "format", "language")


@dataclass
class FilterConfig:
    checks: list[str] = field(default_factory=lambda: list(CHECKS))  # which decide `keep`
    target_language: str = "en"  # R1 §2.3.2: answer and chain of thought in the user's language
    min_consistency: float = 0.9  # share of target-language words in the chain of thought
    timeout: float = 5.0  # seconds per symbolic or code check
    workers: int | None = None  # processes for math checks (default: all cores)

    def __post_init__(self):
        unknown = [c for c in self.checks if c not in CHECKS]
        if unknown:
            raise ConfigError(f"unknown filter(s) {unknown}; known: {', '.join(CHECKS)}")

    def run_id(self) -> str:
        blob = json.dumps({k: v for k, v in asdict(self).items() if k != "workers"},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


@dataclass
class FilterReport:
    run: str
    filter_run: str
    shards: int = 0
    shards_done_before: int = 0
    total: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


def _tests_of(tests: str | None):
    if not tests:
        return None, None
    try:
        obj = json.loads(tests)
    except json.JSONDecodeError:
        return tests, None  # plain assert code
    if isinstance(obj, dict):
        return obj.get("test"), obj.get("entry_point")
    return obj, None


def correctness(rows: list[dict], answers: list[str | None], cfg: FilterConfig
                ) -> list[bool | None]:
    """Per sample: math via the batch verifier, countdown by safe arithmetic, code in a sandbox."""
    from concurrent.futures import ThreadPoolExecutor

    from r1data.filters import logic
    from r1data.filters import math as math_v

    out: list[bool | None] = [None] * len(rows)
    math_idx = [i for i, r in enumerate(rows) if r["domain"] == "math" and r["gold"]]
    if math_idx:
        verdicts = math_v.verify_answers([answers[i] for i in math_idx],
                                         [rows[i]["gold"] for i in math_idx],
                                         timeout=cfg.timeout, workers=cfg.workers)
        for i, v in zip(math_idx, verdicts, strict=True):
            out[i] = v
    for i, r in enumerate(rows):
        if r["domain"] == "countdown":
            meta = json.loads(r["meta"] or "{}")
            if "numbers" in meta and "target" in meta:
                out[i] = logic.countdown_correct(r["completion"], meta["numbers"], meta["target"])
    code_idx = [i for i, r in enumerate(rows) if r["domain"] == "code" and r["tests"]]
    if code_idx:
        from r1data.filters import code

        def one(i):
            tests, entry = _tests_of(rows[i]["tests"])
            return code.code_correct(rows[i]["completion"], tests, entry_point=entry,
                                     timeout=cfg.timeout)

        with ThreadPoolExecutor(max_workers=cfg.workers or os.cpu_count() or 1) as pool:
            for i, v in zip(code_idx, pool.map(one, code_idx), strict=True):
                out[i] = v
    return out


def verdict_rows(rows: list[dict], cfg: FilterConfig, filter_run: str) -> list[dict]:
    """The verdict of each sample; reject_reason is the first failing check, in R1's order."""
    from r1data.filters import language, readability
    from r1data.filters.extract import extract_answer, split_think
    from r1data.filters.repetition import repetition_batch

    now = dt.datetime.now(dt.UTC)
    finals = [r["final"] if r["final"] is not None else split_think(r["completion"])[1]
              for r in rows]
    answers = [extract_answer(f) for f in finals]
    correct = correctness(rows, answers, cfg)  # also without the check: pass rates reported
    langs = language.detect_batch(finals)
    consist = language.consistency_batch([r["reasoning"] or "" for r in rows],
                                         cfg.target_language)
    reps = repetition_batch([r["completion"] for r in rows])  # columnar Gopher rules
    out = []
    for r, ok, answer, (lang, prob), cons, (rep_reason, rep_score) in zip(
            rows, correct, answers, langs, consist, reps, strict=True):
        fmt_ok, fmt_reason = readability.check_format(r["completion"], r["finish_reason"],
                                                      domain=r["domain"], check_repetition=False)
        if fmt_ok and rep_reason:
            fmt_ok, fmt_reason = False, rep_reason
        reason = None
        if "format" in cfg.checks and not fmt_ok:
            reason = fmt_reason
        elif "correct" in cfg.checks and ok is not True:
            reason = "incorrect" if ok is False else "unverified"
        elif "language" in cfg.checks and lang not in (cfg.target_language, "unknown"):
            reason = "wrong_language"
        elif ("language" in cfg.checks and r["reasoning"]
              and cons < cfg.min_consistency):
            reason = "language_mixing"
        out.append({
            "run": r["run"], "prompt_id": r["prompt_id"], "sample_idx": r["sample_idx"],
            "filter_run": filter_run, "created_at": now, "answer": answer,
            "correct": ok, "format_ok": fmt_ok, "format_reason": fmt_reason,
            "repetition": rep_score,
            "lang": lang, "lang_prob": prob, "lang_consistency": cons,
            "keep": reason is None, "reject_reason": reason,
        })
    return out


_PROMPTS: dict[str, dict[str, dict]] = {}  # per worker process: store root -> prompts


def _prompts_of(store_root: str) -> dict[str, dict]:
    if store_root not in _PROMPTS:
        _PROMPTS[store_root] = {r["prompt_id"]: r for r in
                                Store(store_root, create=False).read("prompts").to_pylist()}
    return _PROMPTS[store_root]


def filter_shard(store_root: str, shard: str, target: str, cfg: dict) -> dict[str, int]:
    """One sample shard -> its verdict shard; returns counts by outcome. Runs in a worker."""
    import pyarrow.parquet as pq

    fc = FilterConfig(**cfg)
    prompts = _prompts_of(store_root)
    samples = pq.read_table(shard, columns=["run", "prompt_id", "sample_idx", "completion",
                                            "reasoning", "final", "finish_reason"])
    rows = []
    for s in samples.to_pylist():
        p = prompts.get(s["prompt_id"])
        if p is None:
            raise InputError(f"sample of unknown prompt {s['prompt_id']}", path=shard)
        rows.append(s | {"domain": p["domain"], "gold": p["answer"], "tests": p["tests"],
                         "meta": p["meta"]})
    done = verdict_rows(rows, fc, fc.run_id())
    write_parquet_atomic(pa.Table.from_pylist(done, schema=VERDICTS_SCHEMA), Path(target),
                         metadata={"r1data_filter": cfg})
    return dict(Counter("kept" if d["keep"] else d["reject_reason"] for d in done))


def filter_run(store: Store, run: str, cfg: FilterConfig | None = None, *,
               progress: bool = True) -> FilterReport:
    """Write verdicts/<run>/ for every sample shard that has none for these settings.

    Shards are spread over worker processes (all cores by default), one shard each at a time.
    """
    import pyarrow.parquet as pq
    from tqdm import tqdm

    cfg = cfg or FilterConfig()
    check_name("run", run)
    fid = cfg.run_id()
    shards = store.shards("samples", run)
    if not shards:
        raise InputError(f"run {run!r} has no samples (run `r1data generate` first)",
                         path=str(store.root))
    rep = FilterReport(run=run, filter_run=fid, shards=len(shards))
    manifest = {"run": run, "filter_run": fid, "config": asdict(cfg), "status": "running"}
    store.write_manifest(f"filter-{run}", manifest)
    vdir = store.table_dir("verdicts", run)
    counts: Counter[str] = Counter()
    bar = tqdm(total=sum(pq.ParquetFile(s).metadata.num_rows for s in shards), unit="sample",
               desc=f"filter {run}", disable=not progress)
    todo = []
    for shard in shards:
        target = vdir / f"{shard.stem}-{fid}.parquet"
        if target.exists():  # done by an earlier (maybe killed) invocation
            rep.shards_done_before += 1
            done = pq.read_table(target, columns=["keep", "reject_reason"]).to_pylist()
            counts.update("kept" if d["keep"] else d["reject_reason"] for d in done)
            bar.update(len(done))
        else:
            todo.append((str(shard), str(target)))
    workers = min(len(todo), cfg.workers or os.cpu_count() or 1)
    jobs = [[str(store.root), shard, target, asdict(cfg)] for shard, target in todo]
    if workers <= 1:
        results = (filter_shard(*job) for job in jobs)
    else:
        from concurrent.futures import ThreadPoolExecutor

        from r1data.filters.bounded import BoundedPool

        # Each worker checks math in-process-bounded with one helper, so cores are not
        # oversubscribed.
        pool = BoundedPool("r1data.filters.run:filter_shard", workers,
                           env={"R1DATA_MATH_WORKERS": "1"})
        ex = ThreadPoolExecutor(max_workers=workers)
        results = ex.map(lambda job: pool.call_or_raise(job, timeout=24 * 3600), jobs)
    try:
        for got in results:
            counts.update(got)
            rep.total += sum(got.values())
            bar.update(sum(got.values()))
            bar.set_postfix(kept=counts["kept"])
    finally:
        if workers > 1:
            ex.shutdown(cancel_futures=True)
            pool.close()
        bar.close()
    rep.total = sum(counts.values())
    rep.kept = counts.pop("kept", 0)
    rep.dropped = dict(counts.most_common())
    store.write_manifest(f"filter-{run}", manifest | {"status": "complete",
                                                      "counts": asdict(rep)})
    return rep
