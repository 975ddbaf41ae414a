import ast
import json
import operator
import re
from fractions import Fraction

import pytest

from r1data.errors import ConfigError
from r1data.synth import KINDS, synth_prompts

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}


def exact(expr: str) -> Fraction:
    """Evaluate our own generated arithmetic exactly (a test oracle independent of the code)."""
    def ev(node):
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Constant):
            return Fraction(node.value)
        raise ValueError(node)
    return ev(ast.parse(expr, mode="eval").body)


def latex_fraction(ans: str) -> Fraction:
    if "\\frac" in ans:
        sign = -1 if ans.startswith("-") else 1
        num, den = ans.lstrip("-").replace("\\frac{", "").rstrip("}").split("}{")
        return sign * Fraction(int(num), int(den))
    return Fraction(int(ans))


@pytest.mark.parametrize("level", [1, 2, 3])
def test_gold_answers_are_exact(level):
    rows = synth_prompts(KINDS, 20, seed=3, level=level)
    assert len(rows) == 60
    for r in rows:
        meta = json.loads(r["meta"])
        if meta["kind"] == "expression":
            assert latex_fraction(r["answer"]) == exact(meta["expression"])
        elif meta["kind"] == "countdown":
            assert exact(meta["solution"]) == meta["target"] == int(r["answer"])
            assert sorted(meta["numbers"]) == sorted(
                int(t) for t in meta["solution"].replace("(", " ").replace(")", " ").split()
                if t.isdigit())
        else:
            nums = [int(t) for t in re.findall(r"\d+", r["problem"])]
            op = {"add": operator.add, "sub": operator.sub, "mul": operator.mul}[meta["op"]]
            assert op(*nums) == int(r["answer"])


def test_seeded_and_distinct():
    a = synth_prompts(["arithmetic"], 10, seed=1)
    assert a == synth_prompts(["arithmetic"], 10, seed=1)
    assert a != synth_prompts(["arithmetic"], 10, seed=2)
    assert len({r["problem"] for r in a}) == 10


def test_level_one_is_single_digit():
    for r in synth_prompts(["arithmetic"], 30, seed=0, level=1):
        assert all(int(t) <= 9 for t in re.findall(r"\d+", r["problem"]))


def test_unknown_kind():
    with pytest.raises(ConfigError, match="unknown synthetic kind"):
        synth_prompts(["poetry"], 1)


def test_word_kind_spans_phrasings_and_answers_match_meta():
    from r1data.synth import ALL_KINDS, WORD_TEMPLATES

    rows = synth_prompts(["word"], 120, seed=4, level=2)
    assert "word" in ALL_KINDS and "word" not in KINDS  # the default set keeps its outputs
    metas = [json.loads(r["meta"]) for r in rows]
    assert len({m["template"] for m in metas}) == sum(map(len, WORD_TEMPLATES.values()))
    for r, m in zip(rows, metas, strict=True):
        want = {"add": m["a"] + m["b"], "sub": m["a"] - m["b"], "mul": m["a"] * m["b"]}[m["op"]]
        assert int(r["answer"]) == want >= 0 and r["source"] == "synth/word"
        assert str(m["a"]) in r["problem"] and str(m["b"]) in r["problem"]
