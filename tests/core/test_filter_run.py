"""`r1data filter` over a store: verdict columns, reasons, resume after SIGKILL."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pytest

from r1data.errors import ConfigError, InputError
from r1data.filtering import FilterConfig, filter_run
from r1data.prompts import IngestReport, add_rows, prompt_id
from r1data.store import SAMPLES_SCHEMA

ZH = "我们先把两个数相加，然后把和除以三，得到答案。我们再检查一遍结果是否正确。"
EN = "We add the two numbers, then check the result once more to be sure it is right."


def prompts(store):
    rows = [
        {"problem": "What is 2+3?", "answer": "5", "domain": "math", "meta": None},
        {"problem": "Reach 10 with [2, 5]", "answer": "10", "domain": "countdown",
         "meta": json.dumps({"numbers": [2, 5], "target": 10})},
        {"problem": "Write a poem", "answer": None, "domain": "general", "meta": None},
    ]
    for r in rows:
        r |= {"source": "t", "prompt_id": prompt_id("t", r["problem"]), "tests": None}
    add_rows(store, rows, IngestReport(source="t"))
    return {r["domain"]: r["prompt_id"] for r in rows}


def add_samples(store, run, items, shard_size=100):
    from r1data.filters.extract import split_think

    now = dt.datetime.now(dt.UTC)
    rows = []
    for i, (pid, text, finish) in enumerate(items):
        reasoning, final = split_think(text)
        rows.append({"run": run, "prompt_id": pid, "sample_idx": i, "completion": text,
                     "reasoning": reasoning, "final": final, "finish_reason": finish,
                     "num_tokens": len(text) // 4, "created_at": now})
    for k in range(0, len(rows), shard_size):
        store.write_shard("samples", pa.Table.from_pylist(rows[k:k + shard_size],
                                                          schema=SAMPLES_SCHEMA), run)


def test_verdicts_and_reasons(store):
    ids = prompts(store)
    items = [
        (ids["math"], f"<think>\n{EN}\n</think>\n\\boxed{{5}}", "stop"),  # kept
        (ids["math"], f"<think>\n{EN}\n</think>\n\\boxed{{6}}", "stop"),  # incorrect
        (ids["math"], f"<think>\n{EN}", "length"),  # truncated
        (ids["math"], "The answer is 5.", "stop"),  # no_think, but correct
        (ids["math"], f"<think>\n{ZH}\n</think>\n\\boxed{{5}}", "stop"),  # language_mixing
        (ids["math"], f"<think>\n{EN}\n</think>\n答案是 \\boxed{{5}}，因为两个数相加。",
         "stop"),  # wrong_language
        (ids["countdown"], f"<think>\n{EN}\n</think>\n<answer>2 * 5</answer> \\boxed{{10}}",
         "stop"),
        (ids["countdown"], f"<think>\n{EN}\n</think>\n<answer>5 + 5</answer> \\boxed{{10}}",
         "stop"),  # 5 used twice
        (ids["general"], f"<think>\n{EN}\n</think>\nRoses are red.", "stop"),  # unverified
    ]
    add_samples(store, "r", items)
    rep = filter_run(store, "r", progress=False)
    assert rep.total == 9 and rep.kept == 2
    v = sorted(store.read("verdicts", "r").to_pylist(), key=lambda r: r["sample_idx"])
    assert [r["reject_reason"] for r in v] == [
        None, "incorrect", "truncated", "no_think", "language_mixing", "wrong_language", None,
        "incorrect", "unverified"]
    assert [r["correct"] for r in v] == [True, False, False, True, True, True, True, False,
                                         None]
    assert v[3]["answer"] == "5" and v[5]["lang"] == "zh"
    assert v[4]["lang_consistency"] < 0.5 <= v[0]["lang_consistency"]
    assert rep.dropped["incorrect"] == 2


def test_rerun_skips_done_shards_and_new_settings_refilter(store):
    ids = prompts(store)
    add_samples(store, "r", [(ids["math"], "<think>a b c</think> \\boxed{5}", "stop")] * 30,
                shard_size=10)
    first = filter_run(store, "r", progress=False)
    again = filter_run(store, "r", progress=False)
    assert (first.shards_done_before, again.shards_done_before) == (0, 3)
    assert again.total == first.total == 30
    other = filter_run(store, "r", FilterConfig(checks=["correct"]), progress=False)
    assert other.shards_done_before == 0 and other.kept == 30


def test_bad_config_and_missing_run(store):
    with pytest.raises(ConfigError, match="unknown filter"):
        FilterConfig(checks=["vibes"])
    with pytest.raises(InputError, match="no samples"):
        filter_run(store, "absent", progress=False)


@pytest.mark.slow
def test_sigkill_then_resume_gives_each_sample_one_verdict(store):
    ids = prompts(store)
    items = [(ids["math"], f"<think>\n{EN}\n</think>\n\\boxed{{{i % 7}/{i % 5 + 1}}}", "stop")
             for i in range(2000)]
    add_samples(store, "big", items, shard_size=50)
    proc = subprocess.Popen([sys.executable, "-m", "r1data.cli", "filter", "--store",
                             str(store.root), "--run", "big", "--no-progress"],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(store.shards("verdicts", "big")) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(store.shards("verdicts", "big"))
    assert 3 <= done < 40
    rep = filter_run(store, "big", progress=False)
    assert rep.shards_done_before == done and rep.total == 2000
    keys = [(r["prompt_id"], r["sample_idx"])
            for r in store.read("verdicts", "big", ["prompt_id", "sample_idx"]).to_pylist()]
    assert len(keys) == len(set(keys)) == 2000


def test_few_shards_are_sliced_over_processes_with_the_same_verdicts(store, tmp_path):
    """A run of one big shard is cut into slices for two processes; its verdict shard is the
    one a single process writes, and no part files stay behind."""
    from r1data.store import Store

    ids = prompts(store)
    items = [(ids["math"], f"<think>\n{EN} Step {i % 13}.\n</think>\n\\boxed{{{i % 7}}}",
              "length" if i % 11 == 0 else "stop") for i in range(3000)]
    add_samples(store, "r", items, shard_size=3000)
    other = Store(tmp_path / "other")
    prompts(other)
    add_samples(other, "r", items, shard_size=3000)
    two = filter_run(store, "r", FilterConfig(workers=2), progress=False)
    one = filter_run(other, "r", FilterConfig(workers=1), progress=False)
    assert (two.total, two.kept, two.dropped) == (one.total, one.kept, one.dropped)
    cols = [c for c in store.read("verdicts", "r").column_names if c != "created_at"]
    assert store.read("verdicts", "r", cols).equals(other.read("verdicts", "r", cols))
    vdir = store.table_dir("verdicts", "r")
    assert [p.name for p in vdir.iterdir() if p.name.startswith(".")] == []
    assert len(store.shards("verdicts", "r")) == 1


def long_items(pid, n, chars, seed=0):
    """n varied traces of about `chars` characters (words from a seeded vocabulary)."""
    import random

    rng = random.Random(seed)
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9)))
             for _ in range(3000)]
    out = []
    for i in range(n):
        words = rng.choices(vocab, k=chars // 6)
        text = " ".join(w + ("." if j % 12 == 11 else "") for j, w in enumerate(words))
        out.append((pid, f"<think>\n{text}\n</think>\n\\boxed{{{i % 9}}}",
                    "length" if i % 7 == 0 else "stop"))
    return out


def test_batches_cover_the_slice_within_their_limits(store):
    """sample_batches over shards of several row groups: every row of [start, stop) once, in
    order, each batch within batch_rows and batch_chars (or a single longer row)."""
    import pyarrow.parquet as pq

    from r1data.filtering import sample_batches

    ids = prompts(store)
    add_samples(store, "r", long_items(ids["math"], 150, 600), shard_size=150)
    whole = store.shards("samples", "r")[0]
    table = pq.read_table(whole)
    split = store.root / "split.parquet"
    pq.write_table(table, split, row_group_size=37)
    for path in (whole, split):
        for rows, b_rows, b_chars in ((None, 16, 10**9), ([5, 149], 7, 3000), ([36, 38], 1, 1),
                                      ([100, 150], 256, 5000), ([0, 0], 4, 10**9)):
            batches = list(sample_batches(str(path), rows, b_rows, b_chars))
            a, b = rows or (0, 150)
            got = [(r["sample_idx"], r["completion"]) for bt in batches for r in bt]
            assert got == list(zip(table["sample_idx"].to_pylist()[a:b],
                                   table["completion"].to_pylist()[a:b], strict=True))
            for bt in batches:
                assert len(bt) <= b_rows
                assert len(bt) == 1 or sum(len(r["completion"]) for r in bt) <= b_chars


def test_batched_verdicts_equal_whole_shard_verdicts(store, tmp_path):
    """Verdicts do not depend on the batch: one batch per shard, batches of 3 rows, or a
    character budget below one trace give the same table (and the same filter run id)."""
    from r1data.store import Store

    items = None
    tables = []
    for k, (b_rows, b_chars) in enumerate(((10**6, 10**9), (3, 10**9), (10**6, 100))):
        st = Store(tmp_path / f"s{k}")
        ids = prompts(st)
        items = items or long_items(ids["math"], 40, 3000) + [
            (ids["math"], f"<think>\n{ZH} {EN}\n</think>\n\\boxed{{5}}", "stop"),
            (ids["math"], f"<think>\n{EN}\n</think>\n\\boxed{{5}}", "stop")]
        add_samples(st, "r", items, shard_size=len(items))
        rep = filter_run(st, "r", FilterConfig(batch_rows=b_rows, batch_chars=b_chars,
                                               workers=1), progress=False)
        cols = [c for c in st.read("verdicts", "r").column_names if c != "created_at"]
        tables.append((rep.filter_run, rep.kept, st.read("verdicts", "r", cols)))
    assert {t[0] for t in tables} == {FilterConfig().run_id()}
    assert tables[0][2].num_rows == 42 and 0 < tables[0][1] < 42
    assert tables[0][2].equals(tables[1][2]) and tables[0][2].equals(tables[2][2])


# The child's peak is its own address space's high-water mark (VmHWM), not getrusage's
# ru_maxrss: Python starts a child with vfork, and exec records the parent's peak RSS in the
# child's ru_maxrss, so inside the full suite every child "peaked" at pytest's size.
_PEAKS = """
import json, sys
from r1data.filtering import FilterConfig, filter_shard
from dataclasses import asdict

