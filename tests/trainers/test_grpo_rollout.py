"""The GRPO sampler: a KV-cache loop equal to HF generate when greedy, and per-prompt seeded, so
a prompt's samples do not depend on the batch (or the process) it is generated in."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from r1data.trainers.data import load_tokenizer
from r1data.trainers.grpo import prompt_generators, sample_hf

PROMPTS = ["What is 2 + 3?", "Please reason step by step, and put your final answer in a box.",
           "Hi"]


@pytest.fixture(scope="module")
def policy(tiny_model):
    torch.set_num_threads(1)
    tok = load_tokenizer(str(tiny_model))
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32).eval()
    return model, tok


def encode(tok, prompts):
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                     add_generation_prompt=True) for p in prompts]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return enc.input_ids, enc.attention_mask


def run(model, tok, prompts, idx, G=4, max_new=16, **kw):
    ids, att = encode(tok, prompts)
    with torch.no_grad():
        return sample_hf(model, ids, att, prompt_generators(0, 3, idx), n=G, max_new=max_new,
                         eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                         **({"temperature": 1.0, "top_p": 1.0} | kw))


def test_near_zero_temperature_is_hf_greedy_generate(policy):
    model, tok = policy
    ids, att = encode(tok, PROMPTS)
    with torch.no_grad():
        ref = model.generate(input_ids=ids, attention_mask=att, do_sample=False,
                             max_new_tokens=16, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)[:, ids.size(1):]
    ours = run(model, tok, PROMPTS, [0, 1, 2], G=1, temperature=1e-4)
    assert ours.shape == ref.shape and torch.equal(ours, ref)


def test_samples_depend_on_the_prompt_index_not_the_batch(policy):
    model, tok = policy
    both = run(model, tok, PROMPTS[:2], [0, 1])
    alone = run(model, tok, PROMPTS[1:2], [1])
    n = alone.size(1)
    assert torch.equal(both[4:, :n], alone)  # the second group, generated with or without
    assert (both[4:, n:] == tok.pad_token_id).all()  # the first (finished in both)
    assert not torch.equal(run(model, tok, PROMPTS[1:2], [2]), alone)  # another seed


def test_top_p_keeps_only_the_nucleus(policy):
    model, tok = policy
    ids, att = encode(tok, PROMPTS[:1])
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=ids, attention_mask=att).logits[0, -1], -1)
        first = sample_hf(model, ids, att, prompt_generators(0, 0, [0]), n=64, max_new=1,
                          temperature=1.0, top_p=0.3, eos_id=tok.eos_token_id,
                          pad_id=tok.pad_token_id)[:, 0]
    sp, si = probs.sort(descending=True)
    nucleus = set(si[: int((sp.cumsum(0) - sp <= 0.3).sum())].tolist())
    assert set(first.tolist()) <= nucleus
