"""Compact GRPO (DeepSeekMath / R1): group sampling, group-normalised advantages, clipped
per-token ratio, k3 KL to a frozen reference, TRL's loss aggregations.

Each step reads as TRL's stages, one function each: `rollout` (G completions per prompt) ->
`score` (the reward functions) -> `select` (group advantages, dynamic sampling) -> `update`
(num_iterations optimizer steps). The update runs in micro-batches of `micro_batch_size`
rollouts, each normalised by the whole step's counts, so the accumulated gradient is the full
batch's for every loss_type (tests/trainers/test_micro_batches.py); log-probs take the lm_head a
chunk of completion positions at a time (trainers/logits.py), so 8k-token completions fit.
Device, precision, seeds and logging are trainers/common.py's, as for SFT.

Rollouts: `hf` (a KV-cache sampling loop over the policy itself) or `vllm` (a colocated engine
per process whose weights are reloaded from the policy before each rollout, as TRL's
vllm_mode="colocate"). Each prompt samples from its own seed (seed, step, prompt index), so runs
are reproducible and resumable, and do not depend on how prompts are spread over processes.

Several processes: `torchrun --nproc_per_node N -m r1data.cli train grpo ...` (gloo on CPU,
nccl on GPU). prompts_per_step is the global batch; each process rolls out prompts_per_step / N
whole groups, rewards and advantages are computed over the whole step, and gradients are
averaged by DDP, or, with `--fsdp`, reduce-scattered by FSDP2 (`fully_shard` per decoder layer,
then the root) so each process holds 1/N of the weights and optimizer state: for models that do
not fit one GPU. Both are tested to match one process on CPU/gloo (tests/test_grpo_ddp.py).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, field_validator

from r1data.errors import ConfigError, InputError

if TYPE_CHECKING:
    import torch

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")
FINISH_REASON = "finish_reason"  # the rollout's column for the rewards (see score)


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
              num_items_in_batch: float | None = None, num_sequences: float | None = None
              ) -> torch.Tensor:
    """Clipped surrogate + beta * k3 KL, aggregated as TRL's loss_type.

    logps, old_logps, ref_logps, mask: (B, T); advantages: (B,). ref_logps may be None when
    beta == 0. dapo and bnpo normalise by the tokens of the whole generation batch
    (num_items_in_batch, default: this batch), grpo by its number of sequences (num_sequences,
    default B), dr_grpo by num_sequences * max length. Under torchrun each process passes the
    global counts, so the per-process losses sum to the one-process loss.
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
    n_seq = num_sequences if num_sequences is not None else logps.size(0)
    if loss_type == "grpo":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / n_seq
    if loss_type == "dr_grpo":
        return masked.sum() / (n_seq * (max_completion_length or logps.size(1)))
    norm = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1.0)
    return masked.sum() / norm  # dapo, bnpo


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
    bf16: bool | None = None  # bf16 autocast; None: where the hardware has it (CUDA, AMX)
    device: str | None = None  # cpu, cuda, cuda:N; None: cuda when available (torchrun: LOCAL_RANK)
    micro_batch_size: int | None = Field(None, ge=1)  # rollouts per forward/backward, per
    # process; None: all of them at once. The update is the full batch's either way.
    save_every: int = 25  # steps; 0: only at the end. Each save writes the resume checkpoint
    save_weights: bool = True  # ...and, at each save and the last step, the policy's HF weights
    # in <out>/steps/step-<N:05d>/model (checkpoint.step_dir), as TRL's save_steps
    seed: int = 0
    threads: int | None = None
    fsdp: bool = False  # under torchrun: shard weights with FSDP2 instead of replicating (DDP)
    rollout: Literal["hf", "vllm"] = "hf"  # vllm: colocated engine, weights synced every step
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)  # GPU share of the engine

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
def position_ids(attn: torch.Tensor) -> torch.Tensor:
    """Positions of left-padded rows: the cumulative attention mask minus 1, pads clamped to 0,
    so every row's first real token is at 0. The sampler and the loss forwards (policy, rollout
    policy, reference) all take their positions from here, so a completion is scored at the
    positions it was sampled at; the default arange would shift each padded row by its padding,
    which changes the log-probs of models with absolute position embeddings (RoPE alone is
    shift-invariant up to rounding, bf16 on long offsets less so)."""
    return (attn.long().cumsum(1) - 1).clamp(min=0)


