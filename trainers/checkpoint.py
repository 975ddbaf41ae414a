"""Checkpoints both trainers share: everything needed to continue the same curve after a kill,
and where GRPO keeps the policy's loadable weights at each save (step_dir)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from r1data.trainers.dist import is_sharded


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_initialized() else 0


def step_dir(out: str | Path, step: int) -> Path:
    """Where a trainer keeps the HF weights of the policy after `step` steps, <out>/steps/
    step-<N:05d> (its `model` folder loads with from_pretrained): what the flows examine
    with rl.exam_every, one place for the trainer that writes and the flow that reads."""
    return Path(out) / "steps" / f"step-{step:05d}"


def link_model(src: Path, dst: Path) -> None:
    """dst as a copy of the saved model src, by hard links where the filesystem has them (the
    final step's weights are out/model's: no second copy on disk). Safe because models are
    saved by rename (Setup.save_model), never rewritten in place."""

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    tmp = dst.with_name(dst.name + ".tmp")
    for d in (tmp, dst):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=link)
    tmp.rename(dst)  # whole or absent, as save_model writes


def save_checkpoint(path: Path, model, opt, step: int, config: dict) -> None:
    """Model, optimizer, step, resolved config and RNG states; written atomically by rank 0.
    Call it on every process: FSDP shards are gathered to rank 0 first (a collective)."""
    import torch

    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        msd, osd = get_state_dict(model, opt, options=StateDictOptions(full_state_dict=True,
                                                                        cpu_offload=True))
    else:
        msd, osd = model.state_dict(), opt.state_dict()
    if _rank() != 0:
        return
    tmp = path.with_suffix(".tmp")
    torch.save({"model": msd, "optimizer": osd, "step": step, "config": config,
                "torch_rng": torch.get_rng_state(), "py_rng": random.getstate()}, tmp)
    tmp.replace(path)


def resume(path: Path, model, opt, metrics: Path) -> int:
    """Load a checkpoint if there is one; returns the step to continue from (0 without one)."""
    import torch

    if not path.exists():
        return 0
    state = torch.load(path, weights_only=False)
    if is_sharded(model):  # every process reads the full file and keeps its shard
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(model, opt, model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"],
                       options=StateDictOptions(full_state_dict=True))
    else:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["py_rng"])
    if _rank() == 0:
        keep_metrics(metrics, state["step"])
    return state["step"]


def keep_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines past the checkpoint: the curve is continued, not doubled."""
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines()
                 if ln.strip() and json.loads(ln).get("step", 0) <= step]
        path.write_text("".join(ln + "\n" for ln in lines))
