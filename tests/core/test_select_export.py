"""Selection policy and Hugging Face export over a store with hand-made verdicts."""

import datetime as dt
import json

import datasets
import pyarrow as pa
import pytest

from r1data.errors import ConfigError, InputError
from r1data.export import export
from r1data.prompts import ingest_synth
from r1data.selection import SelectConfig, select
from r1data.store import SAMPLES_SCHEMA, VERDICTS_SCHEMA

BASE = " ".join(f"w{j}" for j in range(30))  # shared reasoning: samples overlap heavily


def completion(i: int, answer: str, pad: int = 0) -> str:
    """Sample i adds 4*pad words of its own, so it drifts further from sample 0 as i grows."""
    own = " ".join(f"s{i}_{j}" for j in range(4 * pad))
    return f"<think>\n{BASE} {own}\n</think>\n\\boxed{{{answer}}}"


def fill(store, keep_counts: list[int], n: int = 8, dup_texts: bool = False):
    """Prompts whose first keep_counts[k] samples are kept; optional duplicate texts."""
    from r1data.filters.extract import split_think

    ingest_synth(store, ["arithmetic"], len(keep_counts), 0, 1)
    prompts = sorted(store.read("prompts").to_pylist(), key=lambda r: r["prompt_id"])
    now = dt.datetime.now(dt.UTC)
    samples, verdicts = [], []
    for k, p in enumerate(prompts):
        for i in range(n):
            j = 0 if dup_texts and i < 3 else i
            text = completion(j, p["answer"], pad=j)
            reasoning, final = split_think(text)
            samples.append({"run": "r", "prompt_id": p["prompt_id"], "sample_idx": i,
                            "completion": text, "reasoning": reasoning, "final": final,
                            "num_tokens": 10 + i, "finish_reason": "stop", "created_at": now,
                            "model": "m", "temperature": 0.6, "top_p": 0.95})
            ok = i < keep_counts[k]
            verdicts.append({"run": "r", "prompt_id": p["prompt_id"], "sample_idx": i,
                             "filter_run": "f", "created_at": now, "correct": ok,
                             "format_ok": True, "keep": ok,
                             "reject_reason": None if ok else "incorrect"})
    store.write_shard("samples", pa.Table.from_pylist(samples, schema=SAMPLES_SCHEMA), "r")
    store.write_shard("verdicts", pa.Table.from_pylist(verdicts, schema=VERDICTS_SCHEMA), "r")
    return prompts


def curated_rows(store, name):
    t = store.read("curated", name).to_pylist()
    return sorted((r["prompt_id"], r["sample_idx"]) for r in t)


def test_shortest_k_per_prompt(store):
    prompts = fill(store, [8, 2, 0])
    rep = select(store, "r", "c", SelectConfig(k=3))
    assert (rep.candidates, rep.kept, rep.prompts_out, rep.dropped_over_k) == (10, 5, 2, 5)
    got = curated_rows(store, "c")
    full = [p["prompt_id"] for p in prompts][0]
    assert [i for pid, i in got if pid == full] == [0, 1, 2]  # the three shortest


def test_pass_rate_band_drops_too_easy_and_too_hard(store):
    fill(store, [8, 4, 1, 0])
    rep = select(store, "r", "band", SelectConfig(k=8, min_pass_rate=0.2, max_pass_rate=0.9))
    assert rep.prompts_in == 3 and rep.dropped_band == 2 and rep.prompts_out == 1
    assert rep.kept == 4


def test_exact_duplicates_dropped(store):
    fill(store, [8], dup_texts=True)
    rep = select(store, "r", "d", SelectConfig(k=8, near_dup_threshold=1.01))
    texts = [r["completion"] for r in store.read("samples", "r").to_pylist()]
    assert len(set(texts)) < 8
    assert rep.dropped_exact_dup == 8 - len(set(texts)) and rep.kept == len(set(texts))


def test_near_duplicates_dropped(store):
    fill(store, [8])
    loose = select(store, "r", "loose", SelectConfig(k=8, near_dup_threshold=1.01))
    tight = select(store, "r", "tight", SelectConfig(k=8, near_dup_threshold=0.3))
    assert loose.kept == 8 and loose.dropped_near_dup == 0
    assert tight.dropped_near_dup > 0 and tight.kept == 8 - tight.dropped_near_dup


