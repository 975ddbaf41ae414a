"""Compact GRPO (DeepSeekMath / R1): group sampling, group-normalised advantages, clipped
per-token ratio, k3 KL to a frozen reference, TRL's loss aggregations.

Stages per step, as TRL: generate -> rewards -> advantages -> loss (num_iterations updates).

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
    bf16: bool = False  # autocast rollouts and updates to bf16 (fast on CPUs with AMX)
    save_every: int = 25
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


# --- rollouts -----------------------------------------------------------------------------------
def prompt_seed(seed: int, step: int, k: int) -> int:
    """The sampling seed of the step's k-th prompt: the samples of a prompt do not depend on
    the process or the batch it is generated in (nor on the rollout engine's other requests)."""
    return (seed * 1_000_003 + step) * 65_537 + k


def prompt_generators(seed: int, step: int, indices: list[int]) -> list[torch.Generator]:
    """One torch generator per prompt, seeded with prompt_seed."""
    import torch

    return [torch.Generator().manual_seed(prompt_seed(seed, step, k)) for k in indices]


def sample_hf(model, p_ids, p_att, gens: list, *, n: int, max_new: int, temperature: float,
              top_p: float, eos_id: int, pad_id: int, lockstep: bool = False):
    """n samples for each prompt row (one generator per row) with a KV cache; (rows * n, T)
    tokens, prompt-major, pad after EOS. Each prompt is prefilled once, then its cache is
    repeated n times (prompts are ~30% of the tokens forwarded in a rollout).

    Sampling is the exponential race argmax(p / E), E ~ Exp(1), drawn per prompt from its own
    generator. lockstep: stop only when every process is done (FSDP forwards are collective)."""
    import torch

    from r1data.trainers.dist import any_rank

    pos = (p_att.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=p_ids, attention_mask=p_att, position_ids=pos, use_cache=True,
                logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(n)
    logits = out.logits[:, -1].repeat_interleave(n, 0)
    attn, pos = p_att.repeat_interleave(n, 0), pos[:, -1:].repeat_interleave(n, 0)
    done = torch.zeros(attn.size(0), dtype=torch.bool)
    tokens = []
    for _ in range(max_new):
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        if top_p < 1.0:  # nucleus: drop the tail beyond top_p (the top token always stays)
            sp, si = probs.sort(-1, descending=True)
            sp[(sp.cumsum(-1) - sp) > top_p] = 0.0
            probs = torch.zeros_like(probs).scatter_(-1, si, sp)
        nxt = torch.cat([(probs[i * n:(i + 1) * n]
                          / torch.empty_like(probs[i * n:(i + 1) * n]).exponential_(generator=g)
                          ).argmax(-1) for i, g in enumerate(gens)])
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        tokens.append(nxt)
        done |= nxt == eos_id
        if not (any_rank(not done.all()) if lockstep else not done.all()):
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
        pos = pos + 1
        logits = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=pos,
                       past_key_values=cache, use_cache=True).logits[:, -1]
    return torch.stack(tokens, 1)


def train_grpo(cfg: GRPOConfig, *, progress: bool = True) -> dict:
    """Run cfg.max_steps GRPO steps; resumes from cfg.out/checkpoint.pt when present.

    Under torchrun each process rolls out its share of the step's prompts (groups stay whole on
    one process), rewards and advantages are computed over the whole step, gradients are
    averaged (DDP) or reduce-scattered (FSDP2, cfg.fsdp); rank 0 logs and saves.
    """
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
    from r1data.trainers.dist import all_sum, distributed, full_state_dict, gather, wrap

    # --- inputs, checked before any compute -----------------------------------------------------
    ds = load_split(cfg.data, "train", GRPO_COLUMNS)
    check_model_dir(cfg.model)
    reward_fns = {name: get_reward(name) for name in cfg.rewards}
    rank, world = distributed()
    if cfg.rollout == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            raise ConfigError(f"rollout 'vllm': vLLM is not importable ({e})") from None
    if cfg.prompts_per_step % world:
        raise ConfigError(f"prompts_per_step ({cfg.prompts_per_step}) must split evenly over "
                          f"{world} processes (groups stay whole on one process)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    # --- model, reference, optimizer, resume ----------------------------------------------------
    tok = load_tokenizer(cfg.model)
    tok.padding_side = "left"
    tok.truncation_side = "left"  # a long prompt loses its start, not the generation prompt
    base = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    model = wrap(base, world, cfg.fsdp)  # DDP, FSDP2 (base is then sharded in place), or base
    ref = None
    if cfg.beta != 0.0:  # frozen copy; not kept when beta is 0; sharded too under FSDP
        ref = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32).eval()
        ref.requires_grad_(False)
        ref = wrap(ref, world, cfg.fsdp) if cfg.fsdp else ref
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ckpt = out / "checkpoint.pt"
    step = resume(ckpt, base, opt, out / "metrics.jsonl")
    engine = None
    if cfg.rollout == "vllm":  # after resume: the engine gets the current weights each step
        from r1data.trainers.vllm_rollout import VllmRollout

        engine = VllmRollout(cfg.model, seed=cfg.seed, bf16=cfg.bf16, world=world,
                             max_model_len=cfg.max_prompt_length + cfg.max_completion_length,
                             gpu_memory_utilization=cfg.vllm_gpu_memory_utilization)

    def save():
        save_checkpoint(ckpt, base, opt, step, cfg.model_dump())  # rank 0 writes

    columns = [c for c in ds.column_names if c != "prompt"]
    G = cfg.num_generations
    per_rank = cfg.prompts_per_step // world
    mine = list(range(rank * per_rank, (rank + 1) * per_rank))  # this process's prompts
    metrics_f = open(out / "metrics.jsonl", "a") if rank == 0 else None
    bar = tqdm(total=cfg.max_steps, initial=step, desc="grpo", disable=not progress or rank != 0)
    last: dict = {}
    while step < cfg.max_steps:
        t0 = time.perf_counter()
        # --- 1. rollouts: G completions per prompt from the current policy --------------------
        picks = [random.Random(cfg.seed * 7919 + step * 131 + k).randrange(len(ds))
                 for k in range(cfg.prompts_per_step)]
        texts = [tok.apply_chat_template(prompt_messages(ds[i]["prompt"]), tokenize=False,
                                         add_generation_prompt=True) for i in picks]
        # all of the step's prompts padded together: the same width on every process
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False,
                  truncation=True, max_length=cfg.max_prompt_length)
        rows = [ds[picks[k]] for k in mine]
        p_ids = enc.input_ids[mine].repeat_interleave(G, 0)
        p_att = enc.attention_mask[mine].repeat_interleave(G, 0)
        amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16)
        if engine is not None:  # vLLM, with this step's weights (TRL's colocate mode)
            engine.load(full_state_dict(base, everywhere=True).items())  # gathered if FSDP
            seqs = engine.sample([enc.input_ids[k][enc.attention_mask[k].bool()].tolist()
                                  for k in mine], n=G,
                                 seeds=[prompt_seed(cfg.seed, step, k) for k in mine],
                                 max_new=cfg.max_completion_length,
                                 temperature=cfg.temperature, top_p=cfg.top_p)
            comp = torch.full((len(seqs), max(map(len, seqs))), tok.pad_token_id)
            for i, s in enumerate(seqs):
                comp[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        else:  # HF forward passes with a KV cache
            model.eval()
            with torch.no_grad(), amp:
                comp = sample_hf(base, enc.input_ids[mine], enc.attention_mask[mine],
                                 prompt_generators(cfg.seed, step, mine), n=G,
                                 max_new=cfg.max_completion_length, temperature=cfg.temperature,
                                 top_p=cfg.top_p, eos_id=tok.eos_token_id,
                                 pad_id=tok.pad_token_id, lockstep=cfg.fsdp and world > 1)
            model.train()
        t_rollout = time.perf_counter() - t0
        n_prompt = p_ids.size(1)
        gen = torch.cat([p_ids, comp], 1)
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
            per_fn[name] = gather(torch.tensor([math.nan if v is None else float(v)
                                                for v in vals]))  # the whole step's rewards
        stacked = torch.stack([cfg.rewards[n] * v for n, v in per_fn.items()], 1)  # (B*G, F)
        total = stacked.nansum(1)  # None counts as 0 beside other rewards, as TRL's nansum...
        total[stacked.isnan().all(1)] = math.nan  # ...but unscorable by all: no advantage

        # --- 3. advantages, over the whole step; this process keeps its rows ---------------------
        local = slice(rank * per_rank * G, (rank + 1) * per_rank * G)
        adv = group_advantages(total, G, cfg.scale_rewards)[local]
        std_g = torch.nan_to_num(_nanstd(total.view(-1, G), dim=1), nan=0.0)  # (num_prompts,)
        keep = torch.ones(per_rank * G, dtype=torch.bool)
        if cfg.dynamic_sampling:
            keep = (std_g > 0).repeat_interleave(G)[local]
        lengths = gather(mask.sum(1).float())  # before masking truncated completions out
        trunc_all = gather(truncated.float())
        if cfg.mask_truncated:
            mask = mask * (~truncated).long()[:, None]
        attn = torch.cat([p_att, mask], dim=1)
        n_seq = all_sum(float(keep.sum()))  # global counts: the loss normalisers
        n_tok = all_sum(float(mask[keep].sum()))
        if not keep.any():  # others still train: join the collectives with a zero-weight row
            keep[0] = True
            mask = torch.zeros_like(mask)
        ids, attn, cmask, adv_k = gen[keep], attn[keep], mask[keep], adv[keep]

        # --- 4. loss: num_iterations updates against the rollout-time log-probs -----------------
        stats = {"loss": 0.0, "clip_frac": 0.0, "kl": 0.0, "entropy": 0.0}
        if n_seq > 0:
            with torch.no_grad(), amp:
                old = token_logps(base, ids, attn, n_prompt, cfg.temperature)[0] \
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
                                 max_completion_length=cfg.max_completion_length,
                                 num_items_in_batch=max(n_tok, 1.0), num_sequences=n_seq)
                (loss * world).backward()  # this process's share; DDP/FSDP average, hence * world
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                with torch.no_grad():
                    m = cmask.float()
                    ratio = torch.exp(logps - old_lp)
                    clipped = ((ratio < 1 - cfg.eps_low) | (ratio > 1 + cfg.eps_high)).float()
                    stats["loss"] = all_sum(loss.item())
                    stats["clip_frac"] = all_sum(float((clipped * m).sum())) / max(n_tok, 1.0)
                    stats["entropy"] = all_sum(float((ent * m).sum())) / max(n_tok, 1.0)
                    if ref_lp is not None:
                        d = ref_lp - logps
                        stats["kl"] = all_sum(float(((d.exp() - d - 1) * m).sum())) \
                            / max(n_tok, 1.0)
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
                "truncated_frac": float(trunc_all.mean()),
                "kept_groups": int(n_seq) // G, **stats, "processes": world,
                "rollout_seconds": t_rollout, "seconds": time.perf_counter() - t0}
        if metrics_f:
            metrics_f.write(json.dumps(last) + "\n")
            metrics_f.flush()
        bar.update(1)
        bar.set_postfix(reward=f"{last['reward']:.3f}", kl=f"{stats['kl']:.4f}")
        if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
            save()
    bar.close()
    save()
    weights = full_state_dict(base)  # a collective under FSDP
    if rank == 0:
        metrics_f.close()
        base.save_pretrained(out / "model", state_dict=weights)
        tok.padding_side = "right"
        tok.save_pretrained(out / "model")
        (out / "config.json").write_text(json.dumps(cfg.model_dump(), indent=2))
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    if engine is not None:  # last: under torchrun its shutdown ends the process group
        engine.close()
    return last
