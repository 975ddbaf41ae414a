import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from r1data.errors import InputError
from r1data.prompts import ingest, ingest_synth, prompt_id
from tests.conftest import snapshot

ROWS = [{"question": "What is 2+3?", "gold": "5", "extra": 1},
        {"question": "What is 6*7?", "gold": 42, "extra": 2},
        {"question": "What is 2+3?", "gold": "5", "extra": 3}]  # duplicate of the first


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "csv", "hf"])
def test_ingest_formats_with_mapping_and_dedup(kind, tmp_path, store):
    if kind == "jsonl":
        path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    elif kind == "parquet":
        path = tmp_path / "p.parquet"
        pq.write_table(pa.Table.from_pylist([{**r, "gold": str(r["gold"])} for r in ROWS]), path)
    elif kind == "csv":
        path = tmp_path / "p.csv"
        path.write_text("question,gold,extra\n" + "".join(
            f"{r['question']},{r['gold']},{r['extra']}\n" for r in ROWS))
    else:
        path = tmp_path / "p_hf"
        datasets.DatasetDict({"train": datasets.Dataset.from_list(
            [{**r, "gold": str(r["gold"])} for r in ROWS])}).save_to_disk(str(path))
    rep = ingest(store, str(path), source="toy", mapping={"answer": "gold"})
    assert (rep.read, rep.added, rep.duplicates) == (3, 2, 1)
    got = {r["problem"]: r for r in store.read("prompts").to_pylist()}
    assert got["What is 6*7?"]["answer"] == "42"
    assert got["What is 2+3?"]["prompt_id"] == prompt_id("toy", "What is 2+3?")
    assert json.loads(got["What is 6*7?"]["meta"])["extra"] in (2, "2")
    # ingesting again adds nothing: ids are stable
    again = ingest(store, str(path), source="toy", mapping={"answer": "gold"})
    assert (again.added, again.duplicates) == (0, 3)


def test_prompt_id_depends_on_source_and_problem():
    assert prompt_id("a", "x") == prompt_id("a", "x")
    assert len({prompt_id("a", "x"), prompt_id("b", "x"), prompt_id("a", "y")}) == 3


def _bad_inputs(tmp_path):
    no_answer = write_jsonl(tmp_path / "no_answer.jsonl", [{"problem": "p1"}, {"problem": "p2"}])
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"problem": "ok", "answer": "1"},
                                                   {"problem": "  ", "answer": "2"}])
    bad_utf8 = tmp_path / "bad.jsonl"
    bad_utf8.write_bytes(b'{"problem": "ok", "answer": "1"}\n'
                         b'{"problem": "caf\xe9", "answer": "2"}\n')
    unreadable = tmp_path / "locked.jsonl"
    unreadable.write_text('{"problem": "x", "answer": "1"}\n')
    unreadable.chmod(0)
    not_parquet = tmp_path / "junk.parquet"
    not_parquet.write_bytes(b"not parquet at all")
    return [
        (no_answer, "row 1, field 'answer'"),
        (empty, "row 2, field 'problem': empty"),
        (bad_utf8, "row 2: not valid UTF-8"),
        (not_parquet, "unreadable Parquet"),
        (tmp_path / "missing.jsonl", "no such file"),
    ] + ([(unreadable, "unreadable")] if not _root_reads(unreadable) else [])


def _root_reads(path) -> bool:
    try:
        path.read_bytes()
        return True
    except PermissionError:
        return False


def test_bad_inputs_name_file_row_field_and_leave_store_unchanged(tmp_path, store):
    ingest_synth(store, ["arithmetic"], 2, 0, 1)
    before = snapshot(store.root)
    for path, expected in _bad_inputs(tmp_path):
        with pytest.raises(InputError) as e:
            ingest(store, str(path))
        msg = str(e.value)
        assert "\n" not in msg
        assert str(path) in msg and expected in msg, msg
        assert snapshot(store.root) == before


def test_skip_invalid_counts_instead_of_stopping(tmp_path, store):
    path = write_jsonl(tmp_path / "mixed.jsonl", [{"problem": "a", "answer": "1"},
                                                  {"problem": "", "answer": "2"},
                                                  {"problem": "c", "answer": None}])
    rep = ingest(store, str(path), skip_invalid=True)
    assert (rep.added, rep.invalid) == (1, 2)
    assert rep.reasons == {"invalid_problem": 1, "invalid_answer": 1}


def test_binary_parquet_column_rejected(tmp_path, store):
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"problem": pa.array([b"\xff\xfe"]), "answer": ["1"]}), path)
    with pytest.raises(InputError, match="field 'problem'"):
        ingest(store, str(path))


def test_unknown_domain_rejected(tmp_path, store):
    path = write_jsonl(tmp_path / "d.jsonl", [{"problem": "a", "answer": "1", "domain": "poetry"}])
    with pytest.raises(InputError, match="row 1, field 'domain'"):
        ingest(store, str(path))


def test_code_prompts_need_tests_not_answers(tmp_path, store):
    path = write_jsonl(tmp_path / "c.jsonl", [{"problem": "def f(): ...", "tests": "assert f()"}])
    rep = ingest(store, str(path), domain="code")
    assert rep.added == 1


def test_builtin_sets_install_offline(store):
    he = ingest(store, "humaneval")
    champ = ingest(store, "champ")
    assert (he.added, champ.added) == (164, 270)
    rows = store.read("prompts").to_pylist()
    code = [r for r in rows if r["domain"] == "code"]
    assert len(code) == 164 and all(json.loads(r["tests"])["entry_point"] for r in code)
    assert all(r["answer"] for r in rows if r["source"] == "champ")


def test_reasoning_gym_sets_with_gold_answers(store):
    from r1data.filters.logic import countdown_correct

    cd = ingest(store, "gym:countdown", n=5, seed=1)
    gsm = ingest(store, "gym:gsm_symbolic", n=5, seed=1)
    assert (cd.added, gsm.added) == (5, 5)
    rows = store.read("prompts").to_pylist()
    countdown = [r for r in rows if r["source"] == "gym/countdown"]
    assert all(r["domain"] == "countdown" for r in countdown)
    for r in countdown:  # the generator's own solution passes r1data's countdown verifier
        meta = json.loads(r["meta"])
        good = f"<think>x</think><answer>{r['answer']}</answer>"
        assert countdown_correct(good, meta["numbers"], meta["target"])
    assert all(r["answer"].isdigit() for r in rows if r["source"] == "gym/gsm_symbolic")
    # seeded: the same call adds nothing new
    assert ingest(store, "gym:countdown", n=5, seed=1).duplicates == 5
