"""Countdown as models answer it: expression extraction, exact arithmetic, number budget.

Complements test_verify_logic.py: TinyZero's use-all rule, repeated numbers, unary minus,
exact division, hostile answers.
"""

import pytest

from r1data.filters.logic import (
    UnsafeExpression,
    countdown_correct,
    countdown_expression,
    safe_eval,
)

T = "<think>\nLet me try combinations: 25 - 5 = 20, 20 * 3 = 60. Close.\n</think>\n"


@pytest.mark.parametrize("final,numbers,target,expected", [
    ("<answer>(25 - 5) * 3 + 2</answer>", [25, 5, 3, 2], 62, True),
    ("<answer>(25 - 5) * 3 + 2</answer>", [25, 5, 3, 2], 61, False),
    ("<answer>5 * 5 - 3</answer>", [5, 5, 3], 22, True),  # a repeated number, given twice
    ("<answer>5 * 5 * 5</answer>", [5, 5, 3], 125, False),  # used three times, given twice
    ("<answer>6 / 4 * 2</answer>", [6, 4, 2], 3, True),  # exact: 6/4 is 3/2, not 1
    ("<answer>7 / 2</answer>", [7, 2], 3, False),  # no integer division
    ("<answer>-3 + 10</answer>", [3, 10], 7, True),  # unary minus
    ("\\[ \\boxed{(8 \\div 2) \\times 6} \\]", [8, 2, 6], 24, True),
    ("The equation is $(8 ÷ 2) × 6 = 24$.", [8, 2, 6], 24, True),
    ("So we have\n24 = 6 * (8 / 2)\nwhich works.", [8, 2, 6], 24, True),
    ("<answer>2.5 * 4</answer>", [4], 10, False),  # decimals are not given numbers
    ("<answer>8 * 3</answer> wait, no: <answer>8 * 2 + 6</answer>", [8, 2, 6], 22, True),
])
def test_countdown_answers(final, numbers, target, expected):
    assert countdown_correct(T + final, numbers, target) is expected


def test_use_all_is_tinyzeros_rule():
    good = T + "<answer>25 - 5</answer>"
    assert countdown_correct(good, [25, 5, 3], 20)
    assert not countdown_correct(good, [25, 5, 3], 20, use_all=True)
    assert countdown_correct(T + "<answer>(25 - 5) - 3</answer>", [25, 5, 3], 17, use_all=True)


def test_answer_is_taken_after_think():
    comp = "<think>\n<answer>3 + 4</answer>\n</think>\nNo equation reaches it."
    assert countdown_expression(comp) is None
    assert not countdown_correct(comp, [3, 4], 7)


@pytest.mark.parametrize("expr", [
    "2 ** 3", "abs(-3)", "[1, 2][0]", "1 if 1 else 2", "0x10", "1e3", "3 % 2", "7 // 2",
    "(" * 40 + "1" + ")" * 40 + "+" + "+".join(["1"] * 40), "10000 * 10000 * 10000 * 10000",
])
def test_evaluator_whitelist_and_caps(expr):
    with pytest.raises(UnsafeExpression):
        safe_eval(expr)


@pytest.mark.timeout(60)
def test_hostile_completions_are_refused_quickly():
    for comp in ["<answer>" * 100_000, T + "1 + " * 300_000 + "1", T + "(" * 100_000]:
        assert countdown_correct(comp, [1, 2], 3) is False
