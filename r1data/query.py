"""DuckDB over the store: the views and reports of `sql/`, run with paths relative to the store."""

from __future__ import annotations

import re
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


def read_only(store: Store) -> duckdb.DuckDBPyConnection:
    """The views, then no way out: no file outside the store, no extension, no network, and
    the configuration locked so the SQL cannot undo it."""
    con = connect(store)
    root = str(store.root.resolve()).rstrip("/") + "/"
    con.execute(f"SET allowed_directories = [{_quote(root)}]")
    for setting in ("enable_external_access", "autoinstall_known_extensions",
                    "autoload_known_extensions", "allow_community_extensions"):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")
    return con


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def check_select(sql: str, *, what: str = "query") -> str:
    """`sql` must be exactly one SELECT (DESCRIBE, SUMMARIZE, SHOW and VALUES are SELECTs to
    DuckDB); anything else (COPY, ATTACH, INSTALL, CREATE, PRAGMA, SET, a second statement)
    is refused before it runs."""
    try:
        statements = duckdb.connect().extract_statements(sql)
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


def run(store: Store, sql: str) -> duckdb.DuckDBPyRelation:
    """User SQL (`r1data query`, the web UI's SQL box, --where): one SELECT on a read-only
    connection, run to completion; every refusal is one line. The result is an in-memory
    relation (`.pl()`, `.fetchall()`)."""
    check_select(sql)
    con = read_only(store)
    try:  # run it here: some refusals (sniff_csv) only surface when the rows are fetched
        return con.from_arrow(con.sql(sql).to_arrow_table())
    except duckdb.PermissionException as e:
        raise InputError(f"read-only: only the store's views can be read ({_first_line(e)})",
                         path="query") from None
    except duckdb.Error as e:
        raise InputError(f"SQL error: {_first_line(e)}", path="query") from None


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
