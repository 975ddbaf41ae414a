"""Filter throughput and memory: r1data's filter stack beside a naive math-verify loop.

Data: synthetic R1-style completions, 64 per prompt, with the answer spread a weak teacher shows
(a few distinct answers per prompt, some unboxed, some truncated, some repeated).

    python bench/filter.py --prompts 200             # throughput, same data, one run
    python bench/filter.py --rss --rss-prompts 15625 # + peak RSS of `r1data filter` on 1M samples

Wall time moves with other jobs on a shared machine; the CPU time per sample moves less.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa

_STEPS = [
    "First, we read the problem carefully and write down the two numbers.",
    "We line the numbers up by place value, ones under ones and tens under tens.",
    "Adding the ones column may produce a carry into the tens column.",
    "Then we add the tens column together with any carry from the ones.",
    "It helps to estimate first, so we round both numbers to the nearest ten.",
    "The estimate tells us roughly how large the exact answer should be.",
    "We double-check by subtracting one addend from the total.",
    "If the subtraction gives back the other addend, the sum is right.",
    "Let me also count on from the larger number to be sure.",
]


def make_store(root: Path, prompts: int, n: int = 64, seed: int = 0, shard_prompts: int = 64):
    """A store with `prompts` arithmetic prompts and n samples each, written shard by shard."""
    from r1data.filters.extract import split_think
    from r1data.prompts import IngestReport, add_rows, prompt_id
    from r1data.store import SAMPLES_SCHEMA, Store

    rng = random.Random(seed)
    store = Store(root)
    rows, golds = [], {}
    for k in range(prompts):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        problem = f"Problem {k}: what is {a} + {b}?"
        pid = prompt_id("bench", problem)
        golds[pid] = a + b
        rows.append({"prompt_id": pid, "source": "bench", "problem": problem,
                     "answer": str(a + b), "domain": "math", "tests": None, "meta": None})
    add_rows(store, rows, IngestReport(source="bench"))
    now = dt.datetime.now(dt.UTC)
    pids = list(golds)
    for s in range(0, len(pids), shard_prompts):
        batch = []
        for pid in pids[s:s + shard_prompts]:
            gold = golds[pid]
            wrong = [gold + d for d in (-10, -1, 1, 2)]
            for i in range(n):
                ans = gold if rng.random() < 0.4 else rng.choice(wrong)
                form = rng.random()
                if form < 0.5:
                    final = f"The answer is $\\boxed{{{ans}}}$."
                elif form < 0.7:
                    final = f"So the total is {ans}."
                elif form < 0.8:
                    final = f"\\boxed{{\\frac{{{2 * ans}}}{{2}}}}"
                else:
                    final = f"Therefore $x = {ans}$"
                steps = " ".join(rng.sample(_STEPS, 6))  # ~500 characters, as SmolLM2 writes
                think = f"{steps} Checking again gives {ans}."
                text = f"<think>\n{think}\n</think>\n\n{final}"
                finish = "length" if rng.random() < 0.05 else "stop"
                reasoning, fin = split_think(text)
                batch.append({"run": "bench", "prompt_id": pid, "sample_idx": i,
                              "completion": text, "reasoning": reasoning, "final": fin,
                              "num_tokens": len(text) // 4, "finish_reason": finish,
                              "created_at": now})
        store.write_shard("samples", pa.Table.from_pylist(batch, schema=SAMPLES_SCHEMA), "bench")
    return store


def naive_math_verify(store, limit: int | None = None) -> tuple[list[bool], float]:
    """The usual loop: math_verify.parse + verify on every sample, one at a time."""
    from math_verify import parse, verify

    samples = store.read("samples", "bench", ["prompt_id", "sample_idx", "completion"])
    golds = {r["prompt_id"]: r["answer"] for r in store.read("prompts").to_pylist()}
    rows = sorted(samples.to_pylist(), key=lambda r: (r["prompt_id"], r["sample_idx"]))
    rows = rows[:limit] if limit else rows
    start, cpu = time.perf_counter(), cpu_seconds()
    out = []
    for r in rows:
        gold = parse(f"${golds[r['prompt_id']]}$")
        pred = parse(r["completion"])
        out.append(bool(verify(gold, pred)))
    return out, time.perf_counter() - start, cpu_seconds() - cpu


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the filter's workers): a
    measure that other jobs on a shared machine disturb far less than wall time."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def r1data_filter(store) -> tuple[list[bool], float, float]:
    from r1data.filtering import FilterConfig, filter_run

    start, cpu = time.perf_counter(), cpu_seconds()
    filter_run(store, "bench", FilterConfig(), progress=False)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    v = store.read("verdicts", "bench", ["prompt_id", "sample_idx", "correct"]).to_pylist()
    v.sort(key=lambda r: (r["prompt_id"], r["sample_idx"]))
    return [bool(r["correct"]) for r in v], seconds, cpu


def measured(cmd: list[str]) -> tuple[float, float, float]:
    """(peak MiB, seconds, CPU seconds) of a command's process tree, sampled every 0.1 s: on a
    shared machine the wall time follows the load, the CPU time (user + system) much less.
    Sampled per process, not from getrusage: a pool's workers that exit unreaped by their
    parent (datatrove's) are missing from RUSAGE_CHILDREN."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    peak, cpu = 0, {}
    while proc.poll() is None:
        rss = 0
        for p in [root, *_children(root)]:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    cpu[p.pid] = t.user + t.system
                    rss += p.memory_info().rss
            except psutil.Error:
                pass
        peak = max(peak, rss)
        time.sleep(0.1)
    return peak / 2**20, time.perf_counter() - start, sum(cpu.values())


def _children(root) -> list:
    import psutil

    try:
        return root.children(recursive=True)
    except psutil.Error:
        return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--naive-limit", type=int, default=None,
                    help="time the naive loop on the first N samples only (it is slow)")
    ap.add_argument("--rss", action="store_true", help="also measure peak RSS on --rss-prompts")
    ap.add_argument("--rss-prompts", type=int, default=15625, help="15,625 x 64 = 1M samples")
    args = ap.parse_args()
    threading.current_thread().name = "bench"
    with tempfile.TemporaryDirectory(dir=os.environ.get("R1DATA_CACHE_DIR")) as tmp:
        store = make_store(Path(tmp) / "s", args.prompts)
        n = args.prompts * 64
        ours, t_ours, c_ours = r1data_filter(store)
        naive, t_naive, c_naive = naive_math_verify(store, args.naive_limit)
        same = sum(a == b for a, b in zip(ours, naive, strict=False))
        rate_ours, rate_naive = n / t_ours, len(naive) / t_naive
        us_ours, us_naive = c_ours / n * 1e6, c_naive / len(naive) * 1e6
        print(f"{'':34s} {'samples':>9s} {'seconds':>8s} {'samples/s':>10s} {'CPU us/sample':>14s}")
        print(f"{'naive math-verify loop (math only)':34s} {len(naive):9d} {t_naive:8.2f} "
              f"{rate_naive:10.0f} {us_naive:14.0f}")
        print(f"{'r1data filter (math+format+lang)':34s} {n:9d} {t_ours:8.2f} {rate_ours:10.0f} "
              f"{us_ours:14.0f}")
        print(f"speed-up {rate_ours / rate_naive:.1f}x (CPU per sample: "
              f"{us_naive / us_ours:.1f}x less); same math verdict on "
              f"{same}/{len(naive)} samples ({same / len(naive):.2%})")
        if args.rss:
            big = make_store(Path(tmp) / "big", args.rss_prompts)
            mib, secs, _ = measured([sys.executable, "-m", "r1data.cli", "filter", "--store",
                                     str(big.root), "--run", "bench", "--no-progress"])
            print(f"r1data filter on {args.rss_prompts * 64:,} samples: peak RSS {mib:.0f} MiB "
                  f"(process tree), {secs:.0f} s")


if __name__ == "__main__":
    main()
