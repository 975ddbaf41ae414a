"""Micro-batches and chunked log-probs change memory, not the update: GRPO's accumulated loss and
gradients equal the one-batch loss over full logits for every loss_type, and SFT's
supervised-positions-only loss equals the cross-entropy over every position (fp32, 1e-6)."""

from contextlib import nullcontext

import pytest
import torch

from r1data.trainers import logits as logits_mod
from r1data.trainers.grpo import GRPOConfig, Rollouts, accumulate_loss, grpo_loss, micro_batches
from r1data.trainers.sft import sft_loss


@pytest.fixture(scope="module")
def policy(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)


def rollouts(vocab: int) -> tuple[Rollouts, torch.Tensor]:
    """6 rollouts (2 prompts x G 3): left-padded prompts of width 5, ragged completions."""
    g = torch.Generator().manual_seed(0)
    B, P, T = 6, 5, 9
    ids = torch.randint(3, vocab, (B, P + T), generator=g)
    p_att = torch.ones(B, P, dtype=torch.long)
    p_att[3:, :2] = 0  # the second prompt is shorter
    mask = torch.zeros(B, T, dtype=torch.long)
    for i, n in enumerate([9, 4, 1, 7, 9, 3]):
        mask[i, :n] = 1
    ro = Rollouts(ids=ids, attn=torch.cat([p_att, mask], 1), mask=mask,
                  truncated=mask.sum(1) == T, n_prompt=P, texts=[], rows=[], seconds=0.0)
    return ro, torch.randn(B, generator=g)


def full_batch(cfg, model, ro, adv, keep, old, ref):
    """The reference: one forward of every kept row, logits at every completion position."""
    rows = keep.nonzero().squeeze(1)
    out = model(input_ids=ro.ids[rows], attention_mask=ro.attn[rows]).logits
    logp = torch.log_softmax(out[:, ro.n_prompt - 1:-1] / cfg.temperature, -1)
    logps = logp.gather(-1, ro.ids[rows, ro.n_prompt:, None]).squeeze(-1)
    return grpo_loss(logps, old[rows], ref[rows], adv[rows], ro.mask[rows], beta=cfg.beta,
                     eps_low=cfg.eps_low, eps_high=cfg.eps_high, loss_type=cfg.loss_type,
                     max_completion_length=cfg.max_completion_length,
                     num_items_in_batch=float(ro.mask[rows].sum()),
                     num_sequences=float(len(rows)))


def sliced(full: torch.Tensor, ro: Rollouts, chunks) -> list[torch.Tensor]:
    """Per-micro-batch pieces of (B, T) log-probs, cut as the trainer cuts its micro-batches."""
    out = []
    for rows in chunks:
        width = max(int(ro.mask[rows].sum(1).max()), 1)
        out.append(full[rows, :width])
    return out


def grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo", "bnpo"])
def test_micro_batches_give_the_full_batch_loss_and_gradients(policy, loss_type, monkeypatch):
    torch.set_num_threads(1)
    cfg = GRPOConfig(data="d", model="m", out="o", loss_type=loss_type, beta=0.05,
                     eps_low=0.2, eps_high=0.28, temperature=0.9, max_completion_length=12)
    ro, adv = rollouts(policy.config.vocab_size)
    keep = torch.tensor([True, True, False, True, True, True])  # one row dropped
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # rollout-time and reference log-probs off the current policy
        now = torch.log_softmax(policy(input_ids=ro.ids, attention_mask=ro.attn).logits[
            :, ro.n_prompt - 1:-1] / cfg.temperature, -1)
        now = now.gather(-1, ro.ids[:, ro.n_prompt:, None]).squeeze(-1)
    old = now + 0.3 * torch.randn(now.shape, generator=g)  # ratios on both sides of the clip
    ref = now + 0.2 * torch.randn(now.shape, generator=g)
    want = full_batch(cfg, policy, ro, adv, keep, old, ref)
    want.backward()
    want_grads = grads(policy)
    n_seq, n_tok = float(keep.sum()), float(ro.mask[keep].sum())
    monkeypatch.setattr(logits_mod, "CHUNK", 4)  # several lm_head chunks per completion
    for size in (None, 1, 2, 4):
        chunks = micro_batches(keep, size)
        assert sum(len(c) for c in chunks) == 5
        sums = accumulate_loss(cfg, policy, policy, ro, adv, ro.mask, chunks, n_seq=n_seq,
                               n_tok=n_tok, world=1, amp=nullcontext(),
                               old=sliced(old, ro, chunks), ref=sliced(ref, ro, chunks))
        assert sums["loss"] == pytest.approx(want.item(), abs=1e-6), size
        got = grads(policy)
        assert got.keys() == want_grads.keys()
        for name, grad in want_grads.items():
            assert torch.allclose(got[name], grad, atol=1e-6), (size, name)
    assert any(g.abs().sum() > 0 for g in want_grads.values())


def test_sft_loss_at_supervised_positions_equals_the_full_position_loss(policy, tiny_model,
                                                                        monkeypatch):
    from r1data.trainers.data import collate, encode_sft, load_tokenizer, pack
    from tests.trainers.test_sft_trainer import example

    torch.set_num_threads(1)
    tok = load_tokenizer(str(tiny_model))
    rows = pack([encode_sft(example(a, b), tok, 512) for a, b in [(1, 2), (30, 4), (7, 55)]],
                80)
    assert len(rows) >= 2  # packed rows and padding
    batch = collate(rows, tok.pad_token_id)
    ids, labels, pos, mask = batch
    full = policy(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
    want = torch.nn.functional.cross_entropy(full[:, :-1].reshape(-1, full.size(-1)),
                                             labels[:, 1:].reshape(-1), ignore_index=-100,
                                             reduction="sum")
    want.backward()
    want_grads = grads(policy)
    monkeypatch.setattr(logits_mod, "CHUNK", 7)
    got, n = sft_loss(policy, policy, batch, nullcontext())
    got.backward()
    assert n == int((labels[:, 1:] != -100).sum())
    assert got.item() == pytest.approx(want.item(), abs=1e-6 * n)  # a sum over n tokens
    got_grads = grads(policy)
    for name, grad in want_grads.items():
        assert torch.allclose(got_grads[name], grad, atol=1e-6), name
