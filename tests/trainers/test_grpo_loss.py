"""grpo_loss and group_advantages against an independent element-by-element reference of TRL's
formulas (fp32, atol 1e-6), values and gradients."""

import math

import pytest
import torch

from r1data.errors import ConfigError
from r1data.trainers.grpo import group_advantages, grpo_loss


def reference(logps, old, ref, adv, mask, beta, lo, hi, loss_type, max_len):
    """Plain Python loops over tokens: what TRL's _compute_loss computes, written out."""
    B, T = len(logps), len(logps[0])
    per = [[0.0] * T for _ in range(B)]
    for i in range(B):
        for t in range(T):
            r = math.exp(logps[i][t] - old[i][t])
            rc = min(max(r, 1 - lo), 1 + hi)
            v = -min(r * adv[i], rc * adv[i])
            if beta:
                d = ref[i][t] - logps[i][t]
                v += beta * (math.exp(d) - d - 1)
            per[i][t] = v * mask[i][t]
    if loss_type == "grpo":
        return sum(sum(per[i]) / max(1.0, sum(mask[i])) for i in range(B)) / B
    if loss_type in ("bnpo", "dapo"):
        return sum(map(sum, per)) / max(1.0, sum(map(sum, mask)))
    return sum(map(sum, per)) / (B * max_len)


def reference_grad(logps, old, ref, adv, mask, beta, lo, hi, loss_type, max_len):
    """d loss / d logps, derived by hand: -r*A where the unclipped term is the minimum (0 where
    the clipped one is and r is outside [1-lo, 1+hi]), plus beta * (1 - e^(ref-logp))."""
    B, T = len(logps), len(logps[0])
    grad = [[0.0] * T for _ in range(B)]
    for i in range(B):
        for t in range(T):
            r = math.exp(logps[i][t] - old[i][t])
            rc = min(max(r, 1 - lo), 1 + hi)
            inside = 1 - lo <= r <= 1 + hi
            g = -r * adv[i] if (r * adv[i] <= rc * adv[i] or inside) else 0.0
            g += beta * (1 - math.exp(ref[i][t] - logps[i][t]))
            if loss_type == "grpo":
                norm = B * max(1.0, sum(mask[i]))
            elif loss_type in ("bnpo", "dapo"):
                norm = max(1.0, sum(map(sum, mask)))
            else:
                norm = B * max_len
            grad[i][t] = g * mask[i][t] / norm
    return torch.tensor(grad)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo", "bnpo"])
def test_loss_and_gradient_match_reference(loss_type):
    g = torch.Generator().manual_seed(0)
    B, T = 6, 7
    logps = (-torch.rand(B, T, generator=g) * 2).requires_grad_(True)
    old = logps.detach() + 0.3 * torch.randn(B, T, generator=g)  # ratios both sides of the clip
    ref = logps.detach() + 0.2 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, generator=g)
    mask = torch.ones(B, T)
    for i, n in enumerate([7, 5, 3, 1, 6, 0]):  # ragged, one empty
        mask[i, n:] = 0
    kw = dict(beta=0.04, eps_low=0.2, eps_high=0.28, loss_type=loss_type,
              max_completion_length=9)
    loss = grpo_loss(logps, old, ref, adv, mask, **kw)
    want = reference(logps.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(),
                     0.04, 0.2, 0.28, loss_type, 9)
    assert loss.item() == pytest.approx(want, abs=1e-6)
    loss.backward()
    want_grad = reference_grad(logps.tolist(), old.tolist(), ref.tolist(), adv.tolist(),
                               mask.tolist(), 0.04, 0.2, 0.28, loss_type, 9)
    assert torch.allclose(logps.grad, want_grad, atol=1e-6)
    assert torch.all(logps.grad[mask == 0] == 0)


def test_gradient_exact_on_a_hand_case():
    # one token, advantage 1, ratio 1 (on-policy): d/dlogp of -exp(logp-old)*A = -1, / tokens
    logps = torch.zeros(1, 2, requires_grad=True)
    loss = grpo_loss(logps, logps.detach(), None, torch.tensor([1.0]), torch.tensor([[1., 1.]]),
                     beta=0.0, eps_low=0.2, eps_high=0.2, loss_type="grpo")
    loss.backward()
    assert loss.item() == pytest.approx(-1.0, abs=1e-6)
    assert torch.allclose(logps.grad, torch.tensor([[-0.5, -0.5]]))


def test_clipping_stops_the_gradient_outside_the_trust_region():
    logps = torch.tensor([[0.5]], requires_grad=True)  # ratio e^0.5 > 1.28
    loss = grpo_loss(logps, torch.zeros(1, 1), None, torch.tensor([1.0]), torch.ones(1, 1),
                     beta=0.0, eps_low=0.2, eps_high=0.28, loss_type="bnpo")
    loss.backward()
    assert loss.item() == pytest.approx(-1.28) and logps.grad.item() == 0.0


def test_dapo_uses_the_global_token_count():
    logps = torch.zeros(2, 3)
    mask = torch.ones(2, 3)
    a = grpo_loss(logps, logps, None, torch.tensor([1.0, 1.0]), mask, beta=0.0, eps_low=0.2,
                  eps_high=0.2, loss_type="dapo", num_items_in_batch=12)
    assert a.item() == pytest.approx(-6 / 12)


def test_beta_needs_reference_and_unknown_loss_type():
    x = torch.zeros(1, 1)
    with pytest.raises(ConfigError, match="reference"):
        grpo_loss(x, x, None, torch.ones(1), x + 1, beta=0.1, eps_low=0.2, eps_high=0.2,
                  loss_type="grpo")
    with pytest.raises(ConfigError, match="loss_type"):
        grpo_loss(x, x, None, torch.ones(1), x + 1, beta=0.0, eps_low=0.2, eps_high=0.2,
                  loss_type="ppo")


def test_group_advantages_against_hand_reference():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    got = group_advantages(r, 4)
    g1 = [1.0, 0.0, 0.0, 1.0]
    mean = sum(g1) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in g1) / 3)  # Bessel
    want = [(x - mean) / (std + 1e-4) for x in g1] + [0.0] * 4
    assert torch.allclose(got, torch.tensor(want), atol=1e-6)
    batch = group_advantages(r, 4, scale="batch")
    assert torch.allclose(batch[:4], (r[:4] - 0.5) / (r.std() + 1e-4), atol=1e-6)
    assert torch.allclose(group_advantages(r, 4, scale="none")[:4], r[:4] - 0.5)
    with pytest.raises(ConfigError):
        group_advantages(r, 3)


def test_unscorable_rewards_are_left_out_of_the_group_statistics():
    # NaN = every reward function returned None: excluded from mean/std, advantage 0 (as TRL)
    r = torch.tensor([1.0, math.nan, 0.0, 0.0, math.nan, math.nan, math.nan, math.nan])
    got = group_advantages(r, 4)
    scored = [1.0, 0.0, 0.0]
    mean = sum(scored) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in scored) / 2)  # Bessel over the scored ones
    want = [(1 - mean) / (std + 1e-4), 0.0, -mean / (std + 1e-4), -mean / (std + 1e-4)] + [0.0] * 4
    assert torch.allclose(got, torch.tensor(want), atol=1e-6)
    assert not got.isnan().any()
    batch = group_advantages(r, 4, scale="batch")
    assert torch.allclose(batch[:4], torch.tensor([(x - mean) / (std + 1e-4) if x == x else 0.0
                                                   for x in r[:4].tolist()]), atol=1e-6)
