"""Compact SFT (cold start, distillation): loss on assistant tokens, packing, exact resume.

Reads top to bottom like nanoGPT's train.py: config, data, model, optimizer, schedule, loop.
The resolved config is saved in every checkpoint, with optimizer, scheduler and RNG states, so a
resumed run continues the same loss curve.

Several processes: `torchrun --nproc_per_node N -m r1data.cli train sft ...`; batch_size is per
process. Weights are replicated (DDP), or sharded with `--fsdp` (FSDP2 `fully_shard` per decoder
layer, then the root) for models that do not fit one GPU; checkpoints hold the full weights.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

from pydantic import BaseModel, Field

from r1data.errors import InputError


class SFTConfig(BaseModel):
    data: str  # save_to_disk folder with `messages` (r1data export --format sft)
    model: str  # local HF folder (or hub id where a hub is reachable)
    out: str  # checkpoints, metrics.jsonl and the final model go here
    epochs: float = Field(1.0, gt=0)  # passes over the train split
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = Field(8, ge=1)  # packed rows per micro-batch, per process (torchrun)
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimizer step
    max_len: int = Field(512, ge=8)  # tokens per packed row
    packing: bool = True
    lr: float = 1e-4  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    warmup_steps: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    bf16: bool = False  # autocast on CPU (fast with AMX); fp32 master weights either way
    eval_every: int = 50  # steps; eval loss on the test split
    save_every: int = 50  # steps; checkpoint (resume from the newest)
    log_every: int = 1
    seed: int = 0
    threads: int | None = None  # torch.set_num_threads; None leaves torch's default
    fsdp: bool = False  # under torchrun: shard weights with FSDP2 instead of replicating (DDP)


def lr_at(step: int, total: int, cfg: SFTConfig) -> float:
    """Linear warmup, then cosine to min_lr_ratio * lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    coeff = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * coeff)


def _rows(ds, tok, cfg: SFTConfig) -> list[dict]:
    from r1data.trainers.data import encode_sft, pack

    enc = [encode_sft(ex, tok, cfg.max_len) for ex in ds]
    enc = [e for e in enc if any(label != -100 for label in e["labels"])]
    return pack(enc, cfg.max_len) if cfg.packing else enc


def _loss(model, batch, bf16: bool, reduction: str = "mean"):
    import torch

    ids, labels, pos, mask = batch
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    logits = logits[:, :-1].float()
    target = labels[:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                             target.reshape(-1), ignore_index=-100,
                                             reduction=reduction)


def train_sft(cfg: SFTConfig, *, progress: bool = True) -> dict:
    """Train, checkpoint, resume if a checkpoint exists in cfg.out; returns final metrics."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM

    from r1data.trainers.checkpoint import resume, save_checkpoint
    from r1data.trainers.data import (
        SFT_COLUMNS,
        check_model_dir,
        collate,
        load_split,
        load_tokenizer,
    )
    from r1data.trainers.dist import all_sum, distributed, full_state_dict, wrap

    # --- inputs, checked before any compute -----------------------------------------------------
    train_ds = load_split(cfg.data, "train", SFT_COLUMNS)
    test_ds = load_split(cfg.data, "test", SFT_COLUMNS)
    check_model_dir(cfg.model)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    # --- data -----------------------------------------------------------------------------------
    tok = load_tokenizer(cfg.model)
    rows = _rows(train_ds, tok, cfg)
    if not rows:
        raise InputError("no trainable tokens (every assistant turn was cut by max_len)",
                         path=cfg.data)
    eval_rows = _rows(test_ds, tok, cfg) if test_ds is not None and len(test_ds) else []
    rank, world = distributed()
    per_micro = cfg.batch_size * world  # rows per micro-step over all processes
    per_epoch = math.ceil(len(rows) / (per_micro * cfg.grad_accum))
    total = cfg.max_steps or max(1, math.ceil(per_epoch * cfg.epochs))
    orders: dict[int, list[int]] = {}

    def micro_batches(step: int):
        """This process's share of the step's global batch; deterministic from (seed, epoch),
        so a resumed run, or one on another number of processes, sees the same rows."""
        start = step * cfg.grad_accum * per_micro
        for k in range(cfg.grad_accum):
            idx = []
            for j in range(cfg.batch_size):
                epoch, i = divmod(start + k * per_micro + rank * cfg.batch_size + j, len(rows))
                if epoch not in orders:
                    orders[epoch] = list(range(len(rows)))
                    random.Random(cfg.seed * 1000 + epoch).shuffle(orders[epoch])
                idx.append(orders[epoch][i])
            yield (collate([rows[i] for i in idx], tok.pad_token_id),
                   sum(len(rows[i]["input_ids"]) for i in idx))

    # --- model, optimizer, resume ---------------------------------------------------------------
    base = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    model = wrap(base, world, cfg.fsdp)  # DDP, FSDP2 (base is then sharded in place), or base
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.95))
    ckpt = out / "checkpoint.pt"
    step = resume(ckpt, base, opt, out / "metrics.jsonl")

    def save(path: Path):
        save_checkpoint(path, base, opt, step, cfg.model_dump())  # rank 0 writes

    @torch.no_grad()
    def eval_loss() -> float | None:
        if not eval_rows:
            return None
        model.eval()
        losses = [_loss(base, collate(eval_rows[i:i + cfg.batch_size], tok.pad_token_id),
                        cfg.bf16).item() for i in range(0, len(eval_rows), cfg.batch_size)]
        model.train()
        return sum(losses) / len(losses)

    # --- loop -----------------------------------------------------------------------------------
    metrics_f = open(out / "metrics.jsonl", "a") if rank == 0 else None
    bar = tqdm(total=total, initial=step, desc="sft", disable=not progress or rank != 0)
    model.train()
    last: dict = {}
    while step < total:
        t0 = time.perf_counter()
        lr = lr_at(step, total, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        batches = list(micro_batches(step))
        # Loss = sum over every label token of the step (all micro-batches, all processes) /
        # their number, so accumulation and process count do not change the gradient.
        tokens = all_sum(sum(int((b[1][:, 1:] != -100).sum()) for b, _ in batches))
        loss_sum, seen = 0.0, 0
        for batch, n_input in batches:
            loss = _loss(model, batch, cfg.bf16, reduction="sum") / max(tokens, 1.0) * world
            loss.backward()  # DDP averages over processes, hence * world
            loss_sum += loss.item() / world
            seen += n_input
        loss_sum, seen = all_sum(loss_sum), int(all_sum(seen))
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        dt = time.perf_counter() - t0
        last = {"step": step, "loss": loss_sum, "lr": lr, "grad_norm": float(norm),
                "tokens": int(tokens), "input_tokens": seen, "tokens_per_s": seen / dt,
                "seconds": dt, "processes": world}
        if cfg.eval_every and step % cfg.eval_every == 0 or step == total:
            last["eval_loss"] = eval_loss()
        if metrics_f and (step % cfg.log_every == 0 or step == total):
            metrics_f.write(json.dumps(last) + "\n")
            metrics_f.flush()
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum:.3f}", lr=f"{lr:.2e}")
        if cfg.save_every and step % cfg.save_every == 0 and step < total:
            save(ckpt)
    bar.close()
    save(ckpt)
    weights = full_state_dict(base)  # a collective under FSDP
    if rank == 0:
        metrics_f.close()
        base.save_pretrained(out / "model", state_dict=weights)
        tok.save_pretrained(out / "model")
        (out / "config.json").write_text(json.dumps(cfg.model_dump(), indent=2))
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return last
