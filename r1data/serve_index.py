"""The data behind `r1data serve`: a per-run index of prompt statistics and plot aggregates,
kept in the store, and pages read from it.

A store of 1M samples is ~2,000 sample shards and as many verdict shards (`r1data generate`
writes one every 8 prompts); a query through the views opens all of them and ranks every verdict
(newest wins), seconds a query. So each run is read once into small tables, all keyed by prompt:
per prompt its counts (views.sql's prompt_stats), its outcomes (sql/funnel.sql), the shards that
hold it, its length histogram by verdict and finish reason (sql/lengths.sql) and its languages
(report's language mix). They are saved under `runs/.serve-index/` with the name, size and
mtime of every shard read, so a reopen only stats the shards (and loads a few MB); new or
changed shards are read alone, and the prompts they touch recomputed from all their shards (the
newest verdict of a sample may sit in an older shard). A build runs in a background thread with
its progress shown; pages meanwhile say so. The completions stay on disk: a prompt's page reads
only its own shards, with LIMIT/OFFSET. Tests check every table against the views.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

import duckdb

from r1data.errors import InputError, StoreError
from r1data.query import _quote, sql_text
from r1data.store import Store, write_json_atomic

VERSION = 2  # of the saved tables; another version is rebuilt
TABLES = ("samples", "verdicts")  # a run's shards
CHUNK = 128  # shards read at once (progress moves between chunks)
SORTS = ("pass_rate", "n", "n_correct", "n_kept", "mean_tokens", "source", "prompt_id")
# The bands of sql/difficulty.sql, per prompt.
BAND = ("CASE WHEN n_correct = 0 THEN '0 unsolved' WHEN n_correct / n <= 0.2 THEN '1 hard' "
        "WHEN n_correct / n < 0.8 THEN '2 medium' WHEN n_correct < n THEN '3 easy' "
        "ELSE '4 solved by all' END")
_OUTCOME = ("coalesce(CASE WHEN keep THEN 'kept' END, reject_reason, "
            "CASE WHEN keep IS NULL THEN 'unfiltered' END, 'rejected')")  # as sql/funnel.sql
_VERDICT = ("CASE WHEN keep IS NULL THEN 'unfiltered' WHEN keep THEN 'kept' ELSE 'rejected' "
            "END")  # as sql/lengths.sql
# the saved tables (all with a leading run column) and the in-memory views over them
_RUN_TABLES = {
    "idx_agg": "prompt_id VARCHAR, n BIGINT, n_verified BIGINT, n_correct BIGINT, "
               "n_kept BIGINT, mean_tokens DOUBLE",
    "idx_outcomes": "prompt_id VARCHAR, outcome VARCHAR, samples BIGINT",
    "idx_files": "prompt_id VARCHAR, tbl VARCHAR, file VARCHAR",
    "idx_lengths": "prompt_id VARCHAR, finish_reason VARCHAR, verdict VARCHAR, "
                   "num_tokens INTEGER, samples BIGINT",
    "idx_langs": "prompt_id VARCHAR, lang VARCHAR, samples BIGINT, cons_sum DOUBLE, "
                 "cons_n BIGINT",
}
_SCHEMA = "".join(f"CREATE TABLE {t} (run VARCHAR, {cols});\n" for t, cols in _RUN_TABLES.items())
_SCHEMA += """
CREATE TABLE idx_meta (prompt_id VARCHAR, source VARCHAR, domain VARCHAR, problem VARCHAR,
    answer VARCHAR);
CREATE VIEW idx_prompts AS
SELECT a.run, a.prompt_id, m.source, m.domain, m.problem, m.answer, a.n, a.n_verified,
       a.n_correct, a.n_kept, a.mean_tokens
