"""SFT rows packed to 16k+ tokens: attention stays inside each sample, one step trains with a
finite loss, and memory is not a (T, T) fp32 mask (which alone would be 1.4 GiB at 19k tokens)."""

import json
import math
import subprocess
import sys

import datasets
import pytest
import torch

pytestmark = pytest.mark.slow
MAX_LEN = 20480


def long_example(k: int) -> dict:
    body = " ".join(f"We compute {a} + {k} = {a + k}." for a in range(600))  # ~6k tokens
    return {"messages": [{"role": "user", "content": f"Add {k} to every number."},
                         {"role": "assistant",
                          "content": f"<think>\n{body}\n</think>\n\\boxed{{{k}}}"}]}


@pytest.fixture(scope="module")
def long_model(tmp_path_factory):
    from r1data.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("long") / "tiny", max_positions=32768)


@pytest.fixture(scope="module")
def packed_row(long_model):
    from r1data.trainers.data import encode_sft, load_tokenizer, pack

    tok = load_tokenizer(str(long_model))
    docs = [encode_sft(long_example(k), tok, MAX_LEN) for k in (1, 2, 3)]
    rows = pack(docs, MAX_LEN)
    assert len(rows) == 1 and len(rows[0]["input_ids"]) >= 16384
    return docs, rows


def test_each_packed_sample_attends_only_to_itself(long_model, packed_row):
    from transformers import AutoModelForCausalLM

    from r1data.trainers.data import collate, load_tokenizer
    from r1data.trainers.packed_attention import use_packed_attention

    docs, rows = packed_row
    tok = load_tokenizer(str(long_model))
    model = AutoModelForCausalLM.from_pretrained(long_model, dtype=torch.float32)
    use_packed_attention(model)
    ids, _, pos, mask = collate(rows, tok.pad_token_id)
    last = docs[-1]["input_ids"]
    start = ids.size(1) - len(last)
    with torch.no_grad():
        packed = model(input_ids=ids, attention_mask=mask, position_ids=pos,
                       use_cache=False).logits[0, start:]
        alone = model(input_ids=torch.tensor([last]), use_cache=False).logits[0]
        leaky = model(input_ids=ids, use_cache=False).logits[0, start:]  # one long sample
    assert torch.allclose(packed, alone, atol=1e-4)
    assert not torch.allclose(leaky, alone, atol=1e-2)  # the check can fail


def test_one_step_on_a_16k_row_is_finite_and_not_quadratic_in_memory(long_model, packed_row,
                                                                     tmp_path):
    data = tmp_path / "long"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(
        [long_example(k) for k in (1, 2, 3)])}).save_to_disk(str(data))
    cfg = dict(data=str(data), model=str(long_model), out=str(tmp_path / "o"), max_len=MAX_LEN,
               batch_size=1, max_steps=1, eval_every=0, save_every=0, warmup_steps=1,
               bf16=False)
    # The child's own peak is its VmHWM: a vfork'd child's ru_maxrss (what metrics.jsonl's
    # peak_rss_mib reads) starts at the parent's peak, pytest's inside the full suite.
    code = ("import json, sys, torch; torch.set_num_threads(2); "
            "from r1data.trainers.sft import SFTConfig, train_sft; "
            "train_sft(SFTConfig(**json.loads(sys.argv[1])), progress=False); "
            "print(next(int(x.split()[1]) for x in open('/proc/self/status') "
            "if x.startswith('VmHWM:')) / 1024)")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    row = json.loads((tmp_path / "o" / "metrics.jsonl").read_text().splitlines()[-1])
    T = len(packed_row[1][0]["input_ids"])
    assert row["input_tokens"] == T >= 16384
    assert math.isfinite(row["loss"]) and row["grad_norm"] > 0
    peak_mib = float(res.stdout.split()[-1])
    fp32_mask_mib = T * T * 4 / 2**20  # what the old collate allocated, before anything else
    assert peak_mib < fp32_mask_mib, (peak_mib, fp32_mask_mib)
