"""The stages of every flow as Prefect tasks, and the order each flow runs them in.

curate: prompts -> [cold start] -> generate -> filter -> select -> export
distill: curate -> student SFT -> R1 evaluation of the student
r1_zero: prompts -> GRPO from the base model -> evaluation
r1_pipeline: cold-start SFT -> reasoning GRPO -> rejection sampling with the RL policy as teacher
  -> SFT of the base on the curated samples -> second GRPO (general rewards) -> distillation
  -> evaluation of the final model and the student

Each task is thin over the library (which is itself resumable) and carries a cache key made of
its configuration, the store shards and the model it reads, so a rerun skips what is done and
redoes what changed. Stage failures fail that task with the library's one-line message.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from r1data.flows.config import PipelineConfig

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _shard_names(store_root: str, table: str, part: str | None = None) -> list[str]:
    from r1data.store import Store

    return Store(store_root).shard_names(table, part) if Path(store_root).is_dir() else []


def _folder_stamp(folder: Path) -> list | None:
    """A model's or dataset's identity for cache keys (its weight or Arrow files): retrained
    weights or rewritten data invalidate what follows."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*/*.arrow")) or \
        [folder / "config.json"]
    return [[str(f.relative_to(folder)), f.stat().st_mtime_ns, f.stat().st_size]
            for f in files if f.exists()] or None


# The configuration each stage depends on: changing `eval.k` re-runs the evaluation, not the
# cold start. What a stage reads from earlier stages is in its `reads` (shards, model stamps).
STAGE_SECTIONS = {
    "prompts": ["prompts"], "cold_data": ["cold_start"], "cold_start": ["cold_start"],
    "generate": ["generate", "export"], "filter": ["filter"], "select": ["select"],
    "export": ["select", "export"], "export_eval": ["select", "export"],
    "student": ["export", "student"], "eval": ["export", "eval"],
    "eval_student": ["export", "eval"], "rl_data": ["generate", "export"], "rl": ["rl"],
    "sft": ["export", "sft", "cold_start"], "rl2": ["rl2"],
}


def stage_config(stage: str, cfg: PipelineConfig) -> dict:
    dump = cfg.model_dump()
    return {"flow": cfg.flow, "name": cfg.name,
            **{k: dump[k] for k in STAGE_SECTIONS.get(stage, list(dump))}}


def _prompts_stamp(store_root: str) -> str | None:
    """The task prompts by id: evaluations add their own (source eval/...), which must not
    invalidate the stages that train on the task prompts."""
    from r1data import query
    from r1data.store import Store

    if not _shard_names(store_root, "prompts"):
        return None
    ids = query.run(Store(store_root, create=False), "SELECT prompt_id FROM prompts WHERE "
                    "source NOT LIKE 'eval/%' ORDER BY prompt_id").fetchall()
    return _fingerprint([i[0] for i in ids])


def stage_key(stage: str, cfg: dict, store_root: str, reads: list) -> str:
    """Config + the task prompts, the shards (tuples) and the models (paths) a stage reads."""
    state = [_folder_stamp(r) if isinstance(r, Path) else _prompts_stamp(store_root)
             if r == ("prompts",) else _shard_names(store_root, *r) for r in reads]
    return f"r1data-{stage}-{_fingerprint(stage, cfg, store_root, state)}"


def reset_if_teacher_changed(cfg: PipelineConfig) -> bool:
    """Samples of a teacher the flow has since retrained are stale: drop that run (and its
    verdicts) so it is sampled again; the stamp of the teacher is kept beside the run."""
    from r1data.store import Store

    teacher = trained_teacher(cfg)
    if teacher is None:
        return False
    store, run = Store(cfg.store), cfg.generate.run
    stamp = _folder_stamp(teacher)
    old = store.read_manifest("teacher", run)
    stale = old is not None and old != stamp and run in store.runs()
    if stale:
        print(f"teacher {teacher} was retrained: dropping the stale samples of run {run!r}")
        store.drop_run(run)
    store.write_manifest("teacher", run, stamp)
    return stale


