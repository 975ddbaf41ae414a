"""The sample store: a directory of Parquet tables, written atomically and never rewritten in place.

Layout (all paths relative to the store root, so the SQL in `sql/` runs from inside it):
  prompts/part-*.parquet            one row per prompt
  samples/<run>/shard-*.parquet     one row per completion
  verdicts/<run>/shard-*.parquet    one row per sample per filter run
  curated/<name>/part-*.parquet     selected samples
  runs/<kind>/<name>.json           manifests, one folder a kind (generate, filter, select, ...)
  runs/.locks/<kind>-<name>.lock    writer locks (flock)
Every table directory holds a 0-row `_schema.parquet` so that globs always match. Only this
module spells these names: other modules ask the store (`shards`, `shard_names`, manifests).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from r1data.errors import StoreError

PROMPTS_SCHEMA = pa.schema([
    ("prompt_id", pa.string()),
    ("source", pa.string()),
    ("problem", pa.string()),
    ("answer", pa.string()),
    ("domain", pa.string()),
    ("tests", pa.string()),  # JSON text: assert code or a list of {input, output} cases
    ("meta", pa.string()),  # JSON text
])

SAMPLES_SCHEMA = pa.schema([
    ("run", pa.string()),
    ("prompt_id", pa.string()),
    ("sample_idx", pa.int32()),
    ("completion", pa.string()),
    ("reasoning", pa.string()),
    ("final", pa.string()),
    ("num_tokens", pa.int32()),
    ("finish_reason", pa.string()),
    ("model", pa.string()),
    ("engine", pa.string()),
    ("temperature", pa.float32()),
    ("top_p", pa.float32()),
    ("max_tokens", pa.int32()),
    ("seed", pa.int64()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("round", pa.int16()),  # adaptive sampling's round (1, 2, ...); null: one full round
])

VERDICTS_SCHEMA = pa.schema([
    ("run", pa.string()),
    ("prompt_id", pa.string()),
    ("sample_idx", pa.int32()),
    ("filter_run", pa.string()),  # hash of the filter settings that produced the row
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("answer", pa.string()),  # extracted final answer (cons@k votes on it)
    ("correct", pa.bool_()),  # None: could not be verified (no gold, time limit)
    ("format_ok", pa.bool_()),
    ("format_reason", pa.string()),
    ("repetition", pa.float32()),
    ("lang", pa.string()),
    ("lang_prob", pa.float32()),
    ("lang_consistency", pa.float32()),
    ("keep", pa.bool_()),
    ("reject_reason", pa.string()),  # first failing check, snake_case
    # the judge check (r1data.filters.judge); null where it did not run (and in older rows)
    ("judge_verdict", pa.bool_()),
    ("judge_score", pa.float32()),  # in [0, 1]
    ("judge_model", pa.string()),
    ("judge_rationale", pa.string()),  # the judge's short reason, or why it failed
])

# The judge's cache: one row per judgement (key = hash of judge model, template, question,
# reference, answer), appended; rows with an error are failures a rerun retries.
JUDGEMENTS_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("judge_model", pa.string()),
    ("verdict", pa.bool_()),
    ("score", pa.float32()),
    ("rationale", pa.string()),
    ("error", pa.string()),  # judge_unparsable, judge_unreachable; null when judged
    ("created_at", pa.timestamp("us", tz="UTC")),
])

CURATED_SCHEMA = pa.schema([
    ("curated", pa.string()),
    ("run", pa.string()),
    ("prompt_id", pa.string()),
    ("sample_idx", pa.int32()),
])

# Near-duplicate clusters (r1data.neardup): prompts found at ingest (appended), and kept samples
# of different prompts found by a select (prompt_clusters, sample_clusters/<curated>/).
PROMPT_CLUSTERS_SCHEMA = pa.schema([
    ("prompt_id", pa.string()),
    ("cluster", pa.string()),  # prompt_id of the cluster's representative (the first seen)
    ("similarity", pa.float32()),  # estimated Jaccard to the representative
    ("created_at", pa.timestamp("us", tz="UTC")),
])

SAMPLE_CLUSTERS_SCHEMA = pa.schema([
    *CURATED_SCHEMA,  # the kept sample, as the curated set names it
    ("cluster", pa.string()),  # "<prompt_id>/<sample_idx>" of the representative
    ("similarity", pa.float32()),
    ("dropped", pa.bool_()),  # left out of the set (select's cross_prompt = drop)
])

TABLES = {
    "prompts": PROMPTS_SCHEMA,
    "samples": SAMPLES_SCHEMA,
    "verdicts": VERDICTS_SCHEMA,
    "curated": CURATED_SCHEMA,
    "prompt_clusters": PROMPT_CLUSTERS_SCHEMA,
    "sample_clusters": SAMPLE_CLUSTERS_SCHEMA,
    "judgements": JUDGEMENTS_SCHEMA,
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(kind: str, name: str) -> str:
    """Run and dataset names become directory names: keep them to a safe alphabet."""
    if not _NAME.match(name or ""):
        raise StoreError(f"{kind} name {name!r} must match [A-Za-z0-9][A-Za-z0-9_.-]*")
    return name


def os_error(path: Path, e: OSError) -> StoreError:
    """One line naming the path and the cause (errno name), for a write the OS refused."""
    name = errno.errorcode.get(e.errno or 0, "OSError")
    return StoreError(f"{path}: cannot write ({name}: {e.strerror or e})")


@contextlib.contextmanager
def write_boundary(path: Path, *tmps: Path) -> Iterator[None]:
    """The store's write boundary: an OSError (read-only store, full disk) becomes one
    StoreError line and the temp files are removed, so the store is left as it was."""
    try:
        yield
    except OSError as e:
        for t in tmps:
            with contextlib.suppress(OSError):
                t.unlink(missing_ok=True)
        raise os_error(path, e) from None


# Columns that hold long text (R1 traces run to 100k characters): never dictionary-encoded
# (distinct values: a dictionary only adds a copy), and the measure of a row group's size.
LONG_TEXT = frozenset({"completion", "reasoning", "final", "problem", "tests", "meta",
                       "rationale", "judge_rationale"})
ROW_GROUP_BYTES = 4 << 20  # of long text per row group (~160 traces of 26k characters):
# readers (DuckDB, pandas, datasets) decode a row group whole, so a shard of 64 prompts x 16
# long traces must not be one 27 MB group; short rows still get up to ROW_GROUP_ROWS a group
ROW_GROUP_ROWS = 1 << 17


def row_groups(table: pa.Table, max_bytes: int = ROW_GROUP_BYTES,
               max_rows: int = ROW_GROUP_ROWS) -> list[tuple[int, int]]:
    """[start, stop) of each row group: at most max_rows rows and, past its first row, at most
    max_bytes of long text, cut where the rows are (a long tail gets smaller groups)."""
    import numpy as np
    import pyarrow.compute as pc

    n = table.num_rows
    text = [c for c in table.column_names if c in LONG_TEXT]
    if not n or not text:
        return [(a, min(a + max_rows, n)) for a in range(0, n, max_rows)] or [(0, 0)]
    size = sum(np.asarray(pc.fill_null(pc.binary_length(table[c]), 0), dtype=np.int64)
               for c in text)
    cum = np.concatenate([[0], np.cumsum(size)])
    bounds, a = [], 0
    while a < n:
        b = int(np.searchsorted(cum, cum[a] + max_bytes, side="right")) - 1
        b = min(max(b, a + 1), a + max_rows, n)
        bounds.append((a, b))
        a = b
    return bounds


def _write_parquet(table: pa.Table, path: Path, compression: str) -> None:
    """Row groups bounded by row_groups, dictionaries only on the short columns."""
    short = [c for c in table.column_names if c not in LONG_TEXT]
    with pq.ParquetWriter(path, table.schema, compression=compression,
                          use_dictionary=short or False) as w:
        for a, b in row_groups(table):
            w.write_table(table.slice(a, b - a), row_group_size=max(b - a, 1))


def write_parquet_atomic(table: pa.Table, path: Path, metadata: dict | None = None) -> Path:
    """Temp file in the same directory, fsync, then rename: readers never see half a file."""
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta.update({k.encode(): json.dumps(v).encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with write_boundary(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _write_parquet(table, tmp, "zstd")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def write_part(table: pa.Table, part: Path) -> Path:
    """One slice of a shard (a path from Store.slice_parts), uncompressed: read back once by
    Store.join_parts, by the process that wrote none of it (so no Store is opened here)."""
    with write_boundary(part, part):
        _write_parquet(table, part, "none")
    return part


def read_rows(shard: Path, rows: Iterable[int], columns: list[str], batch_rows: int = 32
              ) -> Iterator[tuple[int, dict]]:
    """(row number, values) of the given rows of a shard, in row order, read `batch_rows` at
    a time from only the row groups that hold them: a stage that picked rows by id and
    position (DuckDB's file_row_number) reads their text without the shard in memory."""
    want = sorted(set(rows))
    if not want:
        return
    pf = pq.ParquetFile(shard, buffer_size=1 << 20, pre_buffer=False)  # not a whole chunk
    i, first = 0, 0
    for g in range(pf.metadata.num_row_groups):
        stop = first + pf.metadata.row_group(g).num_rows
        if want[i] < stop:
            at = first
            for rb in pf.iter_batches(batch_size=batch_rows, row_groups=[g], columns=columns):
                end, picked = at + rb.num_rows, []
                while i < len(want) and want[i] < end:
                    picked.append(want[i] - at)
                    i += 1
                if picked:
                    yield from zip((at + r for r in picked), rb.take(picked).to_pylist(),
                                   strict=True)
                at = end
                if i == len(want) or want[i] >= stop:
                    break
        if i == len(want):
            return
        first = stop


def take(shards: list[Path], where: Iterable[tuple[int, int]], columns: list[str]
         ) -> dict[tuple[int, int], dict]:
    """The values of rows picked by (index into `shards`, row number), read shard by shard
    with read_rows: one batch of a stage's rows, never the shards whole."""
    by_shard: dict[int, list[int]] = {}
    for s, r in where:
        by_shard.setdefault(s, []).append(r)
    return {(s, r): v for s, rows in sorted(by_shard.items())
            for r, v in read_rows(shards[s], rows, columns)}


def stream_rows(shards: list[Path], where: Iterable[tuple[int, int]], columns: list[str]
                ) -> Iterator[tuple[tuple[int, int], dict]]:
    """((index into `shards`, row number), values) of rows given in store order (shard by shard,
    rows ascending in a shard), each shard walked once with read_rows. A stage that reads a
    whole set this way, a batch at a time, decodes each row group once however many batches it
    spans; `take` a batch at a time re-reads the group a batch boundary cuts, and rows in any
    other order (by prompt id) make every batch decode groups of many shards for a few rows
    each, so the cost per row grew with the run. Memory: read_rows' small record batch."""
    from itertools import groupby

    for s, run in groupby(where, key=lambda w: w[0]):
        rows = [r for _, r in run]
        if any(b <= a for a, b in zip(rows, rows[1:], strict=False)):
            raise ValueError(f"stream_rows: rows of shard {s} are not in ascending order")
        for r, v in read_rows(shards[s], rows, columns):
            yield (s, r), v


def rows_per_batch(shards: list[Path], batch_bytes: int, column: str = "completion") -> int:
    """About how many rows hold batch_bytes of `column`, from the shards' Parquet footers
    (uncompressed sizes): the batch size of a stage that reads that column by position."""
    rows = size = 0
    for p in shards:
        meta = pq.ParquetFile(p).metadata
        rows += meta.num_rows
        size += sum(meta.row_group(g).column(c).total_uncompressed_size
                    for g in range(meta.num_row_groups) for c in range(meta.num_columns)
                    if meta.row_group(g).column(c).path_in_schema == column)
    return max(1, batch_bytes * rows // max(size, 1))


def write_json_atomic(obj: dict | list, path: Path) -> Path:
    """Manifests are JSON, replaced atomically like shards."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with write_boundary(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as fh:
            fh.write(json.dumps(obj, indent=2, default=str))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return path


MANIFEST_KINDS = ("generate", "filter", "select", "eval", "export", "teacher")


def _legacy_kind(stem: str, obj) -> tuple[str, str] | None:
    """(kind, name) of a manifest in the old flat layout (runs/<name>.json), told by what it
    holds, not by its name alone: `filter-t.json` may be the filter manifest of run t or, after
    the old collision, the generation manifest of run `filter-t`."""
    def strip(prefix: str = "", suffix: str = "") -> str:
        return stem[len(prefix):len(stem) - len(suffix)]

    if isinstance(obj, list) and stem.endswith(".teacher"):
        return "teacher", strip(suffix=".teacher")
    if not isinstance(obj, dict):
        return None
    if "filter_run" in obj and stem.startswith("filter-"):
        return "filter", strip("filter-")
    if "curated" in obj and "counts" in obj and stem.startswith("curated-"):
        return "select", strip("curated-")
    if "engine" in obj and "config" in obj:
        return "generate", stem
    if stem.endswith("-result") and "model" in obj:
        return "eval", strip(suffix="-result")
    return None


class Store:
    """A local sample store directory; created on first use, checked on every open."""

    def __init__(self, root: str | Path, *, create: bool = True):
        self.root = Path(root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: store path exists and is not a directory")
        if not self.root.exists():
            if not create:
                raise StoreError(f"{self.root}: no such store")
            with write_boundary(self.root):
                self.root.mkdir(parents=True)
        for name, schema in TABLES.items():
            # 0-row markers carry the current schema; one from an older r1data is replaced.
            marker = self.root / name / "_schema.parquet"
            if not marker.exists() or not pq.read_schema(marker).equals(schema):
                write_parquet_atomic(schema.empty_table(), marker)
        if not (self.root / "runs").is_dir():
            with write_boundary(self.root / "runs"):
                (self.root / "runs").mkdir()
        self._migrate_manifests()

    def _migrate_manifests(self) -> None:
        """Move manifests of the old flat layout into runs/<kind>/ once; a read-only store
        keeps them where they are and `read_manifest` finds them there."""
        for old in sorted((self.root / "runs").glob("*.json")):
            where = self._legacy(old)
            if where is None:
                continue
            new = self._manifest_file(*where)
            try:
                new.parent.mkdir(exist_ok=True)
                if new.exists():  # already migrated; the new layout wins
                    old.unlink()
                else:
                    os.replace(old, new)
            except OSError:
                return

    @staticmethod
    def _legacy(path: Path) -> tuple[str, str] | None:
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        where = _legacy_kind(path.name[:-len(".json")], obj)
        return where if where and _NAME.match(where[1]) else None

    # --- paths -------------------------------------------------------------------------------
    def table_dir(self, table: str, part: str | None = None) -> Path:
        d = self.root / table
        return d / check_name(table, part) if part else d

    def shards(self, table: str, part: str | None = None) -> list[Path]:
        """The data files of a table (or one run of it): never the schema marker or temp files."""
        d = self.table_dir(table, part)
        if not d.exists():
            return []
        return sorted(p for p in d.glob("*.parquet") if not p.name.startswith(("_", ".")))

    def shard_names(self, table: str, part: str | None = None) -> list[str]:
        """Names of the data files, for cache keys: empty on an empty table."""
        return [p.name for p in self.shards(table, part)]

    def parts(self, table: str) -> list[str]:
        """The runs (or curated sets) a partitioned table holds."""
        d = self.table_dir(table)
        return sorted(p.name for p in d.iterdir() if p.is_dir() and _NAME.match(p.name)) \
            if d.exists() else []

    def new_shard_path(self, table: str, part: str | None = None, prefix: str = "shard") -> Path:
        return self.table_dir(table, part) / f"{prefix}-{uuid.uuid4().hex[:12]}.parquet"

    def verdict_shard(self, run: str, sample_shard: Path, filter_run: str) -> Path:
        """verdicts/<run>/<sample shard>-<filter run>.parquet: one verdict shard per sample
        shard and filter settings, so a rerun (or a killed run resumed) finds it done."""
        return self.table_dir("verdicts", run) / f"{Path(sample_shard).stem}-{filter_run}.parquet"

    def slice_parts(self, shard: Path, starts: list[int]) -> list[Path]:
        """Paths of the part files a shard is written in, one per slice (its first row in
        `starts`): hidden, so never read as shards; parts a killed writer left are removed."""
        with write_boundary(shard.parent):
            shard.parent.mkdir(parents=True, exist_ok=True)
            for stale in shard.parent.glob(f".{shard.stem}.rows*.part"):
                stale.unlink()
        return [shard.with_name(f".{shard.stem}.rows{a}.part") for a in starts]

    @staticmethod
    def join_parts(parts: list[Path], shard: Path, metadata: dict | None = None) -> Path:
        """The shard from its slices' part files (write_part), written atomically; the parts
        are removed once it is in place."""
        table = pa.concat_tables([pq.ParquetFile(p).read() for p in parts])
        write_parquet_atomic(table, shard, metadata)
        for p in parts:
            p.unlink()
        return shard

    def _manifest_file(self, kind: str, name: str) -> Path:
        if kind not in MANIFEST_KINDS:
            raise StoreError(f"unknown manifest kind {kind!r} (one of {', '.join(MANIFEST_KINDS)})")
        return self.root / "runs" / kind / f"{check_name(kind, name)}.json"

    def manifest_path(self, kind: str, name: str) -> Path:
        """runs/<kind>/<name>.json: a filter run `t` and a generation run `filter-t` differ."""
        return self._manifest_file(kind, name)

    # --- reading -----------------------------------------------------------------------------
    def read(self, table: str, part: str | None = None, columns: Iterable[str] | None = None
             ) -> pa.Table:
        """Read every shard of a table (or one run of it) into one Arrow table."""
        files = self.shards(table, part)
        if not files:
            schema = TABLES[table]
            if columns:
                schema = pa.schema([schema.field(c) for c in columns if c in schema.names])
            return schema.empty_table()
        cols = list(columns) if columns else None
        parts = [pq.read_table(f, columns=cols) for f in files]
        return pa.concat_tables(parts, promote_options="default")

    def read_manifest(self, kind: str, name: str):
        """The manifest a stage wrote for `name`, or None; an unmigrated old one is found too."""
        p = self.manifest_path(kind, name)
        if not p.exists():
            legacy = {"generate": name, "filter": f"filter-{name}", "select": f"curated-{name}",
                      "eval": f"{name}-result", "teacher": f"{name}.teacher"}.get(kind)
            old = self.root / "runs" / f"{legacy}.json"
            if legacy is None or not old.exists() or self._legacy(old) != (kind, name):
                return None
            p = old
        try:
            return json.loads(p.read_text())
        except ValueError as e:
            raise StoreError(f"{p}: unreadable manifest ({e})") from None

    def runs(self) -> list[str]:
        return self.parts("samples")

    # --- writing -----------------------------------------------------------------------------
    def write_shard(self, table: str, rows: pa.Table, part: str | None = None,
                    metadata: dict | None = None, prefix: str = "shard") -> Path:
        return write_parquet_atomic(rows, self.new_shard_path(table, part, prefix), metadata)

    def replace_part(self, table: str, part: str, rows: pa.Table, metadata: dict | None = None,
                     prefix: str = "part") -> Path:
        """Replace one partition (a curated set) as a whole; hold `lock` around it.

        The old shards are set aside (renamed `*.replaced`) while the new one is written, then
        deleted; a write that fails puts them back, and a select killed in between has them put
        back by the next replace, so a set is never lost, and never doubled."""
        d = self.table_dir(table, part)
        aside = sorted(d.glob("*.parquet.replaced")) if d.exists() else []
        live = self.shards(table, part)
        with write_boundary(d):
            for f in aside:  # left by a killed replace: restore if it was all there was
                if live:
                    f.unlink()
                else:
                    os.replace(f, f.with_name(f.name.removesuffix(".replaced")))
            live = self.shards(table, part)
            aside = [f.with_name(f.name + ".replaced") for f in live]
            for f, g in zip(live, aside, strict=True):
                os.replace(f, g)
        try:
            path = self.write_shard(table, rows, part, metadata, prefix)
        except BaseException:  # a failed write (or Ctrl-C) puts the old set back
            for f, g in zip(live, aside, strict=True):
                with contextlib.suppress(OSError):
                    os.replace(g, f)
            raise
        for g in aside:
            with contextlib.suppress(OSError):
                g.unlink()
        return path

    def judge_cache(self) -> JudgeCache:
        """The judge's cache (`get(keys)`, `put(rows)`) in the judgements table."""
        return JudgeCache(self)

    def write_manifest(self, kind: str, name: str, manifest: dict | list) -> Path:
        return write_json_atomic(manifest, self.manifest_path(kind, name))

    @contextlib.contextmanager
    def lock(self, kind: str, name: str) -> Iterator[Path]:
        """Hold the store's writer lock for one run or dataset (`runs/.locks/<kind>-<name>.lock`).

        An exclusive, non-blocking flock: a second writer of the same run gets a StoreError at
        once instead of writing duplicate samples beside the first. The kernel releases the
        lock when the holder dies (even by SIGKILL), so a crashed writer never leaves it stuck.
        """
        check_name(kind, kind)
        path = self.root / "runs" / ".locks" / f"{kind}-{check_name(kind, name)}.lock"
        with write_boundary(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise StoreError(f"{kind} {name} is being written by another process "
                                 f"(pid {holder}); wait for it or stop it") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield path
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def drop_run(self, run: str) -> None:
        """Remove a run that must be redone (a flow's stale samples): its samples, verdicts,
        and the manifests generate, filter and eval write for it."""
        import shutil

        for table in ("samples", "verdicts"):
            shutil.rmtree(self.table_dir(table, run), ignore_errors=True)
        for kind in ("generate", "filter", "eval"):
            self.manifest_path(kind, run).unlink(missing_ok=True)


class JudgeCache:
    """Judgements kept in the store: `get` gives each key's newest row (the judge decides
    which failures to ask again), `put` appends a shard (one per batch: a kill loses one)."""

    def __init__(self, store: Store):
        self.store = store

    def get(self, keys) -> dict[str, dict]:
        wanted = set(keys)
        rows = self.store.read("judgements").to_pylist() if wanted else []
        rows.sort(key=lambda r: r["created_at"])
        return {r["key"]: r for r in rows if r["key"] in wanted}

    def put(self, rows: list[dict]) -> None:
        if rows:
            self.store.write_shard("judgements", pa.Table.from_pylist(
                rows, schema=JUDGEMENTS_SCHEMA), prefix="part")
