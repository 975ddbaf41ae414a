import datetime as dt
import json
import math
import os
import subprocess
import sys

import pyarrow as pa
import pytest

from r1data import query
from r1data.errors import InputError
from r1data.prompts import ingest_synth
from r1data.store import SAMPLES_SCHEMA, VERDICTS_SCHEMA


def fill(store, correct_by_prompt: dict[int, int], n: int = 8):
    """A run with n samples per prompt, the first c of them verified correct."""
    ingest_synth(store, ["arithmetic"], len(correct_by_prompt), 0, 1)
    pids = sorted(store.read("prompts").column("prompt_id").to_pylist())
    now = dt.datetime.now(dt.UTC)
    samples, verdicts = [], []
    for k, pid in enumerate(pids):
        for i in range(n):
            samples.append({"run": "r", "prompt_id": pid, "sample_idx": i, "completion": "x",
                            "num_tokens": 10 * (i + 1), "finish_reason": "stop",
                            "created_at": now})
            ok = i < correct_by_prompt[k]
            verdicts.append({"run": "r", "prompt_id": pid, "sample_idx": i, "filter_run": "f",
                             "created_at": now, "correct": ok, "format_ok": True, "keep": ok,
                             "reject_reason": None if ok else "incorrect"})
    store.write_shard("samples", pa.Table.from_pylist(samples, schema=SAMPLES_SCHEMA), "r")
    store.write_shard("verdicts", pa.Table.from_pylist(verdicts, schema=VERDICTS_SCHEMA), "r")
    return pids


def unbiased(n, c, k):
    return 1.0 if n - c < k else 1 - math.comb(n - c, k) / math.comb(n, k)


def test_views_exist_on_empty_store(store):
    for view in ("prompts", "samples", "verdicts", "curated", "prompt_stats"):
        assert query.run(store, f"SELECT count(*) FROM {view}").fetchall()[0] == (0,)


def test_pass_at_k_matches_the_unbiased_estimator(store):
    fill(store, {0: 0, 1: 1, 2: 5, 3: 8})
    rows = query.run(store, query.report_sql("pass_at_k")).pl().to_dicts()
    assert len(rows) == 4
    for r in rows:
        assert r["pass_at_1"] == pytest.approx(r["n_correct"] / 8, abs=1e-4)
        assert r["pass_at_8"] == pytest.approx(unbiased(8, r["n_correct"], 8), abs=1e-4)
    for n, c, k in [(64, 3, 8), (64, 0, 1), (10, 3, 5), (64, 63, 2)]:
        got = query.run(store, f"SELECT pass_at_k({n}, {c}, {k})").fetchall()[0][0]
        assert got == pytest.approx(unbiased(n, c, k), abs=1e-9)


def test_pass_rate_funnel_difficulty_lengths(store):
    fill(store, {0: 0, 1: 1, 2: 5, 3: 8})
    pr = query.run(store, query.report_sql("pass_rate")).pl().to_dicts()[0]
    assert (pr["prompts"], pr["samples"], pr["correct"], pr["prompts_solved"]) == (4, 32, 14, 3)
    assert pr["mean_pass_at_1"] == pytest.approx((0 + 1 / 8 + 5 / 8 + 1) / 4, abs=1e-4)
    funnel = {r["outcome"]: r["samples"] for r in
              query.run(store, query.report_sql("funnel")).pl().to_dicts()}
    assert funnel == {"kept": 14, "incorrect": 18}
    bands = {r["band"]: r["prompts"] for r in
             query.run(store, query.report_sql("difficulty")).pl().to_dicts()}
    assert bands == {"0 unsolved": 1, "1 hard (0-0.2]": 1, "2 medium (0.2-0.8)": 1,
                     "4 solved by all": 1}
    lengths = query.run(store, query.report_sql("lengths")).pl().to_dicts()
    assert {r["verdict"]: r["samples"] for r in lengths} == {"kept": 14, "rejected": 18}
    assert max(r["max_tokens"] for r in lengths) == 80


