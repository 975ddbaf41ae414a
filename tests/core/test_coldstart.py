"""Cold-start data: every worked solution is one the verifiers accept, in the R1 format."""

import json

import datasets

from r1data.coldstart import cold_start_rows, write_cold_start
from r1data.filters.readability import check_format
from r1data.filters.rewards import accuracy_reward
from r1data.synth import synth_prompts

KINDS = ["arithmetic", "expression", "countdown"]


def test_worked_solutions_pass_the_verifiers():
    rows = cold_start_rows(KINDS, 40, seed=7, level=2)
    prompts = synth_prompts(KINDS, 40, seed=7, level=2)
    assert len(rows) == len(prompts) == 120
    answers = [r["messages"][1]["content"] for r in rows]
    rewards = accuracy_reward(answers, answer=[p["answer"] for p in prompts],
                              domain=[p["domain"] for p in prompts],
                              meta=[p["meta"] for p in prompts],
                              problem=[p["problem"] for p in prompts])
    assert rewards == [1.0] * 120
    for text, p in zip(answers, prompts, strict=True):
        ok, reason = check_format(text, domain=p["domain"])
        assert ok, (reason, text)


def test_excluded_problems_never_appear(tmp_path):
    held = {p["problem"] for p in synth_prompts(["arithmetic"], 5, seed=3)}
    rows = cold_start_rows(["arithmetic"], 5, seed=3, exclude=held)
    assert rows == []
    out = write_cold_start(tmp_path / "cs", ["arithmetic", "countdown"], 6, seed=3)
    ds = datasets.load_from_disk(str(tmp_path / "cs"))["train"]
    assert out["rows"] == len(ds) == 12 and ds[0]["messages"][0]["role"] == "user"
    assert json.loads(json.dumps(ds[0]["messages"]))[1]["content"].startswith("<think>\n")


def test_word_kind_worked_solutions_pass_the_verifiers():
    rows = cold_start_rows(["word"], 30, seed=2, level=2)
    prompts = synth_prompts(["word"], 30, seed=2, level=2)
    answers = [r["messages"][1]["content"] for r in rows]
    assert accuracy_reward(answers, answer=[p["answer"] for p in prompts],
                           domain=[p["domain"] for p in prompts]) == [1.0] * 30
    assert all(check_format(a)[0] for a in answers)