def trained_teacher(cfg: PipelineConfig) -> Path | None:
    """The teacher when the flow trains it: the RL policy (r1_pipeline) or the cold start."""
    if cfg.flow == "r1_pipeline":
        return cfg.policy_dir() / "model"
    if cfg.cold_start is not None:
        return cfg.cold_dir() / "model"
    return None


def cold_data_dir(cfg: PipelineConfig) -> Path:
    cs = cfg.cold_start
    return Path(cs.data) if cs and cs.data else Path(str(cfg.cold_dir()) + "-data")


def outputs_present(stage: str, cfg: PipelineConfig) -> bool:
    """Whether a stage's outputs are still on disk: a cached result without them is refreshed."""
    from r1data.store import Store

    root = Path(cfg.store)
    if stage == "prompts":
        return bool(_shard_names(cfg.store, "prompts"))
    if stage in ("generate", "filter"):
        m = Store(root).read_manifest(stage, cfg.generate.run) or {}
        return m.get("status") == "complete"
    if stage == "select":
        return bool(_shard_names(cfg.store, "curated", cfg.select.name))
    if stage == "export":
        return (cfg.export_dir() / "README.md").exists()
    if stage == "export_eval":
        return (cfg.eval_data_dir() / "README.md").exists()
    if stage == "student":
        return (cfg.student_dir() / "model" / "config.json").exists()
    if stage == "eval":
        return Store(root).read_manifest("eval", f"eval-{cfg.name}") is not None
    if stage == "eval_student":
        return Store(root).read_manifest("eval", f"eval-{cfg.name}-student") is not None
    if stage == "rl_data":
        return (cfg.rl_data_dir() / "dataset_dict.json").exists()
    if stage == "cold_data":
        return (cold_data_dir(cfg) / "dataset_dict.json").exists()
    dirs = {"rl": cfg.policy_dir, "cold_start": cfg.cold_dir, "sft": cfg.sft_dir,
            "rl2": cfg.policy2_dir}
    if stage in dirs:
        return (dirs[stage]() / "model" / "config.json").exists()
    return True


def _train_sft(data: Path, model: str, out: Path, st) -> dict:
    """One SFT stage (cold start, SFT on curated samples, distillation) into a fresh folder."""
    import shutil

    from r1data.trainers.sft import SFTConfig, train_sft

    shutil.rmtree(out, ignore_errors=True)  # new data trains a new model
    last = train_sft(SFTConfig(data=str(data), model=model, out=str(out), max_steps=st.max_steps,
                               epochs=st.epochs, batch_size=st.batch_size, lr=st.lr,
                               max_len=st.max_len, warmup_steps=st.warmup_steps, bf16=st.bf16,
                               save_every=0, eval_every=0), progress=False)
    return {"model": str(out / "model"), **last}


def _train_grpo(data: Path, model: str, out: Path, r) -> dict:
    """One GRPO stage (R1-Zero, reasoning RL, second RL) into a fresh folder."""
    import shutil

    from r1data.trainers.grpo import GRPOConfig, train_grpo

    shutil.rmtree(out, ignore_errors=True)
    last = train_grpo(GRPOConfig(
        data=str(data), model=model, out=str(out), rewards=r.rewards,
        num_generations=r.num_generations, prompts_per_step=r.prompts_per_step,
        max_steps=r.max_steps, max_completion_length=r.max_completion_length,
        temperature=r.temperature, lr=r.lr, beta=r.beta, loss_type=r.loss_type, save_every=0),
        progress=False)
    return {"model": str(out / "model"), **last}