def test_newest_verdict_wins(store):
    pids = fill(store, {0: 0})
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    store.write_shard("verdicts", pa.Table.from_pylist(
        [{"run": "r", "prompt_id": pids[0], "sample_idx": 0, "filter_run": "g",
          "created_at": later, "correct": True, "keep": True}], schema=VERDICTS_SCHEMA), "r")
    got = query.run(store, "SELECT count(*), sum(keep::INT) FROM verdicts").fetchall()[0]
    assert got == (8, 1)


def test_outputs_csv_json_parquet(store, tmp_path):
    fill(store, {0: 2, 1: 3})
    rel = query.run(store, query.report_sql("pass_at_k"))
    for fmt in ("csv", "json", "parquet"):
        out = query.write(rel, tmp_path / f"r.{fmt}")
        assert out.stat().st_size > 0
    assert len(json.loads((tmp_path / "r.json").read_text())) == 2
    with pytest.raises(InputError, match="unknown output format"):
        query.write(rel, tmp_path / "r.xlsx")


def test_unknown_report_and_bad_sql_are_one_line_errors(store):
    with pytest.raises(InputError, match="unknown report"):
        query.report_sql("nope")
    with pytest.raises(InputError, match="SQL error") as e:
        query.run(store, "SELECT nothing FROM nowhere")
    assert "\n" not in str(e.value)


def test_same_sql_runs_in_plain_duckdb_from_the_store(store):
    fill(store, {0: 3, 1: 8})
    views = query.sql_text("views")
    report = query.sql_text("pass_rate")
    code = ("import duckdb, sys; con = duckdb.connect(); con.execute(sys.argv[1]); "
            "print(con.sql(sys.argv[2]).fetchall())")
    out = subprocess.run([sys.executable, "-c", code, views, report], cwd=store.root,
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": ""})
    assert "11" in out.stdout  # 3 + 8 correct


# --- user SQL is read-only ----------------------------------------------------------------------
def _refused(store, sql, match):
    """The statement fails with one line and the store (and its folder) is byte-for-byte kept."""
    from tests.conftest import snapshot

    before, around = snapshot(store.root), sorted(p.name for p in store.root.parent.iterdir())
    with pytest.raises(InputError, match=match) as e:
        query.run(store, sql).fetchall()
    assert "\n" not in str(e.value)
    assert snapshot(store.root) == before
    assert sorted(p.name for p in store.root.parent.iterdir()) == around


@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1 AS prompt_id) TO '{part}' (FORMAT parquet)",
    "COPY prompts TO '{root}/samples/forged/shard-x.parquet'",
    "ATTACH '{root}/../evil.db' AS e",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CREATE TABLE t AS SELECT 1",
    "CREATE OR REPLACE VIEW prompts AS SELECT 1",
    "INSERT INTO prompts VALUES (1)",
    "UPDATE prompts SET answer = 'x'",
    "DELETE FROM prompts",
    "DROP VIEW prompts",
    "PRAGMA enable_profiling",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "SELECT 1; COPY (SELECT 1) TO '{part}'",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{root}/../x.csv'",
    "EXPORT DATABASE '{root}/../dump'",
    "",
])
def test_query_refuses_every_statement_but_one_select(store, sql):
    ingest_synth(store, ["arithmetic"], 3, 0, 1)
    part = store.shards("prompts")[0]
    _refused(store, sql.format(part=part, root=store.root), "read-only|SQL error")


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_text('{root}/../outside.txt')",
    "SELECT * FROM read_text('prompts/../../outside.txt')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM read_parquet('https://example.com/x.parquet')",
])
def test_query_reads_no_file_outside_the_store(store, sql):
    (store.root.parent / "outside.txt").write_text("secret")
    _refused(store, sql.format(root=store.root), "read-only")


def test_query_still_reads_the_views_and_the_store(store):
    fill(store, {0: 1, 1: 2})
    assert query.run(store, "SELECT count(*) FROM samples").fetchall() == [(16,)]
    assert {r[0] for r in query.run(store, "DESCRIBE prompts").fetchall()} >= {"prompt_id"}
    assert query.run(store, "SUMMARIZE samples").fetchall()
    shard = store.shards("samples", "r")[0]
    assert query.run(store, f"SELECT count(*) FROM read_parquet('{shard}')").fetchall() == [(16,)]