def token_logps(model, ids, attn, n_prompt: int, temperature: float, *, base=None):
    """Per-token log-probs and entropies of the completion part of ids, (B, T_completion) each.
    The lm_head runs only where completion tokens are predicted, a chunk of positions at a time
    (trainers/logits.py). base: the unwrapped model when model is its DDP wrapper."""
    from r1data.trainers.logits import hidden_states
    from r1data.trainers.logits import token_logps as head_logps

    base = base if base is not None else getattr(model, "module", model)
    keep = ids.size(1) - n_prompt + 1
    h, head = hidden_states(model, base, input_ids=ids, attention_mask=attn,
                            position_ids=position_ids(attn), logits_to_keep=keep)
    return head_logps(head, h[:, :-1], ids[:, n_prompt:], temperature)


# --- rollouts -----------------------------------------------------------------------------------
def prompt_seed(seed: int, step: int, k: int) -> int:
    """The sampling seed of the step's k-th prompt: the samples of a prompt do not depend on
    the process or the batch it is generated in (nor on the rollout engine's other requests)."""
    from r1data.trainers.common import derive_seed

    return derive_seed(seed, "sample", step, k)


def prompt_generators(seed: int, step: int, indices: list[int], device="cpu"
                      ) -> list[torch.Generator]:
    """One torch generator per prompt, seeded with prompt_seed, on the sampling device."""
    import torch

    return [torch.Generator(device=device).manual_seed(prompt_seed(seed, step, k))
            for k in indices]


def pick_prompts(seed: int, step: int, n_prompts: int, n_rows: int) -> list[int]:
    """Dataset rows of the step's prompts; prompt k of step s is drawn from its own stream
    derive_seed(seed, "pick", s, k), so a resumed run picks what the whole run would have."""
    from r1data.trainers.common import derive_seed

    return [random.Random(derive_seed(seed, "pick", step, k)).randrange(n_rows)
            for k in range(n_prompts)]


def sample_hf(model, p_ids, p_att, gens: list, *, n: int, max_new: int, temperature: float,
              top_p: float, eos_id: int, pad_id: int, lockstep: bool = False,
              with_logps: bool = False):
    """n samples for each prompt row (one generator per row) with a KV cache; (rows * n, T)
    tokens, prompt-major, pad after EOS. Each prompt is prefilled once, then its cache is
    repeated n times (prompts are ~30% of the tokens forwarded in a rollout).

    Sampling is the exponential race argmax(p / E), E ~ Exp(1), drawn per prompt from its own
    generator. lockstep: stop only when every process is done (FSDP forwards are collective).
    with_logps: also the tempered log-prob (before top_p) of each sampled token, (rows * n, T):
    what the loss forward must reproduce (tests/trainers/test_grpo_positions.py)."""
    import torch

    from r1data.trainers.dist import any_rank

    pos = position_ids(p_att)
    out = model(input_ids=p_ids, attention_mask=p_att, position_ids=pos, use_cache=True,
                logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(n)
    logits = out.logits[:, -1].repeat_interleave(n, 0)
    attn, pos = p_att.repeat_interleave(n, 0), pos[:, -1:].repeat_interleave(n, 0)
    done = torch.zeros(attn.size(0), dtype=torch.bool, device=attn.device)
    tokens, logps = [], []
    for _ in range(max_new):
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        full = torch.log_softmax(logits.float() / temperature, dim=-1) if with_logps else None
        if top_p < 1.0:  # nucleus: drop the tail beyond top_p (the top token always stays)
            sp, si = probs.sort(-1, descending=True)
            sp[(sp.cumsum(-1) - sp) > top_p] = 0.0
            probs = torch.zeros_like(probs).scatter_(-1, si, sp)
        nxt = torch.cat([(probs[i * n:(i + 1) * n]
                          / torch.empty_like(probs[i * n:(i + 1) * n]).exponential_(generator=g)
                          ).argmax(-1) for i, g in enumerate(gens)])
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        tokens.append(nxt)
        if with_logps:
            logps.append(full.gather(-1, nxt[:, None]).squeeze(-1))
        done |= nxt == eos_id
        if not (any_rank(not done.all()) if lockstep else not done.all()):
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
        pos = pos + 1
        logits = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=pos,
                       past_key_values=cache, use_cache=True).logits[:, -1]
    return (torch.stack(tokens, 1), torch.stack(logps, 1)) if with_logps \
        else torch.stack(tokens, 1)


