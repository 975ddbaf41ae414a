"""Compact GRPO (DeepSeekMath / R1): group sampling, group-normalised advantages, clipped
per-token ratio, k3 KL to a frozen reference, TRL's loss aggregations.

Stages per step, as TRL: generate -> rewards -> advantages -> loss (num_iterations updates).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, field_validator

from r1data.errors import ConfigError

if TYPE_CHECKING:
    import torch

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")


# --- the maths -----------------------------------------------------------------------------------
def _nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Standard deviation with Bessel's correction over the non-NaN values (as TRL's nanstd)."""
    import torch

    mean = torch.nanmean(x, dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim)
    count = (~x.isnan()).sum(dim=dim)
    return torch.sqrt(var * count / (count - 1))


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group"
                     ) -> torch.Tensor:
    """(r - group mean) / (std + 1e-4); std with Bessel's correction as TRL; scale: group, batch
    or none. NaN rewards (no reward function could score the completion) are left out of the
    group statistics and get advantage 0, as in TRL."""
    import torch

    if scale not in ("group", "batch", "none"):
        raise ConfigError(f"unknown advantage scale {scale!r} (group, batch, none)")
    if rewards.numel() % group_size:
        raise ConfigError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)  # (num_prompts, G)
    adv = rewards - torch.nanmean(grouped, dim=1).repeat_interleave(group_size)
    if scale == "group":
        adv = adv / (_nanstd(grouped, dim=1).repeat_interleave(group_size) + 1e-4)
    elif scale == "batch":
        adv = adv / (_nanstd(rewards) + 1e-4)
    return torch.where(adv.isnan(), torch.zeros_like(adv), adv)


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, *, beta: float, eps_low: float,
              eps_high: float, loss_type: str, max_completion_length: int | None = None,
              num_items_in_batch: float | None = None) -> torch.Tensor:
    """Clipped surrogate + beta * k3 KL, aggregated as TRL's loss_type.

    logps, old_logps, ref_logps, mask: (B, T); advantages: (B,). ref_logps may be None when
    beta == 0. dapo normalises by the tokens of the whole generation batch (num_items_in_batch,
    default: this batch), bnpo by the tokens of this batch, dr_grpo by B * max length.
    """
    import torch

    if loss_type not in LOSS_TYPES:
        raise ConfigError(f"unknown loss_type {loss_type!r} ({', '.join(LOSS_TYPES)})")
    mask = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    adv = advantages.unsqueeze(1)
    per_token = -torch.min(ratio * adv, clipped * adv)
    if beta != 0.0:
        if ref_logps is None:
            raise ConfigError("beta > 0 needs reference log-probs")
        delta = ref_logps - logps
        per_token = per_token + beta * (torch.exp(delta) - delta - 1)  # k3 estimator
    masked = per_token * mask
    if loss_type == "grpo":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return masked.sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return masked.sum() / (logps.size(0) * (max_completion_length or logps.size(1)))
    norm = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1.0)
    return masked.sum() / norm


# --- configuration -------------------------------------------------------------------------------
class GRPOConfig(BaseModel):
    data: str  # save_to_disk folder with prompt, answer (r1data export --format grpo)
    model: str  # policy to start from (e.g. the cold-start SFT model)
    out: str
    rewards: dict[str, float] = {"accuracy": 1.0, "format": 0.2}  # name -> weight
    num_generations: int = Field(16, ge=2)  # G, completions per prompt (R1: 16)
    prompts_per_step: int = Field(4, ge=1)  # prompts per generation batch
    max_steps: int = Field(100, ge=1)
    max_prompt_length: int = 256
    max_completion_length: int = 256
    temperature: float = 1.0  # rollout sampling (R1-Zero used 1.0)
    top_p: float = 1.0
    lr: float = 1e-6  # R1-Zero: 3e-6; small models tolerate more
    beta: float = 0.0  # KL coefficient; 0 keeps no reference model (R1: 0.001)
    eps_low: float = 0.2  # clip range below 1
    eps_high: float = 0.2  # clip range above 1 (DAPO clip-higher: 0.28)
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    num_iterations: int = Field(1, ge=1)  # updates per generation batch (mu)
    mask_truncated: bool = False  # drop completions that hit max_completion_length
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal
    grad_clip: float = 1.0
    bf16: bool = False  # autocast rollouts and updates to bf16 (fast on CPUs with AMX)
    save_every: int = 25
    seed: int = 0
    threads: int | None = None

    @field_validator("rewards")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        from r1data.filters.rewards import get_reward

        if not v:
            raise ValueError("at least one reward")
        for name in v:
            get_reward(name)  # ConfigError listing the known names
        return v


