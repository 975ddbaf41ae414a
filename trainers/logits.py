"""The output layer only where a loss needs it, a chunk of positions at a time.

A (tokens, vocab) fp32 logits tensor is the largest thing a trainer holds: 8k completion tokens
x 49k vocabulary is 1.6 GB, and log_softmax plus its gradient triple it. So the model runs with
its lm_head swapped for the identity (through the DDP/FSDP wrapper, so gradients still sync), the
positions that are supervised are picked from the final hidden states, and the lm_head runs over
about CHUNK tokens at a time under activation checkpointing: one chunk's logits exist at a time,
in the forward and in the backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CHUNK = 2048  # tokens per lm_head call: 2048 x 49k vocab x 4 B = 400 MB of fp32 logits


@contextmanager
def _identity_head(base):
    """base's output layer replaced by the identity for one forward: `.logits` are the final
    hidden states (after the last norm). Models with logit soft-capping are refused: their
    logits are not a plain linear map of the hidden states."""
    import torch

    from r1data.errors import ConfigError

    if getattr(base.config, "final_logit_softcapping", None):
        raise ConfigError(f"{type(base).__name__}: logit soft-capping is not supported")
    head = base.get_output_embeddings()
    base.set_output_embeddings(torch.nn.Identity())
    try:
        yield head
    finally:
        base.set_output_embeddings(head)


def hidden_states(model, base, **inputs) -> tuple[torch.Tensor, torch.nn.Module]:
    """Final hidden states (B, T', H) from a forward of model (base, or its DDP/FSDP wrapper)
    with inputs as for the model (logits_to_keep trims T' as usual); and base's lm_head."""
    with _identity_head(base) as head:
        return model(**inputs).logits, head


def _chunks(fn: Callable, h: torch.Tensor, *args: torch.Tensor, chunk: int | None) -> list:
    """fn over slices of h (and args) along dim -2 of h / the last dim of args, about `chunk`
    tokens (rows x positions) a slice. With several slices and gradients flowing, each is
    checkpointed: the backward pass recomputes a slice's logits instead of keeping them all (one
    slice costs no recompute: small batches run as fast as without chunking)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    rows = h[..., 0, 0].numel()  # B for (B, T, H), 1 for (N, H)
    width = max(1, (chunk or CHUNK) // rows)
    save = torch.is_grad_enabled() and h.requires_grad and h.size(-2) > width
    outs = []
    for s in range(0, h.size(-2), width):
        part = (h[..., s:s + width, :], *(a[..., s:s + width] for a in args))
        outs.append(checkpoint(fn, *part, use_reentrant=False) if save else fn(*part))
    return outs


def token_logps(head, h: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of targets and the entropies of the tempered distributions, (B, T) each, from
    hidden states h (B, T, H) that predict them."""
    import torch

    def fn(hc, tc):
        logp = torch.log_softmax(head(hc).float() / temperature, dim=-1)  # (B, c, V)
        return (logp.gather(-1, tc.unsqueeze(-1)).squeeze(-1),
                -(logp.exp() * logp).sum(-1))

    parts = _chunks(fn, h, targets, chunk=chunk)
    return torch.cat([p[0] for p in parts], -1), torch.cat([p[1] for p in parts], -1)


def nll_sum(head, h: torch.Tensor, targets: torch.Tensor, chunk: int | None = None
            ) -> torch.Tensor:
    """Summed cross-entropy of targets (N,) under hidden states h (N, H): the SFT loss over the
    supervised positions only."""
    import torch

    def fn(hc, tc):
        return torch.nn.functional.cross_entropy(head(hc).float(), tc, reduction="sum")

    return sum(_chunks(fn, h, targets, chunk=chunk), torch.zeros((), device=h.device))
