"""R1 stage 4 data: reasoning prompts mixed with general instruction prompts, and the
instruction-following exam on the held-out general prompts (a real vLLM engine, tiny model)."""

import json

import datasets
import pytest

from r1data.export import export_prompts
from r1data.general import GeneralPrompts, instruction_exam, mixed_rl_data
from r1data.prompts import ingest_synth


@pytest.fixture
def mixed(store, tmp_path):
    ingest_synth(store, ["arithmetic"], 12, 0, 1)
    export_prompts(store, tmp_path / "rl", test_size=0.25)
    info = mixed_rl_data(tmp_path / "rl", tmp_path / "rl2", GeneralPrompts(ifgen=40, seed=2),
                         test_size=0.25)
    return info, tmp_path / "rl", tmp_path / "rl2"


def test_mixed_data_keeps_reasoning_splits_and_holds_general_prompts_out(mixed):
    info, rl, rl2 = mixed
    old, new = datasets.load_from_disk(str(rl)), datasets.load_from_disk(str(rl2))
    for split in old:  # the reasoning prompts keep their split: the exam stays unseen
        ids = {r["prompt_id"] for r in new[split] if r["domain"] == "math"}
        assert ids == {r["prompt_id"] for r in old[split]}
    general = {s: [r for r in new[s] if r["domain"] == "general"] for s in new}
    assert len(general["train"]) + len(general["test"]) == 40
    assert general["test"] and general["train"]  # both sides hold general prompts
    assert info["general_test"] == len(general["test"])
    assert not {r["prompt_id"] for r in general["train"]} & {r["prompt_id"]
                                                             for r in general["test"]}
    row = general["train"][0]
    assert json.loads(row["meta"])["instruction_id_list"] and row["answer"] == ""
    assert "\\boxed" not in row["prompt"][-1]["content"]  # no R1 math suffix on instructions


@pytest.mark.heavy  # out of CI's make test this session: see the session note
@pytest.mark.slow
def test_instruction_exam_grades_samples_with_the_instruction_reward(store, mixed, tiny_model):
    from r1data.engines import VllmEngine
    from r1data.filters.rewards import get_reward
    from tests.core.test_generate_vllm import cfg_for

    _, _, rl2 = mixed
    engine = VllmEngine(cfg_for(tiny_model))
    try:
        res = instruction_exam(store, str(tiny_model), rl2, run="ifexam", k=2, max_tokens=12,
                               engine=engine)
    finally:
        engine.close()
    test = [r for r in datasets.load_from_disk(str(rl2))["test"] if r["domain"] == "general"]
    assert (res["prompts"], res["samples"]) == (len(test), 2 * len(test))
    rows = store.read("samples", "ifexam").to_pylist()
    meta = {r["prompt_id"]: r["meta"] for r in store.read("prompts").to_pylist()}
    scores = get_reward("instructions")([r["completion"] for r in rows],
                                        meta=[meta[r["prompt_id"]] for r in rows])
    assert res["instruction_rate"] == pytest.approx(sum(scores) / len(scores), abs=1e-4)
    assert 0 <= res["prompt_rate"] <= res["instruction_rate"] <= 1
    assert store.read_manifest("eval", "ifexam")["instruction_rate"] == res["instruction_rate"]
