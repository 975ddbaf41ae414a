"""Countdown answers through the AST-whitelist evaluator: exact, each number at most once."""

import pytest

from r1data.filters.logic import UnsafeExpression, countdown_correct, safe_eval

NUMS, TARGET = [9, 7, 4], 37


@pytest.mark.parametrize("completion,expected", [
    ("<think>9*4=36, 36+... </think>\n<answer>9 * 4 + 7 - 6</answer>", False),  # 6 not given
    ("<think>try</think>\n<answer>(9 * 4) + 7 / 7</answer>", False),  # 7 used twice
    ("<think>x</think> \\boxed{9 \\times 4 + 1}", False),  # 1 not given
    ("<think>x</think> <answer>9*7-4*4</answer>", False),  # 4 used twice
    ("<think>x</think> \\boxed{7 \\times 4 + 9}", True),
    ("<think>x</think> <answer>7*4+9 = 37</answer>", True),
    ("<think>x</think>\nSo we get 4 * 7 + 9 = 37", True),
    ("<think>x</think> <answer>(9 + 7) * 4 / 2</answer>", False),
    ("<think>x</think> <answer>__import__('os').system('true')</answer>", False),
    ("<think>x</think> <answer>9 ** 7</answer>", False),
    ("<think>x</think> no answer at all", False),
])
def test_countdown(completion, expected):
    assert countdown_correct(completion, NUMS, TARGET) is expected


def test_fractions_are_exact():
    value, used = safe_eval("(1 / 3) * 3")
    assert value == 1 and used == [1, 3, 3]


@pytest.mark.parametrize("expr", ["2 ** 10", "a + 1", "1; 2", "(" * 300 + "1" + ")" * 300,
                                  "1/0", "9" * 30 + " * " + "9" * 30, "+".join(["1"] * 100)])
def test_unsafe_or_oversized_expressions_are_refused(expr):
    with pytest.raises(UnsafeExpression):
        safe_eval(expr)


def test_synthetic_countdown_solutions_verify():
    import json

    from r1data.synth import synth_prompts

    for r in synth_prompts(["countdown"], 20, seed=5, level=2):
        meta = json.loads(r["meta"])
        good = f"<think>search</think>\n<answer>{meta['solution']}</answer>"
        assert countdown_correct(good, meta["numbers"], meta["target"])
        assert not countdown_correct(good, meta["numbers"], meta["target"] + 1)
