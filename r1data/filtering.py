"""`r1data filter`: verdicts for every sample of a run, one verdict shard per sample shard.

Each process streams its sample shard (or slice of one) in row batches of at most `batch_rows`
samples and `batch_chars` characters, so its memory is bounded by the batch, not by shard size x
trace length (R1 traces run to 100k characters); only the verdicts, without text, are held for the
whole shard, and written atomically. A rerun skips shards whose verdicts for the same settings
exist, so a killed job resumes. Math is checked once per distinct (gold, extracted answer) in a
process pool that bounds every check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import queue
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from r1data.errors import ConfigError, InputError
from r1data.filters.registry import CHECKS, OPT_IN_CHECKS, reject_reason
from r1data.filters.verdicts import MIN_CONSISTENCY
from r1data.store import VERDICTS_SCHEMA, Store, check_name, write_parquet_atomic, write_part


@dataclass
class FilterConfig:
    checks: list[str] = field(default_factory=lambda: list(CHECKS))  # which decide `keep`
    target_language: str = "en"  # R1 §2.3.2: answer and chain of thought in the user's language
    min_consistency: float = MIN_CONSISTENCY  # share of target-language words in the CoT
    timeout: float = 5.0  # seconds per symbolic or code check
    workers: int | None = None  # processes for math checks (default: all cores)
    batch_rows: int = 4096  # samples filtered at a time per process: bounds memory
    batch_chars: int = 1_000_000  # and their characters (~40 R1 traces of 26k): bounds it
    judge: dict | None = None  # the judge check's JudgeConfig fields (model, engine, ...)

    def __post_init__(self):
        unknown = [c for c in self.checks if c not in (*CHECKS, *OPT_IN_CHECKS)]
        if unknown:
            raise ConfigError(f"unknown filter(s) {unknown}; known: "
                              f"{', '.join((*CHECKS, *OPT_IN_CHECKS))}")
        if self.batch_rows < 1 or self.batch_chars < 1:
            raise ConfigError(f"batch_rows and batch_chars must be >= 1, got "
                              f"{self.batch_rows}, {self.batch_chars}")

    def run_id(self) -> str:
        """Hash of the settings that decide verdicts (not of processes or batch sizes)."""
        blob = json.dumps({k: v for k, v in asdict(self).items() if k not in _NOT_VERDICT},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


_NOT_VERDICT = ("workers", "batch_rows", "batch_chars")  # how, not what: same verdicts


@dataclass
class FilterReport:
    run: str
    filter_run: str
    shards: int = 0
    shards_done_before: int = 0
    total: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    judge: dict[str, int] = field(default_factory=dict)  # judged, cached, failed, out_of_scope


def verdict_rows(rows: list[dict], cfg: FilterConfig, filter_run: str) -> list[dict]:
    """The verdict of each sample; reject_reason is the first failing check, in R1's order.

    Every check is a function of r1data.filters.verdicts, the same the GRPO rewards call."""
    from r1data.filters import verdicts as V

    now = dt.datetime.now(dt.UTC)
    completions = [r["completion"] for r in rows]
    finals, answers = V.final_answers(completions, [r["final"] for r in rows])
    correct = V.correct_batch(  # also without the check: pass rates are reported
        completions, [r["gold"] for r in rows], [r["domain"] for r in rows], answers=answers,
        metas=[r["meta"] for r in rows], tests=[r["tests"] for r in rows],
        problems=[r.get("problem") for r in rows],
        timeout=cfg.timeout, workers=cfg.workers)
    formats = V.format_batch(completions, [r["finish_reason"] for r in rows],
                             [r["domain"] for r in rows])
    langs = V.language_batch(finals, [r["reasoning"] for r in rows], cfg.target_language,
                             min_consistency=cfg.min_consistency)
    out = []
    for r, ok, answer, (fmt_ok, fmt_reason, rep_score), (lang, prob, cons, lang_reason) in zip(
            rows, correct, answers, formats, langs, strict=True):
        judged = ok is None and r.get("judge_model")  # the judge's verdict decides, below
        failed = {"format": None if fmt_ok else fmt_reason,
                  "correct": None if ok is True or judged
                  else ("incorrect" if ok is False else "unverified"),
                  "language": lang_reason,
                  "judge": r.get("judge_reason")}  # judge_rejected, or how the judge failed
        reason = reject_reason(failed, (*cfg.checks, "judge"))
        out.append({
            "run": r["run"], "prompt_id": r["prompt_id"], "sample_idx": r["sample_idx"],
            "filter_run": filter_run, "created_at": now, "answer": answer,
            "correct": ok, "format_ok": fmt_ok, "format_reason": fmt_reason,
            "repetition": rep_score,
            "lang": lang, "lang_prob": prob, "lang_consistency": cons,
            "keep": reason is None, "reject_reason": reason,
            **{c: r.get(c) for c in ("judge_verdict", "judge_score", "judge_model",
                                     "judge_rationale")},
        })
    return out


_PROMPTS: dict[str, dict[str, dict]] = {}  # per worker process: store root -> prompts


def _prompts_of(store_root: str) -> dict[str, dict]:
    """prompt_id -> the columns a verdict needs (the problem: a countdown task without meta is
    read from it, as the reward does), read once per process with ParquetFile:
    pq.read_table would import pyarrow.dataset in every worker."""
    import pyarrow.parquet as pq

    if store_root not in _PROMPTS:
        cols = ["prompt_id", "problem", "domain", "answer", "tests", "meta"]
        tables = [pq.ParquetFile(p).read(columns=cols)
                  for p in Store(store_root, create=False).shards("prompts")]
        rows = pa.concat_tables(tables, promote_options="default").to_pylist() if tables else []
        _PROMPTS[store_root] = {r["prompt_id"]: r for r in rows}
    return _PROMPTS[store_root]


_SAMPLE_COLUMNS = ["run", "prompt_id", "sample_idx", "completion", "reasoning", "final",
                   "finish_reason"]
_READ_ROWS = 32  # Parquet is decoded this many rows at a time, then grouped into batches


def sample_batches(shard: str, rows: list[int] | None, batch_rows: int, batch_chars: int
                   ) -> Iterator[list[dict]]:
    """The shard's samples (or its rows [start, stop)) as lists of at most batch_rows rows
    and about batch_chars characters of completion (a batch holds at least one row), read a
    few rows at a time: the shard is never in memory whole."""
    import pyarrow.parquet as pq

    start, stop = rows if rows is not None else (0, None)
    pf = pq.ParquetFile(shard, buffer_size=1 << 20, pre_buffer=False)  # not a whole chunk
    groups, first, at = [], [], 0  # row groups overlapping the slice, and their first row
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if at + n > start and (stop is None or at < stop):
            groups.append(g)
            first.append(at)
        at += n
    pos = first[0] if first else 0
    batch: list[dict] = []
    chars = 0
    for rb in pf.iter_batches(batch_size=_READ_ROWS, row_groups=groups,
                              columns=_SAMPLE_COLUMNS):
        lo, hi = max(start - pos, 0), rb.num_rows if stop is None else min(stop - pos,
                                                                          rb.num_rows)
        pos += rb.num_rows
        for r in rb.slice(lo, max(0, hi - lo)).to_pylist():
            size = len(r["completion"] or "")
            if batch and (len(batch) >= batch_rows or chars + size > batch_chars):
                yield batch
                batch, chars = [], 0
            batch.append(r)
            chars += size
        if stop is not None and pos >= stop:
            break
    if batch:
        yield batch


def filter_shard(store_root: str, shard: str, target: str, cfg: dict,
                 rows: list[int] | None = None) -> dict[str, int]:
    """One sample shard (or its rows [start, stop)) -> its verdicts at target; returns counts
    by outcome. Runs in a worker, one row batch at a time. A slice is a part file, joined by
    the caller."""
    fc = FilterConfig(**cfg)
    fid = fc.run_id()
    prompts = _prompts_of(store_root)
    tables, counts = [], Counter()
    for batch in sample_batches(shard, rows, fc.batch_rows, fc.batch_chars):
        items = []
        for s in batch:
            p = prompts.get(s["prompt_id"])
            if p is None:
                raise InputError(f"sample of unknown prompt {s['prompt_id']}", path=shard)
            items.append(s | {"domain": p["domain"], "gold": p["answer"], "tests": p["tests"],
                              "meta": p["meta"], "problem": p["problem"]})
        if "judge" in fc.checks:
            from r1data.judging import with_judgements

            items = with_judgements(store_root, items, fc.judge)
        done = verdict_rows(items, fc, fid)
        del items  # before the next batch is read: one batch of text at a time
        counts.update("kept" if d["keep"] else d["reject_reason"] for d in done)
        tables.append(pa.Table.from_pylist(done, schema=VERDICTS_SCHEMA))
    table = pa.concat_tables(tables) if tables else VERDICTS_SCHEMA.empty_table()
    if rows is None:
        write_parquet_atomic(table, Path(target), metadata={"r1data_filter": cfg})
    else:  # read only after this call returns; the joined shard is written atomically
        write_part(table, Path(target))
    return dict(counts)


MIN_ROWS_PER_PROCESS = 4096  # a worker costs ~0.4 s of CPU to start (Python, pyarrow, the
# pandas pyarrow imports, fastText): by default a run gets no more processes than it has
# 4096-row lots, so a small run stays in this process
MIN_BYTES_PER_PROCESS = 2 << 20  # or lots of 2 MiB of completion text: the same work in
# long R1 traces (4096 x ~500 characters), where 4096 rows are 100 MB and minutes of work


def _text_bytes(meta) -> int:
    """Uncompressed bytes of a sample shard's completion column, from its Parquet footer."""
    return sum(rg.column(c).total_uncompressed_size
               for rg in (meta.row_group(g) for g in range(meta.num_row_groups))
               for c in range(rg.num_columns) if rg.column(c).path_in_schema == "completion")


