"""`r1data models prepare`: the GGUF in a registry package becomes a folder that loads the same."""

import pytest

from r1data.errors import InputError
from r1data.models import CATALOG, gguf_file, prepare, resolve

pytestmark = pytest.mark.slow
TEXTS = ["<|im_start|>user\nWhat is 15 + 27? Answer in \\boxed{}.<|im_end|>",
         "<think>\n15 + 27 = 42\n</think>\nThe answer is $\\boxed{42}$. Ünïcödé 数学 ✓"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    return prepare("smollm2", tmp_path_factory.mktemp("m") / "smollm2")


def test_prepared_folder_is_plain_bf16_and_loads(smollm2):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(smollm2)
    assert getattr(cfg, "quantization_config", None) is None
    model = AutoModelForCausalLM.from_pretrained(smollm2)
    n = sum(p.numel() for p in model.parameters())
    assert 130e6 < n < 140e6
    assert next(model.parameters()).dtype == torch.bfloat16
    assert (smollm2 / "chat_template.jinja").exists() or "chat_template" in (
        smollm2 / "tokenizer_config.json").read_text()


def test_tokenizer_ids_round_trip(smollm2, tmp_path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    gguf = gguf_file(CATALOG["smollm2"], tmp_path)
    ref = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    auto = AutoTokenizer.from_pretrained(smollm2)
    fast = PreTrainedTokenizerFast.from_pretrained(smollm2)
    for text in TEXTS:
        ids = ref(text).input_ids
        assert auto(text).input_ids == ids == fast(text).input_ids
        assert auto.decode(ids) == fast.decode(ids)


def test_prepare_is_idempotent_and_names_are_checked(smollm2):
    stamp = (smollm2 / "model.safetensors").stat().st_mtime_ns
    assert prepare("smollm2", smollm2) == smollm2
    assert (smollm2 / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(InputError, match="unknown model"):
        prepare("gpt-5")


def test_resolve_unprepared_name(tmp_path, monkeypatch):
    monkeypatch.setenv("R1DATA_MODELS_DIR", str(tmp_path))
    with pytest.raises(InputError, match="not prepared yet"):
        resolve("smollm2")
    assert resolve("/some/folder") == "/some/folder"
