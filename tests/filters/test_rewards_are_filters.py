"""The reward is the verifier: on one mixed batch each GRPO reward passes exactly the samples
the filter's check keeps (accuracy <-> correct, format <-> format_ok with repetition,
language <-> the language checks, repetition <-> the repetition column)."""

import json

import pytest

from r1data.chat import chat_messages, split_think
from r1data.filtering import FilterConfig, verdict_rows
from r1data.filters.registry import CHECKS, REWARDS, VERIFIERS
from r1data.filters.rewards import get_reward
from r1data.filters.verdicts import MIN_CONSISTENCY

CD_META = json.dumps({"numbers": [25, 5, 3], "target": 60})
CD_PROBLEM = "Using the numbers [25, 5, 3], create an equation that equals 60."
CODE_TESTS = "assert double(2) == 4\nassert double(-3) == -6"


def think(reasoning: str, final: str) -> str:
    return f"<think>\n{reasoning}\n</think>\n{final}"


def code(body: str) -> str:
    return think("Doubling is multiplying by two.", f"```python\ndef double(x):\n    {body}\n```")


# label -> (completion, domain, gold, meta, tests, finish_reason, problem)
CASES = {
    "math_right": (think("Two and three make five.", "The answer is \\boxed{5}."), "math", "5"),
    "math_wrong": (think("Two and three make six.", "The answer is \\boxed{6}."), "math", "5"),
    "math_unboxed": (think("Two and three make five.", "The answer is 5."), "math", "5"),
    "cd_right": (think("25 - 5 = 20, 20 * 3 = 60.", "\\boxed{(25 - 5) * 3 = 60}"), "countdown",
                 "", CD_META),
    "cd_wrong": (think("Add them all.", "\\boxed{25 + 5 + 3 = 60}"), "countdown", "", CD_META),
    "cd_illegal": (think("Use a one as well.", "\\boxed{(25 - 5) * 3 * 1 = 60}"), "countdown",
                   "", CD_META),
    "cd_from_problem": (think("25 - 5 = 20, 20 * 3 = 60.", "\\boxed{(25 - 5) * 3 = 60}"),
                        "countdown", "60", None, None, "stop", CD_PROBLEM),
    "code_right": (code("return 2 * x"), "code", "", None, CODE_TESTS),
    "code_wrong": (code("return x + 2"), "code", "", None, CODE_TESTS),
    "truncated": (think("Two and three make five.", "The answer is \\boxed{5}."), "math", "5",
                  None, None, "length"),
    "no_think": ("Two and three make five, so \\boxed{5}.", "math", "5"),
    "dup_lines": (think("Let me check again.\n" * 30, "\\boxed{5}"), "math", "5"),
    "top_ngram": (think(" ".join(f"w{i} of the" for i in range(15)), "\\boxed{5}"), "math", "5"),
    "mixed_language": (think("We add the numbers first. 然后我们检查结果是否正确，并且再算一遍，"
                             "最后确认答案没有问题。", "The answer is \\boxed{5}."), "math", "5"),
    "wrong_language": (think("We add two and three.", "Nous additionnons les deux nombres et "
                             "la réponse est \\boxed{5}."), "math", "5"),
}
# What each case is there for: the filter's own reason (so the batch covers what it claims).
REASONS = {"math_wrong": "incorrect", "math_unboxed": "no_boxed", "cd_wrong": "incorrect",
           "cd_illegal": "incorrect", "code_wrong": "incorrect", "truncated": "truncated",
           "no_think": "no_think", "dup_lines": "dup_line_frac", "top_ngram": "top_2gram",
           "mixed_language": "language_mixing", "wrong_language": "wrong_language"}


