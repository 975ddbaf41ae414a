"""Adaptive sampling: the stopping rule, the round column across old and new shards, and a
real vLLM run on a tiny model that stops prompts early, writes dense indices and resumes."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from r1data import query
from r1data.adaptive import AdaptiveConfig, decide, wilson
from r1data.config import GenerateConfig, field_defaults
from r1data.errors import StoreError
from r1data.selection import SelectConfig
from r1data.store import SAMPLES_SCHEMA


def test_defaults_are_selections_band_and_k():
    sel, ad = field_defaults(SelectConfig), AdaptiveConfig()
    assert (ad.min_pass_rate, ad.max_pass_rate, ad.k) == (
        sel["min_pass_rate"], sel["max_pass_rate"], sel["k"])
    assert ad.plan(64) == [8, 16, 32, 64] and ad.plan(20) == [8, 16, 20]
    with pytest.raises(ValueError, match="increasing"):
        AdaptiveConfig(rounds=[16, 8])


def test_cli_refuses_bad_rounds_in_one_line(tmp_path, monkeypatch, capsys):
    from tests.core.test_cli import run_cli

    code, _, err = run_cli(monkeypatch, capsys, "generate", "--store", tmp_path / "st",
                           "--run", "a", "--model", "served-name",  # no prepared folder needed
                           "--adaptive", "--rounds", "16,8")
    assert code != 0 and "'rounds'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "st" / "samples").exists()


def test_wilson_bounds_hold_the_rate_and_narrow_with_samples():
    for c, n in [(0, 8), (3, 8), (8, 8), (12, 32)]:
        lo, hi = wilson(c, n, 0.95)
        assert lo <= c / n <= hi
    assert wilson(16, 64, 0.95)[1] - wilson(16, 64, 0.95)[0] < wilson(4, 16, 0.95)[1] - \
        wilson(4, 16, 0.95)[0]
    assert wilson(0, 0, 0.95) == (0.0, 1.0)


def test_decide_stops_only_when_the_band_verdict_is_known():
    cfg = AdaptiveConfig(min_pass_rate=0.1, max_pass_rate=0.9, k=4, confidence=0.8)
    assert decide(0, 8, 0, cfg, last=False) == "too_hard"
    assert decide(8, 8, 8, cfg, last=False) == "too_easy"
    assert decide(0, 4, 0, cfg, last=False) is None  # 4 samples do not rule out 10%
    assert decide(4, 8, 4, cfg, last=False) == "enough"
    assert decide(4, 8, 3, cfg, last=False) is None  # fewer than K distinct correct
    assert decide(4, 8, 3, cfg, last=True) == "budget"
    strict = cfg.model_copy(update={"confidence": 0.99})
    assert decide(0, 8, 0, strict, last=False) is None  # more confidence, more samples


def test_samples_view_reads_shards_with_and_without_round(store):
    old = pa.schema([f for f in SAMPLES_SCHEMA if f.name != "round"])
    row = {"run": "r", "prompt_id": "p", "completion": "x", "num_tokens": 1}
    store.write_shard("samples", pa.Table.from_pylist([{**row, "sample_idx": 0}], schema=old),
                      "r")
    store.write_shard("samples", pa.Table.from_pylist(
        [{**row, "sample_idx": 1, "round": 2}], schema=SAMPLES_SCHEMA), "r")
    got = query.run(store, "SELECT sample_idx, round FROM samples ORDER BY 1").fetchall()
    assert got == [(0, None), (1, 2)]


@pytest.mark.slow
def test_adaptive_run_stops_early_dense_and_resumes(store, tiny_model):
    from r1data.engines import VllmEngine
    from r1data.generate import generate
    from r1data.prompts import ingest_synth

    ingest_synth(store, ["arithmetic"], 4, 0, 1)
    cfg = GenerateConfig(model=str(tiny_model), n=16, max_tokens=8, max_model_len=512,
                         shard_prompts=2)
    # A random tiny model is never right: 0/8 rules out a 10% pass rate at 80%, 0/4 does not.
    ad = AdaptiveConfig(rounds=[4, 8, 16], min_pass_rate=0.1, max_pass_rate=0.9,
                        confidence=0.8)
    engine = VllmEngine(cfg)
    try:
        rep = generate(store, cfg, "ad", engine=engine, progress=False, adaptive=ad)
        rows = store.read("samples", "ad").to_pylist()
        assert rep.samples_written == len(rows) == 4 * 8  # stopped at 8 of 16
        by_prompt: dict[str, list] = {}
        for r in rows:
            by_prompt.setdefault(r["prompt_id"], []).append((r["sample_idx"], r["round"]))
        for got in by_prompt.values():
            assert sorted(got) == [(i, 1 if i < 4 else 2) for i in range(8)]
        man = store.read_manifest("generate", "ad")
        assert {d["stopped"] for d in man["adaptive"]["decisions"].values()} == {"too_hard"}
        assert man["adaptive"]["stopped"]["too_hard"] == 4 and man["status"] == "complete"
        # a kill after round 2 lost a shard: the rerun redoes just those prompts' block
        lost = store.shards("samples", "ad")[-1]
        lost_rows = pq.read_metadata(lost).num_rows
        lost.unlink()
        again = generate(store, cfg, "ad", engine=engine, progress=False, adaptive=ad)
        assert again.samples_written == lost_rows > 0
        rows = store.read("samples", "ad", columns=["prompt_id", "sample_idx"]).to_pylist()
        assert sorted((r["prompt_id"], r["sample_idx"]) for r in rows) == sorted(
            (p, i) for p in by_prompt for i in range(8))
        assert generate(store, cfg, "ad", engine=engine, progress=False,
                        adaptive=ad).samples_written == 0
        with pytest.raises(StoreError, match="adaptive"):
            generate(store, cfg, "ad", engine=engine, progress=False)
    finally:
        engine.close()
