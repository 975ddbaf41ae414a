"""SFT: loss on the assistant only, packing without leakage, resume on the same loss curve."""

import json
import random

import datasets
import pytest
import torch

from r1data.trainers.data import collate, encode_sft, load_tokenizer, pack
from r1data.trainers.sft import SFTConfig, lr_at, train_sft


def example(a: int, b: int) -> dict:
    answer = f"<think>\n{a} + {b} = {a + b}\n</think>\n\\boxed{{{a + b}}}"
    return {"messages": [{"role": "user", "content": f"What is {a} + {b}?"},
                         {"role": "assistant", "content": answer}]}


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    pairs = [(a, b) for a in range(10) for b in range(10)]
    random.Random(0).shuffle(pairs)
    path = tmp_path_factory.mktemp("d") / "sft"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list([example(a, b) for a, b in pairs[:80]]),
        "test": datasets.Dataset.from_list([example(a, b) for a, b in pairs[80:]]),
    }).save_to_disk(str(path))
    return path


def test_labels_cover_exactly_the_assistant_turn(tiny_model):
    tok = load_tokenizer(str(tiny_model))
    enc = encode_sft(example(3, 4), tok, 512)
    labelled = [t for t, lab in zip(enc["input_ids"], enc["labels"], strict=True) if lab != -100]
    text = tok.decode(labelled)
    assert text.startswith("<think>") and "\\boxed{7}" in text and "What is" not in text
    assert labelled[-1] == tok.eos_token_id or "<|im_end|>" in tok.decode(labelled[-2:])


def test_packed_sample_sees_only_itself(tiny_model):
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    a, b = encode_sft(example(1, 2), tok, 512), encode_sft(example(7, 8), tok, 512)
    rows = pack([b, a], 512)
    assert len(rows) == 1
    ids, _, pos, mask = collate(rows, tok.pad_token_id)
    # transformers derives the block-diagonal mask from the restarting position ids (only
    # without a KV cache)
    packed = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits[0]
    alone = model(input_ids=torch.tensor([a["input_ids"]])).logits[0]
    start = len(b["input_ids"])
    assert torch.allclose(packed[start:start + len(a["input_ids"])], alone, atol=1e-5)
    # without the block mask the second sample would see the first: the check can fail
    leaky = model(input_ids=ids).logits[0]
    assert not torch.allclose(leaky[start:start + len(a["input_ids"])], alone, atol=1e-3)


def test_lr_schedule_warms_up_then_decays():
    cfg = SFTConfig(data="d", model="m", out="o", lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05)


def losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_sigkill_then_resume_continues_the_same_loss_curve(tiny_model, sft_data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    torch.set_num_threads(1)
    kw = dict(data=str(sft_data), model=str(tiny_model), batch_size=4, grad_accum=2, lr=3e-3,
              warmup_steps=3, max_len=256, eval_every=0, max_steps=40, save_every=10,
              threads=1)
    whole = tmp_path / "whole"
    train_sft(SFTConfig(out=str(whole), **kw), progress=False)
    part = tmp_path / "part"
    code = ("import json, sys; from r1data.trainers.sft import SFTConfig, train_sft; "
            "train_sft(SFTConfig(**json.loads(sys.argv[1])), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(kw | {"out": str(part)})],
                            start_new_session=True)
    ckpt = part / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists():
        assert proc.poll() is None
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    step = torch.load(ckpt, weights_only=False)["step"]
    assert step in (10, 20, 30), "killed too late: the run had finished"
    train_sft(SFTConfig(out=str(part), **kw), progress=False)  # resumes from the checkpoint
    a, b = losses(whole), losses(part)
    assert len(a) == len(b) == 40
    assert a == pytest.approx(b, abs=1e-6)
    assert a[-1] < a[0]  # and it learns


def test_eval_loss_and_saved_model(tiny_model, sft_data, tmp_path):
    out = tmp_path / "o"
    res = train_sft(SFTConfig(data=str(sft_data), model=str(tiny_model), out=str(out),
                              max_steps=4, batch_size=4, eval_every=2, lr=1e-3),
                    progress=False)
    assert res["eval_loss"] is not None and res["eval_loss"] > 0
    assert (out / "model" / "config.json").exists()
    assert json.loads((out / "config.json").read_text())["max_steps"] == 4