def _evaluate(cfg: PipelineConfig, model: Path, data: Path, run: str) -> dict:
    """The R1 protocol on the test split (the train split when there is none)."""
    from r1data.evaluate import evaluate
    from r1data.store import Store

    split = "test" if (data / "test").exists() else "train"
    # the task runs again only when the model or the settings changed: its old samples are stale
    store = Store(cfg.store)
    store.drop_run(run)
    return evaluate(store, str(model), data, k=cfg.eval.k, split=split, run=run,
                    max_tokens=cfg.eval.max_tokens, max_model_len=cfg.eval.max_model_len,
                    progress=False)


def _generate_config(cfg: PipelineConfig):
    """The teacher's sampling settings; a teacher the flow trained is sampled as it was trained."""
    from r1data.config import GenerateConfig
    from r1data.models import resolve

    g = cfg.generate
    teacher = trained_teacher(cfg)
    system = g.system_prompt or None
    if teacher is not None:
        _need(teacher / "config.json", "the teacher this flow trains is missing")
        if "system_prompt" not in g.model_fields_set:
            system = None  # trained on user turns alone, sampled the same way
    return GenerateConfig(model=str(teacher) if teacher else resolve(g.model), engine=g.engine,
                          n=g.n, temperature=g.temperature, top_p=g.top_p,
                          max_tokens=g.max_tokens, seed=g.seed, base_url=g.base_url,
                          shard_prompts=g.shard_prompts, max_model_len=g.max_model_len,
                          system_prompt=system, user_suffix=g.user_suffix)


def _generate_where(cfg: PipelineConfig) -> str | None:
    """In r1_pipeline the held-out prompts stay unseen until the evaluation."""
    where = cfg.generate.where
    if cfg.flow != "r1_pipeline":
        return where
    from r1data.export import not_test_sql

    held = not_test_sql(cfg.export.test_size)
    return f"({where}) AND {held}" if where else held


def _need(path: Path, what: str) -> None:
    from r1data.errors import InputError

    if not path.exists():
        raise InputError(what, path=str(path.parent))