def test_diverse_and_random_policies_differ_from_shortest(store):
    fill(store, [8])
    select(store, "r", "s", SelectConfig(k=2, near_dup_threshold=1.01))
    select(store, "r", "d", SelectConfig(k=2, policy="diverse", near_dup_threshold=1.01))
    assert [i for _, i in curated_rows(store, "s")] == [0, 1]
    assert [i for _, i in curated_rows(store, "d")] == [0, 7]  # farthest from the first


def test_decontamination_drops_prompts_sharing_ngrams(store, tmp_path):
    prompts = fill(store, [8, 8])
    evalf = tmp_path / "eval.jsonl"
    evalf.write_text(json.dumps({"question": prompts[0]["problem"]}) + "\n")
    rep = select(store, "r", "clean", SelectConfig(k=1, decontaminate=[str(evalf)], ngram=8))
    assert rep.dropped_contaminated == 1
    assert {pid for pid, _ in curated_rows(store, "clean")} == {prompts[1]["prompt_id"]}


def test_bad_select_arguments(store):
    with pytest.raises(ConfigError):
        SelectConfig(policy="best")
    with pytest.raises(ConfigError):
        SelectConfig(min_pass_rate=0.8, max_pass_rate=0.2)
    with pytest.raises(InputError, match="no verdicts"):
        select(store, "r", "c")


@pytest.fixture
def curated_store(store):
    fill(store, [8, 6, 4, 3, 2, 8, 8, 8, 1, 5])
    select(store, "r", "cur", SelectConfig(k=2))
    return store


def test_export_sft_loads_both_ways(curated_store, tmp_path):
    out = tmp_path / "sft"
    info = export(curated_store, "cur", out, fmt="sft", test_size=0.3)
    dd = datasets.load_from_disk(str(out))
    assert set(dd) == {"train", "test"} and len(dd["train"]) + len(dd["test"]) == 19
    assert info["train"] == len(dd["train"])
    train_ids = set(dd["train"]["prompt_id"])
    assert not train_ids & set(dd["test"]["prompt_id"])  # split by prompt
    msg = dd["train"][0]["messages"]
    assert [m["role"] for m in msg] == ["user", "assistant"]
    assert msg[1]["content"].startswith("<think>\n") and "</think>\n\n\\boxed{" in msg[1]["content"]
    pq = datasets.load_dataset("parquet", data_files={
        "train": str(out / "data" / "train.parquet"), "test": str(out / "data" / "test.parquet")})
    assert pq["train"]["messages"] == dd["train"]["messages"]
    card = (out / "README.md").read_text()
    assert "temperature=0.6" not in card  # no generation manifest in this hand-made store
    assert "| synth/arithmetic | kept | 53 |" in card
    assert "| synth/arithmetic | incorrect | 27 |" in card
    assert f"- train: {len(dd['train'])} rows" in card


def test_export_plain_share_drops_the_suffix_from_that_share_of_rows(curated_store, tmp_path):
    from r1data.chat import R1_USER_SUFFIX

    def users(share, name):
        export(curated_store, "cur", tmp_path / name, fmt="sft", test_size=0.0,
               plain_share=share)
        ds = datasets.load_from_disk(str(tmp_path / name))["train"]
        return [m[0]["content"] for m in ds["messages"]]

    full, half, none = users(0.0, "a"), users(0.5, "b"), users(1.0, "c")
    assert all(u.endswith(R1_USER_SUFFIX) for u in full)
    assert not any(u.endswith(R1_USER_SUFFIX) for u in none)
    plain = [u for u in half if not u.endswith(R1_USER_SUFFIX)]
    assert 0 < len(plain) < len(half)  # a share, the same problems otherwise
    assert [u.removesuffix(R1_USER_SUFFIX) for u in half] == none
    assert half == users(0.5, "d")  # deterministic: a rerun exports the same rows
    with pytest.raises(InputError, match="plain share"):
        export(curated_store, "cur", tmp_path / "e", plain_share=1.5)


def test_export_grpo_one_row_per_prompt(curated_store, tmp_path):
    out = tmp_path / "grpo"
    export(curated_store, "cur", out, fmt="grpo", test_size=0.0)
    dd = datasets.load_from_disk(str(out))
    assert set(dd) == {"train"}  # test_size=0: no empty split written
    ds = dd["train"]
    assert len(ds) == 10 == len(set(ds["prompt_id"]))
    assert set(ds.column_names) >= {"prompt", "answer", "domain", "tests"}
    assert ds[0]["prompt"][0]["role"] == "user" and ds[0]["answer"]