FROM idx_agg AS a JOIN idx_meta AS m USING (prompt_id);
-- the columns of views.sql's prompt_stats, so its reports (sql/compare.sql) run here unchanged
CREATE VIEW prompt_stats AS
SELECT run, prompt_id, source, domain, n, n_verified, n_correct, n_kept, mean_tokens
FROM idx_prompts;
"""
# the shard rows a build reads (columns an older shard lacks read as NULL)
_READ = {
    "samples": {"prompt_id": "VARCHAR", "sample_idx": "INTEGER", "num_tokens": "INTEGER",
                "finish_reason": "VARCHAR"},
    "verdicts": {"prompt_id": "VARCHAR", "sample_idx": "INTEGER",
                 "created_at": "TIMESTAMP WITH TIME ZONE", "correct": "BOOLEAN",
                 "keep": "BOOLEAN", "reject_reason": "VARCHAR", "lang": "VARCHAR",
                 "lang_consistency": "FLOAT"},
}
_TOKEN = re.compile(r"^[0-9a-f]{12}$")
_VERDICT_COLS = ("answer", "correct", "format_ok", "format_reason", "repetition", "lang",
                 "lang_prob", "lang_consistency", "keep", "reject_reason")
# a run not filtered yet: its samples with NULL verdicts
_NO_VERDICTS = ("SELECT * FROM (SELECT NULL::VARCHAR AS prompt_id, NULL::INT AS sample_idx, "
                "NULL::VARCHAR AS filename, NULL::VARCHAR AS answer, NULL::BOOLEAN AS correct, "
                "NULL::BOOLEAN AS format_ok, NULL::VARCHAR AS format_reason, NULL::FLOAT AS "
                "repetition, NULL::VARCHAR AS lang, NULL::FLOAT AS lang_prob, NULL::FLOAT AS "
                "lang_consistency, NULL::BOOLEAN AS keep, NULL::VARCHAR AS reject_reason) "
                "WHERE false")


class Building(Exception):
    """A run's index is being built and the page cannot wait: the message says how far."""


def _where(*conds: tuple[str, object]) -> tuple[str, list]:
    """The AND of the conditions whose value is given (not None or ''), and their values as
    parameters (a list for a condition with several `?`): user values never enter the SQL."""
    parts, args = [], []
    for sql, val in conds:
        if val is None or val == "":
            continue
        parts.append(sql)
        args += val if isinstance(val, list) else [val]
    return " AND ".join(parts), args