def completion_mask(comp: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss mask of sampled completions (B, T), tokens through the first EOS, and which
    completions have no EOS (B,): they hit max_completion_length, finish_reason "length"."""
    import torch

    is_eos = comp == eos_id
    first_eos = torch.where(is_eos.any(1), is_eos.float().argmax(1),
                            torch.full((comp.size(0),), comp.size(1), device=comp.device))
    mask = (torch.arange(comp.size(1), device=comp.device)[None] <= first_eos[:, None]).long()
    return mask, ~is_eos.any(1)


@dataclass
class Rollouts:
    """One step's completions on this process, prompt-major (G rows per prompt)."""

    ids: torch.Tensor  # (B, P + T) left-padded prompt, then the completion
    attn: torch.Tensor  # (B, P + T) real prompt tokens and completion tokens through EOS
    mask: torch.Tensor  # (B, T) completion tokens in the loss (through EOS)
    truncated: torch.Tensor  # (B,) no EOS within max_completion_length (vLLM: finish "length")
    n_prompt: int  # P
    texts: list[str]  # decoded completions, for the rewards
    rows: list[dict]  # the dataset rows of this process's prompts, one per prompt
    seconds: float


def rollout(cfg: GRPOConfig, run, tok, ds, base, engine, step: int, mine: list[int]
            ) -> Rollouts:
    """G completions for each of this process's prompts from the current policy: the
    colocated vLLM engine (weights pushed first, as TRL's colocate mode) or HF forwards."""
    import torch

    from r1data.trainers.data import prompt_messages
    from r1data.trainers.dist import full_state_dict

    t0 = time.perf_counter()
    G, dev = cfg.num_generations, run.device
    picks = pick_prompts(cfg.seed, step, cfg.prompts_per_step, len(ds))
    texts = [tok.apply_chat_template(prompt_messages(ds[i]["prompt"]), tokenize=False,
                                     add_generation_prompt=True) for i in picks]
    # all of the step's prompts padded together: the same width on every process
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False,
              truncation=True, max_length=cfg.max_prompt_length)
    p_ids, p_att = enc.input_ids[mine].to(dev), enc.attention_mask[mine].to(dev)
    if engine is not None:
        engine.load(full_state_dict(base, everywhere=True).items())  # gathered if FSDP
        prompts = [ids[att.bool()].tolist() for ids, att in zip(p_ids, p_att, strict=True)]
        outs = engine.sample_outputs(prompts, n=G,
                                     seeds=[prompt_seed(cfg.seed, step, k) for k in mine],
                                     max_new=cfg.max_completion_length,
                                     temperature=cfg.temperature, top_p=cfg.top_p)
        engine.sleep()  # GPU: the engine's memory goes back to the update
        comp = torch.full((len(outs), max(len(s) for s, _ in outs)), tok.pad_token_id)
        mask = torch.zeros_like(comp)
        for i, (s, _) in enumerate(outs):  # vLLM's ids end with EOS or a stop token, if any
            comp[i, :len(s)], mask[i, :len(s)] = torch.tensor(s, dtype=torch.long), 1
        comp, mask = comp.to(dev), mask.to(dev)
        truncated = torch.tensor([why == "length" for _, why in outs], device=dev)
    else:
        was_training = base.training
        base.eval()
        with torch.no_grad(), run.amp():
            comp = sample_hf(base, p_ids, p_att, prompt_generators(cfg.seed, step, mine, dev),
                             n=G, max_new=cfg.max_completion_length,
                             temperature=cfg.temperature, top_p=cfg.top_p,
                             eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                             lockstep=cfg.fsdp and run.world > 1)
        base.train(was_training)
        mask, truncated = completion_mask(comp, tok.eos_token_id)
    completions = tok.batch_decode((comp * mask + tok.pad_token_id * (1 - mask)).cpu(),
                                   skip_special_tokens=True)
    p_ids, p_att = p_ids.repeat_interleave(G, 0), p_att.repeat_interleave(G, 0)
    return Rollouts(ids=torch.cat([p_ids, comp], 1), attn=torch.cat([p_att, mask], 1),
                    mask=mask, truncated=truncated, n_prompt=p_ids.size(1),
                    texts=completions, rows=[ds[picks[k]] for k in mine],
                    seconds=time.perf_counter() - t0)


