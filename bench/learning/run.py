"""Learning that transfers: base -> self-harvested cold start (teacher) -> student, on the exam.

Reproduces the "Learning" table of BENCHMARKS.md. Each step is cached in the store / on disk,
so a rerun resumes; `--steps` picks which to run (default: all, in order).

    python bench/learning/run.py --work runs/learning --per-family 13 --k 4        # quick exam
    python bench/learning/run.py --work runs/learning --steps base                 # base only

Steps: base (exam of the base), harvest (cold-start rows), coldstart (SFT of the base on them
-> the teacher), teacher (exam + distinctness of its correct samples on the curation prompts),
student (curate the teacher's samples, SFT the base on them, exam), rl (GRPO from the teacher on
the recipe's RL prompts with the recipe's settings, the exam every --rl-exam-every steps, and
each exam's paired gain over the teacher's).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

STEPS = ("base", "harvest", "coldstart", "teacher", "student", "rl")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="runs/learning")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--per-family", type=int, default=13)  # 5 families: 65 prompts
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--harvest-n", type=int, default=16)
    ap.add_argument("--synth-n", type=int, default=32)
    ap.add_argument("--gym-n", type=int, default=16)
    ap.add_argument("--cs-steps", type=int, default=40)
    ap.add_argument("--cs-lr", type=float, default=5e-5)
    ap.add_argument("--cs-batch", type=int, default=8)
    ap.add_argument("--student-steps", type=int, default=40)
    ap.add_argument("--student-name", default="student")  # its folder and exam label
    ap.add_argument("--plain-share", type=float, default=0.5)  # student rows without the suffix
    ap.add_argument("--curate-n", type=int, default=8)  # teacher samples per curation prompt
    ap.add_argument("--rl-lr", type=float, default=5e-5)
    ap.add_argument("--rl-steps", type=int, default=20)
    ap.add_argument("--rl-exam-every", type=int, default=10)
    args = ap.parse_args()

    from r1data.exam import ExamConfig, evaluate_exam, table
    from r1data.models import resolve
    from r1data.store import Store

    work = Path(args.work)
    store = Store(work / "store")
    base = resolve(args.model)
    exam = ExamConfig(per_family=args.per_family, k=args.k, max_tokens=args.max_tokens)
    steps = args.steps.split(",")
    log = work / "results.jsonl"
    results: dict[str, dict] = {}

    def record(step: str, obj: dict, started: float) -> None:
        obj = {**obj, "step": step, "seconds": round(time.perf_counter() - started, 1)}
        with open(log, "a") as fh:
            fh.write(json.dumps(obj, default=str) + "\n")
        print(json.dumps(obj, default=str)[:2000], flush=True)

    if "base" in steps:
        t = time.perf_counter()
        results["base"] = evaluate_exam(store, base, "base", exam, progress=False)
        record("base", {"exam": results["base"]}, t)
    teacher = work / "teacher" / "model"
    if "harvest" in steps:
        from r1data.harvest import TRAIN_GYM, HarvestConfig, harvest

        t = time.perf_counter()
        cfg = HarvestConfig(model=base, n=args.harvest_n, synth_n=args.synth_n,
                            gym={f: args.gym_n for f in TRAIN_GYM})
        record("harvest", harvest(store, cfg, work / "coldstart-data", progress=False), t)
    if "coldstart" in steps:
        from r1data.trainers.sft import SFTConfig, train_sft

        t = time.perf_counter()
        last = train_sft(SFTConfig(data=str(work / "coldstart-data"), model=base,
                                   out=str(work / "teacher"), max_steps=args.cs_steps,
                                   batch_size=args.cs_batch, lr=args.cs_lr, max_len=512,
                                   bf16=None, save_every=0, eval_every=0), progress=False)
        record("coldstart", {"steps": args.cs_steps, "lr": args.cs_lr, **last}, t)
    if "teacher" in steps:
        t = time.perf_counter()
        results["teacher"] = evaluate_exam(store, str(teacher), "teacher", exam, progress=False)
        record("teacher", {"exam": results["teacher"], "distinct": curate(store, teacher, args)},
               t)
    if "student" in steps:
        from r1data.export import export
        from r1data.selection import SelectConfig, select
        from r1data.trainers.sft import SFTConfig, train_sft

        t = time.perf_counter()
        select(store, "curate-teacher", "student-data", SelectConfig(k=4, policy="diverse"))
        export(store, "student-data", work / f"{args.student_name}-data", fmt="sft", test_size=0.0,
               plain_share=args.plain_share, overwrite=True)
        train_sft(SFTConfig(data=str(work / f"{args.student_name}-data"), model=base,
                            out=str(work / args.student_name), max_steps=args.student_steps,
                            batch_size=args.cs_batch, lr=args.cs_lr, max_len=512, bf16=None,
                            save_every=0, eval_every=0), progress=False)
        name = args.student_name
        results[name] = evaluate_exam(store, str(work / name / "model"), name, exam,
                                      progress=False)
        record(args.student_name, {"exam": results[args.student_name]}, t)
    if "rl" in steps:
        t = time.perf_counter()
        results |= rl(store, work, teacher, exam, args)
        record("rl", {"exam": results}, t)
    if results:
        print(table(results))


def rl(store, work: Path, teacher: Path, exam, args) -> dict:
    """GRPO from the teacher with r1_recipe.yaml's rl settings (but lr and steps) on its RL
    prompts (synthetic arithmetic, expression and word problems, seed 1: none of the exam's
    families); each saved step sits the exam, and its paired gain over the teacher is logged."""
    import yaml

    from r1data.exam import evaluate_exam, gain, run_name
    from r1data.export import export_prompts
    from r1data.flows.keys import TASK_PROMPTS
    from r1data.prompts import ingest_synth
    from r1data.store import Store
    from r1data.trainers.checkpoint import step_dir
    from r1data.trainers.grpo import GRPOConfig, train_grpo

    recipe = yaml.safe_load((Path(__file__).parents[2] / "flows/examples/r1_recipe.yaml")
                            .read_text())
    data, out = work / "rl-data", work / f"rl-lr{args.rl_lr:g}"
    if not data.exists():  # a store of their own: the bench's holds other synthetic prompts
        syn, prompts = recipe["prompts"]["synth"], Store(work / "rl-store")
        ingest_synth(prompts, syn["kinds"], syn["n"], syn["seed"], syn["level"])
        export_prompts(prompts, data, where=TASK_PROMPTS, test_size=0.1)
    settings = {k: v for k, v in recipe["rl"].items() if k not in ("exam_every", "lr",
                                                                    "max_steps")}
    train_grpo(GRPOConfig(data=str(data), model=str(teacher), out=str(out), lr=args.rl_lr,
                          max_steps=args.rl_steps, save_every=args.rl_exam_every,
                          save_weights=True, **settings), progress=False)
    results = {}
    for step in range(args.rl_exam_every, args.rl_steps + 1, args.rl_exam_every):
        label = f"rl-lr{args.rl_lr:g}-s{step}"
        results[label] = evaluate_exam(store, str(step_dir(out, step) / "model"), label, exam,
                                       progress=False)
        for suffix in (True, False):
            if store.read_manifest("eval", run_name("teacher", suffix)):  # (--steps teacher)
                print(json.dumps(gain(store, run_name("teacher", suffix),
                                      run_name(label, suffix))), flush=True)
    return results


def curate(store, teacher: Path, args) -> dict:
    """The teacher samples the quickstart's curation prompts (R1 rejection sampling); returns
    the distinctness of each prompt's correct samples (goal: at least half distinct)."""
    from r1data.config import GenerateConfig
    from r1data.filtering import FilterConfig, filter_run
    from r1data.generate import generate
    from r1data.harvest import distinctness
    from r1data.prompts import ingest_synth

    ingest_synth(store, ["arithmetic", "expression", "word"], 16, 0, 1)
    gcfg = GenerateConfig(model=str(teacher), n=args.curate_n, max_tokens=args.max_tokens,
                          system_prompt=None)
    generate(store, gcfg, "curate-teacher", sources=["synth/arithmetic", "synth/expression",
                                                     "synth/word"], progress=False)
    filter_run(store, "curate-teacher", FilterConfig(), progress=False)
    d = distinctness(store, "curate-teacher")
    return {k: v for k, v in d.items() if k != "per_prompt"}


if __name__ == "__main__":
    main()
