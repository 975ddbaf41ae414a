"""Code correctness: the solution after </think> runs against its tests in the sandbox.

Tests are assert code (HumanEval's `check(candidate)` with an entry point, or plain asserts)
or stdin/stdout cases `[{"input": ..., "output": ...}]` compared after whitespace normalisation.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

from r1data.filters.extract import split_think
from r1data.filters.sandbox import run_python

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(completion: str) -> str:
    """The last fenced block of the final part (python-tagged preferred), else the final text."""
    final = split_think(completion)[1]
    blocks = _FENCE.findall(final)
    return blocks[-1] if blocks else final


def _norm(s: str) -> str:
    return "\n".join(line.rstrip() for line in s.strip().splitlines())


def _cases(tests) -> list[dict] | None:
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except json.JSONDecodeError:
            return None
    if isinstance(tests, list) and all(isinstance(t, dict) and "input" in t for t in tests):
        return tests
    return None


def code_pass_rate(completion: str, cases: list[dict], *, timeout: float = 5.0) -> float:
    """Share of stdin/stdout cases whose output matches."""
    if not cases:
        return 0.0
    code = extract_code(completion)
    passed = 0
    for case in cases:
        r = run_python(code, stdin=str(case["input"]), timeout=timeout)
        passed += r.ok and _norm(r.stdout) == _norm(str(case.get("output", "")))
    return passed / len(cases)


def code_correct(completion: str, tests, *, entry_point: str | None = None,
                 timeout: float = 5.0) -> bool:
    """True when every test passes: assert code (optionally `check(entry_point)`) or IO cases."""
    if isinstance(tests, dict):  # {"test": ..., "entry_point": ...} as the prompts table holds
        entry_point = entry_point or tests.get("entry_point")
        tests = tests.get("test")
    cases = _cases(tests)
    if cases is not None:
        return code_pass_rate(completion, cases, timeout=timeout) == 1.0
    if not isinstance(tests, str) or not tests.strip():
        return False
    program = extract_code(completion) + "\n\n" + tests
    if entry_point and "def check(" in tests:
        program += f"\n\ncheck({entry_point})\n"
    return run_python(program, timeout=timeout).ok


def _parse_tests(tests):
    """A prompts-table `tests` value: JSON text of a dict or list, or plain assert code."""
    if isinstance(tests, str):
        try:
            return json.loads(tests)
        except json.JSONDecodeError:
            return tests
    return tests


def code_reward(completions: list, **columns) -> list[float | None]:
    """1.0 when all tests pass, 0.0 otherwise, None for rows without tests (open-r1 signature)."""
    n = len(completions)
    tests = columns.get("tests") or [None] * n
    entries = columns.get("entry_point") or [None] * n
    if not isinstance(entries, list):
        entries = [entries] * n
    texts = [c if isinstance(c, str) else str((c[-1] if isinstance(c, list) else c)
                                              .get("content", "")) for c in completions]

    def one(i: int) -> float | None:
        t = _parse_tests(tests[i])
        if not t:
            return None
        return float(code_correct(texts[i], t, entry_point=entries[i]))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, range(n)))