def _tasks():
    """Prefect is imported lazily: the library and CLI work without it."""
    from prefect import task
    from prefect.artifacts import create_markdown_artifact

    def key_fn(stage, reads):
        def fn(context, parameters):
            cfg: PipelineConfig = parameters["cfg"]
            return stage_key(stage, stage_config(stage, cfg), cfg.store, reads(cfg))
        return fn

    def transient(task, task_run, state) -> bool:
        """Retry what may pass next time (a server hiccup), not bad input or config."""
        from r1data.errors import R1DataError

        try:
            state.result()
        except R1DataError:
            return False
        except Exception:  # noqa: BLE001 - anything else may be transient
            return True
        return False

    common = dict(persist_result=True, retries=2, retry_delay_seconds=5,
                  retry_condition_fn=transient)

    def stage(name: str, reads):
        return task(name=name, cache_key_fn=key_fn(name, reads), **common)

    @stage("prompts", lambda c: [])
    def prompts_task(cfg: PipelineConfig) -> dict:
        from r1data.prompts import ingest, ingest_synth
        from r1data.store import Store

        store = Store(cfg.store)
        out = {}
        if cfg.prompts.synth:
            s = cfg.prompts.synth
            out["synth"] = asdict(ingest_synth(store, s.kinds, s.n, s.seed, s.level))
        for a in cfg.prompts.add:
            out[a.path] = asdict(ingest(store, a.path, source=a.source, mapping=a.map,
                                        domain=a.domain))
        return out

    @stage("cold_data", lambda c: [("prompts",)])
    def cold_data_task(cfg: PipelineConfig) -> dict:
        """Worked solutions for the cold start, none of them a prompt of the store."""
        from r1data import query
        from r1data.coldstart import write_cold_start
        from r1data.store import Store

        cs = cfg.cold_start
        if cs.data:
            _need(Path(cs.data) / "dataset_dict.json", "cold_start.data is not a dataset folder")
            return {"out": cs.data}
        seen = {r[0] for r in query.run(Store(cfg.store), "SELECT problem FROM prompts")
                .fetchall()}
        return write_cold_start(cold_data_dir(cfg), cs.synth.kinds, cs.synth.n,
                                seed=cs.synth.seed, level=cs.synth.level, exclude=seen)

    @stage("cold_start", lambda c: [cold_data_dir(c)])
    def cold_start_task(cfg: PipelineConfig) -> dict:
        from r1data.models import resolve

        cs = cfg.cold_start
        return _train_sft(cold_data_dir(cfg), resolve(cs.model), cfg.cold_dir(), cs)

    @task(name="generate_part", **common)
    def generate_part_task(cfg: PipelineConfig, part: int) -> dict:
        """One part of the prompts (scale-out); `generate` then checks all are done."""
        from r1data.generate import generate, select_prompts
        from r1data.store import Store

        store, g = Store(cfg.store), cfg.generate
        where = _generate_where(cfg)
        ids = sorted(p["prompt_id"] for p in select_prompts(store, where=where,
                                                            sources=g.sources, limit=g.limit))
        mine = ids[part::g.partitions]
        if not mine:
            return {"part": part, "prompts": 0}
        gc = _generate_config(cfg)
        if gc.base_url:  # spread the parts over the servers
            gc.base_url = gc.base_url[part % len(gc.base_url):] + \
                gc.base_url[:part % len(gc.base_url)]
        quoted = ", ".join(f"'{i}'" for i in mine)
        rep = generate(store, gc, g.run, where=f"prompt_id IN ({quoted})", progress=False)
        return {"part": part, **asdict(rep)}

    @stage("generate", lambda c: [("prompts",)] + ([t] if (t := trained_teacher(c)) else []))
    def generate_task(cfg: PipelineConfig) -> dict:
        from r1data.generate import generate
        from r1data.store import Store

        g = cfg.generate
        rep = generate(Store(cfg.store), _generate_config(cfg), g.run,
                       where=_generate_where(cfg), sources=g.sources, limit=g.limit,
                       progress=False)
        return asdict(rep)

    @stage("filter", lambda c: [("samples", c.generate.run)])
    def filter_task(cfg: PipelineConfig) -> dict:
        from r1data.filtering import FilterConfig, filter_run
        from r1data.store import Store

        f = cfg.filter
        fc = FilterConfig(checks=f.checks, target_language=f.target_language,
                          min_consistency=f.min_consistency, timeout=f.timeout)
        return asdict(filter_run(Store(cfg.store), cfg.generate.run, fc, progress=False))

    @stage("select", lambda c: [("verdicts", c.generate.run)])
    def select_task(cfg: PipelineConfig) -> dict:
        from r1data.selection import SelectConfig, select
        from r1data.store import Store

        s = cfg.select
        sc = SelectConfig(k=s.k, policy=s.policy, min_pass_rate=s.min_pass_rate,
                          max_pass_rate=s.max_pass_rate, decontaminate=s.decontaminate)
        return asdict(select(Store(cfg.store), cfg.generate.run, s.name, sc))

    def curated_rows(cfg: PipelineConfig) -> int:
        from r1data.store import Store

        return Store(cfg.store).read("curated", cfg.select.name, ["prompt_id"]).num_rows

    @stage("export", lambda c: [("curated", c.select.name)])
    def export_task(cfg: PipelineConfig) -> dict:
        from r1data.export import export
        from r1data.store import Store

        if not curated_rows(cfg):
            # A funnel that keeps nothing is a result (e.g. an untrained teacher never closes
            # </think>), not a failure: the report says so.
            return {"out": None, "skipped": "no sample passed the filters"}
        return export(Store(cfg.store), cfg.select.name, cfg.export_dir(),
                      fmt=cfg.export.format, test_size=cfg.export.test_size)

    @stage("export_eval", lambda c: [("curated", c.select.name)])
    def export_eval_task(cfg: PipelineConfig) -> dict:
        """The same curated prompts in GRPO form: its test split is the student's exam."""
        from r1data.export import export
        from r1data.store import Store

        if not curated_rows(cfg):
            return {"out": None, "skipped": "no sample passed the filters"}
        return export(Store(cfg.store), cfg.select.name, cfg.eval_data_dir(), fmt="grpo",
                      test_size=cfg.export.test_size)

    @stage("student", lambda c: [("curated", c.select.name)])
    def student_task(cfg: PipelineConfig) -> dict:
        from r1data.models import resolve

        _need(cfg.export_dir() / "README.md",
              "nothing to distil: the teacher's curated set is empty")
        return _train_sft(cfg.export_dir(), resolve(cfg.student.model), cfg.student_dir(),
                          cfg.student)

    @stage("eval", lambda c: [("curated", c.select.name), c.student_dir() / "model"])
    def eval_task(cfg: PipelineConfig) -> dict:
        return _evaluate(cfg, cfg.student_dir() / "model", cfg.eval_data_dir(), f"eval-{cfg.name}")

    @stage("rl_data", lambda c: [("prompts",)])
    def rl_data_task(cfg: PipelineConfig) -> dict:
        from r1data.export import export_prompts
        from r1data.store import Store

        return export_prompts(Store(cfg.store), cfg.rl_data_dir(), where=cfg.generate.where,
                              sources=cfg.generate.sources, test_size=cfg.export.test_size)

    @stage("rl", lambda c: [("prompts",)] + ([c.cold_dir() / "model"]
                                            if c.flow == "r1_pipeline" else []))
    def rl_task(cfg: PipelineConfig) -> dict:
        from r1data.models import resolve

        start = str(cfg.cold_dir() / "model") if cfg.flow == "r1_pipeline" else \
            resolve(cfg.rl.model)
        return _train_grpo(cfg.rl_data_dir(), start, cfg.policy_dir(), cfg.rl)

    @stage("eval", lambda c: [("prompts",), c.policy_dir() / "model"])
    def rl_eval_task(cfg: PipelineConfig) -> dict:
        return _evaluate(cfg, cfg.policy_dir() / "model", cfg.rl_data_dir(), f"eval-{cfg.name}")

    @stage("sft", lambda c: [("curated", c.select.name)])
    def sft_task(cfg: PipelineConfig) -> dict:
        """R1 stage 3: the base model fine-tuned on the rejection-sampled reasoning data."""
        from r1data.models import resolve

        _need(cfg.export_dir() / "README.md",
              "nothing to fine-tune on: the RL policy's curated set is empty")
        return _train_sft(cfg.export_dir(), resolve(cfg.cold_start.model), cfg.sft_dir(),
                          cfg.sft)

    @stage("rl2", lambda c: [("prompts",), c.sft_dir() / "model"])
    def rl2_task(cfg: PipelineConfig) -> dict:
        """R1 stage 4: RL for all scenarios, from the stage-3 model, with general rewards."""
        return _train_grpo(cfg.rl_data_dir(), str(cfg.sft_dir() / "model"), cfg.policy2_dir(),
                           cfg.rl2)

    @stage("eval", lambda c: [("prompts",), c.policy2_dir() / "model"])
    def final_eval_task(cfg: PipelineConfig) -> dict:
        return _evaluate(cfg, cfg.policy2_dir() / "model", cfg.rl_data_dir(), f"eval-{cfg.name}")

    @stage("eval_student", lambda c: [("prompts",), c.student_dir() / "model"])
    def student_eval_task(cfg: PipelineConfig) -> dict:
        return _evaluate(cfg, cfg.student_dir() / "model", cfg.rl_data_dir(),
                         f"eval-{cfg.name}-student")

    @task(name="report")
    def report_task(cfg: PipelineConfig, results: dict) -> str:
        md = report_markdown(cfg, results)
        create_markdown_artifact(markdown=md, key=f"r1data-{cfg.name}".lower().replace("_", "-"),
                                 description=f"r1data {cfg.flow} report")
        return md

    cold = [cold_data_task, cold_start_task]
    curate = [prompts_task, *cold, generate_task, filter_task, select_task, export_task]
    return {"curate": curate,
            "distill": [*curate, export_eval_task, student_task, eval_task],
            "r1_zero": [prompts_task, rl_data_task, rl_task, rl_eval_task],
            "r1_pipeline": [prompts_task, *cold, rl_data_task, rl_task, generate_task,
                            filter_task, select_task, export_task, sft_task, rl2_task,
                            student_task, final_eval_task, student_eval_task]}, \
        generate_part_task, report_task


