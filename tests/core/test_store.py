from pathlib import Path

import pyarrow as pa
import pytest

from r1data.errors import StoreError
from r1data.store import PROMPTS_SCHEMA, Store, write_parquet_atomic


def test_new_store_has_schema_markers_and_reads_empty(tmp_path):
    st = Store(tmp_path / "s")
    for table in ("prompts", "samples", "verdicts", "curated"):
        assert (tmp_path / "s" / table / "_schema.parquet").exists()
    assert st.read("prompts").num_rows == 0
    assert st.read("samples", "nope").schema.names[:3] == ["run", "prompt_id", "sample_idx"]


def test_store_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        Store(f)
    assert f.read_text() == "x"


def test_missing_store_not_created_when_asked(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        Store(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def boom(where, *a, **k):  # half a file, then the disk is full
        Path(where).write_bytes(b"PAR1half")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "ParquetWriter", boom)
    with pytest.raises(StoreError, match=r"x.parquet: cannot write"):
        write_parquet_atomic(PROMPTS_SCHEMA.empty_table(), tmp_path / "x.parquet")
    assert list(tmp_path.iterdir()) == []


def test_shards_are_appended_not_rewritten(tmp_path):
    st = Store(tmp_path / "s")
    rows = pa.Table.from_pylist([{"prompt_id": "a", "source": "t", "problem": "p"}],
                                schema=PROMPTS_SCHEMA)
    first = st.write_shard("prompts", rows, prefix="part")
    before = first.read_bytes()
    st.write_shard("prompts", rows, prefix="part")
    assert first.read_bytes() == before
    assert st.read("prompts").num_rows == 2


def test_run_names_are_checked(tmp_path):
    st = Store(tmp_path / "s")
    with pytest.raises(StoreError, match="generate name"):
        st.manifest_path("generate", "../escape")
    with pytest.raises(StoreError, match="unknown manifest kind"):
        st.manifest_path("../runs", "x")


def _hold_lock_in_child(root):
    """Start a process that takes the writer lock of run `r` and waits on stdin."""
    import subprocess
    import sys

    code = ("import sys; from r1data.store import Store\n"
            f"with Store({str(root)!r}).lock('generate', 'r'):\n"
            "    print('held', flush=True); sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_writer_lock_refuses_a_second_process_and_dies_with_the_holder(tmp_path):
    import signal

    st = Store(tmp_path / "s")
    child = _hold_lock_in_child(st.root)
    try:
        with pytest.raises(StoreError, match=rf"generate r is being written by another process "
                                             rf"\(pid {child.pid}\)"):
            with st.lock("generate", "r"):
                pass
        with st.lock("generate", "other"):  # another run is free
            pass
        with st.lock("filter", "r"):  # same name, other kind: free
            pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with st.lock("generate", "r"):  # the kernel released the dead holder's lock
        with pytest.raises(StoreError, match="being written"):
            with st.lock("generate", "r"):  # even in one process, a second holder is refused
                pass


def test_manifests_of_different_kinds_cannot_collide(tmp_path):
    st = Store(tmp_path / "s")
    st.write_manifest("generate", "filter-t", {"run": "filter-t", "engine": "vllm",
                                               "config": {"temperature": 0.6}})
    st.write_manifest("filter", "t", {"run": "t", "filter_run": "abc", "config": {}})
    assert st.read_manifest("generate", "filter-t")["config"]["temperature"] == 0.6
    assert st.read_manifest("filter", "t")["filter_run"] == "abc"
    assert st.read_manifest("generate", "t") is None
    assert st.read_manifest("filter", "filter-t") is None


def test_old_flat_manifests_are_migrated_by_what_they_hold(tmp_path):
    import json

    runs = tmp_path / "s" / "runs"
    runs.mkdir(parents=True)
    old = {"gen.json": {"run": "gen", "engine": "vllm", "config": {}},
           "filter-gen.json": {"run": "gen", "filter_run": "f1", "config": {}},
           # the old collision: a generation run named filter-x, no filter run of x
           "filter-x.json": {"run": "filter-x", "engine": "vllm", "config": {}},
           "curated-cur.json": {"curated": "cur", "run": "gen", "counts": {}},
           "eval-m-result.json": {"pass_at_1": 0.5, "model": "m", "data": "d"},
           "gen.teacher.json": [["model.safetensors", 1, 2]],
           "notes.json": {"mine": True}}
    for name, obj in old.items():
        (runs / name).write_text(json.dumps(obj))
    st = Store(tmp_path / "s")
    assert st.read_manifest("generate", "gen")["engine"] == "vllm"
    assert st.read_manifest("filter", "gen")["filter_run"] == "f1"
    assert st.read_manifest("generate", "filter-x")["run"] == "filter-x"
    assert st.read_manifest("filter", "x") is None
    assert st.read_manifest("select", "cur")["run"] == "gen"
    assert st.read_manifest("eval", "eval-m")["pass_at_1"] == 0.5
    assert st.read_manifest("teacher", "gen") == [["model.safetensors", 1, 2]]
    assert sorted(p.name for p in runs.glob("*.json")) == ["notes.json"]  # unknown: left alone


def test_shard_names_skip_the_schema_marker(tmp_path):
    st = Store(tmp_path / "s")
    assert st.shard_names("prompts") == [] and st.shard_names("samples", "r") == []
    rows = pa.Table.from_pylist([{"prompt_id": "a", "source": "t", "problem": "p"}],
                                schema=PROMPTS_SCHEMA)
    path = st.write_shard("prompts", rows, prefix="part")
    assert st.shard_names("prompts") == [path.name]


def test_filter_run_t_no_longer_unpins_generation_run_filter_t(tmp_path):
    """The issue's case: `filter --run t` used to overwrite the manifest of generation run
    `filter-t`, after which resuming `filter-t` at another temperature was not refused."""
    from r1data.config import GenerateConfig
    from r1data.generate import check_resumable, manifest_for

    st = Store(tmp_path / "s")
    st.write_manifest("generate", "filter-t",
                      manifest_for(GenerateConfig(model="m", temperature=0.6), "filter-t", "vllm"))
    st.write_manifest("filter", "t", {"run": "t", "filter_run": "f", "config": {}})
    with pytest.raises(StoreError, match="temperature=0.6"):
        check_resumable(st.read_manifest("generate", "filter-t"),
                        GenerateConfig(model="m", temperature=1.3), "filter-t")


def test_long_text_shards_have_bounded_row_groups_without_dictionaries(tmp_path):
    """A shard of long traces is cut into row groups of ~ROW_GROUP_BYTES of text (readers
    decode a group whole); its text columns are not dictionary-encoded; it reads back equal."""
    import datetime as dt
    import os

    import pyarrow.parquet as pq

    from r1data.store import ROW_GROUP_BYTES, SAMPLES_SCHEMA

    st = Store(tmp_path / "s")
    now = dt.datetime.now(dt.UTC)
    rows = [{"run": "r", "prompt_id": f"p{i // 16}", "sample_idx": i % 16,
             "completion": f"<think>{os.urandom(12_000 + 97 * i).hex()}</think> {i}",
             "reasoning": os.urandom(12_000).hex(), "final": str(i), "num_tokens": i,
             "finish_reason": "stop", "model": "m", "created_at": now} for i in range(256)]
    table = pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA)
    path = st.write_shard("samples", table, "r")
    meta = pq.ParquetFile(path).metadata
    text_bytes = sum(len(r["completion"]) + len(r["reasoning"]) + len(r["final"]) for r in rows)
    assert meta.num_row_groups >= text_bytes // ROW_GROUP_BYTES >= 3
    names = [meta.schema.column(c).name for c in range(meta.num_columns)]
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        assert rg.num_rows < len(rows)
        for c, name in enumerate(names):
            dictionary = rg.column(c).dictionary_page_offset is not None
            assert dictionary == (name in ("run", "prompt_id", "model", "finish_reason",
                                           "sample_idx", "num_tokens", "created_at",
                                           "engine", "temperature", "top_p", "max_tokens",
                                           "seed", "round")), (g, name)
    assert pq.read_table(path).equals(table)
    assert st.read("samples", "r").equals(table)


def test_read_rows_picks_rows_across_row_groups(tmp_path):
    """Rows picked by number (unsorted, repeated, first and last, inside and across groups of
    7) come back once each, in row order, equal to the table's; take maps them by shard."""
    import pyarrow.parquet as pq

    from r1data.store import read_rows, take

    table = pa.table({"n": list(range(50)), "completion": [f"text {i}" * i for i in range(50)]})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=7)
    want = [49, 0, 13, 14, 13, 6, 7, 48, 20]
    got = list(read_rows(path, want, ["n", "completion"], batch_rows=3))
    assert [r for r, _ in got] == sorted(set(want))
    assert [v for _, v in got] == table.take(sorted(set(want))).to_pylist()
    assert list(read_rows(path, [], ["n"])) == []
    both = take([path, path], [(1, 5), (0, 44)], ["n"])
    assert both == {(0, 44): {"n": 44}, (1, 5): {"n": 5}}