# --- rewards and advantages ------------------------------------------------------------------
def score(cfg: GRPOConfig, reward_fns: dict, ro: Rollouts):
    """The weighted reward of every completion of the step (all processes, rank order), and
    each function's rewards; NaN where no function could score a completion.

    The rewards get the dataset's columns (but the prompt) and `finish_reason`: "length" for a
    rollout that hit max_completion_length (no EOS; vLLM's own finish reason), else "stop", so
    the format reward rejects a truncated rollout as curation rejects a truncated sample. A
    dataset column of that name is refused up front (train_grpo) rather than overridden."""
    import torch

    from r1data.trainers.dist import gather

    G = cfg.num_generations
    columns = [c for c in (ro.rows[0] if ro.rows else {}) if c != "prompt"]
    kwargs = {c: [r[c] for r in ro.rows for _ in range(G)] for c in columns}
    kwargs[FINISH_REASON] = ["length" if t else "stop" for t in ro.truncated.tolist()]
    per_fn = {}
    for name, fn in reward_fns.items():
        vals = fn(ro.texts, **kwargs)
        if len(vals) != len(ro.texts):
            raise ConfigError(f"reward {name!r} returned {len(vals)} values for "
                              f"{len(ro.texts)} completions")
        per_fn[name] = gather(torch.tensor([math.nan if v is None else float(v)
                                            for v in vals]))
    stacked = torch.stack([cfg.rewards[n] * v for n, v in per_fn.items()], 1)  # (N*G, F)
    total = stacked.nansum(1)  # None counts as 0 beside other rewards, as TRL's nansum...
    total[stacked.isnan().all(1)] = math.nan  # ...but unscorable by all: no advantage
    return total, per_fn


def select(cfg: GRPOConfig, total: torch.Tensor, ro: Rollouts, rank: int):
    """This process's advantages and the rows that train: dynamic sampling drops groups whose
    rewards are all equal; mask_truncated drops completions that hit the length limit (from
    the loss, not from the statistics). Returns (advantages, keep, loss mask, group stds)."""
    import torch

    G, B = cfg.num_generations, ro.mask.size(0)
    local = slice(rank * B, (rank + 1) * B)
    adv = group_advantages(total, G, cfg.scale_rewards)[local]
    std_g = torch.nan_to_num(_nanstd(total.view(-1, G), dim=1), nan=0.0)  # (num_prompts,)
    keep = torch.ones(B, dtype=torch.bool)
    if cfg.dynamic_sampling:
        keep = (std_g > 0).repeat_interleave(G)[local]
    mask = ro.mask
    if cfg.mask_truncated:
        mask = mask * (~ro.truncated).long()[:, None]
    dev = ro.mask.device
    return adv.to(dev), keep.to(dev), mask, std_g


# --- the update ---------------------------------------------------------------------------------
def micro_batches(keep: torch.Tensor, size: int | None) -> list[torch.Tensor | None]:
    """Row indices of the kept rollouts in chunks of `size`; every process gets the same number
    of chunks (DDP/FSDP backward passes are collective), padded with None: a zero-weight pass."""
    import torch

    from r1data.trainers.dist import all_max

    rows = keep.nonzero().squeeze(1)
    size = size or max(len(rows), 1)
    chunks = list(torch.split(rows, size)) if len(rows) else []
    n = int(all_max(float(max(len(chunks), 1))))
    return chunks + [None] * (n - len(chunks))