def test_export_push_to_hub_is_called(curated_store, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub",
                        lambda self, repo, **kw: calls.append(("push", repo, dict(self))))
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_file",
                        lambda self, **kw: calls.append(("card", kw["repo_id"])))
    export(curated_store, "cur", tmp_path / "o", push_to_hub="me/r1-data")
    assert [c[:2] for c in calls] == [("push", "me/r1-data"), ("card", "me/r1-data")]


def test_export_missing_curated_set(store, tmp_path):
    with pytest.raises(InputError, match="empty or missing"):
        export(store, "nope", tmp_path / "o")


@pytest.mark.slow
def test_sft_export_trains_with_trl_sfttrainer(curated_store, tmp_path, tiny_model):
    """The yardstick consumer: TRL's SFTTrainer takes the export as it is, for one step."""
    import math

    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from r1data.trainers.data import load_tokenizer

    out = tmp_path / "sft"
    export(curated_store, "cur", out, fmt="sft", test_size=0.2)
    ds = datasets.load_from_disk(str(out))
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model),
        processing_class=load_tokenizer(str(tiny_model)),
        train_dataset=ds["train"], eval_dataset=ds["test"],
        args=SFTConfig(output_dir=str(tmp_path / "trl"), max_steps=1,
                       per_device_train_batch_size=2, report_to=[], use_cpu=True,
                       save_strategy="no", logging_steps=1, assistant_only_loss=False))
    result = trainer.train()
    assert result.global_step == 1 and math.isfinite(result.training_loss)


# --- the export folder: never someone else's, replaced in one step ---------------------------
def test_export_refuses_a_folder_r1data_did_not_write(curated_store, tmp_path):
    from tests.conftest import snapshot

    thesis = tmp_path / "thesis"
    (thesis / "chapters").mkdir(parents=True)
    (thesis / "chapters" / "one.tex").write_text("\\chapter{One}")
    (thesis / "README.md").write_text("my thesis")
    before = snapshot(thesis)
    with pytest.raises(InputError, match="not written by r1data.*--overwrite") as e:
        export(curated_store, "cur", thesis)
    assert str(thesis) in str(e.value) and "\n" not in str(e.value)
    assert snapshot(thesis) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store", "thesis"]  # no staging left
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        export(curated_store, "cur", tmp_path / "a_file")
    export(curated_store, "cur", thesis, overwrite=True)  # asked for: replaced
    assert not (thesis / "chapters").exists() and set(datasets.load_from_disk(str(thesis)))


def test_export_replaces_its_own_export_and_an_empty_folder(curated_store, tmp_path):
    out = tmp_path / "o"
    out.mkdir()  # empty: fine
    export(curated_store, "cur", out, fmt="grpo", test_size=0.0)
    assert (out / ".r1data-export").exists()
    export(curated_store, "cur", out, fmt="sft", test_size=0.3)  # ours: replaced as a whole
    assert set(datasets.load_from_disk(str(out))) == {"train", "test"}
    assert "messages" in datasets.load_from_disk(str(out))["train"].column_names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o", "store"]


