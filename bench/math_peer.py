"""Peer check: r1data's math verifier against math-verify's own test cases.

math-verify's source distribution ships its tests; each parametrised (gold, pred, expected) case
is read with `ast` (never executed) and judged by `r1data.filters.math.is_correct(pred, gold)`.
Agreement = share of cases where r1data's verdict equals the expected one.

    python bench/math_peer.py            # prints per-file and overall agreement
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

VERSION = "0.9.0"


def sdist_tests(cache: Path | None = None) -> Path:
    """Download (once) and unpack math-verify's sdist; return its tests/ folder.

    Raises R1DataError with the reason when the registry cannot be reached: the peer check
    must fail loudly, never pass or skip without its yardstick.
    """
    from r1data.errors import R1DataError

    cache = cache or Path(os.environ.get("R1DATA_CACHE_DIR") or ".cache/r1data") / "peer"
    root = cache / f"math_verify-{VERSION}"
    if not (root / "tests").exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "-q", "-d", str(cache), f"math-verify=={VERSION}"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
        except subprocess.CalledProcessError as e:
            tail = (e.stderr or e.stdout or "").strip().splitlines()[-1:]
            raise R1DataError(f"could not download math-verify=={VERSION} sdist from the "
                              f"package registry: {' '.join(tail) or e}") from None
        except (OSError, subprocess.TimeoutExpired) as e:
            raise R1DataError(f"could not run pip download for math-verify: {e}") from None
        with tarfile.open(cache / f"math_verify-{VERSION}.tar.gz") as tf:
            tf.extractall(cache, filter="data")
    if not (root / "tests").is_dir():
        raise R1DataError(f"{root}: the math-verify sdist has no tests/ folder")
    return root / "tests"


EXPECTED = ("expected", "result")  # test_yujianll.py names the verdict `result`


def cases(tests_dir: Path) -> list[tuple[str, str, str, bool]]:
    """(file, gold, pred, expected) from every parametrize over gold, pred and the verdict."""
    out = []
    for path in sorted(tests_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize"
                    and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)):
                continue
            names = [n.strip() for n in str(node.args[0].value).split(",")]
            verdict = next((k for k in EXPECTED if k in names), None)
            if verdict is None or not {"gold", "pred"} <= set(names):
                continue
            gi, pi, ei = (names.index(k) for k in ("gold", "pred", verdict))
            try:
                rows = ast.literal_eval(node.args[1])
            except ValueError:
                continue
            for row in rows:
                row = row if isinstance(row, (tuple, list)) else (row,)
                if len(row) == len(names) and isinstance(row[gi], str) \
                        and isinstance(row[pi], str):
                    out.append((path.name, row[gi], row[pi], bool(row[ei])))
    return out


def agreement(rows: list[tuple[str, str, str, bool]]) -> dict:
    from r1data.filters.math import is_correct

    per_file: dict[str, list[int]] = {}
    start = time.perf_counter()
    for f, gold, pred, expected in rows:
        got = is_correct(pred, gold)
        per_file.setdefault(f, [0, 0])
        per_file[f][0] += got == expected
        per_file[f][1] += 1
    agree = sum(a for a, _ in per_file.values())
    return {"cases": len(rows), "agree": agree, "agreement": agree / max(1, len(rows)),
            "per_file": per_file, "seconds": time.perf_counter() - start}


def main() -> None:
    res = agreement(cases(sdist_tests()))
    print(f"{'file':28s} {'cases':>6s} {'agree':>6s} {'share':>7s}")
    for f, (a, n) in sorted(res["per_file"].items()):
        print(f"{f:28s} {n:6d} {a:6d} {a / n:7.1%}")
    print(f"{'overall':28s} {res['cases']:6d} {res['agree']:6d} {res['agreement']:7.1%}"
          f"   ({res['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
