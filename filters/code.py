"""Code correctness: the solution after </think> runs against its tests in the sandbox.

Two test forms: assert code (HumanEval's `def check(candidate)` plus an entry point, plain
asserts as MBPP writes them, or unittest) and stdin/stdout cases `[{"input": ..., "output": ...}]`
(or APPS-style `{"inputs": [...], "outputs": [...]}`) compared after whitespace normalisation.

Assert tests: the solution's process cannot produce a pass by itself. Two sandboxed processes
run side by side, each in its own namespaces (filters/sandbox.py):

- the solution server (untrusted) loads the solution and answers calls: a function name and
  arguments in, the result out, both as plain data (None, bool, int, float, str, bytes and
  list / tuple / set / frozenset / dict of those, exact types only, size and depth bounded);
- the harness (trusted: the dataset's test code, never the solution) runs the tests, where the
  entry point and every name the tests use but do not define are proxies that send each call
  over a pipe to the server and rebuild the answer as builtin objects.

A result whose __eq__ always says True, an int or str subclass, a generator or any other object
is not plain data: the call fails. A solution that exits (SystemExit, sys.exit, os._exit, a
signal), hangs, prints fake markers, installs trace or exception hooks, walks frames or `gc`, or
kills its parent only does so in its own process: the test code, its expected values and the
verdict channel are in another sandbox it has no handle on. The verdict is a per-run secret the
harness writes on a dedicated pipe to r1data after the last test passed, and only if the server
never broke the protocol; exit statuses and stdout are not trusted. Limits: the tests may call
the solution's functions with plain data only (a test that inspects a returned object, reads a
solution constant or checks an argument mutated in place fails), and each call costs a pipe
round trip. In the 'rlimits' fallback both processes run as the same user without namespaces, so
the solution could reach the harness; code rewards refuse that mode unless the user opts in.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor

from r1data.chat import completion_text, split_think
from r1data.errors import InputError
from r1data.filters.sandbox import RunResult, require_code_isolation, run_python

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"python", "python3", "py", "py3"}
_MAX_MESSAGE = 8 * 2**20  # bytes of one call's result; larger answers fail the call

# Plain data <-> JSON, in both programs. Containers are tagged lists, so JSON objects never occur
# and the decoder only ever builds builtin objects. Exact types: subclasses are not plain data.
_CODEC = r"""
import json as _json
import os as _os


def _r1_enc(x, depth=0):
    t = type(x)
    if x is None or t is bool or t is int or t is float or t is str:
        return x
    if depth > 64:
        raise ValueError("nested deeper than 64")
    if t is bytes:
        return ["b", x.hex()]
    if t is dict:
        out = ["d"]
        for k, v in x.items():
            out += [_r1_enc(k, depth + 1), _r1_enc(v, depth + 1)]
        return out
    tag = {list: "l", tuple: "t", set: "s", frozenset: "f"}.get(t)
    if tag is None:
        raise TypeError(f"a {t.__name__} is not plain data")
    return [tag, *(_r1_enc(v, depth + 1) for v in x)]


def _r1_dec(x, depth=0):
    t = type(x)
    if x is None or t is bool or t is int or t is float or t is str:
        return x
    if t is not list or not x or depth > 64:
        raise ValueError("malformed message")
    tag, items = x[0], x[1:]
    if tag == "b" and len(items) == 1 and type(items[0]) is str:
        return bytes.fromhex(items[0])
    vals = [_r1_dec(v, depth + 1) for v in items]
    if tag == "l":
        return vals
    if tag == "t":
        return tuple(vals)
    if tag == "s":
        return set(vals)
    if tag == "f":
        return frozenset(vals)
    if tag == "d" and len(vals) % 2 == 0:
        return dict(zip(vals[::2], vals[1::2]))
    raise ValueError("malformed message")


def _r1_send(fd, msg):
    data = (_json.dumps(msg) + "\n").encode()
    while data:
        data = data[_os.write(fd, data):]


def _r1_reader(fd, limit):
    buf = bytearray()

    def readline():
        while True:
            end = buf.find(b"\n")
            if end >= 0:
                line = bytes(buf[:end])
                del buf[:end + 1]
                return _json.loads(line)
            if len(buf) > limit:
                raise ValueError("message too long")
            chunk = _os.read(fd, 1 << 16)
            if not chunk:
                return None
            buf.extend(chunk)
    return readline
"""

# The untrusted side: load the solution (its `if __name__ == "__main__"` demo code does not
# run), say ready, then answer calls until the harness closes its end.
_SERVER = r"""
def _r1_serve(req_fd, resp_fd, source, limit):
    import builtins, sys
    read = _r1_reader(req_fd, limit)
    module = type(sys)("solution")
    g = module.__dict__
    g["__builtins__"] = builtins
    sys.modules["solution"] = module
    try:
        exec(compile(source, "solution.py", "exec"), g)
    except BaseException as e:
        _r1_send(resp_fd, ["dead", type(e).__name__])
        raise
    _r1_send(resp_fd, ["ready"])
    while (msg := read()) is not None:
        name, args, kwargs = msg
        try:
            result = g[name](*_r1_dec(args), **_r1_dec(kwargs))
        except Exception as e:
            base = next(c for c in type(e).__mro__ if getattr(builtins, c.__name__, None) is c)
            _r1_send(resp_fd, ["err", base.__name__])
            continue
        try:
            _r1_send(resp_fd, ["ok", _r1_enc(result)])
        except Exception as e:
            _r1_send(resp_fd, ["bad", str(e)[:200]])
