"""One Prefect flow per pipeline, each reading top to bottom as its stages (DeepSeek-R1 §2.3).

A flow takes the path of its YAML (a scheduled deployment re-reads it on every run), runs its
stages (stages.py) in order on the task runner `r1data flow run` gives it (run.py), and ends with
the report. Models the flow trains are chained here, from one stage to the next.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from r1data.flows.config import PipelineConfig, load_pipeline
from r1data.flows.report import exam_results, exam_table, html_report, report, serve_command
from r1data.flows.stages import (
    cold_start_data,
    cold_start_sft,
    distill_student,
    evaluate_model,
    exam_model,
    exam_steps,
    export_curated,
    export_exam,
    export_rl_prompts,
    filter_samples,
    generate_part,
    generate_samples,
    generated,
    ingest_prompts,
    instruction_exam_model,
    mixed_rl_prompts,
    reasoning_rl,
    reset_if_teacher_changed,
    run_stage,
    second_rl,
    select_samples,
    sft_on_curated,
    step_dir,
)


def exam(cfg: PipelineConfig, r: dict, model: str | Path, who: str) -> None:
    """The held-out exam for one model the flow makes (a base by name, or a trained folder),
    as task exam_<who>, a stage with a cache of its own; nothing without an `exam:` section."""
    if cfg.exam is not None:
        r[f"exam_{who}"] = run_stage(exam_model.with_options(name=f"exam_{who}"), cfg, model,
                                     who)


def exam_curve(cfg: PipelineConfig, r: dict, rl, out: Path, prefix: str) -> None:
    """The RL policy after every rl.exam_every steps on the exam: the curve beside the reward
    (its first point is the model RL started from, its last the policy, examined as such)."""
    for step in exam_steps(rl)[:-1]:
        exam(cfg, r, step_dir(out, step) / "model", f"{prefix}_step{step}")


def cold_start(cfg: PipelineConfig, r: dict, who: str = "teacher") -> Path | None:
    """R1 stage 1: SFT of the base on R1-format rows (its own verified samples, or written
    worked solutions); the base and the cold-started model are examined. Returns the
    cold-started model (None when the config has no cold_start section)."""
    if cfg.cold_start is None:
        return None
    exam(cfg, r, cfg.cold_start.model, "base")
    r["cold_data"] = run_stage(cold_start_data, cfg)
    r["cold_start"] = run_stage(cold_start_sft, cfg)
    exam(cfg, r, cfg.cold_dir() / "model", who)
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
    """The report: the HTML page beside the store, the markdown artifact, and how to browse;
    the last lines logged are the exam table (base vs teacher vs student...), also returned as
    `exams` (the table) for the CLI to print last."""
    exams = exam_results(r)
    if exams:
        r["exams"] = exam_table(exams)
    r["html"] = str(html_report(cfg, r))
    r["serve"] = serve_command(cfg)
    report(cfg, r)
    log = get_run_logger()
    log.info("report: %s  browse the store: %s", r["html"], r["serve"])
    if exams:
        log.info("held-out exam (R1 protocol, k=%d):\n%s", cfg.exam.k, r["exams"])
    return r


def curated(cfg: PipelineConfig) -> dict:
    """The stages curate and distill share: prompts, [cold start, else the named teacher's
    exam], rejection sampling."""
    r = {"prompts": run_stage(ingest_prompts, cfg)}
    teacher = cold_start(cfg, r)
    if teacher is None:
        exam(cfg, r, cfg.generate.model, "teacher")
    rejection_sampling(cfg, r, teacher=teacher)
    return r


@flow(name="r1data-curate", log_prints=True)
def curate(config_path: str) -> dict:
    """prompts -> [cold start] -> rejection sampling: generate, filter, select, export."""
    cfg = load_pipeline(config_path)
    r = curated(cfg)
    return finish(cfg, r)


@flow(name="r1data-distill", log_prints=True)
def distill(config_path: str) -> dict:
    """curate, then SFT of a student on the export; the exam of base, teacher and student,
    and (eval:) the R1 evaluation of the student on the held-out curated prompts."""
    cfg = load_pipeline(config_path)
    r = curated(cfg)
    r["student"] = run_stage(distill_student, cfg)
    exam(cfg, r, cfg.student_dir() / "model", "student")
    if cfg.eval is not None:  # the R1 protocol on the held-out curated prompts
        r["export_eval"] = run_stage(export_exam, cfg)
        r["eval"] = evaluation(cfg, cfg.student_dir() / "model", cfg.eval_data_dir())
    return finish(cfg, r)


@flow(name="r1data-r1_zero", log_prints=True)
def r1_zero(config_path: str) -> dict:
    """R1-Zero: the prompts alone, GRPO straight from the base model (`rl.model`), evaluation."""
    cfg = load_pipeline(config_path)
    r = {"prompts": run_stage(ingest_prompts, cfg)}
    exam(cfg, r, cfg.rl.model, "base")
    r["rl_data"] = run_stage(export_rl_prompts, cfg)
    r["rl"] = run_stage(reasoning_rl, cfg, cfg.rl.model)
    exam_curve(cfg, r, cfg.rl, cfg.policy_dir(), "rl")
    exam(cfg, r, cfg.policy_dir() / "model", "rl")
    if cfg.eval is not None:
        r["eval"] = evaluation(cfg, cfg.policy_dir() / "model", cfg.rl_data_dir())
    return finish(cfg, r)


@flow(name="r1data-r1_pipeline", log_prints=True)
def r1_pipeline(config_path: str) -> dict:
    """The DeepSeek-R1 recipe: cold start -> reasoning RL -> rejection sampling with the RL
    policy as teacher -> SFT of the base -> second RL -> distillation -> evaluation."""
    cfg = load_pipeline(config_path)
    r = {"prompts": run_stage(ingest_prompts, cfg)}
    cold = cold_start(cfg, r, "cold_start")  # stage 1 (and the base's exam)
    r["rl_data"] = run_stage(export_rl_prompts, cfg)  # stage 2: reasoning RL from the cold start
    r["rl"] = run_stage(reasoning_rl, cfg, cold)
    exam_curve(cfg, r, cfg.rl, cfg.policy_dir(), "rl")
    exam(cfg, r, cfg.policy_dir() / "model", "rl")
    rejection_sampling(cfg, r, teacher=cfg.policy_dir() / "model")  # stage 3
    r["sft"] = run_stage(sft_on_curated, cfg)  # the base, on the curated samples
    exam(cfg, r, cfg.sft_dir() / "model", "sft")
    final = cfg.sft_dir() / "model"
    if cfg.rl2 is not None:  # stage 4 (rl2: null skips it: the stage-3 model is the final one)
        second_stage_rl(cfg, r)
        final = cfg.policy2_dir() / "model"
    r["student"] = run_stage(distill_student, cfg)  # distillation
    exam(cfg, r, cfg.student_dir() / "model", "student")
    if cfg.eval is not None:  # the held-out task prompts, which no stage above sampled for training
        r["eval"] = evaluation(cfg, final, cfg.rl_data_dir())
        r["eval_student"] = evaluation(cfg, cfg.student_dir() / "model", cfg.rl_data_dir(),
                                       "student")
    return finish(cfg, r)


def second_stage_rl(cfg: PipelineConfig, r: dict) -> None:
    """R1 stage 4 from the stage-3 model: with rl2.general, on the task prompts mixed with
    general instruction prompts, instruction following examined before and after it."""
    start = cfg.sft_dir() / "model"
    if cfg.rl2.general is not None:
        r["rl2_data"] = run_stage(mixed_rl_prompts, cfg)
        r["ifexam_sft"] = run_stage(instruction_exam_model.with_options(name="ifexam_sft"),
                                    cfg, start, "sft")
    r["rl2"] = run_stage(second_rl, cfg, start)
    exam_curve(cfg, r, cfg.rl2, cfg.policy2_dir(), "final")
    exam(cfg, r, cfg.policy2_dir() / "model", "final")
    if cfg.rl2.general is not None:
        r["ifexam_final"] = run_stage(instruction_exam_model.with_options(name="ifexam_final"),
                                      cfg, cfg.policy2_dir() / "model", "final")


FLOWS = {"curate": curate, "distill": distill, "r1_zero": r1_zero, "r1_pipeline": r1_pipeline}
