"""The `curate` flow: prompts -> generate -> filter -> select -> export, as Prefect tasks.

Each task is thin over the library (which is itself resumable) and carries a cache key made of
its configuration and the state of the store it reads and writes, so a rerun skips what is done
and redoes what changed. Stage failures fail that task with the library's one-line message.
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
    d = Path(store_root) / table / (part or "")
    return sorted(p.name for p in d.glob("*.parquet")) if d.exists() else []


def stage_key(stage: str, cfg: dict, store_root: str, reads: list[tuple]) -> str:
    """Config + names of the shards a stage reads: same inputs, same outputs."""
    state = [_shard_names(store_root, *r) for r in reads]
    return f"r1data-{stage}-{_fingerprint(stage, cfg, store_root, state)}"


def outputs_present(stage: str, cfg: PipelineConfig) -> bool:
    """Whether a stage's outputs are still on disk: a cached result without them is refreshed."""
    root = Path(cfg.store)
    if stage == "prompts":
        return bool(_shard_names(cfg.store, "prompts"))
    if stage == "generate":
        m = root / "runs" / f"{cfg.generate.run}.json"
        return m.exists() and json.loads(m.read_text()).get("status") == "complete"
    if stage == "filter":
        m = root / "runs" / f"filter-{cfg.generate.run}.json"
        return m.exists() and json.loads(m.read_text()).get("status") == "complete"
    if stage == "select":
        return bool(_shard_names(cfg.store, "curated", cfg.select.name))
    if stage == "export":
        return (cfg.export_dir() / "README.md").exists()
    if stage == "export_eval":
        return (Path(str(cfg.export_dir()) + "-eval") / "README.md").exists()
    if stage == "student":
        return (cfg.student_dir() / "model" / "config.json").exists()
    if stage == "eval":
        return (root / "runs" / f"eval-{cfg.name}-result.json").exists()
    if stage == "rl_data":
        return (Path(str(cfg.export_dir()) + "-rl") / "dataset_dict.json").exists()
    if stage == "rl":
        return (cfg.policy_dir() / "model" / "config.json").exists()
    return True


