"""Adaptive sampling: the stopping rule, the round column across old and new shards, and a
real vLLM run on a tiny model that stops prompts early, writes dense indices and resumes."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from r1data import query
from r1data.adaptive import AdaptiveConfig, beta_binomial, decide, distinct_kept, predicted, wilson
from r1data.config import GenerateConfig, field_defaults
from r1data.errors import StoreError
from r1data.selection import SelectConfig
from r1data.store import SAMPLES_SCHEMA


def test_defaults_are_selections_band_and_k():
    sel, ad = field_defaults(SelectConfig), AdaptiveConfig()
    assert (ad.min_pass_rate, ad.max_pass_rate, ad.k) == (
        sel["min_pass_rate"], sel["max_pass_rate"], sel["k"])
    assert ad.plan(64) == [8, 16, 24, 32, 48, 64] and ad.plan(20) == [8, 16, 20]
    with pytest.raises(ValueError, match="increasing"):
        AdaptiveConfig(rounds=[16, 8])


@pytest.mark.parametrize("flag,value,field", [("--rounds", "16,8", "rounds"),
                                               ("--bound", "bayes", "bound"),
                                               ("--enough-confidence", "0.4", "enough_confidence"),
                                               ("--min-samples", "0", "min_samples")])
def test_cli_refuses_a_bad_stop_rule_flag_in_one_line(tmp_path, monkeypatch, capsys, flag, value,
                                                      field):
    from tests.core.test_cli import run_cli

    code, _, err = run_cli(monkeypatch, capsys, "generate", "--store", tmp_path / "st",
                           "--run", "a", "--model", "served-name",  # no prepared folder needed
                           "--adaptive", flag, value)
    assert code != 0 and f"'{field}'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "st" / "samples").exists()


def test_wilson_bounds_hold_the_rate_and_narrow_with_samples():
    for c, n in [(0, 8), (3, 8), (8, 8), (12, 32)]:
        lo, hi = wilson(c, n, 0.95)
        assert lo <= c / n <= hi
    assert wilson(16, 64, 0.95)[1] - wilson(16, 64, 0.95)[0] < wilson(4, 16, 0.95)[1] - \
        wilson(4, 16, 0.95)[0]
    assert wilson(0, 0, 0.95) == (0.0, 1.0)


BAND = {"min_pass_rate": 0.1, "max_pass_rate": 0.9, "k": 4}


def test_prediction_is_a_distribution_that_ends_in_the_count_read():
    pmf = beta_binomial(56, 1.5, 7.5)
    assert abs(sum(pmf) - 1) < 1e-9
    assert abs(sum(x * p for x, p in enumerate(pmf)) - 56 * 1.5 / 9) < 1e-9
    cfg = AdaptiveConfig(**BAND)
    # all 64 read: the verdict is the count's (selection keeps 7/64 = 0.109, not 6/64)
    assert predicted(6, 64, 64, cfg) == (1.0, 0.0)
    assert predicted(7, 64, 64, cfg) == (0.0, 0.0)
    assert predicted(58, 64, 64, cfg) == (0.0, 1.0)


def test_a_too_hard_stop_needs_min_samples_and_its_own_confidence():
    cfg = AdaptiveConfig(**BAND)  # the defaults: 97.5% out of the band, 16 samples first
    assert decide(0, 8, 0, cfg, last=False) is None  # 0/8 may still reach 7 of 64
    assert decide(0, 16, 0, cfg, last=False) is None  # 96% below: not enough to lose it
    assert decide(0, 24, 0, cfg, last=False) == "too_hard"
    assert decide(1, 32, 1, cfg, last=False) is None
    assert decide(2, 48, 2, cfg, last=False) == "too_hard"
    assert decide(3, 48, 3, cfg, last=False) is None  # 3/48: full could still keep it
    at95 = cfg.model_copy(update={"confidence": 0.95})
    assert decide(0, 16, 0, at95, last=False) == "too_hard"
    assert decide(0, 16, 0, at95.model_copy(update={"min_samples": 17}), last=False) is None
    loose = cfg.model_copy(update={"min_samples": 8, "confidence": 0.8})
    assert decide(0, 8, 0, loose, last=False) == "too_hard"
    assert decide(0, 8, 0, loose.model_copy(update={"min_samples": 9}), last=False) is None
    assert decide(24, 24, 24, cfg, last=False) == "too_easy"
    assert decide(16, 16, 16, cfg, last=False) is None


def test_enough_needs_k_distinct_a_rate_in_the_band_and_its_looser_confidence():
    cfg = AdaptiveConfig(**BAND, enough_confidence=0.8)
    assert decide(4, 8, 4, cfg, last=False) == "enough"
    assert decide(4, 8, 3, cfg, last=False) is None  # fewer than K distinct correct
    assert decide(4, 32, 4, cfg, last=False) is None  # 0.125: 27% it ends below the band
    assert decide(5, 32, 5, cfg, last=False) == "enough"  # 7% below: inside at 80%
    assert decide(4, 32, 4, cfg.model_copy(update={"enough_confidence": 0.7}),
                  last=False) == "enough"  # 73% inside
    strict = cfg.model_copy(update={"enough_confidence": 0.95})
    assert decide(5, 32, 5, strict, last=False) is None
    wide = AdaptiveConfig(min_pass_rate=0.0, max_pass_rate=0.5, k=4)
    assert decide(8, 8, 8, wide, last=False) is None  # K distinct but the rate is above


def test_the_last_round_and_the_budget_decide_on_the_count():
    cfg = AdaptiveConfig(**BAND)
    assert decide(2, 64, 2, cfg, last=True) == "too_hard"
    assert decide(10, 64, 3, cfg, last=True) == "budget"
    assert decide(1, 16, 1, cfg, last=False) is None
    assert decide(1, 16, 1, cfg, last=False, budget=16) == "too_hard"  # nothing more comes


def test_distinct_counts_what_selection_would_keep():
    words = " ".join(f"w{i}" for i in range(40))
    near = words.replace("w39", "x39")  # one word of 40 differs: 5-gram Jaccard 0.95
    assert distinct_kept([words, words + "  ", near, "so the answer is 7"]) == 2
    assert distinct_kept([words, near], threshold=1.0) == 2  # only identical is a duplicate
    assert distinct_kept([]) == 0


def test_the_wilson_bound_keeps_the_old_rule():
    cfg = AdaptiveConfig(**BAND, bound="wilson", confidence=0.8, enough_confidence=0.8,
                         min_samples=1)
    assert decide(0, 8, 0, cfg, last=False) == "too_hard"
    assert decide(8, 8, 8, cfg, last=False) == "too_easy"
    assert decide(0, 4, 0, cfg, last=False) is None  # 4 samples do not rule out 10%
    assert decide(4, 8, 4, cfg, last=False) == "enough"
    assert decide(4, 8, 3, cfg, last=True) == "budget"
    assert decide(0, 8, 0, cfg.model_copy(update={"confidence": 0.99}), last=False) is None


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
def test_adaptive_run_stops_early_dense_and_resumes(store, tiny_model, vllm_engine):
    from r1data.generate import generate
    from r1data.prompts import ingest_synth

    ingest_synth(store, ["arithmetic"], 4, 0, 1)
    cfg = GenerateConfig(model=str(tiny_model), n=16, max_tokens=8, max_model_len=512,
                         shard_prompts=2)
    # A random tiny model is never right: after 0/8 a 16-sample run ends below 10% (< 2 of 16)
    # with 90% (stop at 80%), and min_samples holds 0/4 back.
    ad = AdaptiveConfig(rounds=[4, 8, 16], min_pass_rate=0.1, max_pass_rate=0.9,
                        confidence=0.8, min_samples=8)
    rep = generate(store, cfg, "ad", engine=vllm_engine, progress=False, adaptive=ad)
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
    again = generate(store, cfg, "ad", engine=vllm_engine, progress=False, adaptive=ad)
    assert again.samples_written == lost_rows > 0
    rows = store.read("samples", "ad", columns=["prompt_id", "sample_idx"]).to_pylist()
    assert sorted((r["prompt_id"], r["sample_idx"]) for r in rows) == sorted(
        (p, i) for p in by_prompt for i in range(8))
    assert generate(store, cfg, "ad", engine=vllm_engine, progress=False,
                    adaptive=ad).samples_written == 0
    with pytest.raises(StoreError, match="adaptive"):
        generate(store, cfg, "ad", engine=vllm_engine, progress=False)

