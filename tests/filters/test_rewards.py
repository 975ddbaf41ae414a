"""Rewards: one signature for every verifier, second-stage instruction and reward-model rewards."""

import pytest

from r1data.errors import ConfigError
from r1data.filters.registry import REWARDS
from r1data.filters.rewards import get_reward

R = "<think>\nok\n</think>\n"


def test_registry_and_unknown_names():
    for name in REWARDS:
        assert get_reward(name) is REWARDS[name]
    with pytest.raises(ConfigError, match="unknown reward 'acc'.*accuracy"):
        get_reward("acc")
    with pytest.raises(ConfigError, match="no config.json"):
        get_reward("rm:/nonexistent")


def test_accuracy_format_language_on_batches_and_chat_lists():
    comps = [R + "\\boxed{5}", [{"role": "assistant", "content": R + "\\boxed{4}"}],
             "no think \\boxed{5}", R + "<answer>2 * 5</answer>"]
    cols = {"answer": ["5", "5", "5", "10"], "domain": ["math", "math", "math", "countdown"],
            "numbers": [None, None, None, [2, 5]], "target": [None, None, None, 10]}
    assert get_reward("accuracy")(comps, **cols) == [1.0, 0.0, 1.0, 1.0]
    assert get_reward("format")(comps, **cols) == [1.0, 1.0, 0.0, 1.0]
    zh = "<think>\n我们先把两个数相加，然后检查结果。\n</think>\n\\boxed{5}"
    lang = get_reward("language")([R.replace("ok", "We add the numbers") + "x", zh],
                                  target_language=["en", "en"])
    assert lang[0] == 1.0 and lang[1] < 0.2
    assert get_reward("accuracy")([R + "x"], answer=[None], domain=["general"]) == [None]


CASES = [
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"},
     "Short answer here.", "This answer has far too many words in it."),
    ("keywords:existence", {"keywords": ["apple", "pear"]}, "An apple and a pear.",
     "Only an apple."),
    ("keywords:forbidden_words", {"forbidden_words": ["very"]}, "Good.", "Very good."),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', "{a: 1}"),
    ("punctuation:no_comma", {}, "One two three.", "One, two."),
    ("change_case:english_lowercase", {}, "all quiet here", "Not Quiet"),
    ("startend:end_checker", {"end_phrase": "Is there anything else?"},
     "Done. Is there anything else?", "Done."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n* b", "* a"),
    ("language:response_language", {"language": "fr"},
     "Nous additionnons les deux nombres puis nous divisons la somme.",
     "We add the two numbers and then divide the sum."),
]


@pytest.mark.parametrize("iid,kwargs,good,bad", CASES, ids=[c[0] for c in CASES])
def test_instruction_checks(iid, kwargs, good, bad):
    fn = get_reward("instructions")
    got = fn([R + good, R + bad], instruction_id_list=[[iid], [iid]], kwargs=[[kwargs], [kwargs]])
    assert got == [1.0, 0.0]


def test_instruction_share_and_unknown_ids():
    fn = get_reward("instructions")
    ids = ["punctuation:no_comma", "keywords:existence"]
    kws = [{}, {"keywords": ["pear"]}]
    assert fn([R + "an apple, a pear"], instruction_id_list=[ids], kwargs=[kws]) == [0.5]
    assert fn([R + "x"], instruction_id_list=[None], kwargs=[None]) == [None]
    with pytest.raises(ConfigError, match="unknown instruction"):
        fn([R + "x"], instruction_id_list=[["made:up"]], kwargs=[[{}]])


def test_learned_reward_model_from_a_local_folder(tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from r1data.testing import build_tokenizer

    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                      num_labels=1, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForSequenceClassification(cfg).save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    fn = get_reward(f"rm:{tmp_path / 'rm'}")
    comps = [R + "The answer is 5.", R + "I do not know at all, sorry."]
    a = fn(comps, prompt=["What is 2+3?"] * 2)
    b = fn(list(reversed(comps)), prompt=["What is 2+3?"] * 2)
    assert len(a) == 2 and all(isinstance(x, float) for x in a)
    assert a == pytest.approx(list(reversed(b)), abs=1e-5) and a[0] != a[1]


# --- the verifiers as rewards: columns, chat lists, None for "cannot verify" -----------------

def test_countdown_task_from_columns_meta_answer_or_prompt():
    comp = R + "<answer>(25 - 5) * 3</answer>"
    acc = get_reward("accuracy")
    problem = "Using the numbers [25, 5, 3], create an equation that equals 60."
    assert acc([comp], domain="countdown", numbers=[[25, 5, 3]], target=[60]) == [1.0]
    assert acc([comp], domain="countdown", meta=['{"numbers": [25, 5, 3], "target": 60}']) \
        == [1.0]
    assert acc([comp], domain="countdown", answer=['{"nums": [25, 5, 3], "target": 61}']) \
        == [0.0]
    assert acc([comp], domain="countdown", answer=["60"], problem=[problem]) == [1.0]
    chat_prompt = [[{"role": "user", "content": problem}]]
    assert acc([comp], domain="countdown", prompts=chat_prompt) == [1.0]
    assert acc([comp], domain="countdown", answer=["60"]) == [None]  # numbers unknown


def test_accuracy_default_domain_and_unverifiable_rows():
    acc = get_reward("accuracy")
    comps = [R + "\\boxed{\\frac{1}{2}}", R + "\\boxed{0.5}", R + "\\boxed{3}"]
    assert acc(comps, answer=["0.5", "1/2", "4"]) == [1.0, 1.0, 0.0]  # no domain column: math
    assert acc(comps[:1], answer=["0.5"], domain=[None]) == [1.0]
    assert acc(comps[:2], answer=[None, ""]) == [None, None]
    with pytest.raises(ConfigError, match="column 'answer' has 1 values for 2"):
        acc(comps[:2], answer=["1"])


def test_format_language_repetition_length():
    loop = R.replace("ok", "Let me check again.\n" * 30) + "\\boxed{1}"
    good = R.replace("ok", "We add the two numbers and divide by three.") + "\\boxed{1}"
    assert get_reward("format")([good, loop], finish_reason=["stop", "length"]) == [1.0, 0.0]
    rep = get_reward("repetition")([good, loop])
    assert rep[0] == 0.0 and -1.0 <= rep[1] < -0.5
    lang = get_reward("language")
    assert lang([good], target_language="fr") == [0.0]  # a scalar keyword, broadcast
    assert lang([good]) == [1.0]  # default target: English
    from r1data.filters.rewards import make_length_reward

    length = make_length_reward(100)
    assert length(["x" * 400, "x" * 800, "x" * 2000]) == [0.0, -1.0, -1.0]
    assert length(["x"], num_tokens=[150]) == [-0.5]  # a num_tokens column wins
    with pytest.raises(ConfigError, match="positive"):
        make_length_reward(0)


def test_every_registered_reward_takes_strings_and_chat_lists():
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": R + "\\boxed{2}"}]
    for name, fn in REWARDS.items():
        if name == "instructions":
            continue  # needs its own columns (tested above)
        as_text = fn([R + "\\boxed{2}"], answer=["2"])
        assert fn([chat], answer=["2"]) == as_text, name
        assert len(as_text) == 1 and (as_text[0] is None or isinstance(as_text[0], float))
