"""`r1data train sft|grpo`: thin commands over the trainers; every default is the config's."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from r1data.trainers.grpo import GRPOConfig
from r1data.trainers.sft import SFTConfig

app = typer.Typer(no_args_is_help=True, help="Compact SFT and GRPO trainers.")
_S, _G = SFTConfig.model_fields, GRPOConfig.model_fields


@app.command("sft")
def sft(
    data: Annotated[str, typer.Option(help="Dataset folder with `messages` (--format sft).")],
    model: Annotated[str, typer.Option(help="Model folder to fine-tune.")],
    out: Annotated[str, typer.Option(help="Output folder (checkpoint, metrics, model/).")],
    epochs: Annotated[float, typer.Option()] = _S["epochs"].default,
    max_steps: Annotated[int | None, typer.Option(help="Overrides epochs.")] = None,
    batch_size: Annotated[int, typer.Option()] = _S["batch_size"].default,
    grad_accum: Annotated[int, typer.Option()] = _S["grad_accum"].default,
    max_len: Annotated[int, typer.Option()] = _S["max_len"].default,
    packing: Annotated[bool, typer.Option()] = _S["packing"].default,
    lr: Annotated[float, typer.Option()] = _S["lr"].default,
    warmup_steps: Annotated[int, typer.Option()] = _S["warmup_steps"].default,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast (default: where the hardware has "
                                             "it: CUDA, AMX).")] = _S["bf16"].default,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda when "
                                                   "available).")] = _S["device"].default,
    fsdp: Annotated[bool, typer.Option(help="Under torchrun: shard weights (FSDP2), not DDP.")
                    ] = _S["fsdp"].default,
    seed: Annotated[int, typer.Option()] = _S["seed"].default,
    progress: Annotated[bool, typer.Option()] = True,
):
    """Supervised fine-tuning on the assistant turns (cold start, distillation).

    Example: r1data train sft --data data/sft --model models/smollm2 --out runs/cold --epochs 2
    (several processes: torchrun --nproc_per_node 2 -m r1data.cli train sft ...)
    """
    from r1data.trainers.sft import train_sft

    cfg = SFTConfig(data=data, model=model, out=out, epochs=epochs, max_steps=max_steps,
                    batch_size=batch_size, grad_accum=grad_accum, max_len=max_len,
                    packing=packing, lr=lr, warmup_steps=warmup_steps, bf16=bf16, fsdp=fsdp,
                    seed=seed, device=device)
    _echo(train_sft(cfg, progress=progress))


def _echo(result: dict) -> None:
    """The final metrics, once: under torchrun only rank 0 prints."""
    if os.environ.get("RANK", "0") == "0":
        typer.echo(json.dumps(result))


def _rewards(items: list[str]) -> dict[str, float]:
    from r1data.errors import ConfigError

    out = {}
    for item in items:
        name, _, weight = item.partition(":")
        try:
            out[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"--reward {item!r}: expected NAME:WEIGHT") from None
    return out


@app.command("grpo")
def grpo(
    data: Annotated[str, typer.Option(help="Dataset folder with prompt, answer (--format grpo).")],
    model: Annotated[str, typer.Option(help="Policy to start from.")],
    out: Annotated[str, typer.Option(help="Output folder.")],
    reward: Annotated[list[str] | None, typer.Option(
        help="NAME:WEIGHT, repeatable (accuracy, format, language, repetition, length, code).",
        show_default=" ".join(f"{k}:{v}" for k, v in _G["rewards"].default.items()))] = None,
    num_generations: Annotated[int, typer.Option(help="G per prompt (R1: 16).")
                               ] = _G["num_generations"].default,
    prompts_per_step: Annotated[int, typer.Option()] = _G["prompts_per_step"].default,
    max_steps: Annotated[int, typer.Option()] = _G["max_steps"].default,
    max_completion_length: Annotated[int, typer.Option()] = _G["max_completion_length"].default,
    temperature: Annotated[float, typer.Option()] = _G["temperature"].default,
    lr: Annotated[float, typer.Option()] = _G["lr"].default,
    beta: Annotated[float, typer.Option(help="KL coefficient (0: no reference model).")
                    ] = _G["beta"].default,
    eps_low: Annotated[float, typer.Option()] = _G["eps_low"].default,
    eps_high: Annotated[float, typer.Option(help="Clip-higher (DAPO: 0.28).")
                        ] = _G["eps_high"].default,
    loss_type: Annotated[str, typer.Option(help="grpo, dr_grpo, dapo or bnpo.")
                         ] = _G["loss_type"].default,
    scale_rewards: Annotated[str, typer.Option(help="group, batch or none.")
                             ] = _G["scale_rewards"].default,
    num_iterations: Annotated[int, typer.Option()] = _G["num_iterations"].default,
    mask_truncated: Annotated[bool, typer.Option()] = _G["mask_truncated"].default,
    dynamic_sampling: Annotated[bool, typer.Option()] = _G["dynamic_sampling"].default,
    rollout: Annotated[str, typer.Option(
        help="hf (forward passes with a KV cache) or vllm (colocated engine, weights synced "
             "each step).")] = _G["rollout"].default,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast (default: where the hardware has "
                                             "it: CUDA, AMX).")] = _G["bf16"].default,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda when "
                                                   "available).")] = _G["device"].default,
    micro_batch_size: Annotated[int | None, typer.Option(
        help="Rollouts per forward/backward (default: all); the update is the same.")
    ] = _G["micro_batch_size"].default,
    fsdp: Annotated[bool, typer.Option(help="Under torchrun: shard weights (FSDP2), not DDP.")
                    ] = _G["fsdp"].default,
    save_every: Annotated[int, typer.Option(
        help="Steps between checkpoints (0: only at the end); each keeps the resume state.")
    ] = _G["save_every"].default,
    save_weights: Annotated[bool, typer.Option(
        help="Also write the policy's HF weights at each save: OUT/steps/step-NNNNN/model.")
    ] = _G["save_weights"].default,
    seed: Annotated[int, typer.Option()] = _G["seed"].default,
    progress: Annotated[bool, typer.Option()] = True,
):
    """GRPO with rewards from the verifiers (the functions rejection sampling uses).

    Example: r1data train grpo --data data/grpo --model runs/cold/model --out runs/rl
    --reward accuracy:1.0 --reward format:0.2
    """
    from pydantic import ValidationError

    from r1data.errors import ConfigError
    from r1data.trainers.grpo import train_grpo

    try:
        cfg = GRPOConfig(data=data, model=model, out=out,
                         rewards=_rewards(reward) if reward else _G["rewards"].default,
                         num_generations=num_generations, prompts_per_step=prompts_per_step,
                         max_steps=max_steps, max_completion_length=max_completion_length,
                         temperature=temperature, lr=lr, beta=beta, eps_low=eps_low,
                         eps_high=eps_high, loss_type=loss_type, scale_rewards=scale_rewards,
                         num_iterations=num_iterations, mask_truncated=mask_truncated,
                         dynamic_sampling=dynamic_sampling, rollout=rollout, bf16=bf16,
                         fsdp=fsdp, seed=seed, device=device,
                         micro_batch_size=micro_batch_size, save_every=save_every,
                         save_weights=save_weights)
    except ValidationError as e:
        err = e.errors()[0]
        cause = err.get("ctx", {}).get("error")
        msg = str(cause) if isinstance(cause, ConfigError) else err["msg"]
        raise ConfigError(f"field {'.'.join(map(str, err['loc']))!r}: {msg}") from None
    _echo(train_grpo(cfg, progress=progress))