SLICES_PER_WORKER = 4  # with fewer shards than this per process, shards are cut into slices
MIN_SLICE_ROWS = 1024  # below this, start-up per job outweighs the better balance


def _slices(rows: int, total: int, workers: int) -> list[list[int]] | None:
    """Row ranges for one shard of `rows`, or None to filter it whole: a run of few shards
    is cut so that every process has work until the end."""
    if workers <= 1:
        return None
    size = max(MIN_SLICE_ROWS, -(-total // (workers * SLICES_PER_WORKER)))
    k = min(rows // MIN_SLICE_ROWS, round(rows / size))
    if k <= 1:
        return None
    bounds = [rows * i // k for i in range(k + 1)]
    return [[a, b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _run_jobs(jobs: list[list], workers: int) -> Iterator[tuple[int, dict[str, int]]]:
    """(job index, filter_shard result) as jobs finish. This process takes jobs too, beside
    workers - 1 subprocesses: it starts at once, while they import and load models."""
    if workers <= 1:
        yield from ((i, filter_shard(*job)) for i, job in enumerate(jobs))
        return
    from concurrent.futures import ThreadPoolExecutor

    from r1data.filters.bounded import BoundedPool

    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(jobs)):
        todo.put(i)
    done: queue.SimpleQueue[tuple[int, bool, object]] = queue.SimpleQueue()

    def drain(call: Callable[[list], dict[str, int]]) -> None:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((i, True, call(jobs[i])))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                done.put((i, False, e))
                return

    # Each subprocess checks math with one helper, so cores are not oversubscribed.
    pool = BoundedPool("r1data.filtering:filter_shard", workers - 1,
                       env={"R1DATA_MATH_WORKERS": "1"})
    remote = lambda job: pool.call_or_raise(job, timeout=24 * 3600)  # noqa: E731
    ex = ThreadPoolExecutor(max_workers=workers)
    try:
        for _ in range(workers - 1):
            ex.submit(drain, remote)
        ex.submit(drain, lambda job: filter_shard(*job))
        for _ in jobs:
            i, ok, value = done.get()
            if not ok:
                raise value
            yield i, value
    finally:
        while True:  # on error: no new jobs; running ones finish
            try:
                todo.get_nowait()
            except queue.Empty:
                break
        pool.close()
        ex.shutdown(wait=True, cancel_futures=True)


class _NoBar:
    """The part of tqdm the runner uses, doing nothing: no tqdm import without a bar."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, desc: str, show: bool):
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", desc=desc)


def filter_run(store: Store, run: str, cfg: FilterConfig | None = None, *,
               progress: bool = True) -> FilterReport:
    """Write verdicts/<run>/ for every sample shard that has none for these settings.

    Shards are spread over this process and worker processes (all cores by default), one
    shard each at a time; a run of few shards is cut into slices so every core has work.
    """
    import pyarrow.parquet as pq

    cfg = cfg or FilterConfig()
    check_name("run", run)
    fid = cfg.run_id()
    shards = store.shards("samples", run)
    if not shards:
        raise InputError(f"run {run!r} has no samples (run `r1data generate` first)",
                         path=str(store.root))
    rep = FilterReport(run=run, filter_run=fid, shards=len(shards))
    manifest = {"run": run, "filter_run": fid, "config": asdict(cfg), "status": "running"}
    store.write_manifest("filter", run, manifest)
    counts: Counter[str] = Counter()
    metas = {s: pq.ParquetFile(s).metadata for s in shards}
    sizes = {s: m.num_rows for s, m in metas.items()}
    bar = _progress_bar(sum(sizes.values()), f"filter {run}", progress)
    todo = []
    for shard in shards:
        target = store.verdict_shard(run, shard, fid)
        if target.exists():  # done by an earlier (maybe killed) invocation
            rep.shards_done_before += 1
            done = pq.ParquetFile(target).read(columns=["keep", "reject_reason"]).to_pylist()
            counts.update("kept" if d["keep"] else d["reject_reason"] for d in done)
            bar.update(len(done))
        else:
            todo.append((shard, target))
    total = sum(sizes[s] for s, _ in todo)
    lots = max(total // MIN_ROWS_PER_PROCESS,
               sum(_text_bytes(metas[s]) for s, _ in todo) // MIN_BYTES_PER_PROCESS)
    procs = cfg.workers or min(os.cpu_count() or 1, max(1, lots))
    jobs: list[list] = []
    owner: dict[int, Path] = {}  # job index of a slice -> the verdict shard it is part of
    parts: dict[Path, list[Path]] = {}
    for shard, target in todo:
        cut = _slices(sizes[shard], total, procs)
        if cut is None:
            jobs.append([str(store.root), str(shard), str(target), asdict(cfg)])
            continue
        parts[target] = store.slice_parts(target, [a for a, _ in cut])
        for part, rows in zip(parts[target], cut, strict=True):
            owner[len(jobs)] = target
            jobs.append([str(store.root), str(shard), str(part), asdict(cfg), rows])
    pending = {t: len(ps) for t, ps in parts.items()}
    _PROMPTS.pop(str(store.root), None)  # prompts may have been added since the last run
    if "judge" in cfg.checks and todo:  # one judge engine for the run, before the workers
        from r1data import judging

        rep.judge = judging.judge_pass(store, [s for s, _ in todo], cfg.judge)
        judging.forget(str(store.root))
    try:
        for i, got in _run_jobs(jobs, min(procs, len(jobs))):
            counts.update(got)
            bar.update(sum(got.values()))
            bar.set_postfix(kept=counts["kept"])
            if i in owner:  # a slice: the shard is written when its last slice is in
                pending[owner[i]] -= 1
                if not pending[owner[i]]:
                    store.join_parts(parts[owner[i]], owner[i], {"r1data_filter": asdict(cfg)})
    finally:
        bar.close()
    rep.total = sum(counts.values())
    rep.kept = counts.pop("kept", 0)
    rep.dropped = dict(counts.most_common())
    store.write_manifest("filter", run, manifest | {"status": "complete",
                                                    "counts": asdict(rep)})
    return rep