def _tasks():
    """Prefect is imported lazily: the library and CLI work without it."""
    from prefect import task
    from prefect.artifacts import create_markdown_artifact

    def key_fn(stage, reads):
        def fn(context, parameters):
            cfg: PipelineConfig = parameters["cfg"]
            return stage_key(stage, cfg.model_dump(), cfg.store, reads(cfg))
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

    @task(name="prompts", cache_key_fn=key_fn("prompts", lambda c: []), **common)
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

    @task(name="generate", cache_key_fn=key_fn("generate", lambda c: [("prompts",)]), **common)
    def generate_task(cfg: PipelineConfig) -> dict:
        from r1data.config import GenerateConfig
        from r1data.generate import generate
        from r1data.models import resolve
        from r1data.store import Store

        g = cfg.generate
        gc = GenerateConfig(model=resolve(g.model), engine=g.engine, n=g.n,
                            temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_tokens,
                            seed=g.seed, base_url=g.base_url, shard_prompts=g.shard_prompts,
                            max_model_len=g.max_model_len, system_prompt=g.system_prompt or None,
                            user_suffix=g.user_suffix)
        rep = generate(Store(cfg.store), gc, g.run, where=g.where, sources=g.sources,
                       limit=g.limit, progress=False)
        return asdict(rep)

    @task(name="filter", cache_key_fn=key_fn("filter", lambda c: [("samples", c.generate.run)]),
          **common)
    def filter_task(cfg: PipelineConfig) -> dict:
        from r1data.filters.run import FilterConfig, filter_run
        from r1data.store import Store

        f = cfg.filter
        fc = FilterConfig(checks=f.checks, target_language=f.target_language,
                          min_consistency=f.min_consistency, timeout=f.timeout)
        return asdict(filter_run(Store(cfg.store), cfg.generate.run, fc, progress=False))

    @task(name="select", cache_key_fn=key_fn("select", lambda c: [("verdicts", c.generate.run)]),
          **common)
    def select_task(cfg: PipelineConfig) -> dict:
        from r1data.filters.select import SelectConfig, select
        from r1data.store import Store

        s = cfg.select
        sc = SelectConfig(k=s.k, policy=s.policy, min_pass_rate=s.min_pass_rate,
                          max_pass_rate=s.max_pass_rate, decontaminate=s.decontaminate)
        return asdict(select(Store(cfg.store), cfg.generate.run, s.name, sc))

    @task(name="export", cache_key_fn=key_fn("export", lambda c: [("curated", c.select.name)]),
          **common)
    def export_task(cfg: PipelineConfig) -> dict:
        from r1data.export import export
        from r1data.store import Store

        store = Store(cfg.store)
        if not store.read("curated", cfg.select.name, ["prompt_id"]).num_rows:
            # A funnel that keeps nothing is a result (e.g. an untrained teacher never closes
            # </think>), not a failure: the report says so.
            return {"out": None, "skipped": "no sample passed the filters"}
        return export(store, cfg.select.name, cfg.export_dir(), fmt=cfg.export.format,
                      test_size=cfg.export.test_size)

    @task(name="export_eval", cache_key_fn=key_fn("export_eval",
                                                   lambda c: [("curated", c.select.name)]),
          **common)
    def export_eval_task(cfg: PipelineConfig) -> dict:
        """The same curated prompts in GRPO form: its test split is the student's exam."""
        from r1data.export import export
        from r1data.store import Store

        store = Store(cfg.store)
        if not store.read("curated", cfg.select.name, ["prompt_id"]).num_rows:
            return {"out": None, "skipped": "no sample passed the filters"}
        return export(store, cfg.select.name, str(cfg.export_dir()) + "-eval", fmt="grpo",
                      test_size=cfg.export.test_size)

    @task(name="student", cache_key_fn=key_fn("student", lambda c: [("curated", c.select.name)]),
          **common)
    def student_task(cfg: PipelineConfig) -> dict:
        from r1data.errors import InputError
        from r1data.models import resolve
        from r1data.trainers.sft import SFTConfig, train_sft

        if not (cfg.export_dir() / "README.md").exists():
            raise InputError("nothing to distil: the teacher's curated set is empty",
                             path=str(cfg.export_dir()))
        s = cfg.student
        out = cfg.student_dir()
        import shutil

        shutil.rmtree(out, ignore_errors=True)  # a new curated set trains a new student
        last = train_sft(SFTConfig(data=str(cfg.export_dir()), model=resolve(s.model),
                                   out=str(out), max_steps=s.max_steps, epochs=s.epochs,
                                   batch_size=s.batch_size, lr=s.lr, max_len=s.max_len,
                                   save_every=0, eval_every=0), progress=False)
        return {"model": str(out / "model"), **last}

    @task(name="eval", cache_key_fn=key_fn("eval", lambda c: [("curated", c.select.name)]),
          **common)
    def eval_task(cfg: PipelineConfig) -> dict:
        from r1data.evaluate import evaluate
        from r1data.store import Store

        data = Path(str(cfg.export_dir()) + "-eval")
        split = "test" if (data / "test").exists() else "train"
        return evaluate(Store(cfg.store), str(cfg.student_dir() / "model"), data,
                        k=cfg.eval.k, split=split, run=f"eval-{cfg.name}",
                        max_tokens=cfg.eval.max_tokens, progress=False)

    @task(name="rl_data", cache_key_fn=key_fn("rl_data", lambda c: [("prompts",)]), **common)
    def rl_data_task(cfg: PipelineConfig) -> dict:
        from r1data.export import export_prompts
        from r1data.store import Store

        return export_prompts(Store(cfg.store), str(cfg.export_dir()) + "-rl",
                              where=cfg.generate.where, sources=cfg.generate.sources,
                              test_size=cfg.export.test_size)

    @task(name="rl", cache_key_fn=key_fn("rl", lambda c: [("prompts",)]), **common)
    def rl_task(cfg: PipelineConfig) -> dict:
        import shutil

        from r1data.models import resolve
        from r1data.trainers.grpo import GRPOConfig, train_grpo

        r = cfg.rl
        out = cfg.policy_dir()
        shutil.rmtree(out, ignore_errors=True)
        last = train_grpo(GRPOConfig(
            data=str(cfg.export_dir()) + "-rl", model=resolve(r.model), out=str(out),
            rewards=r.rewards, num_generations=r.num_generations,
            prompts_per_step=r.prompts_per_step, max_steps=r.max_steps,
            max_completion_length=r.max_completion_length, temperature=r.temperature, lr=r.lr,
            beta=r.beta, loss_type=r.loss_type, save_every=0), progress=False)
        return {"model": str(out / "model"), **last}

    @task(name="eval", cache_key_fn=key_fn("eval", lambda c: [("prompts",)]), **common)
    def rl_eval_task(cfg: PipelineConfig) -> dict:
        from r1data.evaluate import evaluate
        from r1data.store import Store

        data = Path(str(cfg.export_dir()) + "-rl")
        split = "test" if (data / "test").exists() else "train"
        return evaluate(Store(cfg.store), str(cfg.policy_dir() / "model"), data, k=cfg.eval.k,
                        split=split, run=f"eval-{cfg.name}", max_tokens=cfg.eval.max_tokens,
                        progress=False)

    @task(name="report")
    def report_task(cfg: PipelineConfig, results: dict) -> str:
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
        exp = results.get("export") or {}
        lines.append(f"- dataset: `{exp['out']}`" if exp.get("out")
                     else f"- dataset: none ({exp.get('skipped', 'not exported')})")
        if "student" in results:
            lines.append(f"- student: `{results['student']['model']}`")
        if "rl" in results:
            rl = results["rl"]
            lines.append(f"- policy: `{rl['model']}` (last step reward {rl.get('reward')})")
        if "eval" in results:
            e = results["eval"]
            lines += ["", "## Student evaluation (R1 protocol)", "",
                      "| run | prompts | k | pass@1 | cons@k | pass@k |",
                      "|---|---|---|---|---|---|",
                      f"| {e['run']} | {e['prompts']} | {e['k']} | {e['pass_at_1']} | "
                      f"{e['cons_at_k']} | {e['pass_at_k']} |"]
        md = "\n".join(lines)
        create_markdown_artifact(markdown=md, key=f"r1data-{cfg.name}".lower().replace("_", "-"),
                                 description=f"r1data {cfg.flow} report")
        return md

    curate = [prompts_task, generate_task, filter_task, select_task, export_task]
    return {"curate": curate,
            "distill": [*curate, export_eval_task, student_task, eval_task],
            "r1_zero": [prompts_task, rl_data_task, rl_task, rl_eval_task]}, report_task


def curate_flow_fn(cfg: PipelineConfig) -> dict:
    """Body of the flow: its stages in order (curate; distill = curate + student + eval;
    r1_zero = prompts + GRPO from the base model + eval)."""
    flows, report_task = _tasks()
    results = {}
    for t in flows[cfg.flow]:
        # a cached result whose outputs were deleted is recomputed, not trusted
        fresh = t.with_options(refresh_cache=not outputs_present(t.name, cfg))
        results[t.name] = fresh.submit(cfg).result()  # on the configured task runner
    report_task(cfg, results)
    return results
