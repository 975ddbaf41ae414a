"""The batched filter path (columnar repetition, one fastText call, memoised sentences, local
math fast path) must decide every verdict column exactly as the scalar, one-sample-at-a-time
functions do, on ordinary and hostile completions alike."""

from __future__ import annotations

import random

import pytest

from r1data.filtering import FilterConfig, verdict_rows
from r1data.filters import language, readability
from r1data.filters import math as math_v
from r1data.filters.extract import extract_answer, split_think

ZH = "我们先把两个数相加，然后把和除以三，得到答案。"
FR = "Nous additionnons d'abord les deux nombres, puis nous divisons la somme par trois."
STEPS = [
    "First, we read the problem carefully and write down the two numbers.",
    "We line the numbers up by place value, ones under ones and tens under tens.",
    "Adding the ones column may produce a carry into the tens column.",
    "Wait.", "Hmm, let me check that again.", "So $x^2 + 1 = 5$ gives \\(x = 2\\).",
    "Then \\frac{a}{b} is \\textbf{half} of it!", ZH, FR, "12 + 7 = 19.", "Ok.",
]
FINALS = ["The answer is $\\boxed{5}$.", "\\boxed{\\frac{10}{2}}", "So the total is 5.",
          "Therefore $x = 5$", "\\boxed{6}", "\\boxed{5", "答案是 \\boxed{5}。", "",
          "\\boxed{{{5}}", "\\boxed{2\\sqrt{2}}", "\\boxed{5} and \\boxed{5}", "$$5$$"]


def completions(seed: int = 0, n: int = 300) -> list[tuple[str, str | None]]:
    """Varied R1-style completions with (completion, finish_reason), hostile ones included."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        think = rng.choice(["\n", " ", "\n\n"]).join(
            rng.choice(STEPS) for _ in range(rng.randint(0, 12)))
        k = rng.random()
        if k < 0.1:
            think += "\n" + "\n".join(["Let me check again."] * rng.randint(2, 30))
        elif k < 0.2:
            think += " " + " ".join(["so the answer is five"] * rng.randint(1, 30))
        elif k < 0.3:
            think = "\n\n".join([think] * rng.randint(1, 4))
        text = f"<think>\n{think}\n</think>\n\n{rng.choice(FINALS)}"
        if rng.random() < 0.1:
            text = text.replace("<think>", "", 1)
        if rng.random() < 0.05:
            text = text.replace("</think>", "")
        if rng.random() < 0.05:
            text += "\n</think> <think>"
        out.append((text, "length" if rng.random() < 0.1 else "stop"))
    out += [("<think>" + "word " * 200_000 + "</think> \\boxed{5}", "stop"),  # 1 MB
            ("<think>" + "{" * 50_000 + "</think> \\boxed{" + "{" * 1000, "stop"),
            ("<think>" + "a\n" * 5000 + "</think> \\boxed{5}", "stop"),
            ("<think>" + ZH * 200 + " Wait, is that right? " + ZH + "</think> \\boxed{5}",
             "stop"),
            ("<think>" + "$" * 3000 + "\\(" * 3000 + "</think> $\\boxed{5}$", "stop"),
            ("", "stop"), ("   ", None), ("<think></think>", "stop"),
            ("<think>" + "\u3000\u2028\x85. \x1c" * 50 + "</think> \\boxed{5}", "stop")]
    return out


def scalar_verdict(completion: str, finish: str | None, gold: str, cfg: FilterConfig) -> dict:
    """One sample with the scalar functions, in the order the filter runner decides."""
    reasoning, final = split_think(completion)
    answer = extract_answer(final)
    ok = math_v.answers_equal(gold, answer, timeout=cfg.timeout)
    fmt_ok, fmt_reason = readability.check_format(completion, finish, domain="math")
    lang, prob = language.detect(final)
    cons = language.consistency(reasoning or "", cfg.target_language)
    reason = None
    if not fmt_ok:
        reason = fmt_reason
    elif ok is not True:
        reason = "incorrect" if ok is False else "unverified"
    elif lang not in (cfg.target_language, "unknown"):
        reason = "wrong_language"
    elif reasoning and cons < cfg.min_consistency:
        reason = "language_mixing"
    return {"answer": answer, "correct": ok, "format_ok": fmt_ok, "format_reason": fmt_reason,
            "repetition": readability.repetition_stats(completion)[1], "lang": lang,
            "lang_prob": prob, "lang_consistency": cons, "keep": reason is None,
            "reject_reason": reason}


@pytest.fixture
def own_pool(monkeypatch):
    """Symbolic checks in a pool of this test's own, closed after it: other tests expect
    none warm."""
    monkeypatch.setattr(math_v, "_POOL", None)
    yield
    if math_v._POOL is not None:
        math_v._POOL.close()


@pytest.mark.timeout(300)
def test_batched_verdicts_equal_the_scalar_ones(own_pool):
    cfg = FilterConfig(workers=1)
    items = completions()
    rows = []
    for i, (text, finish) in enumerate(items):
        reasoning, final = split_think(text)
        rows.append({"run": "r", "prompt_id": "p", "sample_idx": i, "completion": text,
                     "reasoning": reasoning, "final": final if i % 2 else None,
                     "finish_reason": finish, "domain": "math", "gold": "5", "tests": None,
                     "meta": None})
    got = verdict_rows(rows, cfg, cfg.run_id())
    math_v._CACHE.clear()  # the scalar path decides afresh
    want = [scalar_verdict(text, finish, "5", cfg) for text, finish in items]
    for g, w in zip(got, want, strict=True):
        assert {k: g[k] for k in w} == w | {"repetition": pytest.approx(w["repetition"])}
    reasons = {w["reject_reason"] for w in want}
    assert reasons >= {None, "incorrect", "truncated", "no_think", "wrong_language",
                       "language_mixing", "dup_line_frac"}, reasons  # the rules are exercised
