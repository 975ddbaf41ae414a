"""`r1data serve` on a 1M-sample store: open (cold, warm), pages, the SQL box and the plots, over
HTTP, beside plain DuckDB over the same Parquet.

Builds a synthetic store with pyarrow (no model: 15,625 prompts x 64 samples, shards of 8
prompts as `r1data generate` writes them, one verdict shard per sample shard), starts the real
`r1data serve` process twice and times by HTTP:
- cold: no saved index (runs/.serve-index removed): the server answers at once with the build's
  progress (202), then the time until the prompts page is served, and the server's CPU-s;
- warm: a reopen (the index saved by the cold run): process start + first prompts page;
then each page warm (median of --repeat), the SQL box (its first query binds the views once),
the first plot and a cached one. The peer: the `duckdb` package over the same Parquet with
sql/views.sql as shipped (`cd STORE && duckdb -init views.sql`): the views, a prompts page over
prompt_stats, the SQL box's query, the funnel report.

    nice -n 15 python bench/serve.py                 # 1M samples (build ~1 min, once per --dir)
    nice -n 15 python bench/serve.py --prompts 1000  # 64k samples, quick

Wall times move with other jobs on a shared machine; compare the two sides of one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
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


def get(url: str) -> tuple[float, int, bytes]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
        status = r.status
    return time.perf_counter() - t, status, body


SQL = "SELECT reject_reason, count(*) AS n FROM verdicts GROUP BY ALL ORDER BY ALL"
PAGE_SQL = ("SELECT prompt_id, source, n, n_correct, round(n_correct / n, 4) AS pass_rate "
            "FROM prompt_stats WHERE run = 'big' ORDER BY pass_rate, prompt_id "
            "LIMIT 50 OFFSET 15000")


def serve_times(store: Store, repeat: int, cold: bool, verbose: bool = False
                ) -> dict[str, float]:
    """One server process: its open, then (warm only) every page."""
    import psutil

    if cold:
        shutil.rmtree(store.root / "runs" / ".serve-index", ignore_errors=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "r1data.cli", "serve", "--store",
                             str(store.root), "--port", str(port)], cwd=ROOT,
                            stderr=None if verbose else subprocess.DEVNULL)
    kind = "cold" if cold else "warm"
    try:
        while True:
            try:
                urllib.request.urlopen(base + "/app.css", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t0 > 120:
                    raise SystemExit("r1data serve did not start") from None
                time.sleep(0.02)
        out = {f"{kind}: process start (to first response)": time.perf_counter() - t0}
        cpu0 = sum(psutil.Process(proc.pid).cpu_times()[:2])
        took, status, body = get(base + "/prompts?run=big")
        out[f"{kind}: first prompts page answers ({status})"] = took
        if cold:
            while status == 202:  # the progress page; it reloads itself every second
                time.sleep(0.2)
                _, status, body = get(base + "/prompts?run=big")
            out["cold: open = start + index built + prompts page"] = time.perf_counter() - t0
            cpu = sum(psutil.Process(proc.pid).cpu_times()[:2])
            out["cold: server CPU-s, process start"] = cpu0
            out["cold: server CPU-s, index build (and the views, begun after it)"] = cpu - cpu0
            return out
        assert status == 200 and b"prompts match" in body, body[:300]
        out["warm: open = start + first prompts page"] = time.perf_counter() - t0
        t = time.perf_counter()
        took, status, body = get(base + "/sql?q=" + urllib.parse.quote(SQL))
        assert status == 200 and b"<table>" in body, body[:300]
        out["SQL box, first query (binds the views once)"] = time.perf_counter() - t
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
            "SQL box, again (group by over every verdict)": "/sql?q=" + urllib.parse.quote(SQL),
        }
        for name, path in pages.items():
            out[name] = statistics.median(get(base + path)[0] for _ in range(repeat))
        took, status, body = get(base + "/plots")
        assert status == 200 and body.count(b"<svg") >= 4, body[:300]
        out["plots, first request (drawn in the warm-up, after the index and the views)"] = took
        out["plots, again (cached until the index changes)"] = get(base + "/plots")[0]
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def draw_times(store: Store) -> dict[str, float]:
    """The plots drawn in this process from the saved index (what the warm-up does)."""
    import resource

    from r1data.serve import plots_html
    from r1data.serve_index import StoreIndex

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    t = time.perf_counter()
    ix = StoreIndex(store)
    assert ix.update("big") is False  # the saved index, nothing read again
    out = {"in-process: load the saved index (wall)": time.perf_counter() - t}
    t, c = time.perf_counter(), cpu()
    assert plots_html(ix).count("<svg") >= 4
    out |= {"in-process: draw the 4 plots (wall, with matplotlib's import)":
            time.perf_counter() - t, "in-process: draw the 4 plots (CPU-s)": cpu() - c}
    return out


def duckdb_times(store: Store, repeat: int) -> dict[str, float]:
    """The peer: the duckdb package over the same Parquet, sql/views.sql as shipped (relative
    globs, run from the store), each query on the one connection (median of `repeat`)."""
    import duckdb

    from r1data.query import report_sql, sql_text

    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{store.root}'")
    t = time.perf_counter()
    con.execute(sql_text("views"))
    out = {"duckdb: open (create the views)": time.perf_counter() - t}
    for name, sql in (("duckdb: prompts page (prompt_stats, offset 15,000)", PAGE_SQL),
                      ("duckdb: SQL box query", SQL),
                      ("duckdb: funnel report (one plot's data)", report_sql("funnel"))):
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            con.execute(sql).fetchall()
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times)
    return out


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
    for cold in (True, False):
        res |= {k: round(v, 3) for k, v in serve_times(store, args.repeat, cold,
                                                        args.verbose).items()}
    res |= {k: round(v, 3) for k, v in draw_times(store).items()}
    res |= {k: round(v, 3) for k, v in duckdb_times(store, args.repeat).items()}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
