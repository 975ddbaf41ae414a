"""Bad input through the CLI in-process: one line naming file, row, field or path, exit 2, and
the store byte-for-byte as it was (tests.conftest.snapshot before and after)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from r1data.prompts import ingest_synth
from r1data.store import Store
from tests.conftest import snapshot
from tests.core.test_cli import run_cli


def refused(monkeypatch, capsys, root: Path, *args, names: tuple[str, ...]) -> str:
    """Run a command that must fail: exit 2, one `error:` line naming `names`, store kept."""
    before = snapshot(root) if root.exists() else None
    code, _, err = run_cli(monkeypatch, capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert name in lines[0], (name, lines[0])
    if before is not None:
        assert snapshot(root) == before
    return lines[0]


def count_prompts(monkeypatch, capsys, root: Path, tmp_path: Path) -> int:
    out = tmp_path / "n.json"
    code, _, err = run_cli(monkeypatch, capsys, "query", "--store", root,
                           "SELECT count(*) AS n FROM prompts", "--out", out)
    assert code == 0, err
    return json.loads(out.read_text())[0]["n"]


@pytest.fixture
def st(tmp_path):
    store = Store(tmp_path / "st")
    ingest_synth(store, ["arithmetic"], 3, 0, 1)
    return store


def test_empty_jsonl_is_an_error_not_zero_rows(monkeypatch, capsys, st, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n")
    for path in (empty, blank):
        line = refused(monkeypatch, capsys, st.root, "prompts", "add", path, "--store", st.root,
                       names=(str(path), "empty"))
        assert "no rows" in line


def test_skip_invalid_counts_lines_that_are_not_json(monkeypatch, capsys, st, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"problem": "1+1", "answer": "2"}\n{not json\n[1, 2]\n'
                    '{"problem": "2+2", "answer": "4"}\n{"problem": "", "answer": "1"}\n')
    refused(monkeypatch, capsys, st.root, "prompts", "add", path, "--store", st.root,
            names=(str(path), "row 2", "not valid JSON"))
    code, out, err = run_cli(monkeypatch, capsys, "prompts", "add", path, "--store", st.root,
                             "--skip-invalid")
    rep = json.loads(out)
    assert code == 0, err
    assert (rep["added"], rep["invalid"]) == (2, 3)
    assert rep["reasons"] == {"invalid_json": 2, "invalid_problem": 1}


def test_csv_with_bom_and_crlf_ingests(monkeypatch, capsys, st, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffproblem,answer\r\n3+4,7\r\n\"a, b\r\nc\",1\r\n".encode())
    code, out, err = run_cli(monkeypatch, capsys, "prompts", "add", path, "--store", st.root,
                             "--source", "excel")
    assert code == 0, err
    assert json.loads(out)["added"] == 2
    rows = {r["problem"]: r["answer"] for r in st.read("prompts").to_pylist()
            if r["source"] == "excel"}
    assert rows == {"3+4": "7", "a, b\r\nc": "1"}


def test_nan_answer_is_refused_not_stored_as_text(monkeypatch, capsys, st, tmp_path):
    """A NaN is a missing value: a required answer that is NaN is refused like an empty one,
    and an optional field that is NaN is stored as null (never the string 'nan')."""
    table = pa.table({"problem": ["5+5", "6+6"], "answer": [10.0, float("nan")]})
    path = tmp_path / "nan.parquet"
    pq.write_table(table, path)
    refused(monkeypatch, capsys, st.root, "prompts", "add", path, "--store", st.root,
            names=(str(path), "row 2", "'answer'", "empty"))
    jsonl = tmp_path / "nan.jsonl"
    jsonl.write_text('{"problem": "7+7", "answer": NaN}\n')
    refused(monkeypatch, capsys, st.root, "prompts", "add", jsonl, "--store", st.root,
            names=(str(jsonl), "row 1", "'answer'"))
    code = tmp_path / "code.jsonl"
    code.write_text('{"problem": "def f(): ...", "answer": NaN, "domain": "code", '
                    '"tests": "assert f() is None"}\n')
    assert run_cli(monkeypatch, capsys, "prompts", "add", code, "--store", st.root)[0] == 0
    got = [r for r in st.read("prompts").to_pylist() if r["domain"] == "code"]
    assert len(got) == 1 and got[0]["answer"] is None


def test_inf_is_refused(monkeypatch, capsys, st, tmp_path):
    path = tmp_path / "inf.jsonl"
    path.write_text('{"problem": "x", "answer": Infinity}\n')
    refused(monkeypatch, capsys, st.root, "prompts", "add", path, "--store", st.root,
            names=(str(path), "row 1", "not a finite number"))


@pytest.mark.parametrize("name", ["a,b", "quote's \"dq\"", "spa ce", "ünï 数据"])
def test_store_path_with_odd_characters_works_end_to_end(monkeypatch, capsys, tmp_path, name):
    root = tmp_path / name / "st,ore"
    data = tmp_path / "p.jsonl"
    data.write_text('{"problem": "1+2", "answer": "3"}\n{"problem": "2+3", "answer": "5"}\n')
    code, _, err = run_cli(monkeypatch, capsys, "prompts", "add", data, "--store", root)
    assert code == 0, err
    assert count_prompts(monkeypatch, capsys, root, tmp_path) == 2


def test_query_writes_are_refused_via_the_cli(monkeypatch, capsys, st):
    part = st.shards("prompts")[0]
    for sql in (f"COPY (SELECT 1 AS prompt_id) TO '{part}' (FORMAT parquet)",
                "SELECT 1; DROP VIEW prompts", "INSTALL httpfs",
                "SELECT * FROM read_text('/etc/hostname')"):
        refused(monkeypatch, capsys, st.root, "query", "--store", st.root, sql,
                names=("query", "read-only"))


def test_where_injection_is_refused_via_the_cli(monkeypatch, capsys, st):
    part = st.shards("prompts")[0]
    refused(monkeypatch, capsys, st.root, "generate", "--store", st.root, "--run", "g",
            "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1",
            "--model", "served-name",  # not a catalogue name: no prepared folder needed
            "--where", f"1=1); COPY (SELECT 1) TO '{part}'; --",
            names=("--where", "not one SQL expression"))


def test_export_into_a_foreign_folder_via_the_cli(monkeypatch, capsys, st, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    before = snapshot(mine)
    refused(monkeypatch, capsys, st.root, "export", "--store", st.root, "--curated", "c",
            "--out", mine, names=("c",))  # no such set: refused before the folder is looked at
    assert snapshot(mine) == before


# --- the OS refuses the write: read-only store, full disk ------------------------------------
@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def _big_jsonl(path: Path, rows: int) -> Path:
    rnd = os.urandom(rows * 300).hex()  # incompressible text: the shard is as large as the file
    with open(path, "w") as fh:
        for i in range(rows):
            fh.write(json.dumps({"problem": f"{i} {rnd[i * 600:(i + 1) * 600]}", "answer": "1"})
                     + "\n")
    return path


def test_read_only_store_is_one_line(monkeypatch, capsys, tmp_path):
    with tmpfs(tmp_path / "ro", "4m") as mnt:
        st = Store(mnt / "st")
        ingest_synth(st, ["arithmetic"], 2, 0, 1)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        data = tmp_path / "p.jsonl"
        data.write_text('{"problem": "9+9", "answer": "18"}\n')
        line = refused(monkeypatch, capsys, st.root, "prompts", "add", data, "--store", st.root,
                       names=(str(st.root), "EROFS"))
        assert "cannot write" in line
        assert count_prompts(monkeypatch, capsys, st.root, tmp_path) == 2  # reading still works


def test_full_disk_is_one_line_and_leaves_no_temp_file(monkeypatch, capsys, tmp_path):
    with tmpfs(tmp_path / "full", "2m") as mnt:
        st = Store(mnt / "st")
        ingest_synth(st, ["arithmetic"], 2, 0, 1)
        data = _big_jsonl(tmp_path / "big.jsonl", 12000)  # ~7 MB of text, outside the tmpfs
        line = refused(monkeypatch, capsys, st.root, "prompts", "add", data, "--store", st.root,
                       names=(str(st.root / "prompts"), "ENOSPC"))
        assert "cannot write" in line
        assert not [p for p in st.root.rglob("*") if p.name.endswith(".tmp")]


def test_concurrent_ingests_never_duplicate(tmp_path):
    """Two processes ingesting the same file at once: each prompt lands once; a loser of the
    writer lock is told so in one line and writes nothing."""
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{i}+1", "answer": str(i + 1)}) + "\n"
                            for i in range(200)))
    root = tmp_path / "st"
    Store(root)
    cmd = [sys.executable, "-c", "from r1data.cli import main; main()", "prompts", "add",
           str(data), "--store", str(root)]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0 or "is being written by another process" in err, err
    ids = Store(root).read("prompts", columns=["prompt_id"]).column("prompt_id").to_pylist()
    assert len(ids) == len(set(ids)) == 200
