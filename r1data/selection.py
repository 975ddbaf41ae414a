"""Selection: of the samples that passed, keep at most K per prompt, without duplicates.

Decided in DuckDB over the store's views (ids, pass rates, lengths, where each sample sits);
only the duplicate passes (exact, then shingle Jaccard within one prompt's few kept samples,
then MinHash-LSH over the kept samples of all prompts) and decontamination look at text, read a
batch of prompts at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
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


def words(text: str) -> list[str]:
    """Lower-cased word tokens: what the n-gram tests (near duplicates, leaks) compare."""
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """A text's word 5-grams, the unit near-duplicate removal compares by Jaccard."""
    return ngrams(words(text), n)


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
            grams |= ngrams(words(t), n)
    return {pid for pid, text in problems.items() if ngrams(words(text), n) & grams}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


def dedup_counts(texts: list[str], threshold: float) -> tuple[int, int, int]:
    """(exact duplicates, near duplicates, distinct) of texts taken in order with no limit on K:
    a text is an exact duplicate when it equals an earlier one up to whitespace, a near
    duplicate when its shingles' Jaccard with a distinct one before reaches threshold. The
    harvest's funnel and the adaptive "enough" stop count so, as `_keep` drops them."""
    keys, kept, exact, near = set(), [], 0, 0
    for text in texts:
        key = text_key(text)
        if key in keys:
            exact += 1
            continue
        keys.add(key)
        grams = shingles(text)
        if any(jaccard(grams, g) >= threshold for g in kept):
            near += 1
            continue
        kept.append(grams)
    return exact, near, len(kept)


BATCH_CHARS = 4_000_000  # completion text read at a time (~150 R1 traces of 26k): bounds
# select's memory by a batch, not by the run (the decisions hold ids and signatures only)

# Exact duplicates are texts equal after DuckDB's trim (Unicode space separators) with runs of
# \s (RE2's [\t\n\f\r ]) made one space, as select's SQL had it: md5(regexp_replace(trim(..))).
_ZS = " \xa0\u1680" + "".join(map(chr, range(0x2000, 0x200b))) + "\u202f\u205f\u3000"  # Zs


def text_key(text: str) -> bytes:
    """The digest two samples share when they are the same text up to whitespace."""
    t = text.strip(_ZS)
    for c in "\t\n\f\r":  # str.replace, not a regex: a trace is 20-100k characters
        t = t.replace(c, " ")
    while "  " in t:
        t = t.replace("  ", " ")
    return hashlib.md5(t.encode()).digest()


@dataclass
class _Cand:
    sample_idx: int
    pass_rate: float
    shuffle: int
    shard: int  # index into the run's sample shards
    row: int  # row number in that shard


def _candidates(con, shards: list[Path], run: str, seed: int) -> dict[str, list[_Cand]]:
    """Kept samples by prompt (prompt_id order; within a prompt, shortest first), with their
    prompt's pass rate over all its samples and where each sits: ids and numbers, no text."""
    con.read_parquet([str(p) for p in shards], union_by_name=True, filename=True,
                     file_row_number=True).create_view("run_samples")
    index = {str(p): i for i, p in enumerate(shards)}
    rows = con.sql(f"""
        WITH stats AS (
            SELECT prompt_id, n_correct / n AS pass_rate FROM prompt_stats WHERE run = '{run}')
        SELECT s.prompt_id, s.sample_idx, st.pass_rate,
               hash(s.prompt_id, s.sample_idx, {int(seed)}) AS shuffle,
               s.filename, s.file_row_number
        FROM run_samples AS s
        JOIN verdicts AS v USING (run, prompt_id, sample_idx)
        JOIN stats AS st USING (prompt_id)
        JOIN prompts AS p USING (prompt_id)
        WHERE s.run = '{run}' AND v.keep
        ORDER BY s.prompt_id, s.num_tokens, s.sample_idx
    """).fetchall()
    by_prompt: dict[str, list[_Cand]] = {}
    for pid, idx, rate, shuffle, fname, row in rows:
        by_prompt.setdefault(pid, []).append(_Cand(idx, rate, shuffle, index[fname], row))
    return by_prompt


def _chunks(prompts: list[tuple[str, list[_Cand]]], shards: list[Path]
            ) -> Iterator[list[tuple[str, list[_Cand]]]]:
    """Prompts in the order their samples sit in the shards, in groups of about BATCH_CHARS of
    completion (rows_per_batch): a group's text is read at once, each row group about once."""
    from r1data.store import rows_per_batch

    budget = rows_per_batch(shards, BATCH_CHARS)
    group: list[tuple[str, list[_Cand]]] = []
    size = 0
    for item in sorted(prompts, key=lambda it: min((c.shard, c.row) for c in it[1])):
        if group and size + len(item[1]) > budget:
            yield group
            group, size = [], 0
        group.append(item)
        size += len(item[1])
    if group:
        yield group


