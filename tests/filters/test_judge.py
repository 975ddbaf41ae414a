"""The LLM judge: its reply parser, the judge check of `r1data filter` with a real vLLM judge
(SmolLM2: the plumbing, not the quality of its verdicts), the store's cache on a rerun, a judge
that cannot be reached as a reason, and the `judge:MODEL` reward."""

import datetime as dt

import pyarrow as pa
import pytest

from r1data.errors import ConfigError
from r1data.filtering import FilterConfig, filter_run
from r1data.filters.judge import JudgeConfig, parse
from r1data.filters.rewards import get_reward
from r1data.ifgen import ifgen_prompts
from r1data.prompts import IngestReport, add_rows, prompt_id
from r1data.store import SAMPLES_SCHEMA

DEAD = "http://127.0.0.1:9/v1"  # nothing listens on the discard port


@pytest.mark.parametrize("reply, want", [
    ("Verdict: incorrect\nScore: 2\nRationale: the sum is wrong", (False, 0.2, "the sum is wrong")),
    ("**Verdict**: Correct\nScore: 9/10", (True, 0.9, None)),
    ("Score: 30", (True, 1.0, None)),  # clamped to [0, 1]
    ("The answer is correct.", (True, 1.0, None)),
    ("This is not correct at all.", (False, 0.0, None)),
    ("no", (False, 0.0, None)),
])
def test_parse_reads_verdict_score_and_rationale(reply, want):
    verdict, score, rationale = parse(reply)
    assert (verdict, score) == pytest.approx(want[:2])
    assert rationale == (want[2] or reply.strip())


@pytest.mark.parametrize("reply", ["", "The answer is 7.", "Verdict" * 50_000, "\x00" * 10])
def test_unreadable_replies_are_failures(reply):
    with pytest.raises(ValueError, match="judge_unparsable"):
        parse(reply)


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="base_url"):
        JudgeConfig(model="m", engine="openai")
    from r1data.judging import config

    with pytest.raises(ConfigError, match="judge model"):
        config(None)


def test_judge_reward_scopes_and_failures_are_none():
    fn = get_reward(f"judge:m@{DEAD}")
    got = fn(["<think>x</think>fine", "<think>x</think>\\boxed{5}"],
             prompt=[[{"role": "user", "content": "Write a line."}],
                     [{"role": "user", "content": "2+3?"}]],
             answer=["", "5"], domain=["general", "math"])
    assert got == [None, None]  # unreachable judge: not a pass; math: a rule checks it
    with pytest.raises(ConfigError, match="base_url"):
        get_reward("judge:m@")


def make_store(store):
    """Three instruction prompts (judged) and one math prompt (checked by rule), two samples
    each with different answers."""
    general = ifgen_prompts(3, seed=5)
    math = {"source": "t", "problem": "What is 2 + 3?", "answer": "5", "domain": "math",
            "tests": None, "meta": None}
    rows = [{**r, "prompt_id": prompt_id(r["source"], r["problem"])} for r in [*general, math]]
    add_rows(store, rows, IngestReport(source="t"))
    answers = ["Gardens are quiet places.", "I LIKE BIRDS AND RIVERS.", "\\boxed{5}",
               "\\boxed{7}"]
    now, samples = dt.datetime.now(dt.UTC), []
    for p in rows:
        for i in range(2):
            final = answers[(len(samples)) % len(answers)] + f" ({i})"
            samples.append({"run": "r", "prompt_id": p["prompt_id"], "sample_idx": i,
                            "completion": f"<think>\nthinking\n</think>\n{final}",
                            "reasoning": "thinking", "final": final, "num_tokens": 9,
                            "finish_reason": "stop", "created_at": now, "model": "m"})
    store.write_shard("samples", pa.Table.from_pylist(samples, schema=SAMPLES_SCHEMA), "r")
    return {r["prompt_id"]: r["domain"] for r in rows}


@pytest.mark.slow
@pytest.mark.heavy  # the real SmolLM2 in vLLM: make test-all
def test_judge_check_fills_verdicts_caches_and_records_failures(store):
    from r1data.models import prepare

    domains = make_store(store)
    judge = {"model": str(prepare("smollm2")), "max_tokens": 48}
    cfg = FilterConfig(checks=["correct", "judge"], workers=1, judge=judge)
    rep = filter_run(store, "r", cfg, progress=False)
    assert rep.judge["judged"] == 6 and rep.judge["out_of_scope"] == 2
    rows = store.read("verdicts", "r").to_pylist()
    judged = [r for r in rows if domains[r["prompt_id"]] == "general"]
    assert len(judged) == 6
    for r in rows:
        if domains[r["prompt_id"]] == "math":  # the rule decides; no judge columns
            assert r["judge_model"] is None and r["reject_reason"] in (None, "incorrect")
            continue
        assert r["judge_model"] == judge["model"] and r["judge_rationale"]
        if r["judge_verdict"] is None:  # an unreadable reply is a reason, never a pass
            assert (r["reject_reason"], r["judge_score"], r["keep"]) == (
                "judge_unparsable", None, False)
        else:
            assert 0 <= r["judge_score"] <= 1 and r["keep"] == r["judge_verdict"]
            assert r["reject_reason"] == (None if r["judge_verdict"] else "judge_rejected")
    assert any(r["judge_verdict"] is not None for r in judged)  # SmolLM2 says something
    assert store.read("judgements").num_rows == 6
    # a rerun with other settings redoes the verdicts, but no judgement: all from the cache
    again = filter_run(store, "r", FilterConfig(checks=["correct", "judge"], workers=1,
                                                judge=judge, target_language="fr"),
                       progress=False)
    assert again.judge == {"cached": 6, "out_of_scope": 2, "failed": 0}
    assert store.read("judgements").num_rows == 6
    fresh = {(r["prompt_id"], r["sample_idx"]): r for r in store.read("verdicts", "r").to_pylist()
             if r["filter_run"] == again.filter_run}
    for r in judged:
        got = fresh[(r["prompt_id"], r["sample_idx"])]
        assert (got["judge_verdict"], got["judge_rationale"]) == (r["judge_verdict"],
                                                                  r["judge_rationale"])


def test_unreachable_judge_is_a_reason_and_is_retried(store):
    make_store(store)
    judge = {"model": "judge-x", "engine": "openai", "base_url": [DEAD], "retries": 0,
             "timeout": 5.0}
    rep = filter_run(store, "r", FilterConfig(checks=["judge"], workers=1, judge=judge),
                     progress=False)
    assert rep.judge == {"judged": 6, "failed": 6, "out_of_scope": 2}
    assert rep.dropped == {"judge_unreachable": 6} and rep.kept == 2
    rows = [r for r in store.read("verdicts", "r").to_pylist() if r["judge_model"]]
    assert {r["reject_reason"] for r in rows} == {"judge_unreachable"}
    assert all("127.0.0.1:9" in r["judge_rationale"] for r in rows)
    again = filter_run(store, "r", FilterConfig(checks=["judge"], workers=1, judge=judge,
                                                target_language="de"), progress=False)
    assert again.judge["judged"] == 6 and again.judge["failed"] == 6  # asked again
