"""r1data's trainers beside TRL's on the same tiny model, data and settings, in one run.

    python bench/train.py                # SFT tokens/s and GRPO seconds/step, side by side

Both sides: fp32 on CPU, torch threads as set below, the same batch shapes, no evaluation or
checkpointing inside the timed steps. The first step of each is a warm-up and not timed.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import datasets
import torch


def clock(times: list[float]):
    """A TRL/transformers callback appending each optimizer step's wall time to `times`."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            times.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            times[-1] = time.perf_counter() - times[-1]

    return Clock()


def sft_rows(n=256):
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        steps = " ".join(f"step {k}: carry and add." for k in range(rng.randint(3, 12)))
        rows.append({"messages": [
            {"role": "user", "content": f"What is {a} + {b}?"},
            {"role": "assistant", "content": f"<think>\n{steps} {a} + {b} = {a + b}\n</think>\n"
                                             f"\\boxed{{{a + b}}}"}]})
    return rows


def bench_sft(model_dir: str, data: Path, tmp: Path, steps: int, batch: int, max_len: int):
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    from r1data.trainers.data import load_tokenizer
    from r1data.trainers.sft import SFTConfig, train_sft

    # r1data: tokens/s from its own per-step log (assistant tokens that carry loss)
    out = tmp / "r1_sft"
    train_sft(SFTConfig(data=str(data), model=model_dir, out=str(out), max_steps=steps + 1,
                        batch_size=batch, max_len=max_len, packing=True, eval_every=0,
                        save_every=0, lr=1e-4), progress=False)
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][1:]
    r1_tps = sum(r["input_tokens"] for r in log) / sum(r["seconds"] for r in log)

    # TRL: same data, packing, batch and length; tokens counted as trained label tokens
    ds = datasets.load_from_disk(str(data))["train"]
    times: list[float] = []
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        processing_class=load_tokenizer(model_dir), train_dataset=ds,
        args=TrlSFTConfig(output_dir=str(tmp / "trl_sft"), max_steps=steps + 1,
                          per_device_train_batch_size=batch, max_length=max_len, packing=True,
                          assistant_only_loss=False, report_to=[], use_cpu=True,
                          save_strategy="no", logging_steps=1000, learning_rate=1e-4),
        callbacks=[clock(times)])
    seen: list[int] = []
    original = trainer.compute_loss

    def counting(model, inputs, *a, **k):  # input tokens actually fed (padding-free packing)
        mask = inputs.get("attention_mask")
        seen.append(int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel()))
        return original(model, inputs, *a, **k)

    trainer.compute_loss = counting
    trainer.train()
    trl_tps = sum(seen[1:]) / sum(times[1:])
    return r1_tps, trl_tps


def bench_grpo(model_dir: str, tmp: Path, steps: int, G: int, prompts: int, max_new: int,
               bf16: bool = False):
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig as TrlGRPOConfig
    from trl import GRPOTrainer

    from r1data.filters.rewards import accuracy_reward
    from r1data.trainers.data import load_tokenizer
    from r1data.trainers.grpo import GRPOConfig, train_grpo

    rows = [{"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
             "answer": str(a + b), "domain": "math"} for a in range(10) for b in range(10)]
    data = tmp / "grpo"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(data))

    out = tmp / f"r1_grpo_{bf16}"
    train_grpo(GRPOConfig(data=str(data), model=model_dir, out=str(out),
                          rewards={"accuracy": 1.0}, num_generations=G, prompts_per_step=prompts,
                          max_steps=steps + 1, max_completion_length=max_new, lr=1e-6,
                          beta=0.0, loss_type="dapo", save_every=0, bf16=bf16), progress=False)
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][1:]
    r1_step = sum(r["seconds"] for r in log) / len(log)

    times: list[float] = []
    tok = load_tokenizer(model_dir)
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        reward_funcs=[accuracy_reward], processing_class=tok,
        train_dataset=datasets.load_from_disk(str(data))["train"],
        args=TrlGRPOConfig(output_dir=str(tmp / f"trl_grpo_{bf16}"), max_steps=steps + 1,
                           per_device_train_batch_size=G * prompts, num_generations=G,
                           max_completion_length=max_new, learning_rate=1e-6, beta=0.0,
                           loss_type="dapo", report_to=[], use_cpu=True, save_strategy="no",
                           logging_steps=1000, temperature=1.0, top_p=1.0, top_k=0, bf16=bf16),
        callbacks=[clock(times)])
    trainer.train()
    trl_step = sum(times[1:]) / len(times[1:])
    return r1_step, trl_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from r1data.tinymodel import build_tiny_model

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = str(build_tiny_model(tmp / "m", hidden_size=256, num_layers=4, num_heads=4))
        data = tmp / "sft"
        datasets.DatasetDict({"train": datasets.Dataset.from_list(sft_rows())}).save_to_disk(
            str(data))
        r1_tps, trl_tps = bench_sft(model, data, tmp, args.steps, batch=8, max_len=512)
        r1_step, trl_step = bench_grpo(model, tmp, args.steps, G=8, prompts=4, max_new=64)
        r1_bf, trl_bf = bench_grpo(model, tmp, args.steps, G=8, prompts=4, max_new=64,
                                   bf16=True)
    print(f"tiny Llama (hidden 256, 4 layers), fp32 CPU, {args.threads} thread(s), "
          f"{args.steps} timed steps")
    print(f"{'':26s} {'r1data':>10s} {'TRL':>10s} {'ratio':>8s}")
    print(f"{'SFT input tokens/s (packed)':26s} {r1_tps:10.0f} {trl_tps:10.0f} "
          f"{r1_tps / trl_tps:7.2f}x")
    print(f"{'GRPO s/step (4x8, 64 new)':26s} {r1_step:10.2f} {trl_step:10.2f} "
          f"{r1_step / trl_step:7.2f}x")
    print(f"{'GRPO s/step, bf16 both':26s} {r1_bf:10.2f} {trl_bf:10.2f} {r1_bf / trl_bf:7.2f}x")


if __name__ == "__main__":
    main()
