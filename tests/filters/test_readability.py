"""Readability: the R1 format and Gopher repetition, each rejection with its exact reason.

Complements test_verify_readability.py: the rules past the first ones, thresholds as named
arguments, length bounds, the tag edge cases chat templates produce.
"""

import pytest

from r1data.errors import ConfigError
from r1data.filters.readability import check_format, repetition_score, repetition_stats

WORDS = [f"w{i}" for i in range(400)]  # distinct tokens: no accidental repetition
LONG_LINE = "This is a considerably longer repeated line with many characters."
LONG_PARA = "A long repeated paragraph with many words that dominates the characters."
SEGMENT = WORDS[:40]
GOOD = "<think>\nWe add 5 and 9 to get 14.\n</think>\n\nThe answer is \\boxed{14}."


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
