"""Process groups for both trainers: torchrun's environment -> gloo (CPU) or nccl (GPU), and the
model wrapped in DDP (replicated weights) or FSDP2 (sharded weights, for models that do not fit).

Without torchrun (WORLD_SIZE unset or 1) every helper is the identity, so a trainer reads the same
with one process or many.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def distributed(device: torch.device | None = None) -> tuple[int, int]:
    """(rank, world size); under torchrun the process group is started here: nccl when the
    trainer runs on CUDA, gloo on CPU (device None: nccl when torch sees a GPU)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        cuda = device.type == "cuda" if device is not None else torch.cuda.is_available()
        dist.init_process_group("nccl" if cuda else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _comm_device():
    """NCCL reduces CUDA tensors only; gloo CPU ones."""
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(x: float) -> float:
    """Sum of a Python number over processes (float64, so counts stay exact)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    t = torch.tensor([x], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t.item())


def all_max(x: float) -> float:
    """Largest value of a Python number over processes (e.g. the most micro-batches)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    t = torch.tensor([x], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def gather(t: torch.Tensor) -> torch.Tensor:
    """Every process's tensor concatenated on dim 0 in rank order (same shape on every rank),
    on the device t is on."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return t
    comm = t.to(_comm_device()).contiguous()
    parts = [torch.empty_like(comm) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, comm)
    return torch.cat(parts).to(t.device)


def barrier() -> None:
    """Wait for every process (no-op with one)."""
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def no_sync(model, last: bool):
    """Skip DDP's gradient all-reduce on all but the last micro-batch of a step (the gradients
    accumulate locally and are averaged once). FSDP2 and one process: a no-op context."""
    from contextlib import nullcontext

    import torch

    if last or not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return nullcontext()
    return model.no_sync()


def any_rank(flag: bool) -> bool:
    """True when the flag is set on at least one process (lockstep loops under FSDP)."""
    return all_sum(float(flag)) > 0


def wrap(model, world: int, fsdp: bool):
    """DDP (gradients averaged over processes) or FSDP2: fully_shard per decoder layer, then the
    root, so only one layer's full weights exist at a time. One process: the model unchanged."""
    import torch

    if world == 1:
        return model
    if not fsdp:  # on CUDA, the model is on this process's GPU already (common.Setup)
        dev = next(model.parameters()).device
        ids = [dev.index] if dev.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(model)
    return model


def decoder_layers(model) -> list:
    """The transformer blocks, found by the class names HF lists in `_no_split_modules`."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        from r1data.errors import ConfigError

        raise ConfigError(f"fsdp: no decoder layers found in {type(model).__name__}")
    return layers


def is_sharded(model) -> bool:
    """True when the parameters are FSDP2 DTensors (state dicts must then be gathered)."""
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


def full_state_dict(model, everywhere: bool = False) -> dict:
    """The full (unsharded) weights; collective under FSDP, where only rank 0 gets them unless
    everywhere (each process's rollout engine needs them all)."""
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                cpu_offload=not everywhere))
    # gathered copies no longer share storage: drop the second name of a tied weight
    # (lm_head = embed_tokens), as save_pretrained does for the unsharded model
    seen: set[int] = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            full.pop(name, None)
        seen.add(id(p))
    return full
