"""The held-out exam: deterministic, large enough, disjoint from every training stage, and scored
by sql/exam.sql with and without the R1 suffix."""

import datetime as dt
import json

import pyarrow as pa
import pytest

from r1data.coldstart import cold_start_rows
from r1data.config import R1_USER_SUFFIX
from r1data.errors import ConfigError, InputError
from r1data.exam import (
    EXAM_GYM,
    EXAM_TEMPLATES,
    ExamConfig,
    add_exam,
    bootstrap_ci,
    exam_rows,
    gain,
    leaks,
    run_name,
    scores,
    table,
    template_rows,
)
from r1data.filters.extract import last_boxed
from r1data.harvest import TRAIN_GYM, HarvestConfig
from r1data.store import SAMPLES_SCHEMA, VERDICTS_SCHEMA
from r1data.synth import ALL_KINDS, synth_prompts
from tests.conftest import ROOT


def test_exam_is_seeded_large_and_grouped_by_family():
    rows = exam_rows()
    assert len(rows) >= 100 and rows == exam_rows()
    assert {r["source"] for r in rows} == {f"exam/{f}" for f in (*EXAM_GYM, *EXAM_TEMPLATES)}
    assert len({r["prompt_id"] for r in rows}) == len(rows)
    for r in rows:  # small integers: families a 135M model can sometimes get right
        assert r["domain"] == "math" and abs(int(r["answer"])) < 1000, r
    other = exam_rows(ExamConfig(seed=1))
    assert {r["problem"] for r in other} != {r["problem"] for r in rows}
    with pytest.raises(ConfigError, match="unknown exam family"):
        ExamConfig(families=["basic_arithmetic"])


def test_template_answers_follow_the_words():
    for r in template_rows("verbal", 30, 3):
        nums = [int(x) for x in r["problem"].replace(".", " ").replace(",", " ").split()
                if x.isdigit()]
        t = json.loads(json.dumps(r["meta"]))["template"]
        a, b, c = nums
        assert int(r["answer"]) == {"verbal0": (a + b) * c, "verbal1": a * b + c,
                                    "verbal2": a + b - c}[t]


def _flow_synth_blocks() -> list[dict]:
    """Every `synth:` block of the example flows (their prompts and their cold starts)."""
    import yaml

    blocks = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("synth"), dict):
                blocks.append(node["synth"])
            for v in node.values():
                walk(v)

    for f in sorted((ROOT / "flows" / "examples").glob("*.yaml")):
        walk(yaml.safe_load(f.read_text()))
    return blocks


def training_texts() -> list[str]:
    """Every prompt and worked solution a training stage can see: the synthetic prompts and
    written cold starts of every example flow, every synthetic kind at those seeds, and the
    harvest's own prompts (synthetic and reasoning-gym) at its default seed."""
    from r1data.exam import gym_rows

    blocks = _flow_synth_blocks()
    assert blocks, "no synth block found in flows/examples"
    harvest = HarvestConfig(model="m")
    texts = []
    for b in blocks + [{"seed": harvest.seed, "n": harvest.synth_n, "level": lv}
                       for lv in (1, 2)]:
        kinds, level = list(ALL_KINDS), b.get("level", 1)
        n = max(b.get("n", 16), 200)
        texts += [p["problem"] for p in synth_prompts(kinds, n, seed=b["seed"], level=level)]
        for r in cold_start_rows(kinds, n, seed=b["seed"], level=level):
            texts += [m["content"].removesuffix(R1_USER_SUFFIX) for m in r["messages"]]
    for fam, settings in TRAIN_GYM.items():
        texts += [r["problem"] for r in gym_rows(fam, 200, harvest.seed, settings)]
    return texts


def test_exam_is_disjoint_from_every_training_stage():
    assert not set(EXAM_GYM) & set(TRAIN_GYM)
    assert not set(EXAM_TEMPLATES) & set(ALL_KINDS)
    found = leaks([r["problem"] for r in exam_rows()], training_texts())
    assert found == {"exact": [], "ngram": [], "template": []}


def test_leak_check_finds_a_reused_template_and_a_copied_problem():
    exam = [r["problem"] for r in exam_rows()]
    story = template_rows("story", 1, 99)[0]["problem"]
    reworded = "".join("12" if ch.isdigit() else ch for ch in story)  # same template
    found = leaks(exam + [story], [reworded, exam[0]])
    assert found["exact"] == [exam[0]]
    assert story in found["template"] and exam[0] in found["ngram"] or len(exam[0].split()) < 8


def _write_exam_run(store, run: str, outcomes: dict[str, list[tuple[str, bool]]]):
    """Samples and verdicts of an exam run: per prompt, (completion, correct) pairs."""
    now = dt.datetime.now(dt.UTC)
    samples, verdicts = [], []
    for pid, outs in outcomes.items():
        for i, (text, ok) in enumerate(outs):
            reasoning, final = (text.split("</think>")[0].replace("<think>", "").strip(),
                                text.split("</think>")[1].strip()) if "</think>" in text \
                else (None, text)
            samples.append({"run": run, "prompt_id": pid, "sample_idx": i, "completion": text,
                            "reasoning": reasoning, "final": final, "num_tokens": 5,
                            "finish_reason": "stop", "model": "m", "engine": "vllm",
                            "temperature": 0.6, "top_p": 0.95, "max_tokens": 8, "seed": 0,
                            "created_at": now})
            verdicts.append({"run": run, "prompt_id": pid, "sample_idx": i, "filter_run": "f",
                             "created_at": now, "answer": last_boxed(text), "correct": ok,
                             "format_ok": None, "format_reason": None, "repetition": None,
                             "lang": None, "lang_prob": None, "lang_consistency": None,
                             "keep": ok, "reject_reason": None})
    store.write_shard("samples", pa.Table.from_pylist(samples, schema=SAMPLES_SCHEMA), run)
    store.write_shard("verdicts", pa.Table.from_pylist(verdicts, schema=VERDICTS_SCHEMA), run)


