"""Self-harvested cold start: the base model's own verified samples, rewritten into the R1 format,
filtered, deduplicated, and free of the exam."""

import datetime as dt

import pyarrow as pa
import pytest

from r1data.config import R1_USER_SUFFIX
from r1data.filters.readability import check_format
from r1data.harvest import _plain, distinctness, rewrite
from r1data.store import SAMPLES_SCHEMA, VERDICTS_SCHEMA


def test_rewrite_keeps_the_models_reasoning_up_to_its_answer():
    raw = "First 3 + 4.\nSo 3 + 4 = 7.\nThen I wander off about 12 <think> things."
    text, cut = rewrite(raw, "7", "7")
    assert cut and text == ("<think>\nFirst 3 + 4.\nSo 3 + 4 = 7.\n</think>\n\n"
                    "The answer is \\boxed{7}.")
    assert check_format(text) == (True, None)
    text, cut = rewrite("<think>just 5</think> 5 and more", "", "5")
    assert not cut and text.count("<think>") == 1 and "5 and more\n</think>" in text


def test_plain_share_drops_the_suffix_from_some_user_turns():
    rows = [{"messages": [{"role": "user", "content": f"q{i}{R1_USER_SUFFIX}"},
                          {"role": "assistant", "content": "a"}]} for i in range(200)]
    plain = [_plain(r, 0.5) for r in rows]
    n = sum(not r["messages"][0]["content"].endswith(R1_USER_SUFFIX) for r in plain)
    assert 60 < n < 140 and plain == [_plain(r, 0.5) for r in rows]
    assert all(_plain(r, 0.0) == r for r in rows)
    assert all(p["messages"][1] == r["messages"][1] for p, r in zip(plain, rows, strict=True))


def test_distinctness_counts_exact_and_near_duplicates(store):
    now = dt.datetime.now(dt.UTC)
    base = "I add the two numbers one by one and the total that I get is seven in the end"
    texts = [base, base, "  " + base + " ", base.replace("the end", "the finish"),
             "Different words entirely: four plus three makes seven, I am sure of it", "wrong"]
    samples = [{"run": "r", "prompt_id": "p", "sample_idx": i, "completion": t,
                "reasoning": None, "final": t, "num_tokens": 3, "finish_reason": "stop",
                "model": "m", "engine": "vllm", "temperature": 0.6, "top_p": 0.95,
                "max_tokens": 8, "seed": 0, "created_at": now} for i, t in enumerate(texts)]
    verdicts = [{"run": "r", "prompt_id": "p", "sample_idx": i, "filter_run": "f",
                 "created_at": now, "answer": None, "correct": t != "wrong", "format_ok": None,
                 "format_reason": None, "repetition": None, "lang": None, "lang_prob": None,
                 "lang_consistency": None, "keep": True, "reject_reason": None}
                for i, t in enumerate(texts)]
    store.write_shard("samples", pa.Table.from_pylist(samples, schema=SAMPLES_SCHEMA), "r")
    store.write_shard("verdicts", pa.Table.from_pylist(verdicts, schema=VERDICTS_SCHEMA), "r")
    d = distinctness(store, "r", threshold=0.7)
    assert (d["correct"], d["prompts"]) == (5, 1)
    assert d["per_prompt"][0] | {"prompt_id": None} == {
        "prompt_id": None, "correct": 5, "exact_dup": 2, "near_dup": 1, "distinct": 2}
    assert (d["exact_dup_rate"], d["near_dup_rate"], d["distinct_rate"]) == (0.4, 0.2, 0.4)
    assert d["prompts_half_distinct"] == 0.0


@pytest.mark.slow
@pytest.mark.heavy  # the real SmolLM2 in vLLM: make test-all
def test_harvest_from_the_base_model_is_r1_format_its_own_and_exam_free(store, tmp_path):
    """With the real SmolLM2-135M: every row passes the filters, its reasoning is the base
    model's own sample, and no exam prompt or exam n-gram is in it."""
    import datasets

    from r1data.exam import exam_rows, leaks
    from r1data.filters.rewards import accuracy_reward
    from r1data.harvest import HarvestConfig, harvest
    from r1data.models import prepare

    base = str(prepare("smollm2"))
    cfg = HarvestConfig(model=base, synth_kinds=["arithmetic", "word"], synth_n=3,
                        gym={"basic_arithmetic": 3}, n=6, max_tokens=96, plain_share=0.5)
    res = harvest(store, cfg, tmp_path / "cs", progress=False)
    rows = datasets.load_from_disk(str(tmp_path / "cs"))["train"].to_list()
    f = res["funnel"]
    assert f["prompts"] == 9 and f["samples"] == 54 and len(rows) == f["rows"] > 0
    assert f["verified"] == f["rewritten"] + f["dropped_not_a_value"]
    assert f["rewritten"] >= f["passed_filters"] >= f["selection"]["kept"]
    own = {" ".join(r["completion"].replace("<think>", "").replace("</think>", "").split())
           for r in store.read("samples", "harvest").to_pylist() if r["model"] == base}
    gold = {p["problem"]: p["answer"] for p in store.read("prompts").to_pylist()}
    for r in rows:
        user, answer = r["messages"][0]["content"], r["messages"][1]["content"]
        assert check_format(answer) == (True, None), answer
        problem = user.removesuffix(R1_USER_SUFFIX)
        assert accuracy_reward([answer], answer=[gold[problem]], domain=["math"]) == [1.0]
        think = " ".join(answer.split("</think>")[0].removeprefix("<think>").split())
        assert any(t.startswith(think) for t in own), think  # the base model's own words
    exam = [e["problem"] for e in exam_rows()]
    texts = [m["content"].removesuffix(R1_USER_SUFFIX) for r in rows for m in r["messages"]]
    assert leaks(exam, texts) == {"exact": [], "ngram": [], "template": []}
    assert store.read_manifest("export", "harvest")["distinct"]["correct"] == f["verified"]


def test_an_exam_family_cannot_be_harvested_and_the_store_is_untouched(store, tmp_path):
    from r1data.errors import InputError
    from r1data.harvest import HarvestConfig, harvest
    from tests.conftest import snapshot

    before = snapshot(store.root)
    cfg = HarvestConfig(model="m", synth_n=2, gym={"chain_sum": 2})  # an exam family
    with pytest.raises(InputError, match="not a harvest family"):
        harvest(store, cfg, tmp_path / "cs", progress=False)
    assert snapshot(store.root) == before and not (tmp_path / "cs").exists()
