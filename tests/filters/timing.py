"""Timing for the linear-time tests: the best of a few runs, so a busy machine's hiccups do not
decide a ratio."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(fn: Callable[[str], object], text: str, runs: int = 2) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - start)
    return best