def test_export_killed_midway_keeps_the_old_export(curated_store, tmp_path):
    """SIGKILL while the new export is being built: the old one is still whole at OUT."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import snapshot

    out = tmp_path / "o"
    export(curated_store, "cur", out, fmt="grpo", test_size=0.0)
    before = snapshot(out)
    code = ("import os, signal, datasets\n"
            "from r1data.store import Store\nfrom r1data.export import export\n"
            "def die(self, path, **kw):\n"
            "    os.makedirs(path)\n    open(os.path.join(path, 'half'), 'w').write('x')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "datasets.DatasetDict.save_to_disk = die\n"
            f"export(Store({str(curated_store.root)!r}), 'cur', {str(out)!r}, fmt='sft')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(out) == before
    export(curated_store, "cur", out, fmt="sft")  # the lock died with the process
    assert os.path.exists(out / "data" / "train.parquet")


def test_reselect_killed_midway_loses_nothing(curated_store):
    """A select killed after setting the old set aside: the next replace restores it first."""
    from r1data.store import CURATED_SCHEMA

    first = curated_rows(curated_store, "cur")
    shard = curated_store.shards("curated", "cur")[0]
    shard.rename(shard.with_name(shard.name + ".replaced"))  # where a kill would leave it
    assert curated_store.shards("curated", "cur") == []
    with pytest.raises(ValueError):  # a replace that fails to write puts the old set back
        curated_store.replace_part("curated", "cur", pa.table({"bad": [1]}).cast(
            pa.schema([("bad", pa.int64())])), prefix="part\x00")
    assert curated_rows(curated_store, "cur") == first
    curated_store.replace_part("curated", "cur", CURATED_SCHEMA.empty_table())
    assert curated_rows(curated_store, "cur") == [] and len(curated_store.shards("curated",
                                                                                 "cur")) == 1


def test_select_refuses_a_second_writer_of_the_same_set(curated_store):
    from r1data.errors import StoreError

    with curated_store.lock("select", "cur"):
        with pytest.raises(StoreError, match="select cur is being written by another process"):
            select(curated_store, "r", "cur", SelectConfig(k=1))


@pytest.fixture
def sharded_store(store):
    """10 prompts x 8 samples in 3 shards of small row groups (3 rows), shard order unlike
    prompt order: what generate leaves, in miniature; select keeps up to 4 per prompt."""
    import pyarrow.parquet as papq

    fill(store, [8, 6, 4, 3, 2, 8, 8, 8, 1, 5])
    rows = store.read("samples", "r").to_pylist()
    for f in store.shards("samples", "r"):
        f.unlink()
    # 3, 4 and 3 prompts a shard, the first prompts in the last shard by name
    for name, (a, b) in zip("cba", ((0, 24), (24, 56), (56, 80)), strict=True):
        papq.write_table(pa.Table.from_pylist(rows[a:b], schema=SAMPLES_SCHEMA),
                         store.table_dir("samples", "r") / f"shard-{name}.parquet",
                         row_group_size=3)
    select(store, "r", "cur", SelectConfig(k=4, near_dup_threshold=1.01))
    return store


def old_export_rows(store, name: str, test_size: float, plain_share: float) -> dict:
    """What the export before store order wrote, split by split: each curated sample in
    (prompt_id, sample_idx) order, from the samples table read whole."""
    from r1data.export import _in_test, _sft_row

    prompts = {p["prompt_id"]: p for p in store.read("prompts").to_pylist()}
    text = {(s["prompt_id"], s["sample_idx"]): s for s in store.read("samples", "r").to_pylist()}
    keys = curated_rows(store, name)
    ids = sorted({pid for pid, _ in keys})
    test = {p for p in ids if _in_test(p, test_size)}
    rows = {"train": [], "test": []}
    for key in keys:
        row = _sft_row(prompts[key[0]], text[key], plain_share) | {"prompt_id": key[0]}
        rows["test" if key[0] in test else "train"].append(row)
    return rows


def test_export_in_store_order_writes_the_rows_of_prompt_order(sharded_store, tmp_path):
    """Reading in store order (shard, row) instead of (prompt_id, sample_idx) changes only the
    order: the same rows in each split, plain_share on the same rows; and a rerun is equal."""
    old = old_export_rows(sharded_store, "cur", 0.3, 0.5)
    assert old["train"] and old["test"]
    export(sharded_store, "cur", tmp_path / "a", fmt="sft", test_size=0.3, plain_share=0.5)
    export(sharded_store, "cur", tmp_path / "b", fmt="sft", test_size=0.3, plain_share=0.5)
    a, b = (datasets.load_from_disk(str(tmp_path / x)) for x in "ab")
    for split in ("train", "test"):
        got = a[split].to_list()
        assert sorted(map(json.dumps, got)) == sorted(map(json.dumps, old[split]))
        assert got == b[split].to_list()  # deterministic
    assert a["train"].to_list() != old["train"]  # shards out of prompt order: reordered


def test_export_decodes_each_row_group_once(sharded_store, tmp_path, monkeypatch):
    """Batches much smaller than the set still read each shard of the samples once, for both
    splits (the prompt-order export read groups of many shards a batch, again and again: its
    cost per sample grew with the run)."""
    import r1data.export as E
    import r1data.store as S

    reads: list[str] = []
    real = S.read_rows

    def counted(shard, rows, columns, batch_rows=32):
        reads.append(str(shard))  # read_rows walks a shard's row groups once, in order
        return real(shard, rows, columns, batch_rows)

    monkeypatch.setattr(E, "BATCH_CHARS", 400)  # a few rows a batch
    monkeypatch.setattr(S, "read_rows", counted)
    info = export(sharded_store, "cur", tmp_path / "o", fmt="sft", test_size=0.3)
    assert info["train"] > 4 * E.batch_rows(sharded_store.shards("samples", "r"), "sft")
    assert sorted(reads) == sorted(map(str, sharded_store.shards("samples", "r"))), reads
