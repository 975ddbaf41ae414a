"""The GRPO loss forward scores each sampled token at the position it was sampled at: for
left-padded prompts of different lengths, its log-probs at step 0 are the sampler's. A tiny GPT-2
(absolute position embeddings) shows a shifted position; the tiny Llama (RoPE) is
shift-invariant, so it checks the same path on the model family the trainers use."""

from contextlib import nullcontext

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from r1data.testing import build_tokenizer
from r1data.trainers.data import load_tokenizer
from r1data.trainers.grpo import (
    Rollouts,
    completion_mask,
    micro_batches,
    prompt_generators,
    rollout_logps,
    sample_hf,
)

PROMPTS = ["Hi", "Please reason step by step, and put your final answer within \\boxed{}. "
           "What is 12 + 30?", "What is 2 + 3?"]


def gpt2(tok):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=2, n_positions=256,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,  # update: train mode
                     bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id)
    return GPT2LMHeadModel(cfg)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def policy(request, tiny_model):
    torch.set_num_threads(1)
    if request.param == "gpt2":
        tok = build_tokenizer()
        model = gpt2(tok)
    else:
        tok = load_tokenizer(str(tiny_model))
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    tok.padding_side = "left"
    return model.float().eval(), tok


def test_loss_forward_logps_are_the_samplers(policy):
    model, tok = policy
    G, T = 3, 10
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                     add_generation_prompt=True) for p in PROMPTS]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert len(set(enc.attention_mask.sum(1).tolist())) == len(PROMPTS)  # padded differently
    with torch.no_grad():
        comp, sampled = sample_hf(model, enc.input_ids, enc.attention_mask,
                                  prompt_generators(0, 0, range(len(PROMPTS))), n=G, max_new=T,
                                  temperature=0.7, top_p=1.0, eos_id=tok.eos_token_id,
                                  pad_id=tok.pad_token_id, with_logps=True)
    mask, truncated = completion_mask(comp, tok.eos_token_id)
    p_ids = enc.input_ids.repeat_interleave(G, 0)
    p_att = enc.attention_mask.repeat_interleave(G, 0)
    ro = Rollouts(ids=torch.cat([p_ids, comp], 1), attn=torch.cat([p_att, mask], 1), mask=mask,
                  truncated=truncated, n_prompt=p_ids.size(1), texts=[], rows=[], seconds=0.0)
    keep = torch.ones(len(comp), dtype=torch.bool)
    chunks = micro_batches(keep, 4)  # micro-batches cut after their longest completion
    model.train()  # as the update runs it
    try:
        got = rollout_logps(model, ro, mask, chunks, 0.7, nullcontext())
    finally:
        model.eval()
    for rows, lp in zip(chunks, got, strict=True):
        m = mask[rows, :lp.size(1)].bool()
        assert m.sum() > 0
        assert torch.allclose(lp[m], sampled[rows, :lp.size(1)][m], atol=1e-4), \
            (lp[m] - sampled[rows, :lp.size(1)][m]).abs().max()
