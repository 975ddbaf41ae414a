"""Readability: the R1 format and Gopher repetition, each rejection with its exact reason:
the first rules and the optional CoT rules, the rules past them with thresholds as named
arguments, length bounds, the tag edge cases chat templates produce, and the columnar
repetition rules equal to the scalar ones."""

import pytest

from r1data.errors import ConfigError
from r1data.filters.readability import (
    check_format,
    repetition_reason,
    repetition_score,
    repetition_stats,
)

WORDS = [f"w{i}" for i in range(400)]  # distinct tokens: no accidental repetition
LONG_LINE = "This is a considerably longer repeated line with many characters."
LONG_PARA = "A long repeated paragraph with many words that dominates the characters."
SEGMENT = WORDS[:40]
GOOD = "<think>\nWe add 5 and 9 to get 14.\n</think>\n\nThe answer is \\boxed{14}."
PROSE = ("To solve this we first read the problem carefully and note the quantities given. "
         "Then we combine them with the right operation, check the units, and verify the "
         "result against the question before writing the final answer down clearly.")


@pytest.mark.parametrize("completion,finish,domain,reason", [
    # the chat template put <think> in the prompt: only the closing tag is generated
    ("We add 5 and 9 to get 14.\n</think>\n\n\\boxed{14}", "stop", "math", None),
    ("<think>\nok\n</think>\nfirst\n</think>\n\\boxed{1}", "stop", "math", "multiple_think"),
    ("<think>\nstill thinking when the budget ran out", "length", "math", "truncated"),
    ("<think>\nstill thinking and never closed", "stop", "math", "no_think"),
    ("<think>\nok\n</think>\n   \n", "stop", "math", "empty_final"),
    ("<think>\nok\n</think>\n<answer>3 * 4 + 1</answer>", "stop", "countdown", None),
    ("<think>\nok\n</think>\n3 * 4 + 1 = 13", "stop", "countdown", "no_boxed"),
    ("<think>\nok\n</think>\nParis is the capital.", "stop", "general", None),
    (GOOD, None, "math", None),
    (GOOD, "stop", "math", None),
    (GOOD, "length", "math", "truncated"),
    ("The answer is \\boxed{14}.", "stop", "math", "no_think"),
    ("<think></think> \\boxed{14}", "stop", "math", "empty_think"),
    ("<think>a</think><think>b</think> \\boxed{1}", "stop", "math", "multiple_think"),
    ("<think>\nreasoning\n</think>\n", "stop", "math", "empty_final"),
    ("<think>\nreasoning\n</think>\nThe answer is 14.", "stop", "math", "no_boxed"),
    ("<think>\nreasoning\n</think>\ndef f(): return 1", "stop", "code", None),
    ("", "stop", "math", "too_short"),
    ("<think>\n" + "Let me check again.\n" * 20 + "</think>\n\\boxed{1}", "stop", "math",
     "dup_line_frac"),
])
def test_format_reasons(completion, finish, domain, reason):
    assert check_format(completion, finish, domain=domain) == (reason is None, reason)


def test_length_bounds():
    assert check_format(GOOD, min_chars=len(GOOD) + 1) == (False, "too_short")
    assert check_format(GOOD, max_chars=len(GOOD) - 1) == (False, "too_long")
    assert check_format(GOOD, max_chars=len(GOOD)) == (True, None)
    with pytest.raises(ConfigError, match="min_chars"):
        check_format(GOOD, min_chars=10, max_chars=5)


@pytest.mark.parametrize("text,reason", [
    (" ".join(WORDS[100:160] + SEGMENT + WORDS[200:260] + SEGMENT), "duplicated_5gram"),
    (" ".join(WORDS[100:260] + SEGMENT + WORDS[300:330] + SEGMENT), "duplicated_9gram"),
    (" ".join(w + " the sum" for w in WORDS[:60]), "top_2gram"),
    ("\n".join(WORDS[:30] + [LONG_LINE] * 4), "dup_line_char_frac"),
    ("\n\n".join([f"{a} {b}" for a, b in zip(WORDS[:40:2], WORDS[1:40:2], strict=True)]
                 + [LONG_PARA] * 3),
     "dup_para_char_frac"),
    (" ".join(WORDS[:200]), None),
])
def test_gopher_rules_by_name(text, reason):
    assert repetition_stats(text)[0] == reason