def _slice(ro: Rollouts, mask: torch.Tensor, rows: torch.Tensor | None):
    """ids, attn and loss mask of some rows, cut after their longest completion (a causal model
    gives the same log-probs without the padding). None: row 0 with nothing in the loss."""
    import torch

    if rows is None:
        rows, mask = torch.zeros(1, dtype=torch.long, device=mask.device), torch.zeros_like(mask)
    width = max(int(ro.attn[rows, ro.n_prompt:].sum(1).max()), 1)
    cut = ro.n_prompt + width
    return rows, ro.ids[rows, :cut], ro.attn[rows, :cut], mask[rows, :width]


def rollout_logps(model, ro: Rollouts, mask, chunks, temperature: float, amp) -> list:
    """Log-probs of each micro-batch's completions under model, without gradients: the
    rollout-time policy (num_iterations > 1) or the frozen reference (beta > 0)."""
    import torch

    out = []
    with torch.no_grad(), amp:
        for rows in chunks:
            _, ids, attn, _ = _slice(ro, mask, rows)
            out.append(token_logps(model, ids, attn, ro.n_prompt, temperature)[0])
    return out


def accumulate_loss(cfg: GRPOConfig, model, base, ro: Rollouts, adv, mask, chunks, *,
                    n_seq: float, n_tok: float, world: int, amp, old=None, ref=None) -> dict:
    """Forward and backward of every micro-batch; their losses sum to the full batch's, since
    each is normalised by the whole step's counts (n_seq sequences, n_tok tokens, over all
    processes): so are the accumulated gradients. Returns this process's summed statistics."""
    import torch

    from r1data.trainers.dist import no_sync

    sums = {"loss": 0.0, "clipped": 0.0, "entropy": 0.0, "kl": 0.0}
    for j, rows in enumerate(chunks):
        idx, ids, attn, cmask = _slice(ro, mask, rows)
        with no_sync(model, last=j == len(chunks) - 1):
            with amp:
                logps, ent = token_logps(model, ids, attn, ro.n_prompt, cfg.temperature,
                                         base=base)
            old_lp = old[j] if old is not None else logps.detach()
            ref_lp = ref[j] if ref is not None else None
            loss = grpo_loss(logps, old_lp, ref_lp, adv[idx], cmask, beta=cfg.beta,
                             eps_low=cfg.eps_low, eps_high=cfg.eps_high,
                             loss_type=cfg.loss_type,
                             max_completion_length=cfg.max_completion_length,
                             num_items_in_batch=max(n_tok, 1.0), num_sequences=n_seq)
            (loss * world).backward()  # DDP/FSDP average over processes, hence * world
        with torch.no_grad():
            m = cmask.float()
            ratio = torch.exp(logps - old_lp)
            clipped = (ratio < 1 - cfg.eps_low) | (ratio > 1 + cfg.eps_high)
            sums["loss"] += loss.item()
            sums["clipped"] += float((clipped.float() * m).sum())
            sums["entropy"] += float((ent * m).sum())
            if ref_lp is not None:
                d = ref_lp - logps
                sums["kl"] += float(((d.exp() - d - 1) * m).sum())
    return sums