@pytest.fixture(scope="module")
def batch():
    rows, cols = [], {k: [] for k in ("answer", "domain", "meta", "tests", "finish_reason",
                                      "prompt")}
    for i, case in enumerate(CASES.values()):
        completion, domain, gold, meta, tests, finish, problem = (
            *case, *(None, None, "stop", None)[len(case) - 3:])
        reasoning, final = split_think(completion)
        rows.append({"run": "r", "prompt_id": f"p{i}", "sample_idx": 0, "completion": completion,
                     "reasoning": reasoning, "final": final, "finish_reason": finish,
                     "domain": domain, "gold": gold, "meta": meta, "tests": tests,
                     "problem": problem})
        # the columns of a GRPO export: prompt as chat, answer, domain, meta, tests
        for k, v in (("answer", gold), ("domain", domain), ("meta", meta), ("tests", tests),
                     ("finish_reason", finish),
                     ("prompt", chat_messages(problem or "What is 2 + 3?", domain))):
            cols[k].append(v)
    # TRL passes chat completions: every other one as a message list
    comps = [r["completion"] if i % 2 else [{"role": "assistant", "content": r["completion"]}]
             for i, r in enumerate(rows)]
    full = verdict_rows(rows, FilterConfig(), "f")
    lang_only = verdict_rows(rows, FilterConfig(checks=["language"]), "f")
    return comps, cols, dict(zip(CASES, full, strict=True)), dict(zip(CASES, lang_only,
                                                                        strict=True))


def test_the_batch_covers_each_case(batch):
    _, _, full, lang_only = batch
    for label, reason in REASONS.items():
        got = lang_only[label] if "language" in reason else full[label]
        assert got["reject_reason"] == reason, label
    kept = {label for label, v in full.items() if v["keep"]}
    assert kept == {"math_right", "cd_right", "cd_from_problem", "code_right"}


def test_accuracy_reward_is_the_filters_correct(batch):
    comps, cols, full, _ = batch
    got = get_reward("accuracy")(comps, **cols)
    want = [None if v["correct"] is None else float(v["correct"]) for v in full.values()]
    assert got == want
    assert {got[list(CASES).index(k)] for k in ("math_right", "cd_right", "code_right")} == {1.0}


def test_format_reward_is_the_filters_format_ok_with_repetition(batch):
    comps, cols, full, _ = batch
    got = get_reward("format")(comps, **cols)
    assert [g == 1.0 for g in got] == [v["format_ok"] for v in full.values()]
    assert got[list(CASES).index("dup_lines")] == got[list(CASES).index("top_ngram")] == 0.0


def test_language_reward_passes_what_the_language_checks_keep(batch):
    comps, cols, _, lang_only = batch
    got = get_reward("language")(comps, target_language="en")
    assert [g >= MIN_CONSISTENCY for g in got] == [v["keep"] for v in lang_only.values()]
    assert got[list(CASES).index("wrong_language")] == 0.0


def test_repetition_reward_is_the_repetition_column(batch):
    comps, cols, full, _ = batch
    got = get_reward("repetition")(comps, **cols)
    assert [-g for g in got] == pytest.approx([v["repetition"] for v in full.values()])


def test_registry_names_every_filter_check_and_its_reward():
    assert CHECKS == tuple(FilterConfig().checks)
    for v in VERIFIERS:
        assert REWARDS[v.name] is v.reward and callable(v.batch)


def test_reject_order_covers_every_check_once_and_picks_the_first_failing():
    from r1data.filters.registry import OPT_IN_CHECKS, REJECT_ORDER, reject_reason

    assert sorted(REJECT_ORDER) == sorted((*CHECKS, *OPT_IN_CHECKS))
    failed = {"format": "no_think", "correct": "incorrect", "language": None,
              "judge": "judge_rejected"}
    assert reject_reason(failed, CHECKS) == "no_think"
    assert reject_reason(failed, ("correct", "language")) == "incorrect"  # format not asked
    assert reject_reason(failed, ("language",)) is None
    assert reject_reason({"format": None, "judge": "judge_rejected"}, (*CHECKS, "judge")) \
        == "judge_rejected"
