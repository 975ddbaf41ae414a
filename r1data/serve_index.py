"""The data behind `r1data serve`: a per-run index of prompt statistics, and pages read from it.

A store of 1M samples is ~2,000 sample shards and as many verdict shards (`r1data generate`
writes one every 8 prompts); a query through the views opens all of them and ranks every verdict
(newest wins), seconds a page. So the server scans a run once, when its shard list changes,
into a small in-memory DuckDB table: one row per prompt (counts, mean length, problem, gold), one
per prompt and outcome (kept / reject reason), and the shards that hold each prompt. The
completions stay on disk: a prompt's page reads only its own shards, with LIMIT/OFFSET.
Counts follow `sql/views.sql` (prompt_stats, the newest verdict per sample) and the outcomes
follow `sql/funnel.sql`; tests check both against the views.
"""

from __future__ import annotations

import threading

import duckdb

from r1data.store import Store

SORTS = ("pass_rate", "n", "n_correct", "n_kept", "mean_tokens", "source", "prompt_id")
# The bands of sql/difficulty.sql, per prompt.
BAND = ("CASE WHEN n_correct = 0 THEN '0 unsolved' WHEN n_correct / n <= 0.2 THEN '1 hard' "
        "WHEN n_correct / n < 0.8 THEN '2 medium' WHEN n_correct < n THEN '3 easy' "
        "ELSE '4 solved by all' END")
_OUTCOME = ("coalesce(CASE WHEN keep THEN 'kept' END, reject_reason, "
            "CASE WHEN keep IS NULL THEN 'unfiltered' END, 'rejected')")  # as sql/funnel.sql
_SCHEMA = """
CREATE TABLE IF NOT EXISTS idx_prompts (run VARCHAR, prompt_id VARCHAR, source VARCHAR,
    domain VARCHAR, problem VARCHAR, answer VARCHAR, n BIGINT, n_verified BIGINT,
    n_correct BIGINT, n_kept BIGINT, mean_tokens DOUBLE);
CREATE TABLE IF NOT EXISTS idx_outcomes (run VARCHAR, prompt_id VARCHAR, outcome VARCHAR,
    samples BIGINT);
CREATE TABLE IF NOT EXISTS idx_files (run VARCHAR, prompt_id VARCHAR, tbl VARCHAR,
    file VARCHAR);
-- the columns of views.sql's prompt_stats, so its reports (sql/compare.sql) run here unchanged
CREATE OR REPLACE VIEW prompt_stats AS
SELECT run, prompt_id, source, domain, n, n_verified, n_correct, n_kept, mean_tokens
FROM idx_prompts;
"""

_VERDICT_COLS = ("answer", "correct", "format_ok", "format_reason", "repetition", "lang",
                 "lang_prob", "lang_consistency", "keep", "reject_reason")
# a run not filtered yet: its samples with NULL verdicts
_NO_VERDICTS = ("SELECT * FROM (SELECT NULL::VARCHAR AS prompt_id, NULL::INT AS sample_idx, "
                "NULL::VARCHAR AS filename, NULL::VARCHAR AS answer, NULL::BOOLEAN AS correct, "
                "NULL::BOOLEAN AS format_ok, NULL::VARCHAR AS format_reason, NULL::FLOAT AS "
                "repetition, NULL::VARCHAR AS lang, NULL::FLOAT AS lang_prob, NULL::FLOAT AS "
                "lang_consistency, NULL::BOOLEAN AS keep, NULL::VARCHAR AS reject_reason) "
                "WHERE false")


def _verdicts(files: list[str], newest: bool = False) -> str:
    """The verdict rows of these shards (one `?` for the list), optionally the newest per
    sample only (views.sql's rule)."""
    if not files:
        return _NO_VERDICTS
    rank = (" QUALIFY row_number() OVER (PARTITION BY prompt_id, sample_idx ORDER BY "
            "created_at DESC) = 1") if newest else ""
    return f"SELECT * FROM read_parquet(?, union_by_name = true, filename = true){rank}"


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


