"""Near-duplicates over the whole dataset: prompts at ingest, kept samples across prompts at
selection (MinHash-LSH by rensa), queryable in SQL and counted in the dataset card."""

import json

import pytest

from r1data import query
from r1data.export import export
from r1data.neardup import (
    PROMPTS,
    NearDupConfig,
    cluster,
    clusters,
    lsh_bands,
    shingles,
    signatures,
)
from r1data.prompts import ingest
from r1data.selection import SelectConfig, select
from tests.core.test_select_export import fill

TRAIN = ("Problem {n}: A train leaves the station at 3 pm and travels at 60 km per hour "
         "towards a city that is 180 km away. It stops twice for ten minutes each time. At "
         "what time does it reach the city?")
TRAIN_REWORDED = ("A train departs from the station at 3 pm and travels at 60 km per hour "
                  "towards a city that is 180 km away. It stops twice for ten minutes each time."
                  " At what time will it reach the city?")
TANK = ("A water tank holds 500 litres and is filled by a pipe that delivers 25 litres per "
        "minute while a leak drains 5 litres per minute. How long until the empty tank is full?")
TANK_REWORDED = ("A water tank holds 500 litres and is filled by a pipe that delivers 25 litres "
                 "per minute while a hole drains 5 litres per minute. How many minutes until "
                 "the empty tank is full?")
OTHERS = ["What is 2 + 3?", "What is 2 - 3?",
          "Find all real x such that x squared minus five x plus six equals zero, and give "
          "their sum as your answer.",
          "A rectangle has a perimeter of 40 cm and one side of 12 cm. What is its area in "
          "square centimetres?"]


def write(path, problems):
    path.write_text("".join(json.dumps({"problem": p, "answer": "1"}) + "\n" for p in problems))
    return str(path)


def test_shingles_keep_symbols_and_short_texts():
    assert shingles("What is 2 + 3?", 3) != shingles("What is 2 - 3?", 3)
    assert shingles("Hi there", 5) == ["hi there"] and shingles("  ", 5) == []
    assert lsh_bands(0.8, 128) * (128 // lsh_bands(0.8, 128)) == 128


def test_clusters_join_near_duplicates_and_respect_groups():
    texts = [TANK, TRAIN.format(n=1), TANK_REWORDED, "", OTHERS[2], TRAIN.format(n=2)]
    got = {m.index: m.cluster for m in clusters(texts, PROMPTS)}
    assert got == {0: 0, 2: 0, 1: 1, 5: 1}
    same = clusters(texts, PROMPTS, groups=["a", "b", "a", "c", "d", "e"])
    assert {m.index: m.cluster for m in same} == {1: 1, 5: 1}  # tank pair is one group



def test_signatures_made_in_batches_cluster_as_the_texts_do():
    """Selection signs a prompt's samples at a time and clusters once: the same clusters."""
    texts = [TANK, TRAIN.format(n=1), TANK_REWORDED, "", OTHERS[2], TRAIN.format(n=2)]
    sigs = signatures(texts[:3], PROMPTS) + signatures(texts[3:], PROMPTS)
    assert sigs[3] is None
    groups = ["a", "b", "a", "c", "d", "e"]
    assert cluster(sigs, PROMPTS) == clusters(texts, PROMPTS)
    assert cluster(sigs, PROMPTS, groups=groups) == clusters(texts, PROMPTS, groups=groups)

def test_ingest_reports_reworded_and_renumbered_prompts(tmp_path, store):
    first = write(tmp_path / "a.jsonl", [TRAIN.format(n=12), TANK, *OTHERS])
    rep = ingest(store, first)
    assert (rep.added, rep.near_duplicates) == (6, 0)
    again = write(tmp_path / "b.jsonl", [TRAIN.format(n=13), TRAIN_REWORDED, TANK_REWORDED,
                                         "What is 7 * 9?"])
    rep = ingest(store, again)
    assert (rep.added, rep.duplicates, rep.near_duplicates) == (4, 0, 3)
    # the same problem from another source is a new prompt_id, and a near-duplicate
    rep = ingest(store, first, source="mirror")
    assert (rep.added, rep.near_duplicates) == (6, 6)
    rows = query.run(store, "SELECT cluster, list(problem ORDER BY problem) AS problems, "
                            "count(DISTINCT source) AS sources FROM prompt_clusters "
                            "GROUP BY cluster ORDER BY len(problems)").pl().to_dicts()
    by_text = {p: r for r in rows for p in r["problems"]}
    assert by_text[TRAIN.format(n=12)] is by_text[TRAIN_REWORDED] is by_text[TRAIN.format(n=13)]
    assert by_text[TANK] is by_text[TANK_REWORDED] and by_text[TANK] is not by_text[TRAIN_REWORDED]
    assert "What is 7 * 9?" not in by_text  # a new problem joins nothing
    assert by_text["What is 2 + 3?"] is not by_text["What is 2 - 3?"]
    assert by_text["What is 2 + 3?"]["sources"] == 2
    # clusters keep their ids: the first train prompt stays the representative
    first_id = query.run(store, "SELECT prompt_id FROM prompts WHERE source = 'a' AND problem "
                                f"= '{TRAIN.format(n=12)}'").fetchall()[0][0]
    assert by_text[TRAIN_REWORDED]["cluster"] == first_id


@pytest.fixture
def dup_store(store):
    fill(store, [3, 3, 3, 0])  # every prompt's samples share 30 words of reasoning
    return store


def test_select_counts_cross_prompt_near_duplicates_in_sql_and_card(dup_store, tmp_path):
    rep = select(dup_store, "r", "cur", SelectConfig(k=3))
    assert rep.kept == 9 and rep.near_dup_cross_prompt > 0 and rep.dropped_cross_prompt == 0
    sql = query.run(dup_store, """
        SELECT count(*) FILTER (WHERE cluster <> prompt_id || '/' || sample_idx),
               count(DISTINCT cluster), count(DISTINCT prompt_id)
        FROM sample_clusters WHERE curated = 'cur'""").fetchall()[0]
    assert sql[:2] == (rep.near_dup_cross_prompt, rep.near_dup_clusters) and sql[2] == 3
    export(dup_store, "cur", tmp_path / "out", test_size=0.0)
    card = (tmp_path / "out" / "README.md").read_text()
    assert (f"another prompt: {rep.near_dup_cross_prompt} in {rep.near_dup_clusters} clusters"
            in card)


def test_select_drop_keeps_one_sample_per_cluster(dup_store):
    rep = select(dup_store, "r", "cur", SelectConfig(k=3, cross_prompt="drop"))
    assert rep.dropped_cross_prompt == rep.near_dup_cross_prompt > 0
    assert rep.kept == 9 - rep.dropped_cross_prompt
    kept = query.run(dup_store, "SELECT prompt_id, completion FROM curated "
                                "WHERE curated = 'cur'").pl()
    assert clusters(kept["completion"].to_list(), NearDupConfig(),
                    groups=kept["prompt_id"].to_list()) == []
    flagged = query.run(dup_store, "SELECT count(*) FROM sample_clusters WHERE dropped"
                        ).fetchall()[0][0]
    assert flagged == rep.dropped_cross_prompt
    # a reselect replaces the clusters with the set
    rep = select(dup_store, "r", "cur", SelectConfig(k=1))
    assert query.run(dup_store, "SELECT count(*) FROM sample_clusters WHERE dropped"
                     ).fetchall()[0][0] == 0
