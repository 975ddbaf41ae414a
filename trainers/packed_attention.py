"""Attention over packed rows without a (T, T) mask: causal SDPA on each packed sample alone.

transformers builds a block-diagonal mask from restarting position ids for its sdpa and eager
paths; at 12k tokens a row that cost 440 MB to build and SDPA with an explicit mask fell back to
a kernel that kept fp32 attention weights (peak RSS 2.2 GB for a 2-layer, 128-wide model). Run
per sample with `is_causal=True` instead, SDPA takes its flash kernel (CPU and CUDA): memory
O(T), compute the sum of the samples' squared lengths rather than T^2. This is the varlen
attention of flash-attn, written with plain SDPA so it runs on any device.

Registered with transformers' AttentionInterface under NAME; transformers then builds no mask at
all (names without a mask function get None), and the samples are found from position_ids,
which restart at 0 for every sample (trainers/data.pack; pad tokens form one sample of their
own). With an attention mask (not a training batch) it is plain sdpa.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

NAME = "r1data_packed_sdpa"


def packed_sdpa(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attention_mask: torch.Tensor | None, dropout: float = 0.0,
                scaling: float | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """query (B, H, T, D), key/value (B, H_kv, T, D) -> (B, T, H, D), as transformers' sdpa."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    pos = kwargs.get("position_ids")
    if attention_mask is not None or pos is None or query.size(2) != key.size(2):
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, **kwargs)
    gqa = query.size(1) != key.size(1)
    pos = pos.expand(query.size(0), -1)
    rows = []
    for b in range(query.size(0)):
        first = torch.ones(1, dtype=torch.bool, device=pos.device)
        starts = torch.cat([first, pos[b, 1:] != pos[b, :-1] + 1]).nonzero().squeeze(1)
        bounds = [*starts.tolist(), query.size(2)]
        rows.append(torch.cat([
            F.scaled_dot_product_attention(query[b:b + 1, :, s:e], key[b:b + 1, :, s:e],
                                           value[b:b + 1, :, s:e], is_causal=True, scale=scaling,
                                           dropout_p=dropout, enable_gqa=gqa)
            for s, e in zip(bounds, bounds[1:], strict=False)], dim=2))
    return torch.cat(rows).transpose(1, 2).contiguous(), None


def use_packed_attention(model) -> None:
    """Switch a transformers model to packed_sdpa (registered once per process)."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, packed_sdpa)
    model.config._attn_implementation = NAME
