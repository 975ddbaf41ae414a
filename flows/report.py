"""What a flow run leaves for people: a markdown artifact in Prefect and the HTML report page."""

from __future__ import annotations

import shlex
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from r1data.flows.config import PipelineConfig


def exam_results(results: dict) -> dict[str, dict]:
    """The flow's exams in the order it ran them: who (base, teacher, ...) -> exam scores."""
    return {k.removeprefix("exam_"): v for k, v in results.items() if k.startswith("exam_")}


def exam_table(exams: dict[str, dict]) -> str:
    """The held-out exam, one line per model (r1data.exam.table)."""
    from r1data.exam import table

    return table(exams)


def _table(title: str, rows: list[dict], cols: list[str | tuple[str, str]]) -> list[str]:
    """A markdown section of the artifact: its heading, then a table of the given columns
    (a key, or a (header, key) pair), one line per row."""
    pairs = [(c, c) if isinstance(c, str) else c for c in cols]
    return ["", f"## {title}", "", "| " + " | ".join(head for head, _ in pairs) + " |",
            "|" + "---|" * len(pairs),
            *("| " + " | ".join(f"{r[key]}" for _, key in pairs) + " |" for r in rows)]


def report_markdown(cfg: PipelineConfig, results: dict) -> str:
    """The run's artifact: funnel, pass rates, evaluations and where the outputs are."""
    from r1data import query
    from r1data.store import Store

    store = Store(cfg.store)
    funnel = query.run(store, query.report_sql("funnel")).pl().to_dicts()
    rate = query.run(store, query.report_sql("pass_rate")).pl().to_dicts()
    lines = [f"# r1data `{cfg.name}` ({cfg.flow})"]
    lines += _table("Funnel", funnel, ["run", "source", "outcome", "samples", "fraction"])
    lines += _table("Pass rate", rate, ["run", "source", "prompts",
                                        ("mean pass@1", "mean_pass_at_1"), ("pass@n", "pass_at_n")])
    lines += ["", "## Outputs", "", f"- store: `{cfg.store}`"]
    if "export" in results:
        exp = results["export"] or {}
        lines.append(f"- dataset: `{exp['out']}`" if exp.get("out")
                     else f"- dataset: none ({exp.get('skipped', 'not exported')})")
    names = {"cold_start": "cold-start model", "rl": "RL policy", "sft": "stage-3 SFT model",
             "rl2": "final model (second RL)", "student": "student"}
    for key, label in names.items():
        if key in results:
            r = results[key]
            extra = f" (last step reward {r['reward']})" if "reward" in r else ""
            lines.append(f"- {label}: `{r['model']}`{extra}")
    if results.get("html"):
        lines.append(f"- report: `{results['html']}`")
    if results.get("serve"):
        lines.append(f"- browse the store: `{results['serve']}`")
    cold = results.get("cold_data") or {}
    if "funnel" in cold:  # the self-harvested cold start
        lines += ["", "## Cold start (self-harvested)", "", "| step | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in cold["funnel"].items() if k != "selection"]
        lines += [f"| selection {k} | {v} |" for k, v in cold["funnel"]["selection"].items()
                  if isinstance(v, (int, float))]
        lines += ["", "Distinctness of the base model's correct samples: "
                  + ", ".join(f"{k} {v}" for k, v in cold["distinct"].items())]
    exams = exam_results(results)
    if exams:
        lines += ["", f"## Held-out exam (k={cfg.exam.k}, T 0.6, top-p 0.95)", "",
                  exam_table(exams)]
    ifexams = [results[k] for k in ("ifexam_sft", "ifexam_final") if k in results]
    if ifexams:
        lines += _table("Instruction following (stage 4's held-out general prompts)", ifexams,
                        ["run", "prompts", "k", ("instruction rate", "instruction_rate"),
                         ("prompt rate", "prompt_rate")])
    evals = [results[k] for k in ("eval", "eval_student") if k in results]
    if evals:
        lines += _table("Evaluation (R1 protocol)", evals,
                        ["run", "prompts", "k", ("pass@1", "pass_at_1"), ("cons@k", "cons_at_k"),
                         ("pass@k", "pass_at_k")])
    return "\n".join(lines)


def html_report(cfg: PipelineConfig, results: dict | None = None) -> Path:
    """The offline HTML page next to the store, with every training log the flow wrote, the
    flow's exams in its order and, with exam_every, each policy's exam curve by its reward."""
    from r1data.report import render
    from r1data.store import Store

    dirs = [cfg.cold_dir(), cfg.policy_dir(), cfg.sft_dir(), cfg.policy2_dir(),
            cfg.student_dir()]
    logs = [d / "metrics.jsonl" for d in dirs if (d / "metrics.jsonl").exists()]
    start = "base" if cfg.flow == "r1_zero" else "cold_start"
    curves = {prefix: {"log": d / "metrics.jsonl", "start": first, "steps": r.max_steps}
              for prefix, d, r, first in (("rl", cfg.policy_dir(), cfg.rl, start),
                                          ("final", cfg.policy2_dir(), cfg.rl2, "sft"))
              if r is not None and r.exam_every and (d / "metrics.jsonl").exists()}
    return render(Store(cfg.store), Path(cfg.store).parent / "reports" / f"{cfg.name}.html",
                  logs, exam_labels=list(exam_results(results or {})) or None,
                  exam_curves=curves)


def serve_command(cfg: PipelineConfig) -> str:
    """The command that browses this run's store in the web UI."""
    return f"r1data serve --store {shlex.quote(cfg.store)}"


@task(name="report")
def report(cfg: PipelineConfig, results: dict) -> str:
    """The run's markdown artifact in Prefect (funnel, pass rates, evaluations, outputs)."""
    md = report_markdown(cfg, results)
    create_markdown_artifact(markdown=md, key=f"r1data-{cfg.name}".lower().replace("_", "-"),
                             description=f"r1data {cfg.flow} report")
    return md
