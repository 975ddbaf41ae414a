"""DuckDB over the store: the views and reports of `sql/`, run with paths relative to the store."""

from __future__ import annotations

import re
import threading
from importlib import resources
from pathlib import Path

import duckdb

from r1data.errors import InputError
from r1data.store import Store

FORMATS = ("table", "csv", "json", "parquet")


def sql_text(name: str) -> str:
    """A file of the shipped `sql/` folder (package data of r1data.sql)."""
    return resources.files("r1data.sql").joinpath(f"{name}.sql").read_text()


def reports() -> list[str]:
    files = resources.files("r1data.sql").iterdir()
    return sorted(f.name[:-4] for f in files if f.name.endswith(".sql") and f.name != "views.sql")


_GLOB = re.compile(r"read_parquet\('([^']+)'")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _views_sql(store: Store) -> str:
    """views.sql with each relative glob replaced by the list of the files it matches, as
    quoted absolute paths: a store path with a comma, quote, space or non-ASCII letter reads
    the same, and the connection needs no working directory (file_search_path is a
    comma-separated list, so a comma in the store path broke every view)."""
    root = store.root.resolve()

    def files(m: re.Match) -> str:
        found = sorted(str(f) for f in root.glob(m.group(1)) if f.is_file())
        return f"read_parquet([{', '.join(map(_quote, found))}]"

    return _GLOB.sub(files, sql_text("views"))


def connect(store: Store) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB with the store's views: the trusted path for r1data's own
    reports (sql/*.sql may create temp views). User SQL goes through `run`."""
    con = duckdb.connect()
    con.execute(_views_sql(store))
    return con


def read_only(store: Store, *, metadata_cache: bool = False) -> duckdb.DuckDBPyConnection:
    """The views, then no way out: no file outside the store, no extension, no network, and
    the configuration locked so the SQL cannot undo it. `metadata_cache`: keep the Parquet
    footers between queries (a long-lived connection, `Cached`)."""
    con = connect(store)
    if metadata_cache:
        con.execute("SET parquet_metadata_cache = true")
    root = str(store.root.resolve()).rstrip("/") + "/"
    con.execute(f"SET allowed_directories = [{_quote(root)}]")
    for setting in ("enable_external_access", "autoinstall_known_extensions",
                    "autoload_known_extensions", "allow_community_extensions"):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")
    return con


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


_PARSERS = threading.local()


def _parser() -> duckdb.DuckDBPyConnection:
    """An empty connection per thread that only parses (opening one costs ~50 ms, a query of
    the SQL box ~10)."""
    if getattr(_PARSERS, "con", None) is None:
        _PARSERS.con = duckdb.connect()
    return _PARSERS.con


def check_select(sql: str, *, what: str = "query") -> str:
    """`sql` must be exactly one SELECT (DESCRIBE, SUMMARIZE, SHOW and VALUES are SELECTs to
    DuckDB); anything else (COPY, ATTACH, INSTALL, CREATE, PRAGMA, SET, a second statement)
    is refused before it runs."""
    try:
        statements = _parser().extract_statements(sql)
    except duckdb.Error as e:
        raise InputError(f"SQL error: {_first_line(e)}", path=what) from None
    kinds = [st.type.name for st in statements]
    if kinds != ["SELECT"]:
        got = "no statement" if not kinds else " + ".join(kinds)
        raise InputError(f"read-only: only one SELECT statement is allowed (got {got})",
                         path=what)
    return sql


def where_clause(where: str) -> str:
    """A user's --where as one parenthesised boolean expression over the prompts view: it
    must parse as a single expression, so a value that closes the parenthesis is refused."""
    try:
        duckdb.SQLExpression(where)
    except duckdb.Error as e:
        raise InputError(f"not one SQL expression ({_first_line(e)})", path="--where") from None
    clause = f"(\n{where}\n)"  # newlines: a trailing -- comment cannot swallow the parenthesis
    check_select(f"SELECT prompt_id FROM prompts WHERE {clause}", what="--where")
    return clause


def report_sql(name: str) -> str:
    if name not in reports():
        raise InputError(f"unknown report (known: {', '.join(reports())})", path=name)
    return sql_text(name)


def run(store: Store, sql: str, con: duckdb.DuckDBPyConnection | None = None
        ) -> duckdb.DuckDBPyRelation:
    """User SQL (`r1data query`, the web UI's SQL box, --where): one SELECT on a read-only
    connection (a fresh one, or `con`: a cursor of `Cached`), run to completion; every refusal
    is one line. The result is an in-memory relation (`.pl()`, `.fetchall()`)."""
    check_select(sql)
    con = con or read_only(store)
    try:  # run it here: some refusals (sniff_csv) only surface when the rows are fetched
        return con.from_arrow(con.sql(sql).to_arrow_table())
    except duckdb.PermissionException as e:
        raise InputError(f"read-only: only the store's views can be read ({_first_line(e)})",
                         path="query") from None
    except duckdb.Error as e:
        raise InputError(f"SQL error: {_first_line(e)}", path="query") from None


class Cached:
    """One read-only connection over a store, kept for a server's life (`r1data serve`'s SQL
    box): binding the views opens every shard's footer (seconds over thousands of shards), so
    they are made once and remade only when a table folder's listing changes (a shard renamed
    in or removed changes its folder's mtime). The configuration stays locked across remakes
    (CREATE VIEW is no setting); each query gets its own cursor, so concurrent requests are
    safe, and the remake is serialised by a lock."""

    def __init__(self, store: Store):
        self.store = store
        self._con: duckdb.DuckDBPyConnection | None = None
        self._key: tuple | None = None
        self._lock = threading.Lock()

    def state(self) -> tuple:
        """The mtimes of the table folders the views read, and of their run folders."""
        out = []
        for d in sorted(p for p in self.store.root.iterdir() if p.is_dir()):
            if d.name == "runs" or d.name.startswith("."):
                continue
            out.append((d.name, d.stat().st_mtime_ns))
            out += [(f"{d.name}/{s.name}", s.stat().st_mtime_ns) for s in sorted(d.iterdir())
                    if s.is_dir()]
        return tuple(out)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        key = self.state()
        with self._lock:
            if self._con is None:
                self._con = read_only(self.store, metadata_cache=True)
            elif key != self._key:
                self._con.execute(_views_sql(self.store))
            self._key = key
            return self._con.cursor()

    def run(self, sql: str) -> duckdb.DuckDBPyRelation:
        """`run` on a cursor of the kept connection (same refusals, same errors)."""
        try:
            cur = self.cursor()
        except duckdb.Error as e:  # remaking the views (a shard removed meanwhile): retried
            raise InputError(f"SQL error: {_first_line(e)}", path="views") from None
        return run(self.store, sql, cur)


def write(rel: duckdb.DuckDBPyRelation, out: str | Path, fmt: str | None = None) -> Path:
    """Write a result from Python (the read-only connection writes no file); format from the
    flag or the file suffix."""
    out = Path(out)
    fmt = fmt or out.suffix.lstrip(".").lower()
    if fmt not in ("csv", "json", "parquet"):
        raise InputError(f"unknown output format {fmt!r} (csv, json, parquet)", path=str(out))
    frame = rel.pl()
    try:
        getattr(frame, f"write_{fmt}")(out)
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror or e})", path=str(out)) from None
    return out