class StoreIndex:
    """Per-run prompt statistics of one store, rebuilt when a run's shards change."""

    def __init__(self, store: Store):
        self.store = store
        self.db = duckdb.connect()
        self.db.execute(_SCHEMA)
        self._built: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def state(self, run: str) -> tuple:
        """The modification times of the run's folders and of prompts/: a shard written
        (renamed in) or removed changes them, and a stat costs nothing beside a listing."""
        dirs = (self.store.table_dir("samples", run), self.store.table_dir("verdicts", run),
                self.store.table_dir("prompts"))
        return tuple(d.stat().st_mtime_ns if d.exists() else None for d in dirs)

    def cursor(self, run: str | None = None) -> duckdb.DuckDBPyConnection:
        """A connection for one request, the run's index current."""
        if run:
            key = self.state(run)
            with self._lock:
                if self._built.get(run) != key:
                    self._build(run)
                    self._built[run] = key
        return self.db.cursor()

    def _build(self, run: str) -> None:
        st = self.store
        sf = [str(p) for p in st.shards("samples", run)]
        vf = [str(p) for p in st.shards("verdicts", run)]
        pf = [str(p) for p in st.shards("prompts")]
        con = self.db.cursor()
        con.execute("BEGIN")
        for t in ("idx_prompts", "idx_outcomes", "idx_files"):
            con.execute(f"DELETE FROM {t} WHERE run = ?", [run])
        if not sf or not pf:
            con.execute("COMMIT")
            return
        con.execute("""
            CREATE OR REPLACE TEMP TABLE s AS
            SELECT prompt_id, filename AS file, count(*) AS n, sum(num_tokens) AS tokens,
                   count(num_tokens) AS with_tokens
            FROM read_parquet(?, union_by_name = true, filename = true)
            GROUP BY ALL""", [sf])
        # Verdicts per prompt, file and outcome; the newest verdict of a sample wins, which
        # only matters for a prompt whose verdicts lie in more than one file (a run filtered
        # twice): those prompts alone are ranked sample by sample.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE v0 AS
            SELECT prompt_id, filename AS file, correct, keep, reject_reason, count(*) AS k
            FROM ({_verdicts(vf)}) GROUP BY ALL""", [vf] if vf else [])
        multi = con.execute("SELECT prompt_id FROM v0 GROUP BY ALL HAVING count(DISTINCT file) "
                            "> 1").fetchall()
        con.execute("CREATE OR REPLACE TEMP TABLE v AS SELECT * FROM v0 WHERE prompt_id NOT IN "
                    "(SELECT prompt_id FROM v0 GROUP BY ALL HAVING count(DISTINCT file) > 1)")
        if multi:
            files = [r[0] for r in con.execute(
                "SELECT DISTINCT file FROM v0 WHERE prompt_id IN (SELECT prompt_id FROM v0 "
                "GROUP BY ALL HAVING count(DISTINCT file) > 1)").fetchall()]
            con.execute(f"""
                INSERT INTO v
                SELECT prompt_id, filename AS file, correct, keep, reject_reason, count(*)
                FROM ({_verdicts(files, newest=True)}) WHERE prompt_id IN (
                    SELECT prompt_id FROM v0 GROUP BY ALL HAVING count(DISTINCT file) > 1)
                GROUP BY ALL""", [files])
        con.execute("""
            INSERT INTO idx_prompts
            WITH sp AS (SELECT prompt_id, sum(n) AS n, sum(tokens) / nullif(sum(with_tokens), 0)
                        AS mean_tokens FROM s GROUP BY ALL),
                 vp AS (SELECT prompt_id, sum(k) FILTER (WHERE correct IS NOT NULL) AS ver,
                               sum(k) FILTER (WHERE correct) AS ok,
                               sum(k) FILTER (WHERE keep) AS kept FROM v GROUP BY ALL)
            SELECT ?, prompt_id, p.source, p.domain, p.problem, p.answer, sp.n,
                   coalesce(ver, 0), coalesce(ok, 0), coalesce(kept, 0), mean_tokens
            FROM sp JOIN read_parquet(?, union_by_name = true) AS p USING (prompt_id)
            LEFT JOIN vp USING (prompt_id)""", [run, pf])
        con.execute(f"""
            INSERT INTO idx_outcomes
            WITH o AS (SELECT prompt_id, {_OUTCOME} AS outcome, sum(k) AS samples FROM v
                       GROUP BY ALL)
            SELECT ?, prompt_id, outcome, samples FROM o
            UNION ALL  -- samples without a verdict
            SELECT ?, prompt_id, 'unfiltered', n - coalesce(
                (SELECT sum(samples) FROM o WHERE o.prompt_id = p.prompt_id), 0)
            FROM idx_prompts AS p WHERE run = ? AND n > coalesce(
                (SELECT sum(samples) FROM o WHERE o.prompt_id = p.prompt_id), 0)""",
                    [run, run, run])
        con.execute("""
            INSERT INTO idx_files
            SELECT DISTINCT ?, prompt_id, 'samples', file FROM s
            UNION ALL SELECT DISTINCT ?, prompt_id, 'verdicts', file FROM v0""", [run, run])
        con.execute("DROP TABLE s; DROP TABLE v; DROP TABLE v0; COMMIT")

    # --- pages -----------------------------------------------------------------------------
    def funnel(self, run: str) -> list[dict]:
        """sql/funnel.sql's rows for one run, from the index."""
        return rows(self.cursor(run), """
            SELECT p.source, o.outcome, sum(o.samples)::BIGINT AS samples,
                   round(sum(o.samples) / sum(sum(o.samples)) OVER (PARTITION BY p.source), 4)
                   AS fraction
            FROM idx_outcomes AS o JOIN idx_prompts AS p USING (run, prompt_id)
            WHERE run = ? GROUP BY p.source, o.outcome
            ORDER BY p.source, o.outcome = 'kept' DESC, samples DESC, o.outcome""", [run])

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
        files = {t: [r["file"] for r in rows(con, "SELECT file FROM idx_files WHERE run = ? "
                                                  "AND prompt_id = ? AND tbl = ? ORDER BY 1",
                                             [run, prompt_id, t])]
                 for t in ("samples", "verdicts")}
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