# --- log-probs -----------------------------------------------------------------------------------
def token_logps(model, ids, attn, n_prompt: int, temperature: float):
    """Per-token log-probs (and entropies) of the completion part of ids: (B, T_completion)."""
    import torch

    keep = ids.size(1) - n_prompt + 1  # lm_head only where completion tokens are predicted
    logits = model(input_ids=ids, attention_mask=attn, logits_to_keep=keep).logits[:, :-1]
    logits = logits.float()
    logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    target = ids[:, n_prompt:]
    logps = logp_all.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logps, entropy


def train_grpo(cfg: GRPOConfig, *, progress: bool = True) -> dict:
    """Run cfg.max_steps GRPO steps; resumes from cfg.out/checkpoint.pt when present."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM

    from r1data.filters.rewards import get_reward
    from r1data.trainers.checkpoint import resume, save_checkpoint
    from r1data.trainers.data import (
        GRPO_COLUMNS,
        check_model_dir,
        load_split,
        load_tokenizer,
        prompt_messages,
    )

    # --- inputs, checked before any compute -----------------------------------------------------
    ds = load_split(cfg.data, "train", GRPO_COLUMNS)
    check_model_dir(cfg.model)
    reward_fns = {name: get_reward(name) for name in cfg.rewards}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    # --- model, reference, optimizer, resume ----------------------------------------------------
    tok = load_tokenizer(cfg.model)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    ref = None
    if cfg.beta != 0.0:  # frozen copy; not kept when beta is 0
        ref = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32).eval()
        ref.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ckpt = out / "checkpoint.pt"
    step = resume(ckpt, model, opt, out / "metrics.jsonl")

    def save():
        save_checkpoint(ckpt, model, opt, step, cfg.model_dump())

    columns = [c for c in ds.column_names if c != "prompt"]
    G = cfg.num_generations
    metrics_f = open(out / "metrics.jsonl", "a")
    bar = tqdm(total=cfg.max_steps, initial=step, desc="grpo", disable=not progress)
    last: dict = {}
    while step < cfg.max_steps:
        t0 = time.perf_counter()
        # --- 1. rollouts: G completions per prompt from the current policy --------------------
        # HF generate. TODO(--rollout vllm): a colocated vllm.LLM engine whose weights are
        # reloaded from `model` after each optimizer step; generate is ~50% of a step on CPU.
        picks = [random.Random(cfg.seed * 7919 + step * 131 + k).randrange(len(ds))
                 for k in range(cfg.prompts_per_step)]
        rows = [ds[i] for i in picks]
        texts = [tok.apply_chat_template(prompt_messages(r["prompt"]), tokenize=False,
                                         add_generation_prompt=True) for r in rows]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False,
                  truncation=True, max_length=cfg.max_prompt_length)
        p_ids = enc.input_ids.repeat_interleave(G, 0)
        p_att = enc.attention_mask.repeat_interleave(G, 0)
        model.eval()
        amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16)
        with torch.no_grad(), amp:
            gen = model.generate(input_ids=p_ids, attention_mask=p_att, do_sample=True,
                                 temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
                                 max_new_tokens=cfg.max_completion_length,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        model.train()
        n_prompt = p_ids.size(1)
        comp = gen[:, n_prompt:]
        is_eos = comp == tok.eos_token_id
        first_eos = torch.where(is_eos.any(1), is_eos.float().argmax(1),
                                torch.full((comp.size(0),), comp.size(1)))
        mask = (torch.arange(comp.size(1))[None] <= first_eos[:, None]).long()  # incl. EOS
        truncated = ~is_eos.any(1)
        completions = tok.batch_decode(comp * mask + tok.pad_token_id * (1 - mask),
                                       skip_special_tokens=True)

        # --- 2. rewards: weighted sum of named functions over the dataset columns -------------
        kwargs = {c: [r[c] for r in rows for _ in range(G)] for c in columns}
        per_fn = {}
        for name, fn in reward_fns.items():
            vals = fn(completions, **kwargs)
            if len(vals) != len(completions):
                raise ConfigError(f"reward {name!r} returned {len(vals)} values for "
                                  f"{len(completions)} completions")
            per_fn[name] = torch.tensor([math.nan if v is None else float(v) for v in vals])
        stacked = torch.stack([cfg.rewards[n] * v for n, v in per_fn.items()], 1)  # (B*G, F)
        total = stacked.nansum(1)  # None counts as 0 beside other rewards, as TRL's nansum...
        total[stacked.isnan().all(1)] = math.nan  # ...but unscorable by all: no advantage

        # --- 3. advantages --------------------------------------------------------------------
        adv = group_advantages(total, G, cfg.scale_rewards)
        std_g = torch.nan_to_num(_nanstd(total.view(-1, G), dim=1), nan=0.0)  # (num_prompts,)
        keep = torch.ones_like(total, dtype=torch.bool)
        if cfg.dynamic_sampling:
            keep = (std_g > 0).repeat_interleave(G)
        lengths = mask.sum(1).float()  # before masking truncated completions out of the loss
        if cfg.mask_truncated:
            mask = mask * (~truncated).long()[:, None]
        ids = gen[keep]
        attn = torch.cat([p_att, mask], dim=1)[keep]
        cmask = mask[keep]
        adv_k = adv[keep]

        # --- 4. loss: num_iterations updates against the rollout-time log-probs -----------------
        stats = {"loss": 0.0, "clip_frac": 0.0, "kl": 0.0, "entropy": 0.0}
        if ids.size(0) > 0:
            with torch.no_grad(), amp:
                old = token_logps(model, ids, attn, n_prompt, cfg.temperature)[0] \
                    if cfg.num_iterations > 1 else None
                ref_lp = token_logps(ref, ids, attn, n_prompt, cfg.temperature)[0] \
                    if ref is not None else None
            for _ in range(cfg.num_iterations):
                with amp:
                    logps, ent = token_logps(model, ids, attn, n_prompt, cfg.temperature)
                old_lp = old if old is not None else logps.detach()
                loss = grpo_loss(logps, old_lp, ref_lp, adv_k, cmask, beta=cfg.beta,
                                 eps_low=cfg.eps_low, eps_high=cfg.eps_high,
                                 loss_type=cfg.loss_type,
                                 max_completion_length=cfg.max_completion_length)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                with torch.no_grad():
                    m = cmask.float()
                    ratio = torch.exp(logps - old_lp)
                    clipped = ((ratio < 1 - cfg.eps_low) | (ratio > 1 + cfg.eps_high)).float()
                    stats["loss"] = loss.item()
                    stats["clip_frac"] = float((clipped * m).sum() / m.sum().clamp(min=1))
                    stats["entropy"] = float((ent * m).sum() / m.sum().clamp(min=1))
                    if ref_lp is not None:
                        d = ref_lp - logps
                        stats["kl"] = float(((d.exp() - d - 1) * m).sum() / m.sum().clamp(min=1))
        step += 1
        last = {"step": step, "reward": float(total.nanmean()),
                "reward_std": float(_nanstd(total)) if (~total.isnan()).sum() > 1 else 0.0,
                **{f"rewards/{n}/mean": float(torch.nanmean(v)) for n, v in per_fn.items()},
                **{f"rewards/{n}/std": float(v[~v.isnan()].std()) if (~v.isnan()).sum() > 1
                   else 0.0 for n, v in per_fn.items()},
                "frac_reward_zero_std": float((std_g == 0).float().mean()),
                "completion_length": float(lengths.mean()),
                "completion_length_min": int(lengths.min()),
                "completion_length_max": int(lengths.max()),
                "truncated_frac": float(truncated.float().mean()),
                "kept_groups": int(keep.sum()) // G, **stats,
                "seconds": time.perf_counter() - t0}
        metrics_f.write(json.dumps(last) + "\n")
        metrics_f.flush()
        bar.update(1)
        bar.set_postfix(reward=f"{last['reward']:.3f}", kl=f"{stats['kl']:.4f}")
        if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
            save()
    bar.close()
    metrics_f.close()
    save()
    model.save_pretrained(out / "model")
    tok.padding_side = "right"
    tok.save_pretrained(out / "model")
    (out / "config.json").write_text(json.dumps(cfg.model_dump(), indent=2))
    return last