def vm_hwm():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmHWM:"))

root, out, jobs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
peaks = []
for shard, batch_rows, batch_chars in jobs:
    cfg = asdict(FilterConfig(batch_rows=batch_rows, batch_chars=batch_chars, workers=1))
    filter_shard(root, shard, out + "/" + str(len(peaks)) + ".parquet", cfg)
    peaks.append(vm_hwm())
print(json.dumps(peaks))
"""


# Heavy again: in the fresh-clone CI run it measured +15.8 MB against its 9.9 MB bound (the
# machine under load; 0-1.5 MB in 8 of 9 runs alone). Its bound needs a steadier measure.
@pytest.mark.heavy
@pytest.mark.timeout(300)
def test_memory_is_bounded_by_the_row_batch_not_the_shard(store, tmp_path):
    """One fresh process filters a shard of 16 long traces three times, then one of 512, in
    batches of 8: its peak RSS does not grow with the shard (less than half the extra text).
    128 traces as one batch do raise it by more than the extra text: the measure can fail.

    The small shard goes three times because a process's peak rises over its first batches
    (fastText, the Python heap) and is about flat after the second pass (0-1.5 MB more for the
    512 traces, rarely ~15 MB: allocator creep); a reader that holds the whole shard (as
    pyarrow's ParquetFile does by default: it pre-buffers every row group it is asked for
    unless pre_buffer=False) shows as 30-40 MB, 1.5-2x the extra text.

    The shards have row groups of 16 rows and no dictionary page: a Parquet reader decodes a
    column's whole dictionary page (for texts that never repeat, all of a row group's text)
    before its first row, so a one-group dictionary shard costs ~1x its text to read."""
    import pyarrow.parquet as pq

    ids = prompts(store)
    chars = 40_000
    for run, n in (("small", 16), ("mid", 128), ("big", 512)):
        add_samples(store, run, long_items(ids["math"], n, chars, seed=n), shard_size=n)
    small, mid, big = (str(store.shards("samples", r)[0]) for r in ("small", "mid", "big"))
    for path in (small, mid, big):  # streamable shards: row groups of 16, no dictionary
        pq.write_table(pq.read_table(path), path, row_group_size=16, use_dictionary=False)
    jobs = [[small, 8, 10**9]] * 3 + [[big, 8, 10**9], [mid, 128, 10**9]]
    got = subprocess.run([sys.executable, "-c", _PEAKS, str(store.root), str(tmp_path),
                          json.dumps(jobs)], capture_output=True, text=True, check=True)
    *_, after_small, after_big, whole = json.loads(got.stdout)
    extra_text = (512 - 16) * chars
    assert after_big - after_small < extra_text / 2, (after_small, after_big, whole)
    assert whole - after_big > extra_text, (after_small, after_big, whole)


def test_processes_follow_the_text_size_not_only_the_rows(store, monkeypatch):
    """48 long traces (4.8 MB of text) get two processes; the same rows short get one (a
    worker's start-up would outweigh their work)."""
    import r1data.filtering as F

    seen = []
    monkeypatch.setattr(F, "_run_jobs", lambda jobs, workers: seen.append(workers) or iter([]))
    monkeypatch.setattr(F.os, "cpu_count", lambda: 2)
    ids = prompts(store)
    add_samples(store, "long", long_items(ids["math"], 48, 100_000), shard_size=24)
    add_samples(store, "short", long_items(ids["math"], 48, 300), shard_size=24)
    filter_run(store, "long", progress=False)
    filter_run(store, "short", progress=False)
    assert seen == [2, 1]
