"""`r1data serve` on a 1M-sample store: open, first page, deep page, filtered page, over HTTP.

Builds a synthetic store with pyarrow (no model: 15,625 prompts x 64 samples, shards of 8
prompts as `r1data generate` writes them, one verdict shard per sample shard), starts the real
`r1data serve` process and times by HTTP: the open (process start, then the first prompts page,
which waits for the run's index), then each page warm (median of --repeat). Beside it, the
naive peer a notebook does: read the run into memory (Store.read -> polars), aggregate per
prompt, slice a page; and the same SQL through the views (the SQL box).

    python bench/serve.py                      # 1M samples (build ~1 min, once per --dir)
    python bench/serve.py --prompts 1000       # 64k samples, quick

Wall times move with other jobs on a shared machine; compare the two sides of one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow as pa

from r1data.store import PROMPTS_SCHEMA, SAMPLES_SCHEMA, VERDICTS_SCHEMA, Store

ROOT = Path(__file__).resolve().parents[1]
SHARD_PROMPTS = 8
K = 64
REASONS = ["incorrect", "no_think", "language_mixing", "dup_line_frac", "truncated"]


def build(root: Path, prompts: int, seed: int = 0) -> Store:
    """prompts x K samples with verdicts; skipped if the store already has them."""
    store = Store(root)
    if store.shards("samples", "big"):
        return store
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    sources = ["synth/arithmetic", "synth/countdown", "champ", "gym/gsm_symbolic"]
    rows = [{"prompt_id": f"{i:016x}", "source": sources[i % 4],
             "problem": f"Problem {i}: what is {i} + {i % 97}?", "answer": str(i + i % 97),
             "domain": "math", "tests": None, "meta": "{}"} for i in range(prompts)]
    store.write_shard("prompts", pa.Table.from_pylist(rows, schema=PROMPTS_SCHEMA),
                      prefix="part")
    for start in range(0, prompts, SHARD_PROMPTS):
        samples, verdicts = [], []
        for i in range(start, min(prompts, start + SHARD_PROMPTS)):
            p_ok = rng.random()
            for j in range(K):
                ok = rng.random() < p_ok
                reason = None if ok else rng.choice(REASONS)
                ans = str(i + i % 97 + (0 if ok else rng.randint(1, 9)))
                reasoning = (f"We add {i} and {i % 97}. The ones column first, then the tens. "
                             f"Checking again by subtraction gives the other addend. {j}")
                final = f"The answer is \\boxed{{{ans}}}."
                samples.append({"run": "big", "prompt_id": f"{i:016x}", "sample_idx": j,
                                "completion": f"<think>\n{reasoning}\n</think>\n\n{final}",
                                "reasoning": reasoning, "final": final,
                                "num_tokens": 40 + (j * 7) % 300, "finish_reason": "stop",
                                "model": "synthetic", "engine": "vllm", "temperature": 0.6,
                                "top_p": 0.95, "max_tokens": 1024, "seed": 0,
                                "created_at": now})
                verdicts.append({"run": "big", "prompt_id": f"{i:016x}", "sample_idx": j,
                                 "filter_run": "bench", "created_at": now, "answer": ans,
                                 "correct": ok, "format_ok": reason != "no_think",
                                 "format_reason": None, "repetition": 0.0, "lang": "en",
                                 "lang_prob": 0.95, "lang_consistency": 1.0,
                                 "keep": reason is None, "reject_reason": reason})
        shard = store.write_shard("samples", pa.Table.from_pylist(samples,
                                                                  schema=SAMPLES_SCHEMA), "big")
        store.write_shard("verdicts", pa.Table.from_pylist(verdicts, schema=VERDICTS_SCHEMA),
                          "big", prefix=shard.stem)
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[float, int]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as r:
        body = r.read()
    return time.perf_counter() - t, len(body)


def serve_times(store: Store, repeat: int, verbose: bool = False) -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "r1data.cli", "serve", "--store",
                             str(store.root), "--port", str(port)], cwd=ROOT,
                            stderr=None if verbose else subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(base + "/app.css", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t0 > 120:
                    raise SystemExit("r1data serve did not start") from None
                time.sleep(0.05)
        out = {"process start (to first response)": time.perf_counter() - t0}
        out["first prompts page (waits for the run's index)"] = get(base + "/prompts?run=big")[0]
        out["open = start + first prompts page"] = time.perf_counter() - t0
        pid = f"{(len(store.read('prompts', columns=['prompt_id'])) // 2):016x}"
        pages = {
            "runs page (funnel of 1 run)": "/",
            "prompts, first page": "/prompts?run=big",
            "prompts, deep page (offset 15,000)": "/prompts?run=big&page=300",
            "prompts, filtered (reason + pass range + source)":
                "/prompts?run=big&reason=language_mixing&min_pass=0.2&max_pass=0.8"
                "&source=champ&sort=n_kept&desc=1",
            "prompts, text search": "/prompts?run=big&q=Problem+777%3A",
            "one prompt's samples, page 3": f"/prompt?run=big&id={pid}&page=2",
            "SQL box (group by over 1M)":
                "/sql?q=SELECT+reject_reason%2C+count(*)+FROM+verdicts+GROUP+BY+ALL",
        }
        for name, path in pages.items():
            times = [get(base + path)[0] for _ in range(repeat)]
            out[name] = statistics.median(times)
        t = time.perf_counter()
        while b"<svg" not in urllib.request.urlopen(base + "/plots", timeout=600).read():
            time.sleep(1)  # the page says "drawing" until the background draw is done
        out["plots, first draw (4 report plots over the views)"] = time.perf_counter() - t
        out["plots, again (cached until a run changes)"] = get(base + "/plots")[0]
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def naive_times(store: Store) -> dict[str, float]:
    """The peer: load the run, aggregate in memory, slice (what serving without SQL does)."""
    import polars as pl

    t = time.perf_counter()
    samples = pl.from_arrow(store.read("samples", "big", columns=[
        "prompt_id", "sample_idx", "completion", "num_tokens"]))
    verdicts = pl.from_arrow(store.read("verdicts", "big", columns=[
        "prompt_id", "sample_idx", "correct", "keep", "reject_reason"]))
    load = time.perf_counter() - t
    t = time.perf_counter()
    stats = (samples.join(verdicts, on=["prompt_id", "sample_idx"], how="left")
             .group_by("prompt_id").agg(pl.len().alias("n"), pl.col("correct").sum())
             .with_columns((pl.col("correct") / pl.col("n")).alias("pass_rate"))
             .sort(["pass_rate", "prompt_id"]))
    stats.slice(15_000, 50)
    return {"naive: read the run into memory": load,
            "naive: aggregate + sort + slice a page": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=15_625)
    ap.add_argument("--dir", type=Path, default=None, help="Store to build or reuse.")
    ap.add_argument("--repeat", type=int, default=3, help="Requests per page (median).")
    ap.add_argument("--verbose", action="store_true", help="Show the server's log.")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.gettempdir()) / f"r1data-serve-bench-{args.prompts}"
    t = time.perf_counter()
    store = build(root, args.prompts)
    built = time.perf_counter() - t
    res = {"samples": args.prompts * K, "store": str(root), "build_s": round(built, 1)}
    res |= {k: round(v, 3) for k, v in serve_times(store, args.repeat, args.verbose).items()}
    res |= {k: round(v, 3) for k, v in naive_times(store).items()}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