def update(cfg: GRPOConfig, run, model, base, ref, opt, ro: Rollouts, adv, keep, mask) -> dict:
    """num_iterations optimizer steps on the step's rollouts, against the rollout-time
    log-probs; statistics of the last one (loss, clip_frac, entropy, kl) over all processes."""
    import torch

    from r1data.trainers.dist import all_sum

    n_seq = all_sum(float(keep.sum()))  # global counts: the loss normalisers
    n_tok = all_sum(float(mask[keep].sum()))
    stats = {"loss": 0.0, "clip_frac": 0.0, "kl": 0.0, "entropy": 0.0}
    if n_seq == 0:
        return stats
    chunks = micro_batches(keep, cfg.micro_batch_size)
    old = rollout_logps(base, ro, mask, chunks, cfg.temperature, run.amp()) \
        if cfg.num_iterations > 1 else None
    ref_lp = rollout_logps(ref, ro, mask, chunks, cfg.temperature, run.amp()) \
        if ref is not None else None
    for _ in range(cfg.num_iterations):
        sums = accumulate_loss(cfg, model, base, ro, adv, mask, chunks, n_seq=n_seq,
                               n_tok=n_tok, world=run.world, amp=run.amp(), old=old, ref=ref_lp)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    tokens = max(n_tok, 1.0)
    return {"loss": all_sum(sums["loss"]), "clip_frac": all_sum(sums["clipped"]) / tokens,
            "kl": all_sum(sums["kl"]) / tokens if ref is not None else 0.0,
            "entropy": all_sum(sums["entropy"]) / tokens}