def report_markdown(cfg: PipelineConfig, results: dict) -> str:
    """The run's artifact: funnel, pass rates, evaluations and where the outputs are."""
    from r1data import query
    from r1data.store import Store

    store = Store(cfg.store)
    funnel = query.run(store, query.report_sql("funnel")).pl().to_dicts()
    rate = query.run(store, query.report_sql("pass_rate")).pl().to_dicts()
    lines = [f"# r1data `{cfg.name}` ({cfg.flow})", "", "## Funnel", "",
             "| run | source | outcome | samples | fraction |", "|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['source']} | {r['outcome']} | {r['samples']} | "
              f"{r['fraction']} |" for r in funnel]
    lines += ["", "## Pass rate", "", "| run | source | prompts | mean pass@1 | pass@n |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['source']} | {r['prompts']} | {r['mean_pass_at_1']} | "
              f"{r['pass_at_n']} |" for r in rate]
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
    evals = [results[k] for k in ("eval", "eval_student") if k in results]
    if evals:
        lines += ["", "## Evaluation (R1 protocol)", "",
                  "| run | prompts | k | pass@1 | cons@k | pass@k |", "|---|---|---|---|---|---|"]
        lines += [f"| {e['run']} | {e['prompts']} | {e['k']} | {e['pass_at_1']} | "
                  f"{e['cons_at_k']} | {e['pass_at_k']} |" for e in evals]
    return "\n".join(lines)


