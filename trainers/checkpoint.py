"""Checkpoints both trainers share: everything needed to continue the same curve after a kill."""

from __future__ import annotations

import json
import random
from pathlib import Path


def save_checkpoint(path: Path, model, opt, step: int, config: dict) -> None:
    """Model, optimizer, step, resolved config and RNG states; written atomically."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "config": config, "torch_rng": torch.get_rng_state(),
                "py_rng": random.getstate()}, tmp)
    tmp.replace(path)


def resume(path: Path, model, opt, metrics: Path) -> int:
    """Load a checkpoint if there is one; returns the step to continue from (0 without one)."""
    import torch

    if not path.exists():
        return 0
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["py_rng"])
    keep_metrics(metrics, state["step"])
    return state["step"]


def keep_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines past the checkpoint: the curve is continued, not doubled."""
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines()
                 if ln.strip() and json.loads(ln).get("step", 0) <= step]
        path.write_text("".join(ln + "\n" for ln in lines))
