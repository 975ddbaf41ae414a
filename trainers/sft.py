"""Compact SFT (cold start, distillation): loss on assistant tokens, packing, exact resume.

Reads top to bottom like nanoGPT's train.py: config, data, model, optimizer, schedule, loop.
The resolved config is saved in every checkpoint, with optimizer, scheduler and RNG states, so a
resumed run continues the same loss curve.

Several processes: `torchrun --nproc_per_node N -m r1data.cli train sft ...`; batch_size is per
process. Weights are replicated (DDP), or sharded with `--fsdp` (FSDP2 `fully_shard` per decoder
layer, then the root) for models that do not fit one GPU; checkpoints hold the full weights.
"""

from __future__ import annotations

import math
import random
import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from r1data.errors import InputError

if TYPE_CHECKING:
    import torch


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
    bf16: bool | None = None  # bf16 autocast; None: where the hardware has it (CUDA, AMX)
    device: str | None = None  # cpu, cuda, cuda:N; None: cuda when available (torchrun: LOCAL_RANK)
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


def sft_loss(model, base, batch, amp) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy, supervised tokens) of a collated batch. The lm_head runs only at
    the supervised positions (labels != -100), a chunk at a time (trainers/logits.py): the
    prompt part of a row never reaches the vocabulary projection."""
    from r1data.trainers.logits import hidden_states, nll_sum

    ids, labels, pos, mask = batch
    target = labels[:, 1:]
    sel = target != -100  # (B, T-1): positions whose next token is supervised
    with amp:
        h, head = hidden_states(model, base, input_ids=ids, attention_mask=mask,
                                position_ids=pos, use_cache=False)  # no cache: packed mask
        return nll_sum(head, h[:, :-1][sel], target[sel]), int(sel.sum())


def train_sft(cfg: SFTConfig, *, progress: bool = True) -> dict:
    """Train, checkpoint, resume if a checkpoint exists in cfg.out; returns final metrics."""
    import torch
    from tqdm import tqdm

    from r1data.trainers.checkpoint import resume, save_checkpoint
    from r1data.trainers.common import Setup, derive_seed, peak_memory
    from r1data.trainers.data import (
        SFT_COLUMNS,
        check_model_dir,
        collate,
        load_split,
        load_tokenizer,
    )
    from r1data.trainers.dist import all_sum, no_sync, wrap
    from r1data.trainers.packed_attention import use_packed_attention

    # --- inputs, checked before any compute -----------------------------------------------------
    train_ds = load_split(cfg.data, "train", SFT_COLUMNS)
    test_ds = load_split(cfg.data, "test", SFT_COLUMNS)
    check_model_dir(cfg.model)
    run = Setup(cfg)  # device, precision, seeds, threads, process group, out folder
    dev = run.device

    # --- data -----------------------------------------------------------------------------------
    tok = load_tokenizer(cfg.model)
    rows = _rows(train_ds, tok, cfg)
    if not rows:
        raise InputError("no trainable tokens (every assistant turn was cut by max_len)",
                         path=cfg.data)
    eval_rows = _rows(test_ds, tok, cfg) if test_ds is not None and len(test_ds) else []
    rank, world = run.rank, run.world
    per_micro = cfg.batch_size * world  # rows per micro-step over all processes
    per_epoch = math.ceil(len(rows) / (per_micro * cfg.grad_accum))
    total = cfg.max_steps or max(1, math.ceil(per_epoch * cfg.epochs))
    orders: dict[int, list[int]] = {}

    def to_device(batch):
        return tuple(t.to(dev) if t is not None else None for t in batch)

    def micro_batches(step: int):
        """This process's share of the step's global batch; deterministic from (seed, epoch),
        so a resumed run, or one on another number of processes, sees the same rows."""
        start = step * cfg.grad_accum * per_micro
        for k in range(cfg.grad_accum):
            idx = []
            for j in range(cfg.batch_size):
                epoch, i = divmod(start + k * per_micro + rank * cfg.batch_size + j, len(rows))
                if epoch not in orders:  # the epoch's shuffle: seed derived from (seed, epoch)
                    orders[epoch] = list(range(len(rows)))
                    random.Random(derive_seed(cfg.seed, "epoch", epoch)).shuffle(orders[epoch])
                idx.append(orders[epoch][i])
            yield (to_device(collate([rows[i] for i in idx], tok.pad_token_id)),
                   sum(len(rows[i]["input_ids"]) for i in idx))

    # --- model, optimizer, resume ---------------------------------------------------------------
    base = run.load_model(cfg.model)
    use_packed_attention(base)  # causal attention within each packed sample, no (T, T) mask
    model = wrap(base, world, cfg.fsdp)  # DDP, FSDP2 (base is then sharded in place), or base
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.95))
    step = resume(run.ckpt, base, opt, run.metrics_path)

    @torch.no_grad()
    def eval_loss() -> float | None:
        if not eval_rows:
            return None
        model.eval()
        losses = []
        for i in range(0, len(eval_rows), cfg.batch_size):
            batch = to_device(collate(eval_rows[i:i + cfg.batch_size], tok.pad_token_id))
            loss, n = sft_loss(base, base, batch, run.amp())
            losses.append(loss.item() / max(n, 1))
        model.train()
        return sum(losses) / len(losses)

    # --- loop -----------------------------------------------------------------------------------
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
        for k, (batch, n_input) in enumerate(batches):
            with no_sync(model, last=k == len(batches) - 1):
                loss = sft_loss(model, base, batch, run.amp())[0] / max(tokens, 1.0) * world
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
                "seconds": dt, "processes": world, **run.devices(base, batches[0][0][0]),
                **peak_memory(dev)}
        if cfg.eval_every and step % cfg.eval_every == 0 or step == total:
            last["eval_loss"] = eval_loss()
        if step % cfg.log_every == 0 or step == total:
            run.log(last)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum:.3f}", lr=f"{lr:.2e}")
        if cfg.save_every and step % cfg.save_every == 0 and step < total:
            save_checkpoint(run.ckpt, base, opt, step, cfg.model_dump())  # rank 0 writes
    bar.close()
    save_checkpoint(run.ckpt, base, opt, step, cfg.model_dump())
    run.finish(base, tok, cfg.model_dump())
    return last