def test_thresholds_are_named_arguments():
    text = " ".join(WORDS[100:160] + SEGMENT + WORDS[200:260] + SEGMENT)
    loose = {"dup_ngram_frac": tuple((n, 0.5) for n in range(5, 11))}
    assert repetition_stats(text, **loose)[0] is None
    completion = "<think>\n" + text + "\n</think>\n\\boxed{1}"
    assert check_format(completion) == (False, "duplicated_5gram")
    assert check_format(completion, **loose) == (True, None)
    assert check_format(completion, check_repetition=False) == (True, None)
    lines = "\n".join(["Let me check again."] * 3 + WORDS[:6])
    lines = "<think>\n" + lines + "\n</think>\n\\boxed{1}"
    assert check_format(lines)[1] == "dup_line_char_frac"
    assert check_format(lines, dup_line_frac=0.5, dup_line_char_frac=0.9) == (True, None)
    with pytest.raises(ConfigError, match="dup_line_frac"):
        repetition_stats("x", dup_line_frac=1.5)


def test_repetition_score_grows_with_the_loop():
    prose = " ".join(WORDS[:120])
    scores = [repetition_score(prose + " " + " ".join(SEGMENT[:10] * k)) for k in (0, 2, 8, 30)]
    assert scores[0] == 0.0
    assert scores == sorted(scores) and scores[-1] > 0.5


def test_optional_cot_rules():
    code = "<think>\n```python\nprint(1)\n```\n</think>\n\\boxed{1}"
    assert check_format(code)[1] is None
    assert check_format(code, no_code_in_think=True)[1] == "code_in_think"
    long = "<think>\n" + PROSE + "\n</think>\n\\boxed{1}"
    assert check_format(long, max_paragraph_chars=100)[1] == "long_paragraph"


def test_repetition_rules_name_the_rule():
    assert repetition_reason(PROSE) is None
    loop = PROSE + " " + " ".join(["so the answer is five"] * 30)
    assert repetition_reason(loop) in ("top_2gram", "top_3gram", "top_4gram")
    para = "\n\n".join([PROSE, "Other text here that is new.", PROSE, PROSE])
    assert repetition_reason(para) == "dup_para_frac"
    assert repetition_score(PROSE) == 0.0
    assert repetition_score(loop) > 0.5


def test_columnar_repetition_equals_the_scalar_rules():
    """The filter runner uses the Arrow/NumPy form; it must decide exactly as the scalar one."""
    import random

    from r1data.filters.readability import repetition_stats
    from r1data.filters.repetition import repetition_batch

    rng = random.Random(0)
    sentences = [f"Step {k}: we combine the numbers and check the carry again." for k in range(9)]
    texts = ["", "short one", PROSE, "<think>\n" + "Let me check again.\n" * 20 + "</think>"]
    # lines end where str.splitlines says, paragraph gaps are any Unicode whitespace
    texts += [sep.join([sentences[0]] * 4) for sep in
              ["\u2028", "\x85", "\x1c", "\r\n", "\r", "\x0b", "\n\u3000\n", "\n\xa0\x1f\n",
               "\u2029\u2029", " \u3000 "]]
    for _ in range(400):
        base = " ".join(rng.sample(sentences, 5))
        k = rng.random()
        if k < 0.25:
            texts.append(base + " " + " ".join(["so the answer is five"] * rng.randint(1, 30)))
        elif k < 0.5:
            texts.append("\n".join(rng.choice(sentences) for _ in range(rng.randint(1, 12))))
        elif k < 0.6:
            texts.append("\n\n".join(rng.choice(sentences[:3]) for _ in range(rng.randint(1, 6))))
        else:
            texts.append(base)
    words = [f"w{k}" * (1 + k % 4) for k in range(200)]
    for _ in range(1500):  # a phrase of 2-12 words repeated: every n-gram rule fires
        doc = rng.sample(words, rng.randint(20, 120))
        n = rng.randint(2, 12)
        i = rng.randint(0, len(doc) - n)
        phrase = doc[i:i + n]
        for _ in range(rng.randint(1, 3)):
            j = rng.randint(0, len(doc))
            doc[j:j] = phrase
        texts.append(" ".join(doc))
    got = repetition_batch(texts)
    want = [repetition_stats(t) for t in texts]
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1] for g in got] == pytest.approx([w[1] for w in want], abs=1e-9)
    assert {w[0] for w in want} >= {None, "dup_line_frac", "dup_para_frac", "top_2gram",
                                    "top_3gram", "top_4gram",
                                    *(f"duplicated_{n}gram" for n in range(5, 11))}
