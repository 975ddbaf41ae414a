"""DuckDB over the store: the views and reports of `sql/`, run with paths relative to the store."""

from __future__ import annotations

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


def connect(store: Store) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB with the store's views; relative paths resolve in the store."""
    con = duckdb.connect()
    root = str(store.root.resolve()).replace("'", "''")
    con.execute(f"SET file_search_path = '{root}'")
    con.execute(sql_text("views"))
    return con


def report_sql(name: str) -> str:
    if name not in reports():
        raise InputError(f"unknown report (known: {', '.join(reports())})", path=name)
    return sql_text(name)


def run(store: Store, sql: str) -> duckdb.DuckDBPyRelation:
    con = connect(store)
    try:
        return con.sql(sql)
    except duckdb.Error as e:
        raise InputError(f"SQL error: {str(e).splitlines()[0]}", path="query") from None


def write(rel: duckdb.DuckDBPyRelation, out: str | Path, fmt: str | None = None) -> Path:
    """Write a result with DuckDB's own writers; format from the flag or the file suffix."""
    out = Path(out)
    fmt = fmt or out.suffix.lstrip(".").lower()
    if fmt == "csv":
        rel.write_csv(str(out))
    elif fmt == "parquet":
        rel.write_parquet(str(out))
    elif fmt == "json":
        rel.pl().write_json(out)
    else:
        raise InputError(f"unknown output format {fmt!r} (csv, json, parquet)", path=str(out))
    return out
