"""Writers of one run share it through claims: never the same prompt twice, lost ones retaken."""

import datetime as dt
import subprocess
import sys

import pyarrow as pa

from r1data.engines import sweep_stale_tmp
from r1data.generate import Claims, select_prompts
from r1data.prompts import ingest_synth
from r1data.store import SAMPLES_SCHEMA


def write_samples(store, run, prompt_ids, n):
    now = dt.datetime.now(dt.UTC)
    rows = [{"run": run, "prompt_id": pid, "sample_idx": i, "completion": "x",
             "created_at": now} for pid in prompt_ids for i in range(n)]
    store.write_shard("samples", pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA), run)


def ids(batch):
    return [p["prompt_id"] for p, _ in batch]


def test_two_writers_take_disjoint_prompts_and_retake_what_a_dead_one_lost(store):
    ingest_synth(store, ["arithmetic"], 6, 0, 1)
    prompts = select_prompts(store)
    a, b = Claims(store, "r", prompts, 2), Claims(store, "r", prompts, 2)
    first, second = a.take(2), b.take(3)
    assert len(first) == 2 and len(second) == 3 and not set(ids(first)) & set(ids(second))
    write_samples(store, "r", ids(first), 2)  # a finishes its shard, then fails: its claim ends
    third = a.take(1)  # 2 + 3 + 1: every prompt is now taken
    a.release()
    # b sees a gone, re-reads the store: a's finished prompts are done, its unfinished one free
    rest = b.take(10)
    assert ids(rest) == ids(third) and all(missing == [0, 1] for _, missing in rest)
    assert b.take(10) == [] and not b.others_alive()
    b.release()


def test_a_claim_of_a_killed_writer_is_free_and_its_file_removed(store, tmp_path):
    ingest_synth(store, ["arithmetic"], 3, 0, 1)
    prompts = select_prompts(store)
    code = ("import sys, os; from r1data.store import Store; from r1data.generate import Claims, "
            "select_prompts; s = Store(sys.argv[1]); c = Claims(s, 'r', select_prompts(s), 2); "
            "print(len(c.take(3)), flush=True); os.kill(os.getpid(), 9)")
    out = subprocess.run([sys.executable, "-c", code, str(store.root)], capture_output=True)
    assert out.stdout.decode().strip() == "3" and out.returncode == -9
    c = Claims(store, "r", prompts, 2)
    assert len(c.take(5)) == 3 and not c.others_alive()
    c.release()


def test_stale_private_temp_dirs_are_swept_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f"vllm-{dead}-abc"
    live = tmp_path / "vllm-1-abc"  # pid 1 never dies
    other = tmp_path / "vllm-nopid"  # not ours to judge
    for d in (stale, live, other):
        (d / "sub").mkdir(parents=True)
    assert sweep_stale_tmp(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