def _texts(shards: list[Path], group: list[tuple[str, list[_Cand]]]) -> dict[tuple, str]:
    """(shard, row) -> completion of every candidate of a group of prompts."""
    from r1data.store import take

    got = take(shards, ((c.shard, c.row) for _, cands in group for c in cands), ["completion"])
    return {k: v["completion"] for k, v in got.items()}


def _keep(cands: list[_Cand], texts: dict[tuple, str], cfg: SelectConfig, rep: SelectReport
          ) -> list[_Cand]:
    """One prompt's kept samples, in the order they were kept: exact duplicates out, then the
    policy's order, each kept unless it near-duplicates one kept before, up to k."""
    if cfg.policy == "random":
        cands = sorted(cands, key=lambda c: c.shuffle)
    seen, pool = set(), []
    for c in cands:  # exact duplicates (whitespace-normalised)
        key = text_key(texts[c.shard, c.row])
        if key in seen:
            rep.dropped_exact_dup += 1
            continue
        seen.add(key)
        pool.append(c)
    grams: dict[int, set] = {}  # shingles, made when first compared

    def grams_of(c: _Cand) -> set:
        if id(c) not in grams:
            grams[id(c)] = shingles(texts[c.shard, c.row])
        return grams[id(c)]

    kept: list[_Cand] = []
    while pool and len(kept) < cfg.k:
        if cfg.policy == "diverse" and kept:  # farthest from what is already kept
            pool.sort(key=lambda c: max(jaccard(grams_of(c), grams_of(k)) for k in kept))
        c = pool.pop(0)
        if any(jaccard(grams_of(c), grams_of(k)) >= cfg.near_dup_threshold for k in kept):
            rep.dropped_near_dup += 1
            continue
        kept.append(c)
    rep.dropped_over_k += len(pool)
    return kept


def select(store: Store, run: str, name: str, cfg: SelectConfig | None = None) -> SelectReport:
    """Write curated/<name>/ from the kept samples of a filtered run; returns the counts.

    DuckDB decides over ids, pass rates and positions; the text is then read a group of
    prompts at a time (BATCH_CHARS) for the duplicate checks, and only each kept sample's
    MinHash signature is held for the cross-prompt pass: memory follows the batch and the
    number of samples, not the length of their traces."""
    from r1data import query

    cfg = cfg or SelectConfig()
    check_name("curated", name)
    check_name("run", run)
    rep = SelectReport(curated=name, run=run)
    con = query.connect(store)
    if con.sql(f"SELECT count(*) FROM verdicts WHERE run = '{run}'").fetchall()[0][0] == 0:
        raise InputError(f"run {run!r} has no verdicts: run `r1data filter` first",
                         path=str(store.root))
    shards = store.shards("samples", run)
    by_prompt = _candidates(con, shards, run, cfg.seed)
    rep.candidates = sum(len(v) for v in by_prompt.values())
    rep.prompts_in = len(by_prompt)
    dirty: set[str] = set()
    if cfg.decontaminate:
        con.register("candidate_ids", pa.table({"prompt_id": list(by_prompt)}))
        problems = dict(con.sql("SELECT prompt_id, problem FROM prompts "
                                "JOIN candidate_ids USING (prompt_id)").fetchall())
        dirty = contaminated(problems, cfg.decontaminate, cfg.ngram)
    todo = []
    for pid, cands in by_prompt.items():
        if pid in dirty:
            rep.dropped_contaminated += 1
        elif not cfg.min_pass_rate <= cands[0].pass_rate <= cfg.max_pass_rate:
            rep.dropped_band += 1
        else:
            todo.append((pid, cands))
    kept: dict[str, list[tuple[_Cand, object]]] = {}  # prompt -> (sample, its MinHash)
    for group in _chunks(todo, shards):
        texts = _texts(shards, group)
        for pid, cands in group:  # signatures a prompt at a time: shingles are ~8x the text
            picked = _keep(cands, texts, cfg, rep)
            sigs = neardup.signatures([texts[c.shard, c.row] for c in picked])
            kept[pid] = list(zip(picked, sigs, strict=True))
        del texts
    chosen, hashes = [], []
    for pid in by_prompt:  # prompt_id order, as the set and its clusters are written
        for c, sig in kept.get(pid, []):
            chosen.append({"curated": name, "run": run, "prompt_id": pid,
                           "sample_idx": c.sample_idx})
            hashes.append(sig)
    chosen, clustered = _cross_prompt(chosen, hashes, cfg, rep)
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


def _cross_prompt(chosen: list[dict], hashes: list, cfg: SelectConfig, rep: SelectReport
                  ) -> tuple[list[dict], list[dict]]:
    """(the set, sample_clusters rows): clusters of kept samples from different prompts; with
    cross_prompt = drop only each cluster's first sample (in prompt order) stays."""
    nd = neardup.NearDupConfig(threshold=cfg.cross_prompt_threshold,
                               ngram=neardup.SAMPLES.ngram)
    members = neardup.cluster(hashes, nd, groups=[r["prompt_id"] for r in chosen])
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