def rows(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _list(paths: list[str]) -> str:
    return "[" + ", ".join(_quote(p) for p in paths) + "]"


def scan(d: Path) -> dict[str, tuple[int, int]]:
    """name -> (size, mtime_ns) of a folder's data shards (as Store.shards: no marker, no temp
    file): one listing, the stats come with it."""
    try:
        with os.scandir(d) as it:
            out = {}
            for e in it:
                if e.name.endswith(".parquet") and not e.name.startswith(("_", ".")):
                    st = e.stat()
                    out[e.name] = (st.st_size, st.st_mtime_ns)
            return out
    except FileNotFoundError:
        return {}


class StoreIndex:
    """Per-run prompt statistics of one store, saved in it and brought up to date when a run's
    shards change (read in a background thread; `wait` seconds a page waits for it)."""

    def __init__(self, store: Store, wait: float = 30.0):
        self.store = store
        self.wait = wait
        self.dir = store.root / "runs" / ".serve-index"
        self.db = duckdb.connect()
        self.db.execute("SET parquet_metadata_cache = true")
        self.db.execute(_SCHEMA)
        self.version = 0  # bumped by every change of the tables (the plots' cache key)
        self.saved: str | None = None  # why the index could not be saved, if it could not
        self.progress: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self._files: dict[str, dict] = {}  # run -> {table: scan} the tables hold
        self._meta: dict | None = None  # the prompts scan idx_meta holds
        self._quick: dict[str, tuple] = {}  # run -> folder mtimes when last found current
        self._threads: dict[str, threading.Thread] = {}
        self._later: dict[tuple[str, str], Path] = {}  # (run, table) -> saved, not loaded
        self._lock = threading.Lock()  # the dicts above
        self._build = threading.Lock()  # one build at a time (2 cores shared)

    # --- freshness -------------------------------------------------------------------------
    def _dirs(self, run: str) -> tuple:
        """The mtimes of the run's folders and of prompts/: a shard renamed in or removed
        changes them, so a page checks three stats, not every shard."""
        dirs = (self.store.table_dir("samples", run), self.store.table_dir("verdicts", run),
                self.store.table_dir("prompts"))
        return tuple(d.stat().st_mtime_ns if d.exists() else None for d in dirs)

    def _scan(self, run: str) -> dict:
        return {t: scan(self.store.table_dir(t, run)) for t in TABLES}

    def current(self, run: str) -> bool:
        with self._lock:
            return run in self._files and self._quick.get(run) == self._dirs(run)

    def ensure(self, run: str, wait: float | None = None) -> None:
        """Bring a run's index up to date: at once if its folders did not change, else in the
        background, waiting up to `wait` seconds; then a run indexed before is served as it
        was (pages of a run being written stay up), a run never indexed raises Building."""
        if self.current(run):
            return
        with self._lock:
            t = self._threads.get(run)
            if t is None or not t.is_alive():
                t = threading.Thread(target=self._update_logged, args=(run,), daemon=True,
                                     name=f"r1data-serve-index-{run}")
                self._threads[run] = t
                self.progress[run] = {"phase": "waiting for another build", "done": 0,
                                      "total": 0, "t0": time.monotonic()}
                t.start()
        t.join(self.wait if wait is None else wait)
        with self._lock:
            if run in self.errors and not t.is_alive():
                raise InputError(f"cannot index run: {self.errors.pop(run)}", path=run)
            if run in self._files:
                return
            p = self.progress.get(run, {})
        took = time.monotonic() - p.get("t0", time.monotonic())
        raise Building(f"indexing run {run}: {p.get('phase', 'starting')}, "
                       f"{p.get('done', 0):,} of {p.get('total', 0):,} shards read "
                       f"({took:.0f} s)")

    def cursor(self, run: str | None = None) -> duckdb.DuckDBPyConnection:
        """A connection for one request, the run's index current (or being made current)."""
        if run:
            self.ensure(run)
        return self.db.cursor()

    def _update_logged(self, run: str) -> None:
        try:
            self.update(run)
        except (duckdb.Error, OSError) as e:
            with self._lock:
                self.errors[run] = str(e).strip().splitlines()[0] if str(e).strip() else \
                    type(e).__name__

    def update(self, run: str) -> bool:
        """Load the saved index of a run if not loaded, then read what changed since: the
        shards whose name, size or mtime differ, and the prompts table if it changed. True if
        anything was read."""
        with self._build:
            self._step(run, "loading the saved index")
            quick = self._dirs(run)
            if self._meta is None:
                self._meta = (self._load("_prompts", ("idx_meta",), None) or {}).get("prompts")
            if run not in self._files:
                # the length histograms (~1 row a sample) wait for the plots or a change
                got = self._load(run, tuple(t for t in _RUN_TABLES if t != "idx_lengths"),
                                 run, later=("idx_lengths",))
                if got is not None:
                    with self._lock:
                        self._files[run] = got
            prompts = scan(self.store.table_dir("prompts"))
            changed = False
            if prompts != self._meta:
                self._update_meta(prompts)
                changed = True
            cur = self._scan(run)
            if cur != self._files.get(run):
                self._update_run(run, cur)
                changed = True
            with self._lock:
                self._quick[run] = quick
                self.version += changed
            return changed

    def _step(self, run: str, phase: str, done: int = 0, total: int = 0) -> None:
        with self._lock:
            p = self.progress.setdefault(run, {"t0": time.monotonic()})
            p.update(phase=phase, done=done, total=total)

    # --- building --------------------------------------------------------------------------
    def _update_meta(self, prompts: dict) -> None:
        files = [str(self.store.table_dir("prompts") / n) for n in sorted(prompts)]
        con = self.db.cursor()
        con.execute("BEGIN")
        con.execute("DELETE FROM idx_meta")
        if files:
            con.execute(f"""INSERT INTO idx_meta SELECT prompt_id, source, domain, problem,
                answer FROM read_parquet({_list(files)}, union_by_name = true)""")
        con.execute("COMMIT")
        self._save("_prompts", {"idx_meta": "SELECT * FROM idx_meta"}, {"prompts": prompts})
        self._meta = prompts

    def _read(self, con, target: str, table: str, run: str, names: list[str],
              read: list[tuple[str, str]], only_affected: bool = False) -> None:
        """Shards' rows into a temp table (columns an older shard lacks as NULL), each with
        its shard as a number: the shard's place in `read`, which this call extends."""
        paths = [str(self.store.table_dir(table, run) / n) for n in names]
        src = f"read_parquet({_list(paths)}, union_by_name = true)"
        where = " WHERE prompt_id IN (SELECT prompt_id FROM aff)" if only_affected else ""
        have = set(_READ[table])
        while True:
            cols = ", ".join(f"{c}::{t} AS {c}" if c in have else f"NULL::{t} AS {c}"
                             for c, t in _READ[table].items())
            try:
                con.execute(f"INSERT INTO {target} SELECT {cols}, file_index::INT + "
                            f"{len(read)} AS fid FROM {src}{where}")
                break
            except duckdb.BinderException:  # a column no shard of these has
                if have != set(_READ[table]):
                    raise
                have &= {d[0] for d in con.execute(f"SELECT * FROM {src} LIMIT 0").description}
        read += [(table, n) for n in names]

    def _load_later(self, run: str | None = None) -> None:
        """Load the saved tables `_load` left for later (of one run, or all); hold _build."""
        for (r, t), path in list(self._later.items()):
            if run is None or r == run:
                self.db.cursor().execute(f"INSERT INTO {t} BY NAME SELECT {_quote(r)} AS run, "
                                         f"* FROM read_parquet({_quote(str(path))})")
                del self._later[(r, t)]

    def _update_run(self, run: str, cur: dict) -> None:
        self._load_later(run)
        old = self._files.get(run) or {t: {} for t in TABLES}
        new = {t: sorted(n for n, st in cur[t].items() if old[t].get(n) != st) for t in TABLES}
        gone = [(t, n) for t in TABLES for n, st in old[t].items() if cur[t].get(n) != st]
        con = self.db.cursor()
        for t, target in (("samples", "ns"), ("verdicts", "nv")):
            cols = ", ".join(f"{c} {ty}" for c, ty in _READ[t].items())
            con.execute(f"CREATE OR REPLACE TEMP TABLE {target} ({cols}, fid INTEGER)")
        read: list[tuple[str, str]] = []  # fid -> (table, shard name)
        total, done = sum(len(v) for v in new.values()), 0
        for t, target in (("samples", "ns"), ("verdicts", "nv")):
            for i in range(0, len(new[t]), CHUNK):
                self._step(run, f"reading new {t} shards", done, total)
                self._read(con, target, t, run, new[t][i:i + CHUNK], read)
                done += len(new[t][i:i + CHUNK])
        self._step(run, "recomputing the prompts they touch", done, total)
        con.execute("CREATE OR REPLACE TEMP TABLE gone (tbl VARCHAR, file VARCHAR)")
        if gone:
            con.executemany("INSERT INTO gone VALUES (?, ?)", gone)
        con.execute("""CREATE OR REPLACE TEMP TABLE aff AS
            SELECT prompt_id FROM ns UNION SELECT prompt_id FROM nv
            UNION SELECT prompt_id FROM idx_files WHERE run = ? AND (tbl, file) IN (
                SELECT (tbl, file) FROM gone)""", [run])
        # the affected prompts' rows in shards that did not change
        again = con.execute("""SELECT DISTINCT tbl, file FROM idx_files WHERE run = ?
            AND prompt_id IN (SELECT prompt_id FROM aff)
            AND (tbl, file) NOT IN (SELECT (tbl, file) FROM gone) ORDER BY ALL""",
                            [run]).fetchall()
        for t, target in (("samples", "ns"), ("verdicts", "nv")):
            names = [f for tbl, f in again if tbl == t]
            total += len(names)
            for i in range(0, len(names), CHUNK):
                self._step(run, f"re-reading {t} shards of the prompts touched", done, total)
                self._read(con, target, t, run, names[i:i + CHUNK], read,
                           only_affected=True)
                done += len(names[i:i + CHUNK])
        self._step(run, "aggregating", done, total)
        # views.sql: the newest verdict of a sample wins; a filter run writes one verdict a
        # sample in a shard, so only prompts with verdicts in several shards are ranked
        con.execute("""CREATE OR REPLACE TEMP TABLE multi AS SELECT prompt_id FROM nv
            GROUP BY prompt_id HAVING count(DISTINCT fid) > 1""")
        con.execute("CREATE OR REPLACE TEMP TABLE bf AS SELECT unnest(range(?)) AS fid, "
                    "unnest(?) AS tbl, unnest(?) AS file",
                    [len(read), [t for t, _ in read], [n for _, n in read]])
        con.execute("""CREATE OR REPLACE TEMP TABLE new_files AS SELECT DISTINCT ? AS run,
            prompt_id, tbl, file FROM (SELECT DISTINCT prompt_id, fid FROM ns UNION ALL
                                       SELECT DISTINCT prompt_id, fid FROM nv)
            JOIN bf USING (fid)""", [run])
        con.execute("""CREATE OR REPLACE TEMP VIEW vn AS
            SELECT * EXCLUDE (fid) FROM nv WHERE prompt_id NOT IN (SELECT prompt_id FROM multi)
            UNION ALL
            SELECT * EXCLUDE (fid) FROM nv WHERE prompt_id IN (SELECT prompt_id FROM multi) QUALIFY
            row_number() OVER (PARTITION BY prompt_id, sample_idx ORDER BY created_at DESC) = 1
            """)
        con.execute("""CREATE OR REPLACE TEMP TABLE new_langs AS SELECT ? AS run, prompt_id,
            lang, count(*) AS samples, sum(lang_consistency) AS cons_sum,
            count(lang_consistency) AS cons_n FROM vn GROUP BY ALL""", [run])
        con.execute("""CREATE OR REPLACE TEMP TABLE j AS
            SELECT s.prompt_id, s.num_tokens, s.finish_reason, v.correct, v.keep,
                   v.reject_reason
            FROM ns AS s LEFT JOIN vn AS v USING (prompt_id, sample_idx)""")
        con.execute("DROP VIEW vn; DROP TABLE ns; DROP TABLE nv")  # memory back before more
        con.execute("""CREATE OR REPLACE TEMP TABLE new_agg AS SELECT ? AS run, prompt_id,
            count(*) AS n, count(correct) AS n_verified,
            coalesce(sum(correct::INT), 0) AS n_correct, coalesce(sum(keep::INT), 0) AS n_kept,
            avg(num_tokens) AS mean_tokens FROM j GROUP BY prompt_id""", [run])
        con.execute(f"""CREATE OR REPLACE TEMP TABLE new_outcomes AS SELECT ? AS run,
            prompt_id, {_OUTCOME} AS outcome, count(*) AS samples FROM j GROUP BY ALL""", [run])
        con.execute(f"""CREATE OR REPLACE TEMP TABLE new_lengths AS SELECT ? AS run, prompt_id,
            finish_reason, {_VERDICT} AS verdict, num_tokens, count(*) AS samples FROM j
            GROUP BY ALL""", [run])
        con.execute("DROP TABLE j")
        con.execute("BEGIN")
        for t in _RUN_TABLES:
            con.execute(f"DELETE FROM {t} WHERE run = ? AND prompt_id IN (SELECT prompt_id "
                        f"FROM aff)", [run])
            con.execute(f"INSERT INTO {t} BY NAME SELECT * FROM new_{t.removeprefix('idx_')}")
        con.execute("COMMIT")
        for t in ("bf", "multi", "aff", "gone", "new_langs", "new_agg", "new_outcomes",
                  "new_lengths", "new_files"):
            con.execute(f"DROP TABLE {t}")
        self._step(run, "saving", done, total)
        self._save(run, {t: f"SELECT * EXCLUDE (run) FROM {t} WHERE run = {_quote(run)}"
                         for t in _RUN_TABLES}, cur)
        with self._lock:
            self._files[run] = cur

    # --- saving ----------------------------------------------------------------------------
    def _save(self, name: str, tables: dict[str, str], files: dict) -> None:
        """Tables into a fresh folder `<name>.<token>/`, then `<name>.json` (the shards they
        hold, the token) replaced atomically: a crash mid-save leaves the old index whole.
        A store that cannot be written keeps the index in memory only."""
        token = uuid.uuid4().hex[:12]
        d = self.dir / f"{name}.{token}"
        try:
            d.mkdir(parents=True)
            con = self.db.cursor()
            for t, sql in tables.items():
                con.execute(f"COPY ({sql}) TO {_quote(str(d / f'{t}.parquet'))} "
                            f"(FORMAT parquet)")
            write_json_atomic({"version": VERSION, "token": token,
                               "files": {k: {n: list(st) for n, st in v.items()}
                                         for k, v in files.items()}}, self.dir / f"{name}.json")
        except (OSError, StoreError, duckdb.IOException) as e:
            self.saved = f"index kept in memory only, not saved ({e})"
            shutil.rmtree(d, ignore_errors=True)
            return
        for old in self.dir.iterdir():
            rest = old.name[len(name) + 1:]
            if old.name.startswith(name + ".") and _TOKEN.match(rest) and rest != token:
                shutil.rmtree(old, ignore_errors=True)

    def _load(self, name: str, tables: tuple[str, ...], run: str | None,
              later: tuple[str, ...] = ()) -> dict | None:
        """The saved tables of `name` into memory (`later` ones when first needed), and the
        shards they hold; None if there is no whole saved index of this version."""
        import json

        try:
            state = json.loads((self.dir / f"{name}.json").read_text())
            d = self.dir / f"{name}.{state['token']}"
            if state.get("version") != VERSION or not all(
                    (d / f"{t}.parquet").is_file() for t in tables + later):
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        con = self.db.cursor()
        con.execute("BEGIN")
        try:
            for t in tables:
                lead = f"{_quote(run)} AS run, " if run else ""
                con.execute(f"INSERT INTO {t} BY NAME SELECT {lead}* FROM read_parquet("
                            f"{_quote(str(d / f'{t}.parquet'))})")
        except duckdb.Error:
            con.execute("ROLLBACK")
            return None
        con.execute("COMMIT")
        self._later.update({(run, t): d / f"{t}.parquet" for t in later})
        files = {k: {n: tuple(st) for n, st in v.items()} for k, v in state["files"].items()}
        return files if run is None else {t: files.get(t, {}) for t in TABLES}

    # --- pages -----------------------------------------------------------------------------
    def funnel(self, run: str | None = None) -> list[dict]:
        """sql/funnel.sql's rows (of one run, without its run column), from the index."""
        runs = [run] if run else self.store.runs()
        for r in runs:
            self.ensure(r)
        got = rows(self.db.cursor(), """
            SELECT run, p.source, o.outcome, sum(o.samples)::BIGINT AS samples,
                   round(sum(o.samples) / sum(sum(o.samples)) OVER (PARTITION BY run,
                   p.source), 4) AS fraction
            FROM idx_outcomes AS o JOIN idx_prompts AS p USING (run, prompt_id)
            WHERE list_contains(?, run) GROUP BY run, p.source, o.outcome
            ORDER BY run, p.source, o.outcome = 'kept' DESC, samples DESC, o.outcome""", [runs])
        return [{k: v for k, v in r.items() if k != "run"} for r in got] if run else got

    def lengths(self) -> tuple[list[dict], list[dict]]:
        """sql/lengths.sql's rows (exact quantiles from the histograms), and the histogram by
        verdict of every sample with a token count (the report's plot)."""
        runs = self.store.runs()
        for r in runs:
            self.ensure(r)
        if self._later:
            with self._build:
                self._load_later()
        con = self.db.cursor()
        table = rows(con, """
            WITH g AS (SELECT run, finish_reason, verdict, num_tokens AS v,
                              sum(samples)::BIGINT AS k
                       FROM idx_lengths WHERE list_contains(?, run) GROUP BY ALL),
                 c AS (SELECT *, sum(k) OVER (PARTITION BY run, finish_reason, verdict
                                               ORDER BY v) AS cum,
                              sum(k) OVER (PARTITION BY run, finish_reason, verdict) AS tot
                       FROM g WHERE v IS NOT NULL),
                 q AS (SELECT run, finish_reason, verdict,
                              -- quantile_cont: interpolate between the values at floor and
                              -- ceil of (N - 1) * q in sorted order
                              min(v) FILTER (WHERE cum > floor((tot - 1) * 0.5)) AS a5,
                              min(v) FILTER (WHERE cum > ceil((tot - 1) * 0.5)) AS b5,
                              min(v) FILTER (WHERE cum > floor((tot - 1) * 0.9)) AS a9,
                              min(v) FILTER (WHERE cum > ceil((tot - 1) * 0.9)) AS b9,
                              any_value(tot) AS tot
                       FROM c GROUP BY ALL)
            SELECT run, finish_reason, verdict, sum(k)::BIGINT AS samples,
                   round(sum(v * k) / sum(k) FILTER (WHERE v IS NOT NULL), 1) AS mean_tokens,
                   any_value(a5 + ((tot - 1) * 0.5 - floor((tot - 1) * 0.5)) * (b5 - a5))
                       ::DOUBLE AS p50,
                   any_value(a9 + ((tot - 1) * 0.9 - floor((tot - 1) * 0.9)) * (b9 - a9))
                       ::DOUBLE AS p90,
                   max(v) AS max_tokens
            FROM g LEFT JOIN q USING (run, finish_reason, verdict)
            GROUP BY ALL ORDER BY ALL""", [runs])
        hist = rows(con, """SELECT verdict, num_tokens, sum(samples)::BIGINT AS samples
            FROM idx_lengths WHERE list_contains(?, run) AND num_tokens IS NOT NULL
            GROUP BY ALL ORDER BY ALL""", [runs])
        return table, hist

    def languages(self) -> list[dict]:
        """The report's language mix (newest verdict of every sample), from the index."""
        runs = self.store.runs()
        for r in runs:
            self.ensure(r)
        return rows(self.db.cursor(), """
            SELECT coalesce(lang, 'unknown') AS lang, sum(samples)::BIGINT AS samples,
                   round(sum(cons_sum) / sum(cons_n), 3) AS mean_consistency
            FROM idx_langs WHERE list_contains(?, run) GROUP BY ALL
            ORDER BY samples DESC, lang""", [runs])

    def outcomes(self, run: str) -> list[str]:
        return [r["outcome"] for r in rows(self.cursor(run), """
            SELECT DISTINCT outcome FROM idx_outcomes WHERE run = ? ORDER BY 1""", [run])]

    def values(self, run: str, col: str) -> list[str]:
        assert col in ("source", "domain")
        return [r["v"] for r in rows(self.cursor(run), f"""
            SELECT DISTINCT {col} AS v FROM idx_prompts WHERE run = ? ORDER BY 1""", [run])]

    def prompts(self, run: str, *, source: str = "", domain: str = "", outcome: str = "",
                min_pass: float | None = None, max_pass: float | None = None, text: str = "",
                sort: str = "pass_rate", desc: bool = False, limit: int = 50, offset: int = 0
                ) -> tuple[list[dict], int]:
        """One page of a run's prompts with their pass rate and band, and how many match."""
        where, args = _where(
            ("run = ?", run), ("source = ?", source), ("domain = ?", domain),
            ("n_correct / n >= ?", min_pass), ("n_correct / n <= ?", max_pass),
            ("(problem ILIKE ? OR prompt_id = ?)", [f"%{text}%", text] if text else None),
            ("prompt_id IN (SELECT prompt_id FROM idx_outcomes WHERE run = ? AND outcome = ?)",
             [run, outcome] if outcome else None))
        order = sort if sort in SORTS else "pass_rate"
        got = rows(self.cursor(run), f"""
            SELECT prompt_id, source, domain, left(problem, 140) AS problem, n, n_correct,
                   n_kept, round(n_correct / n, 4) AS pass_rate, {BAND} AS band,
                   round(mean_tokens, 1) AS mean_tokens, count(*) OVER () AS matching
            FROM idx_prompts WHERE {where}
            ORDER BY {order} {'DESC' if desc else 'ASC'}, prompt_id
            LIMIT {int(limit)} OFFSET {max(0, int(offset))}""", args)
        return got, (got[0]["matching"] if got else 0)

    def prompt(self, run: str, prompt_id: str) -> dict | None:
        got = rows(self.cursor(run), "SELECT * FROM idx_prompts WHERE run = ? AND "
                                     "prompt_id = ?", [run, prompt_id])
        return got[0] if got else None

    def samples(self, run: str, prompt_id: str, *, outcome: str = "", idx: int | None = None,
                limit: int = 20, offset: int = 0) -> list[dict]:
        """Samples of one prompt with their newest verdict, read from its own shards only."""
        con = self.cursor(run)
        files = {t: [str(self.store.table_dir(t, run) / r["file"]) for r in rows(
            con, "SELECT file FROM idx_files WHERE run = ? AND prompt_id = ? AND tbl = ? "
                 "ORDER BY 1", [run, prompt_id, t])] for t in TABLES}
        if not files["samples"]:
            return []
        where, args = _where(("s.prompt_id = ?", prompt_id), (f"{_OUTCOME} = ?", outcome),
                             ("s.sample_idx = ?", idx))
        verdicts = ("SELECT * FROM read_parquet(?, union_by_name = true) WHERE prompt_id = ? "
                    "QUALIFY row_number() OVER (PARTITION BY sample_idx ORDER BY created_at "
                    "DESC) = 1") if files["verdicts"] else _NO_VERDICTS
        vargs = [files["verdicts"], prompt_id] if files["verdicts"] else []
        cols = ", ".join(f"v.{c}" for c in _VERDICT_COLS)
        return rows(con, f"""
            WITH v AS ({verdicts})
            SELECT s.sample_idx, s.completion, s.reasoning, s.final, s.num_tokens,
                   s.finish_reason, s.model, {cols}
            FROM read_parquet(?, union_by_name = true) AS s
            LEFT JOIN v USING (prompt_id, sample_idx)
            WHERE {where}
            ORDER BY s.sample_idx LIMIT {int(limit)} OFFSET {max(0, int(offset))}""",
                    vargs + [files["samples"]] + args)

    def pass_rates(self) -> tuple[list[dict], list[dict]]:
        """sql/pass_rate.sql run on the index (its prompt_stats has the view's columns), and
        every verified prompt's pass rate (the report's histogram)."""
        runs = self.store.runs()
        for r in runs:
            self.ensure(r)
        con = self.db.cursor()
        macro = re.search(r"CREATE OR REPLACE MACRO pass_at_k.*?;\n", sql_text("views"), re.S)
        con.execute(macro.group(0).replace("CREATE OR REPLACE MACRO", "CREATE OR REPLACE "
                                           "TEMP MACRO"))
        table = rows(con, f"SELECT * FROM (\n{sql_text('pass_rate').strip().rstrip(';')}\n) "
                          f"WHERE list_contains(?, run) ORDER BY run, source", [runs])
        stats = rows(con, "SELECT run, n_correct / n AS pass_rate FROM prompt_stats WHERE "
                          "n_verified > 0 AND list_contains(?, run) ORDER BY run, prompt_id",
                     [runs])
        return table, stats