def html_report(cfg: PipelineConfig) -> Path:
    """The offline HTML page next to the store, with every training log the flow wrote."""
    from r1data.report import render
    from r1data.store import Store

    dirs = [cfg.cold_dir(), cfg.policy_dir(), cfg.sft_dir(), cfg.policy2_dir(),
            cfg.student_dir()]
    logs = [d / "metrics.jsonl" for d in dirs if (d / "metrics.jsonl").exists()]
    return render(Store(cfg.store), Path(cfg.store).parent / "reports" / f"{cfg.name}.html",
                  logs)


def flow_body(cfg: PipelineConfig) -> dict:
    """Body of every flow: its stages in order, on the configured task runner, then the
    report (a Prefect markdown artifact and an HTML page)."""
    flows, generate_part_task, report_task = _tasks()
    stages = flows[cfg.flow]
    if cfg.cold_start is None:
        stages = [t for t in stages if t.name not in ("cold_data", "cold_start")]
    results = {}
    for t in stages:
        if t.name == "generate":
            reset_if_teacher_changed(cfg)
        if t.name == "generate" and cfg.generate.partitions > 1 and \
                not outputs_present("generate", cfg):
            parts = [generate_part_task.submit(cfg, k) for k in range(cfg.generate.partitions)]
            results["generate_parts"] = [f.result() for f in parts]  # concurrently on Dask
        # a cached result whose outputs were deleted is recomputed, not trusted
        fresh = t.with_options(refresh_cache=not outputs_present(t.name, cfg))
        results[t.name] = fresh.submit(cfg).result()
    results["html"] = str(html_report(cfg))
    report_task(cfg, results)
    return results
