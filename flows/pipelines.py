"""One Prefect flow per pipeline, each reading top to bottom as its stages (DeepSeek-R1 §2.3).

A flow takes the path of its YAML (a scheduled deployment re-reads it on every run), runs its
stages (stages.py) in order on the task runner `r1data flow run` gives it (run.py), and ends with
the report. Models the flow trains are chained here, from one stage to the next.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from r1data.flows.config import PipelineConfig, load_pipeline
from r1data.flows.report import html_report, report, serve_command
from r1data.flows.stages import (
    cold_start_data,
    cold_start_sft,
    distill_student,
    evaluate_model,
    export_curated,
    export_exam,
    export_rl_prompts,
    filter_samples,
    generate_part,
    generate_samples,
    generated,
    ingest_prompts,
    reasoning_rl,
    reset_if_teacher_changed,
    run_stage,
    second_rl,
    select_samples,
    sft_on_curated,
)


def cold_start(cfg: PipelineConfig, r: dict) -> Path | None:
    """R1 stage 1: SFT of the base on worked solutions in the R1 format. Returns the
    cold-started model (None when the config has no cold_start section)."""
    if cfg.cold_start is None:
        return None
    r["cold_data"] = run_stage(cold_start_data, cfg)
    r["cold_start"] = run_stage(cold_start_sft, cfg)
    return cfg.cold_dir() / "model"


def rejection_sampling(cfg: PipelineConfig, r: dict, teacher: Path | None) -> None:
    """R1 stage 3a: the teacher (named in `generate.model`, or the model this flow trained)
    samples n answers per prompt, the verifiers filter them, k per prompt are selected and
    exported."""
    reset_if_teacher_changed(cfg, teacher)
    if cfg.generate.partitions > 1 and not generated(cfg):
        parts = [generate_part.submit(cfg, teacher, k) for k in range(cfg.generate.partitions)]
        r["generate_parts"] = [f.result() for f in parts]  # concurrently on Dask
    r["generate"] = run_stage(generate_samples, cfg, teacher)
    r["filter"] = run_stage(filter_samples, cfg)
    r["select"] = run_stage(select_samples, cfg)
    r["export"] = run_stage(export_curated, cfg)


def evaluation(cfg: PipelineConfig, model: Path, data: Path, who: str | None = None) -> dict:
    """The R1 protocol for one model: evaluation run eval-<name>, or eval-<name>-<who> as task
    eval_<who>, a stage with a cache of its own."""
    if who is None:
        return run_stage(evaluate_model, cfg, model, data, f"eval-{cfg.name}")
    return run_stage(evaluate_model.with_options(name=f"eval_{who}"), cfg, model, data,
                     f"eval-{cfg.name}-{who}")


def finish(cfg: PipelineConfig, r: dict) -> dict:
    """The report: the HTML page beside the store, the markdown artifact, and how to browse."""
    r["html"] = str(html_report(cfg))
    r["serve"] = serve_command(cfg)
    report(cfg, r)
    get_run_logger().info("report: %s  browse the store: %s", r["html"], r["serve"])
    return r


@flow(name="r1data-curate", log_prints=True)
def curate(config_path: str) -> dict:
    """prompts -> [cold start] -> rejection sampling: generate, filter, select, export."""
    cfg = load_pipeline(config_path)
    r = {"prompts": run_stage(ingest_prompts, cfg)}
    rejection_sampling(cfg, r, teacher=cold_start(cfg, r))
    return finish(cfg, r)


@flow(name="r1data-distill", log_prints=True)
def distill(config_path: str) -> dict:
    """curate, then SFT of a student on the export and its R1 evaluation on held-out prompts."""
    cfg = load_pipeline(config_path)
    r = {"prompts": run_stage(ingest_prompts, cfg)}
    rejection_sampling(cfg, r, teacher=cold_start(cfg, r))
    r["export_eval"] = run_stage(export_exam, cfg)
    r["student"] = run_stage(distill_student, cfg)
    r["eval"] = evaluation(cfg, cfg.student_dir() / "model", cfg.eval_data_dir())
    return finish(cfg, r)


@flow(name="r1data-r1_zero", log_prints=True)
def r1_zero(config_path: str) -> dict:
    """R1-Zero: the prompts alone, GRPO straight from the base model (`rl.model`), evaluation."""
    cfg = load_pipeline(config_path)
    r = {"prompts": run_stage(ingest_prompts, cfg)}
    r["rl_data"] = run_stage(export_rl_prompts, cfg)
    r["rl"] = run_stage(reasoning_rl, cfg, cfg.rl.model)
    r["eval"] = evaluation(cfg, cfg.policy_dir() / "model", cfg.rl_data_dir())
    return finish(cfg, r)


@flow(name="r1data-r1_pipeline", log_prints=True)
def r1_pipeline(config_path: str) -> dict:
    """The DeepSeek-R1 recipe: cold start -> reasoning RL -> rejection sampling with the RL
    policy as teacher -> SFT of the base -> second RL -> distillation -> evaluation."""
    cfg = load_pipeline(config_path)
    r = {"prompts": run_stage(ingest_prompts, cfg)}
    cold = cold_start(cfg, r)  # stage 1
    r["rl_data"] = run_stage(export_rl_prompts, cfg)  # stage 2: reasoning RL from the cold start
    r["rl"] = run_stage(reasoning_rl, cfg, cold)
    rejection_sampling(cfg, r, teacher=cfg.policy_dir() / "model")  # stage 3
    r["sft"] = run_stage(sft_on_curated, cfg)  # the base, on the curated samples
    r["rl2"] = run_stage(second_rl, cfg, cfg.sft_dir() / "model")  # stage 4
    r["student"] = run_stage(distill_student, cfg)  # distillation
    # evaluation on the held-out prompts, which no stage above sampled for training
    r["eval"] = evaluation(cfg, cfg.policy2_dir() / "model", cfg.rl_data_dir())
    r["eval_student"] = evaluation(cfg, cfg.student_dir() / "model", cfg.rl_data_dir(),
                                   "student")
    return finish(cfg, r)


FLOWS = {"curate": curate, "distill": distill, "r1_zero": r1_zero, "r1_pipeline": r1_pipeline}