def test_scores_per_family_with_interval(store):
    cfg = ExamConfig(per_family=2, families=["story", "verbal"])
    add_exam(store, cfg)
    rows = exam_rows(cfg)
    story = [r for r in rows if r["source"] == "exam/story"]
    verbal = [r for r in rows if r["source"] == "exam/verbal"]
    gold = {r["prompt_id"]: r["answer"] for r in rows}
    boxed = {pid: f"<think>\nso {a}\n</think>\n\n\\boxed{{{a}}}" for pid, a in gold.items()}
    run = run_name("m", True)
    _write_exam_run(store, run, {
        story[0]["prompt_id"]: [(boxed[story[0]["prompt_id"]], True)] * 2,
        story[1]["prompt_id"]: [(f"it is {gold[story[1]['prompt_id']]}", True),  # not boxed
                                ("no idea 1000", False)],
        verbal[0]["prompt_id"]: [(boxed[verbal[0]["prompt_id"]], True), ("x", False)],
        verbal[1]["prompt_id"]: [("<think>\nhm\n</think>\n\n\\boxed{1000}", False),
                                 ("<think>\nhm\n</think>\n\n\\boxed{3 + 4}", True)]})
    got = scores(store, [run], resamples=500)[run]
    assert (got["prompts"], got["k"]) == (4, 2)
    assert got["pass_at_1"] == pytest.approx((1 + 0 + 0.5 + 0) / 4)
    assert got["format_rate"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert got["last_answer"] == pytest.approx((1 + 0.5 + 0.5 + 0) / 4)
    assert got["families"]["story"]["pass_at_1"] == pytest.approx(0.5)
    assert got["families"]["verbal"]["format_rate"] == pytest.approx(0.75)
    lo, hi = got["ci95"]
    assert 0 <= lo < got["pass_at_1"] < hi <= 1
    assert "| m |" in table({"m": {run: got, run_name("m", False): got}})
    with pytest.raises(InputError, match="no exam verdicts"):
        scores(store, [run_name("other", True)])


def test_gain_is_paired_over_the_same_prompts(store):
    """A model right once more per prompt than another gains 0.5 on every prompt: the paired
    interval is [0.5, 0.5] though the two models' own intervals touch."""
    cfg = ExamConfig(per_family=2, families=["story", "verbal"])
    add_exam(store, cfg)
    gold = {r["prompt_id"]: r["answer"] for r in exam_rows(cfg)}
    right = {p: f"<think>\nso {a}\n</think>\n\n\\boxed{{{a}}}" for p, a in gold.items()}
    wrong = "<think>\nhm\n</think>\n\n\\boxed{1000}"
    pids = sorted(gold)
    before, after = run_name("a", True), run_name("b", True)
    _write_exam_run(store, before, {p: [(right[p] if i % 2 else wrong, bool(i % 2)),
                                        (wrong, False)] for i, p in enumerate(pids)})
    _write_exam_run(store, after, {p: [(right[p] if i % 2 else wrong, bool(i % 2)),
                                       (right[p], True)] for i, p in enumerate(pids)})
    got = gain(store, before, after, resamples=500)
    assert (got["prompts"], got["gain"], got["ci95"]) == (4, 0.5, (0.5, 0.5))
    own = scores(store, [before, after], resamples=500)
    assert own[before]["ci95"][1] >= own[after]["ci95"][0]  # the unpaired intervals touch
    assert gain(store, after, before, resamples=500)["gain"] == -0.5
    fewer = run_name("c", True)
    _write_exam_run(store, fewer, {p: [(wrong, False)] * 2 for p in pids[:3]})
    with pytest.raises(InputError, match="different exams"):
        gain(store, before, fewer)
    with pytest.raises(InputError, match="no exam verdicts"):
        gain(store, before, run_name("other", True))


def test_bootstrap_interval_narrows_with_more_prompts():
    few = bootstrap_ci([0.0, 1.0] * 5, 1000)
    many = bootstrap_ci([0.0, 1.0] * 200, 1000)
    assert few[0] < many[0] <= 0.5 <= many[1] < few[1]
    assert bootstrap_ci([0.25] * 7, 100) == (0.25, 0.25)


@pytest.mark.heavy  # out of CI's make test this session: see the session note
@pytest.mark.slow
def test_evaluate_exam_runs_with_and_without_the_suffix(store, tiny_model):
    from r1data.exam import evaluate_exam

    cfg = ExamConfig(per_family=1, k=2, max_tokens=8)
    res = evaluate_exam(store, str(tiny_model), "tiny", cfg, progress=False)
    assert set(res) == {"exam-tiny-suffix", "exam-tiny-plain"}
    for run, r in res.items():
        assert r["prompts"] == len(cfg.families) and r["k"] == 2
        assert set(r["families"]) == set(cfg.families)
        gen = store.read_manifest("generate", run)["config"]
        assert gen["system_prompt"] is None and gen["temperature"] == 0.6
        assert gen["user_suffix"] == (R1_USER_SUFFIX if run.endswith("suffix") else "")
        assert store.read_manifest("eval", run)["pass_at_1"] == r["pass_at_1"]
