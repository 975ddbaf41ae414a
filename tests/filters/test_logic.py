"""Countdown (filters/logic.py) through the AST-whitelist evaluator: exact, each number at most
once, TinyZero's use-all rule, repeated numbers, unary minus, hostile answers, huge targets."""

import json

import pytest

from r1data.filters.logic import (
    MAX_ABS,
    UnsafeExpression,
    clamp_int,
    countdown_correct,
    countdown_expression,
    safe_eval,
)

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
    from r1data.synth import synth_prompts

    for r in synth_prompts(["countdown"], 20, seed=5, level=2):
        meta = json.loads(r["meta"])
        good = f"<think>search</think>\n<answer>{meta['solution']}</answer>"
        assert countdown_correct(good, meta["numbers"], meta["target"])
        assert not countdown_correct(good, meta["numbers"], meta["target"] + 1)


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


def test_huge_targets_get_a_verdict_never_a_crash():
    big = "9" * 5000  # json and int() refuse more than 4300 digits
    assert countdown_correct(T + "<answer>9 + 0</answer>", [9, 0], big) is False
    assert countdown_correct(T + f"<answer>{big}</answer>", [9], big) is False
    assert countdown_correct(T + "<answer>3 + 4</answer>", [3, 4], "7") is True
    assert countdown_correct(T + "<answer>3 + 4</answer>", [3, 4], "seven") is False
    meta = json.loads(f'{{"numbers": [3, 4], "target": {big}}}', parse_int=clamp_int)
    assert meta["target"] == MAX_ABS + 1
    assert countdown_correct(T + "<answer>3 + 4</answer>", meta["numbers"], meta["target"]) is False


def test_clamped_values_are_unreachable():
    """A clamped number or target (MAX_ABS + 1) can never be matched by a constant: no
    wrong True from two different huge values clamped alike."""
    huge = clamp_int("8" * 40)
    assert huge == MAX_ABS + 1 and clamp_int("-" + "8" * 40) == -huge
    assert clamp_int("123") == 123 and clamp_int(10**20) == huge
    assert not countdown_correct(T + f"<answer>{huge}</answer>", [huge], huge)
    with pytest.raises(UnsafeExpression):
        safe_eval(str(MAX_ABS + 1))


def test_a_5000_digit_countdown_gold_gets_a_reward_not_a_crash():
    """The issue's crash: `Exceeds the limit (4300 digits)` from int() and json.loads."""
    from r1data.filters.rewards import accuracy_reward

    big = "9" * 5000
    comps = [T + "<answer>1 + 2</answer>"] * 3
    golds = [big, "3", f'{{"numbers": [1, 2], "target": {big}}}']
    got = accuracy_reward(comps, answer=golds, domain=["countdown"] * 3,
                          numbers=[[1, 2], [1, 2], None])
    assert got == [0.0, 1.0, 0.0]