def step_metrics(cfg: GRPOConfig, step: int, total, per_fn: dict, std_g, ro: Rollouts,
                 n_kept: float) -> dict:
    """What TRL logs per step: reward mean/std overall and per function, the share of groups
    with one reward, completion lengths and truncation over the whole step."""
    import torch

    from r1data.trainers.dist import gather

    lengths = gather(ro.mask.sum(1).float().cpu())  # before truncated completions are masked
    trunc = gather(ro.truncated.float().cpu())

    def std(v):
        return float(v[~v.isnan()].std()) if (~v.isnan()).sum() > 1 else 0.0

    return {"step": step, "reward": float(total.nanmean()), "reward_std": std(total),
            **{f"rewards/{n}/mean": float(torch.nanmean(v)) for n, v in per_fn.items()},
            **{f"rewards/{n}/std": std(v) for n, v in per_fn.items()},
            "frac_reward_zero_std": float((std_g == 0).float().mean()),
            "completion_length": float(lengths.mean()),
            "completion_length_min": int(lengths.min()),
            "completion_length_max": int(lengths.max()),
            "truncated_frac": float(trunc.mean()),
            "kept_groups": int(n_kept) // cfg.num_generations}


# --- saves ---------------------------------------------------------------------------------------
def save_step(cfg: GRPOConfig, run, base, tok, opt, step: int) -> None:
    """A save_every save: the policy's HF weights in step_dir(out, step)/model (save_weights),
    then the resume checkpoint. Weights first, so a kill between the two resumes before this
    step and writes them again. Called on every process (FSDP gathers are collective); rank 0
    writes. The HF rollout samples from `base` itself and vLLM reloads it before each rollout,
    so the saved weights are the ones the next step samples from."""
    from r1data.trainers.checkpoint import save_checkpoint, step_dir

    if cfg.save_weights:
        tok.padding_side = "right"  # saved as out/model's (train_grpo); the rollouts pad left
        run.save_model(base, tok, step_dir(run.out, step) / "model")
        tok.padding_side = "left"
    save_checkpoint(run.ckpt, base, opt, step, cfg.model_dump())  # rank 0 writes


# --- the loop -----------------------------------------------------------------------------------
def train_grpo(cfg: GRPOConfig, *, progress: bool = True) -> dict:
    """Run cfg.max_steps GRPO steps; resumes from cfg.out/checkpoint.pt when present.

    Each step: rollout -> score -> advantages -> update. Under torchrun each process rolls out
    its share of the step's prompts (groups stay whole on one process), rewards and advantages
    are computed over the whole step, gradients are averaged (DDP) or reduce-scattered (FSDP2,
    cfg.fsdp); rank 0 logs and saves. Every save_every steps and after the last: the resume
    checkpoint and (save_weights) the policy's HF weights in steps/step-<N:05d>/model, the last
    hard-linked to out/model, so one run yields every intermediate policy (rl.exam_every).
    """
    import torch
    from tqdm import tqdm

    from r1data.filters.rewards import get_reward
    from r1data.trainers.checkpoint import link_model, resume, save_checkpoint, step_dir
    from r1data.trainers.common import Setup, peak_memory
    from r1data.trainers.data import GRPO_COLUMNS, check_model_dir, load_split, load_tokenizer
    from r1data.trainers.dist import all_sum, wrap

    # --- inputs, checked before any compute -----------------------------------------------------
    ds = load_split(cfg.data, "train", GRPO_COLUMNS)
    if FINISH_REASON in ds.column_names:  # the rollout's own: neither may silently override
        raise InputError(f"column {FINISH_REASON!r} is set by the rollouts for the rewards "
                         "(length/stop); rename or drop it", path=cfg.data, field=FINISH_REASON)
    check_model_dir(cfg.model)
    reward_fns = {name: get_reward(name) for name in cfg.rewards}
    if cfg.rollout == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            raise ConfigError(f"rollout 'vllm': vLLM is not importable ({e})") from None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.prompts_per_step % world:
        raise ConfigError(f"prompts_per_step ({cfg.prompts_per_step}) must split evenly over "
                          f"{world} processes (groups stay whole on one process)")
    run = Setup(cfg)  # device, precision, seeds, threads, process group, out folder

    # --- model, reference, optimizer, resume ----------------------------------------------------
    tok = load_tokenizer(cfg.model)
    tok.padding_side = "left"
    tok.truncation_side = "left"  # a long prompt loses its start, not the generation prompt
    base = run.load_model(cfg.model)
    model = wrap(base, world, cfg.fsdp)  # DDP, FSDP2 (base is then sharded in place), or base
    ref = None
    if cfg.beta != 0.0:  # frozen copy; not kept when beta is 0; sharded too under FSDP
        ref = run.load_model(cfg.model, frozen=True)
        ref = wrap(ref, world, cfg.fsdp) if cfg.fsdp else ref
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    step = resume(run.ckpt, base, opt, run.metrics_path)
    engine = None
    per_rank = cfg.prompts_per_step // world
    mine = list(range(run.rank * per_rank, (run.rank + 1) * per_rank))  # this process's prompts
    bar = tqdm(total=cfg.max_steps, initial=step, desc="grpo",
               disable=not progress or run.rank != 0)
    last: dict = {}
    try:
        if cfg.rollout == "vllm":  # after resume: the engine gets the current weights each step
            from r1data.trainers.vllm_rollout import VllmRollout

            engine = VllmRollout(cfg.model, seed=cfg.seed, bf16=run.bf16, world=world,
                                 max_model_len=cfg.max_prompt_length + cfg.max_completion_length,
                                 gpu_memory_utilization=cfg.vllm_gpu_memory_utilization)
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            ro = rollout(cfg, run, tok, ds, base, engine, step, mine)  # 1. G completions each
            total, per_fn = score(cfg, reward_fns, ro)  # 2. rewards of the whole step
            adv, keep, mask, std_g = select(cfg, total, ro, run.rank)  # 3. advantages
            stats = update(cfg, run, model, base, ref, opt, ro, adv, keep, mask)  # 4. update
            step += 1
            last = {**step_metrics(cfg, step, total, per_fn, std_g, ro, all_sum(float(keep.sum()))),
                    **stats, "processes": world, "rollout_seconds": ro.seconds,
                    "seconds": time.perf_counter() - t0, **run.devices(base, ro.ids),
                    **peak_memory(run.device)}
            run.log(last)
            bar.update(1)
            bar.set_postfix(reward=f"{last['reward']:.3f}", kl=f"{stats['kl']:.4f}")
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
                save_step(cfg, run, base, tok, opt, step)
        bar.close()
        save_checkpoint(run.ckpt, base, opt, step, cfg.model_dump())
        tok.padding_side = "right"
        run.finish(base, tok, cfg.model_dump())  # ends with a barrier
        if cfg.save_every and cfg.save_weights and run.rank == 0:  # the last step: out/model
            link_model(run.out / "model", step_dir(run.out, step) / "model")
    finally:
        if engine is not None:  # last, even on error: under torchrun it ends the process group
            engine.close()
    return last