@pytest.mark.parametrize("where", [
    "1=1) UNION SELECT 'x', 'y', 'z', 'w' FROM read_text('/etc/passwd') --",
    "1=1); COPY (SELECT 1) TO '{part}'; --",
    "1=1) OR (1=1",
    "1=1 --",  # a comment may not swallow the closing parenthesis
    "true; DROP VIEW prompts",
])
def test_where_is_one_expression(store, where):
    from r1data.generate import select_prompts
    from tests.conftest import snapshot

    ingest_synth(store, ["arithmetic"], 3, 0, 1)
    before = snapshot(store.root)
    where = where.format(part=store.shards("prompts")[0])
    if where == "1=1 --":
        assert len(select_prompts(store, where=where)) == 3
        return
    with pytest.raises(InputError, match=r"--where: (not one SQL expression|read-only)"):
        select_prompts(store, where=where)
    assert snapshot(store.root) == before


def test_where_selects_by_expression(store):
    from r1data.generate import select_prompts

    ingest_synth(store, ["arithmetic"], 4, 0, 1)
    first = sorted(store.read("prompts").column("prompt_id").to_pylist())[0]
    assert [p["prompt_id"] for p in select_prompts(store, where=f"prompt_id = '{first}'")] == \
        [first]


@pytest.mark.parametrize("name", ["a,b", "it's", "with space", "ünïcødé 数据", "q\"uote,'x'",
                                  "gl[o]b*?"])
def test_views_read_stores_at_any_path(tmp_path, name):
    from r1data.store import Store

    store = Store(tmp_path / name / "store")
    fill(store, {0: 1, 1: 0})
    assert query.run(store, "SELECT count(*) FROM prompt_stats").fetchall() == [(2,)]
    assert query.run(store, query.report_sql("funnel")).fetchall()


def test_cached_connection_refuses_writes_and_outside_files_after_a_remake(store, tmp_path):
    from tests.conftest import snapshot

    fill(store, {0: 1, 1: 2})
    cache = query.Cached(store)
    assert cache.run("SELECT count(*) FROM samples").fetchall() == [(16,)]
    now = dt.datetime.now(dt.UTC)
    store.write_shard("samples", pa.Table.from_pylist(
        [{"run": "r2", "prompt_id": "p", "sample_idx": 0, "completion": "x", "created_at": now}],
        schema=SAMPLES_SCHEMA), "r2")  # a new run folder: the views are remade
    assert cache.run("SELECT count(*) FROM samples").fetchall() == [(17,)]
    (tmp_path / "outside.txt").write_text("secret")
    before = snapshot(store.root)
    for sql in ("COPY (SELECT 1) TO 'x.csv'", "CREATE OR REPLACE VIEW samples AS SELECT 1",
                "SET enable_external_access = true", f"SELECT * FROM read_text('{tmp_path}/"
                "outside.txt')", "SELECT 1; DROP VIEW samples"):
        with pytest.raises(InputError, match="read-only"):
            cache.run(sql)
    assert snapshot(store.root) == before
    assert cache.run("SELECT count(*) FROM samples").fetchall() == [(17,)]


def test_cached_connection_answers_concurrent_queries_right(store):
    from concurrent.futures import ThreadPoolExecutor

    """(~1 s) 32 queries from 8 threads on one kept connection, each with its own answer."""
    correct = {0: 0, 1: 1, 2: 5, 3: 8}
    fill(store, correct)  # prompt k: samples 0 .. correct[k] - 1 are correct
    cache = query.Cached(store)

    def ask(c: int):
        return c, cache.run(f"SELECT count(*) FROM verdicts WHERE correct AND sample_idx < {c}"
                            ).fetchall()

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(ask, [c % 8 for c in range(32)]))
    assert all(rows == [(sum(min(c, k) for k in correct.values()),)] for c, rows in got)
