"""Code correctness: the solution after </think> runs against its tests in the sandbox.

Two test forms: assert code (HumanEval's `def check(candidate)` plus an entry point, or plain
asserts) and stdin/stdout cases `[{"input": ..., "output": ...}]` (or APPS-style
`{"inputs": [...], "outputs": [...]}`) compared after whitespace normalisation.

Assert tests run in a small harness rather than as `solution + tests` pasted together, because
a pasted program "passes" whenever it exits 0, and `sys.exit(0)` at the top of a solution is the
first reward hack a policy finds. The harness runs the solution, then the tests, then writes a
per-run random token straight to fd 1; only a run that printed the token passed. A solution
that exits early, kills itself or crashes the interpreter never reaches the token. This closes
the cheap hacks, not every in-process one (an object whose __eq__ always says True still
passes `assert f(x) == y`): code and tests share one interpreter.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor

from r1data.chat import completion_text, split_think
from r1data.errors import InputError
from r1data.filters.sandbox import RunResult, run_python

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"python", "python3", "py", "py3"}

# Runs the solution, then the tests, then prints the token. Its names carry the token so a
# solution cannot know them in advance; builtins it needs are bound before the solution runs.
_HARNESS = """\
def _r1_{token}(solution, tests, entry, _exec=exec, _compile=compile, _exit=SystemExit,
                _write=__import__("os").write, _fail=__import__("os")._exit,
                _modules=__import__("sys").modules, _module=type(__import__("sys"))):
    main = _module("__main__")  # solution and tests share it; unittest.main() looks here
    g = main.__dict__
    g.update(__name__="solution", __builtins__=__builtins__)  # the solution's demo code waits
    try:
        _exec(_compile(solution, "solution.py", "exec"), g)
    except _exit:
        _write(2, b"r1data: the solution exited before the tests ran\\n")
        _fail(1)
    g["__name__"] = "__main__"
    _modules["__main__"] = main
    try:
        _exec(_compile(tests, "tests.py", "exec"), g)
        if entry is not None and "check" in g:
            g["check"](g[entry])
    except _exit as e:  # unittest.main() style: exit 0 after its report means passed
        if e.code not in (0, None):
            raise
    _write(1, b"\\n{token}\\n")
_r1_{token}({solution!r}, {tests!r}, {entry!r})
"""


def extract_code(completion: str) -> str:
    """The solution: the last ```python block after </think>, else the last fenced block, else
    the whole final text."""
    final = split_think(completion)[1]
    blocks = _FENCE.findall(final)
    tagged = [body for tag, body in blocks if tag.lower() in _PYTHON_TAGS]
    untagged = [body for tag, body in blocks if not tag]
    return (tagged or untagged or [final])[-1]


def _norm(text: str) -> list[str]:
    """Lines with runs of whitespace collapsed; blank lines at either end dropped."""
    return [" ".join(line.split()) for line in text.strip().splitlines()]


def _as_text(value) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def parse_tests(tests):
    """Normalise a tests value: assert code (str), IO cases (list of dicts), or None.

    Accepts JSON text of either, `{"test": code, "entry_point": name}` (returned as is),
    APPS-style `{"inputs": [...], "outputs": [...]}` and MBPP-style lists of assert lines.
    """
    if tests is None:
        return None
    if isinstance(tests, str):
        if not tests.strip():
            return None
        try:
            tests = json.loads(tests)
        except json.JSONDecodeError:
            return tests  # plain assert code
        if isinstance(tests, str):
            return tests or None
    if isinstance(tests, dict) and "inputs" in tests:
        ins, outs = tests["inputs"], tests.get("outputs") or []
        if not isinstance(ins, list) or len(ins) != len(outs):
            raise InputError("inputs and outputs must be lists of one length", field="tests")
        return [{"input": i, "output": o} for i, o in zip(ins, outs, strict=True)] or None
    if isinstance(tests, dict) and "test" in tests:
        return tests if tests["test"] else None
    if isinstance(tests, list) and all(isinstance(t, dict) and "input" in t for t in tests):
        return tests or None
    if isinstance(tests, list) and all(isinstance(t, str) for t in tests):  # MBPP test_list
        return "\n".join(tests) or None
    raise InputError(f"unrecognised tests value of type {type(tests).__name__}", field="tests")


def run_case(code: str, case: dict, *, timeout: float = 5.0) -> bool:
    """One stdin/stdout case: exit 0 and the same output up to whitespace."""
    r = run_python(code, stdin=_as_text(case["input"]), timeout=timeout)
    return r.ok and _norm(r.stdout) == _norm(_as_text(case.get("output", "")))


def run_asserts(code: str, tests: str, *, entry_point: str | None = None,
                timeout: float = 5.0) -> RunResult:
    """Run the solution then the assert tests in the harness; `ok` alone is not a pass."""
    token = secrets.token_hex(16)
    program = _HARNESS.format(token=token, solution=code, tests=tests, entry=entry_point)
    r = run_python(program, timeout=timeout)
    passed = r.ok and f"\n{token}\n" in r.stdout
    return r if passed or not r.ok else RunResult(1, r.stdout, r.stderr, False, None, r.duration)


def code_pass_rate(completion: str, tests, *, entry_point: str | None = None,
                   timeout: float = 5.0) -> float:
    """Share of stdin/stdout cases passed (assert tests count as one case: 0.0 or 1.0)."""
    parsed = parse_tests(tests)
    if parsed is None:
        return 0.0
    if not isinstance(parsed, list):
        return float(code_correct(completion, parsed, entry_point=entry_point, timeout=timeout))
    code = extract_code(completion)
    return sum(run_case(code, c, timeout=timeout) for c in parsed) / len(parsed)


def code_correct(completion: str, tests, *, entry_point: str | None = None,
                 timeout: float = 5.0) -> bool:
    """True when every test passes; stops at the first failing case. No tests: False."""
    parsed = parse_tests(tests)
    if parsed is None:
        return False
    code = extract_code(completion)
    if isinstance(parsed, list):
        return all(run_case(code, c, timeout=timeout) for c in parsed)
    if isinstance(parsed, dict):  # {"test": ..., "entry_point": ...} as the prompts table holds
        entry_point = entry_point or parsed.get("entry_point")
        parsed = parsed["test"]
    return run_asserts(code, parsed, entry_point=entry_point, timeout=timeout).returncode == 0


def _column(columns: dict, name: str, n: int) -> list:
    value = columns.get(name)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InputError(f"{len(value)} values for {n} completions", field=name)
        return list(value)
    return [value] * n


def code_reward(completions: list, **columns) -> list[float | None]:
    """1.0 when all tests pass, 0.0 otherwise, None for rows without tests (open-r1 signature).

    Columns: `tests` (per row: assert code, IO cases, or their JSON) and optional `entry_point`;
    other columns are ignored. Rows run in a thread pool, each in its own sandboxed process.
    """
    n = len(completions)
    texts = [completion_text(c) for c in completions]
    tests = [parse_tests(t) for t in _column(columns, "tests", n)]
    entries = _column(columns, "entry_point", n)

    def one(i: int) -> float | None:
        if tests[i] is None:
            return None
        return float(code_correct(texts[i], tests[i], entry_point=entries[i]))

    if n == 0:
        return []
    with ThreadPoolExecutor(max_workers=min(n, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, range(n)))
