"""The setup both trainers share, written once: device, precision, seeds, threads, process group,
the metrics log and the final save.

Device: `device=None` means cuda when torch sees a GPU, else cpu; under torchrun a CUDA device is
always `cuda:{LOCAL_RANK}` (one GPU per process), and the process group is NCCL on CUDA, gloo on
CPU. Asking for cuda without CUDA is a one-line ConfigError, never a silent fall back to CPU.

Precision: `bf16=None` means bf16 autocast where the hardware computes it natively (CUDA with
bf16 support, CPUs with AMX or AVX512-BF16); elsewhere fp32, because emulated bf16 is slower
than fp32 (measured on the 2-core AVX-512 machine without BF16 units: a 4096x576x1536 linear
forward+backward took 3.4 s in bf16 autocast vs 1.8 s in fp32). Master weights stay fp32.

Seeds: every random stream is derived from the config's `seed` with `derive_seed(seed, name,
*keys)` (a hash, so streams do not overlap the way `seed + step` would).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from r1data.errors import ConfigError

if TYPE_CHECKING:
    import torch


def derive_seed(seed: int, name: str, *keys: int) -> int:
    """A 32-bit seed for the random stream `name` (e.g. "sample", step, prompt index): a
    function of the config's seed only, the same on every process and after a resume."""
    text = "/".join([str(seed), name, *map(str, keys)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def pick_device(requested: str | None) -> torch.device:
    """The device a trainer runs on: requested (cpu, cuda, cuda:N), or cuda when available.
    Under torchrun, cuda means this process's GPU, cuda:{LOCAL_RANK}."""
    import torch

    name = requested or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: not a torch device (cpu, cuda, cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available (torch "
                              f"{torch.__version__}, {torch.cuda.device_count()} GPUs)")
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise ConfigError(f"device {name!r}: only cpu and cuda are supported")
    return dev


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls run in hardware: CUDA with bf16, CPUs with AMX or AVX512-BF16."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    from r1data.engines import cpu_has_native_bf16  # the same rule picks vLLM's dtype

    return cpu_has_native_bf16()


def autocast(device: torch.device, bf16: bool) -> AbstractContextManager:
    """bf16 autocast on the trainer's device type (a no-op context when bf16 is off)."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


class Setup:
    """What a trainer knows before it loads a model: output folder, rank, world, device,
    precision. Seeds python and torch from cfg.seed and sets the thread count."""

    def __init__(self, cfg):
        import torch

        from r1data.trainers.dist import distributed

        self.device = pick_device(getattr(cfg, "device", None))
        self.bf16 = native_bf16(self.device) if cfg.bf16 is None else cfg.bf16
        self.rank, self.world = distributed(self.device)
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.ckpt = self.out / "checkpoint.pt"
        self.metrics_path = self.out / "metrics.jsonl"
        self._metrics = None

    def amp(self) -> AbstractContextManager:
        return autocast(self.device, self.bf16)

    def load_model(self, path: str, *, frozen: bool = False):
        """fp32 master weights on this process's device (frozen: eval mode, no gradients)."""
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(self.device)
        if frozen:
            model.eval().requires_grad_(False)
        return model

    def log(self, row: dict) -> None:
        """One metrics.jsonl line (rank 0); the file is opened on first use, after resume."""
        if self.rank != 0:
            return
        if self._metrics is None:
            self._metrics = open(self.metrics_path, "a")  # noqa: SIM115 - closed in finish
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()

    def devices(self, model, *tensors: torch.Tensor) -> dict:
        """Where the parameters and the batch are, for metrics.jsonl (the GPU smoke asserts it)."""
        return {"device": str(self.device), "param_device": str(next(model.parameters()).device),
                "batch_device": str(tensors[0].device) if tensors else None,
                "bf16": self.bf16}

    def save_model(self, base, tok, folder: Path) -> None:
        """The policy's HF weights and tokenizer in `folder` (rank 0), loadable with
        from_pretrained. Call it on every process: FSDP shards are gathered first (a
        collective). Written beside and renamed in, so a kill never leaves a half-written
        model where a loader (the exam, a resumed flow) would take it for a whole one, and an
        old folder's files are replaced, never rewritten in place (hard links stay valid)."""
        from r1data.trainers.dist import full_state_dict

        weights = full_state_dict(base)  # a collective under FSDP
        if self.rank != 0:
            return
        tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
        for d in (tmp, old):
            shutil.rmtree(d, ignore_errors=True)
        base.save_pretrained(tmp, state_dict=weights)
        tok.save_pretrained(tmp)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    def finish(self, base, tok, config: dict) -> None:
        """Final weights, tokenizer and config in out/model (rank 0), then a barrier so no
        process exits while rank 0 is still writing."""
        from r1data.trainers.dist import barrier

        if self.rank == 0 and self._metrics is not None:
            self._metrics.close()
        self.save_model(base, tok, self.out / "model")
        if self.rank == 0:
            (self.out / "config.json").write_text(json.dumps(config, indent=2))
        barrier()


def peak_rss_mib() -> float:
    """This process's peak resident memory: VmHWM from /proc/self/status, which exec resets.
    ru_maxrss does not: a child started by fork/vfork + exec (subprocess, torchrun's workers)
    reports its parent's peak when that is larger (measured: a child of a 413 MiB parent
    reports 413 MiB by ru_maxrss, 13 MiB by VmHWM). ru_maxrss where there is no /proc
    (kB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024)


def peak_memory(device: torch.device) -> dict:
    """Peak memory so far: CUDA allocator peak on a GPU, the process's peak RSS everywhere."""
    import torch

    out = {"peak_rss_mib": peak_rss_mib()}
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out
