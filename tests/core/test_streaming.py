"""Select and export hold a batch of long traces, not the run: peak RSS of a fresh process."""

import datetime as dt
import json
import os
import random
import subprocess
import sys

import pyarrow as pa

from r1data.prompts import ingest_synth
from r1data.store import SAMPLES_SCHEMA, VERDICTS_SCHEMA, Store

# Long words: a lot of text for little per-word work (shingles), so the test stays short.
WORDS = [f"{w}{i}x" * 4 for i, w in enumerate(["reasoning", "denominator", "substitution",
                                                "coefficient", "probability"] * 400)]

# A fresh process runs one stage on the small store (twice: the first run warms allocators and
# pools up), then on the big one, and prints its high-water mark (VmHWM; ru_maxrss of a child
# started by vfork/exec reports pytest's peak) after the second small run and after the big
# one. One process a stage: the mark never goes down, so a second stage would hide behind the
# first. Batches of 1M characters, so that the small run is already several batches.
_PEAKS = """
import json, sys
import r1data.export as E
import r1data.selection as S
from r1data.store import Store

def vm_hwm():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmHWM:"))

S.BATCH_CHARS = E.BATCH_CHARS = 1_000_000
stage, small, big, out = sys.argv[1], *(Store(r, create=False) for r in sys.argv[2:4]), sys.argv[4]
peaks = []
for store in (small, small, big):
    if stage == "select":
        S.select(store, "r", "c", S.SelectConfig(k=4))
    else:
        E.export(store, "c", out + "/out-" + store.root.name, fmt="sft", test_size=0.2)
    peaks.append(vm_hwm())
print(json.dumps(peaks[1:]))
"""


def long_store(root, prompts: int, per_prompt: int = 8, words: int = 720) -> tuple[Store, int]:
    """A store of prompts x per_prompt distinct long traces (~44k characters), all kept;
    returns it and the characters of its traces."""
    store = Store(root)
    ingest_synth(store, ["arithmetic"], prompts, 0, 1)
    rng = random.Random(prompts)
    now = dt.datetime.now(dt.UTC)
    samples, verdicts, chars = [], [], 0
    for p in store.read("prompts").to_pylist():
        for i in range(per_prompt):
            reasoning = " ".join(rng.choices(WORDS, k=words))
            text = f"<think>\n{reasoning}\n</think>\n\\boxed{{{p['answer']}}}"
            chars += len(text)
            samples.append({"run": "r", "prompt_id": p["prompt_id"], "sample_idx": i,
                            "completion": text, "reasoning": reasoning,
                            "final": f"\\boxed{{{p['answer']}}}", "num_tokens": words + i,
                            "finish_reason": "stop", "model": "m", "created_at": now})
            verdicts.append({"run": "r", "prompt_id": p["prompt_id"], "sample_idx": i,
                             "filter_run": "f", "created_at": now, "correct": True,
                             "format_ok": True, "keep": True})
    for a in range(0, len(samples), 64):  # generate's shards: 8 prompts each
        store.write_shard("samples", pa.Table.from_pylist(samples[a:a + 64],
                                                          schema=SAMPLES_SCHEMA), "r")
    store.write_shard("verdicts", pa.Table.from_pylist(verdicts, schema=VERDICTS_SCHEMA), "r")
    return store, chars


def test_select_and_export_memory_follows_the_batch_not_the_run(tmp_path):
    """4x the traces (16 -> 64 prompts of 8 traces of ~44k characters: 5.7 -> 23 MB of text)
    raise the peak RSS of select, and that of export, by less than the extra text and less
    than 1.15x (measured: 0-12 MB, 1.00-1.06x). The code before held every kept trace,
    several times over (select: a Polars frame, dicts, shingles; export: a Polars frame,
    dicts, datasets' table) and fails both: +120 and +87 MB, 1.45x and 1.29x (at 19 MB).
    ~8 s of CPU (20 s wall on the shared 2-core machine)."""
    small, small_chars = long_store(tmp_path / "small", 16)
    big, big_chars = long_store(tmp_path / "big", 64)
    # One malloc arena: glibc gives each thread (DuckDB's, Arrow's) its own, and what they
    # free stays resident at random, 5-30 MB of noise in the peak; one arena keeps it ~2 MB.
    env = os.environ | {"MALLOC_ARENA_MAX": "1"}

    def peaks(stage: str) -> list[int]:
        got = subprocess.run([sys.executable, "-c", _PEAKS, stage, str(small.root),
                              str(big.root), str(tmp_path)], capture_output=True, text=True,
                             check=True, env=env)
        return json.loads(got.stdout.strip().splitlines()[-1])

    (select_small, select_big), (export_small, export_big) = peaks("select"), peaks("export")
    extra = big_chars - small_chars
    figures = (small_chars, big_chars, select_small, select_big, export_small, export_big)
    assert select_big - select_small < extra and select_big < 1.15 * select_small, figures
    assert export_big - export_small < extra and export_big < 1.15 * export_small, figures
    import datasets

    dd = datasets.load_from_disk(str(tmp_path / "out-big"))
    assert len(dd["train"]) + len(dd["test"]) == 64 * 4  # k = 4 of 8 distinct traces