_r1_serve(*_R1_ARGS)
"""

# The trusted side: the dataset's tests, with proxies for the solution's names. The verdict goes
# to its own pipe, and only when every test ran and the server never broke the protocol.
_HARNESS = r"""
class _R1Broken(BaseException):  # not an Exception: a test's `except Exception` cannot eat it
    pass


def _r1_harness(req_fd, resp_fd, verdict_fd, secret, tests, entry, limit):
    import builtins, sys
    read = _r1_reader(resp_fd, limit)
    broken = []

    def reply():
        try:
            msg = read()
        except Exception as e:  # malformed or oversized: the server broke the protocol
            msg = ["bad", repr(e)[:200]]
        if type(msg) is not list or not msg:
            broken.append("the solution's process ended or sent nothing")
            raise _R1Broken(broken[0])
        return msg

    def proxy(name):
        def call(*args, **kwargs):
            if broken:
                raise _R1Broken(broken[0])
            _r1_send(req_fd, [name, _r1_enc(list(args)), _r1_enc(kwargs)])
            msg = reply()
            if msg[0] == "ok" and len(msg) == 2:
                try:
                    return _r1_dec(msg[1])
                except Exception:
                    pass
            if msg[0] == "err" and len(msg) == 2 and type(msg[1]) is str:
                cls = getattr(builtins, msg[1], None)
                if isinstance(cls, type) and issubclass(cls, Exception):
                    raise cls(f"raised by {name}() in the solution")
            broken.append(f"{name}() did not return plain data: {str(msg)[:200]}")
            raise _R1Broken(broken[0])
        call.__name__ = call.__qualname__ = name
        return call

    first = reply()
    if first != ["ready"]:
        sys.stderr.write(f"r1data: the solution did not load: {str(first)[:200]}\n")
        raise SystemExit(1)
    main = type(sys)("__main__")  # unittest.main() looks for the tests here
    g = main.__dict__
    g["__builtins__"] = builtins
    sys.modules["__main__"] = main
    code = compile(tests, "tests.py", "exec")
    stack, names = [code], set()
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack += [k for k in c.co_consts if isinstance(k, type(code))]
    for name in names - set(dir(builtins)):
        g[name] = proxy(name)  # the tests' own definitions and imports replace these
    try:
        exec(code, g)
        if entry is not None and "check" in g:
            g["check"](proxy(entry))
    except SystemExit as e:  # unittest.main() style: exit 0 after its report means passed
        if e.code not in (0, None):
            raise
    if broken:
        sys.stderr.write(f"r1data: {broken[0]}\n")
        raise SystemExit(1)
    _r1_send(verdict_fd, ["pass", secret])
_r1_harness(*_R1_ARGS)
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
    """One stdin/stdout case: exit 0 and the same output up to whitespace (compared here)."""
    require_code_isolation()
    r = run_python(code, stdin=_as_text(case["input"]), timeout=timeout)
    return r.ok and _norm(r.stdout) == _norm(_as_text(case.get("output", "")))


def _program(body: str, *args) -> str:
    """A self-contained program: the codec, its arguments as literals, then its body."""
    return f"{_CODEC}\n_R1_ARGS = {args!r}\n{body}"


def run_asserts(code: str, tests: str, *, entry_point: str | None = None,
                timeout: float = 5.0) -> RunResult:
    """Run the tests in the harness against the solution in its server (two sandboxes).

    returncode 0 only when the harness reported the pass on its verdict pipe; stderr holds the
    harness's then the server's.
    """
    require_code_isolation()
    secret = secrets.token_hex(16)
    req_r, req_w = os.pipe()  # harness -> server: calls
    resp_r, resp_w = os.pipe()  # server -> harness: results
    verdict_r, verdict_w = os.pipe()  # harness -> r1data: the verdict; the server never has it
    stop_r, stop_w = os.pipe()  # r1data -> its own wait on the server: the harness is done
    try:
        server = _program(_SERVER, req_r, resp_w, code, _MAX_MESSAGE)
        harness = _program(_HARNESS, req_w, resp_r, verdict_w, secret, tests, entry_point,
                           _MAX_MESSAGE)
        with ThreadPoolExecutor(max_workers=1) as pool:
            solution = pool.submit(run_python, server, timeout=timeout + 1,
                                   fds=(req_r, resp_w), stop_fd=stop_r,
                                   filename="r1data-server.py")
            try:
                h = run_python(harness, timeout=timeout, fds=(req_w, resp_r, verdict_w),
                               filename="r1data-harness.py")
            finally:
                os.write(stop_w, b"x")
            s = solution.result()
        os.set_blocking(verdict_r, False)  # the harness is gone: what it wrote is in the pipe
        try:
            verdict = os.read(verdict_r, 256)
        except BlockingIOError:  # nothing written, and a writer still open (rlimits mode)
            verdict = b""
    finally:
        for fd in (verdict_r, stop_r, stop_w):
            os.close(fd)
    passed = verdict == (json.dumps(["pass", secret]) + "\n").encode()
    reason = h.killed_reason or (s.killed_reason if s.killed_reason != "stopped" else None)
    return RunResult(0 if passed else (h.returncode or 1), h.stdout, h.stderr + s.stderr,
                     h.timed_out, None if passed else reason, h.duration)


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
    if any(t is not None for t in tests):
        require_code_isolation()  # once, before any row runs
    entries = _column(columns, "entry_point", n)

    def one(i: int) -> float | None:
        if tests[i] is None:
            return None
        return float(code_correct(texts[i], tests[i], entry_point=entries[i]))

    if n == 0:
        return []
    with ThreadPoolExecutor(max_workers=min(n, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, range(n)))
