"""Selection: of the samples that passed, keep at most K per prompt, without duplicates.

Runs in DuckDB over the store's views; only the near-duplicate passes (shingle Jaccard within
one prompt's few kept samples, then MinHash-LSH over the kept samples of all prompts) and
decontamination look at text in Python.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa

from r1data import neardup
from r1data.errors import ConfigError, InputError
from r1data.store import CURATED_SCHEMA, SAMPLE_CLUSTERS_SCHEMA, Store, check_name

POLICIES = ("shortest", "random", "diverse")


@dataclass
class SelectConfig:
    k: int = 4  # samples kept per prompt (R1 kept several correct responses per prompt)
    policy: Literal["shortest", "random", "diverse"] = "shortest"
    min_pass_rate: float = 0.0  # keep prompts whose pass rate over their n samples is in
    max_pass_rate: float = 1.0  # [min, max]; e.g. 0.1-0.9 for RL-ready difficulty
    near_dup_threshold: float = 0.9  # Jaccard of word 5-gram shingles; >= means duplicate
    # Kept samples of different prompts that near-duplicate each other (MinHash-LSH, estimated
    # Jaccard of 5-grams >= cross_prompt_threshold): "count" records their clusters
    # (sample_clusters), "drop" also leaves all but the first of each cluster out.
    cross_prompt: Literal["count", "drop"] = "count"
    cross_prompt_threshold: float = neardup.SAMPLES.threshold
    decontaminate: list[str] = field(default_factory=list)  # eval files (JSONL/Parquet/text)
    ngram: int = 8  # shared word n-gram that marks a prompt contaminated
    seed: int = 0

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown policy {self.policy!r} (one of {', '.join(POLICIES)})")
        if not 0 <= self.min_pass_rate <= self.max_pass_rate <= 1:
            raise ConfigError("pass-rate band must satisfy 0 <= min <= max <= 1")
        if self.k < 1:
            raise ConfigError("k must be at least 1")
        if self.cross_prompt not in ("count", "drop"):
            raise ConfigError(f"unknown cross_prompt {self.cross_prompt!r} (count or drop)")
        if not 0 < self.cross_prompt_threshold <= 1:
            raise ConfigError("cross_prompt_threshold must be in (0, 1]")


@dataclass
class SelectReport:
    curated: str
    run: str
    candidates: int = 0  # samples that passed the filters
    prompts_in: int = 0
    dropped_band: int = 0  # prompts outside the pass-rate band
    dropped_contaminated: int = 0  # prompts sharing an n-gram with an eval set
    dropped_exact_dup: int = 0
    dropped_near_dup: int = 0
    dropped_over_k: int = 0
    near_dup_cross_prompt: int = 0  # kept samples near-duplicating one of another prompt
    near_dup_clusters: int = 0  # clusters of such samples (sample_clusters view)
    dropped_cross_prompt: int = 0  # of them left out (cross_prompt = drop)
    kept: int = 0
    prompts_out: int = 0


_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _eval_texts(path: str) -> list[str]:
    from r1data.prompts import read_records

    p = Path(path)
    if p.suffix.lower() in (".txt", ".md"):
        return [line for line in p.read_text(errors="replace").splitlines() if line.strip()]
    texts = []
    for _, rec in read_records(p):
        texts.extend(str(v) for v in rec.values() if isinstance(v, str))
    return texts


def contaminated(problems: dict[str, str], eval_files: list[str], n: int) -> set[str]:
    """prompt_ids whose problem shares a word n-gram with any text of the eval files."""
    grams: set[tuple[str, ...]] = set()
    for f in eval_files:
        if not Path(f).exists():
            raise InputError("no such evaluation file", path=f)
        for t in _eval_texts(f):
            grams |= _ngrams(_words(t), n)
    return {pid for pid, text in problems.items() if _ngrams(_words(text), n) & grams}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


def select(store: Store, run: str, name: str, cfg: SelectConfig | None = None) -> SelectReport:
    """Write curated/<name>/ from the kept samples of a filtered run; returns the counts."""
    from r1data import query

    cfg = cfg or SelectConfig()
    check_name("curated", name)
    check_name("run", run)
    rep = SelectReport(curated=name, run=run)
    con = query.connect(store)
    if con.sql(f"SELECT count(*) FROM verdicts WHERE run = '{run}'").fetchall()[0][0] == 0:
        raise InputError(f"run {run!r} has no verdicts: run `r1data filter` first",
                         path=str(store.root))
    # Candidates: kept samples, with their prompt's pass rate over all its samples.
    rows = con.sql(f"""
        WITH stats AS (
            SELECT prompt_id, n_correct / n AS pass_rate FROM prompt_stats WHERE run = '{run}')
        SELECT s.prompt_id, s.sample_idx, s.completion, s.num_tokens, st.pass_rate, p.problem,
               md5(regexp_replace(trim(s.completion), '\\s+', ' ', 'g')) AS text_hash,
               hash(s.prompt_id, s.sample_idx, {int(cfg.seed)}) AS shuffle
        FROM samples AS s
        JOIN verdicts AS v USING (run, prompt_id, sample_idx)
        JOIN stats AS st USING (prompt_id)
        JOIN prompts AS p USING (prompt_id)
        WHERE s.run = '{run}' AND v.keep
        ORDER BY s.prompt_id, s.num_tokens, s.sample_idx
    """).pl()
    rep.candidates = rows.height
    by_prompt: dict[str, list[dict]] = {}
    for r in rows.iter_rows(named=True):
        by_prompt.setdefault(r["prompt_id"], []).append(r)
    rep.prompts_in = len(by_prompt)
    dirty = contaminated({p: v[0]["problem"] for p, v in by_prompt.items()}, cfg.decontaminate,
                         cfg.ngram) if cfg.decontaminate else set()
    chosen, texts = [], []
    for pid, cands in by_prompt.items():
        if pid in dirty:
            rep.dropped_contaminated += 1
            continue
        if not cfg.min_pass_rate <= cands[0]["pass_rate"] <= cfg.max_pass_rate:
            rep.dropped_band += 1
            continue
        if cfg.policy == "random":
            cands = sorted(cands, key=lambda r: r["shuffle"])
        seen_hash, uniq = set(), []
        for r in cands:  # exact duplicates (whitespace-normalised)
            if r["text_hash"] in seen_hash:
                rep.dropped_exact_dup += 1
                continue
            seen_hash.add(r["text_hash"])
            uniq.append(r | {"shingles": _ngrams(_words(r["completion"]), 5)})
        kept: list[dict] = []
        pool = uniq
        while pool and len(kept) < cfg.k:
            if cfg.policy == "diverse" and kept:  # farthest from what is already kept
                pool.sort(key=lambda r: max(_jaccard(r["shingles"], k["shingles"])
                                            for k in kept))
            r = pool.pop(0)
            if any(_jaccard(r["shingles"], k["shingles"]) >= cfg.near_dup_threshold
                   for k in kept):
                rep.dropped_near_dup += 1
                continue
            kept.append(r)
        rep.dropped_over_k += len(pool)
        chosen.extend({"curated": name, "run": run, "prompt_id": pid,
                       "sample_idx": r["sample_idx"]} for r in kept)
        texts.extend(r["completion"] for r in kept)
    chosen, clustered = _cross_prompt(chosen, texts, cfg, rep)
    rep.prompts_out = len({r["prompt_id"] for r in chosen})
    rep.kept = len(chosen)
    with store.lock("select", name):  # a reselect replaces the set as a whole
        store.replace_part("curated", name,
                           pa.Table.from_pylist(chosen, schema=CURATED_SCHEMA),
                           metadata={"r1data_select": asdict(cfg)})
        store.replace_part("sample_clusters", name,
                           pa.Table.from_pylist(clustered, schema=SAMPLE_CLUSTERS_SCHEMA))
        store.write_manifest("select", name, {
            "curated": name, "run": run, "config": asdict(cfg), "counts": asdict(rep),
            "created_at": dt.datetime.now(dt.UTC).isoformat()})
    return rep


def _cross_prompt(chosen: list[dict], texts: list[str], cfg: SelectConfig, rep: SelectReport
                  ) -> tuple[list[dict], list[dict]]:
    """(the set, sample_clusters rows): clusters of kept samples from different prompts; with
    cross_prompt = drop only each cluster's first sample (in prompt order) stays."""
    nd = neardup.NearDupConfig(threshold=cfg.cross_prompt_threshold,
                               ngram=neardup.SAMPLES.ngram)
    members = neardup.clusters(texts, nd, groups=[r["prompt_id"] for r in chosen])
    drop = cfg.cross_prompt == "drop"
    rows, dropped = [], set()
    for m in members:
        r, c = chosen[m.index], chosen[m.cluster]
        dup = m.index != m.cluster
        rows.append({**r, "cluster": f"{c['prompt_id']}/{c['sample_idx']}",
                     "similarity": m.similarity, "dropped": drop and dup})
        if dup:
            rep.near_dup_cross_prompt += 1
            if drop:
                dropped.add(m.index)
    rep.near_dup_clusters = sum(m.index == m.cluster for m in members)
    rep.dropped_cross_prompt = len(dropped)
    return [r for i, r in enumerate(chosen) if i not in dropped], rows


def report_json(rep: SelectReport) -> str:
    return json.dumps(asdict(rep))
