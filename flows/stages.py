"""The stages of the flows as Prefect tasks, each thin over the library (itself resumable).

Every task is declared with `stage(name, reads, done)`: its cache key is the part of the config
it depends on plus what it `reads` (keys.py), and `done` says whether its outputs are still on
disk, so a cached result whose outputs were deleted is recomputed instead of trusted. A failure
fails its task with the library's one-line message; only what may pass next time is retried.
The flows (pipelines.py) chain them in the order of DeepSeek-R1 §2.3:

  R1 stage 1, cold start         cold_start_data, cold_start_sft
  R1 stage 2, reasoning RL       export_rl_prompts, reasoning_rl (R1-Zero: from the base model)
  R1 stage 3, rejection sampling generate_samples (generate_part), filter_samples,
                                 select_samples, export_curated; then sft_on_curated
  R1 stage 4, second RL          mixed_rl_prompts (rl2.general), second_rl
  distillation                   export_exam, distill_student
  evaluation                     evaluate_model (any model, any run), exam_model (the held-out
                                 exam, per model: exam_<who>), instruction_exam_model
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from prefect import task

from r1data.errors import InputError, R1DataError
from r1data.flows.config import PipelineConfig
from r1data.flows.keys import TASK_PROMPTS, folder_stamp, shard_names, stage_config, stage_key
from r1data.store import Store
from r1data.trainers.checkpoint import step_dir


# --- how a stage is declared and run --------------------------------------------------------------
def _transient(task, task_run, state) -> bool:
    """Retry what may pass next time (a server hiccup), not bad input or config."""
    try:
        state.result()
    except R1DataError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return False


RETRIES = dict(retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)
# task function (by qualified name: a served flow runs unpickled copies) -> are its outputs on disk
_DONE: dict[str, Callable[..., bool]] = {}


def _qualname(fn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def stage(name: str, reads: Callable[..., list], done: Callable[..., bool]):
    """A cached stage task. `reads(**parameters)` lists what it reads from earlier stages,
    `done(cfg, *args)` whether its outputs still exist; the key's stage name is the task's name,
    so `with_options(name=...)` gives one task a second, independent cache (eval_student)."""

    def key(context, parameters) -> str:
        cfg: PipelineConfig = parameters["cfg"]
        name = context.task.name
        return stage_key(name, stage_config(name, cfg), cfg.store, reads(**parameters))

    def wrap(fn):
        _DONE[_qualname(fn)] = done
        return task(fn, name=name, cache_key_fn=key, persist_result=True, **RETRIES)
    return wrap


def run_stage(t, cfg: PipelineConfig, *args):
    """Run a stage on the flow's task runner and wait for its result; a cached result whose
    outputs were deleted is recomputed, not trusted."""
    fresh = t.with_options(refresh_cache=not _DONE[_qualname(t.fn)](cfg, *args))
    return fresh.submit(cfg, *args).result()


def _has_model(folder: Path) -> bool:
    return (folder / "model" / "config.json").exists()


def _need(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(what, path=str(path.parent))


# --- prompts --------------------------------------------------------------------------------------
@stage("prompts", reads=lambda cfg: [], done=lambda cfg: bool(shard_names(cfg.store, "prompts")))
def ingest_prompts(cfg: PipelineConfig) -> dict:
    """The task prompts: seeded synthetic problems and any files or builtin sets."""
    from r1data.prompts import ingest, ingest_synth

    store = Store(cfg.store)
    out = {}
    if cfg.prompts.synth:
        s = cfg.prompts.synth
        out["synth"] = asdict(ingest_synth(store, s.kinds, s.n, s.seed, s.level))
    for a in cfg.prompts.add:
        out[a.path] = asdict(ingest(store, a.path, source=a.source, mapping=a.map,
                                    domain=a.domain))
    return out


# --- R1 stage 1: cold start -----------------------------------------------------------------------
def cold_data_dir(cfg: PipelineConfig) -> Path:
    cs = cfg.cold_start
    return Path(cs.data) if cs and cs.data else Path(str(cfg.cold_dir()) + "-data")


def _train_sft(data: Path, model: str, out: Path, st) -> dict:
    """One SFT stage (cold start, SFT on curated samples, distillation) into a fresh folder."""
    from r1data.trainers.sft import SFTConfig, train_sft

    shutil.rmtree(out, ignore_errors=True)  # new data trains a new model
    last = train_sft(st.to(SFTConfig, data=str(data), model=model, out=str(out), save_every=0,
                           eval_every=0), progress=False)
    return {"model": str(out / "model"), **last}


def held_out(cfg: PipelineConfig) -> set[str]:
    """Problems no cold start may train on: the store's prompts (curated or evaluated later;
    not the harvest's own) and the flow's exam."""
    from r1data import query

    seen = {r[0] for r in query.run(Store(cfg.store), "SELECT problem FROM prompts WHERE "
                                    "source NOT LIKE 'harvest/%'").fetchall()}
    if cfg.exam is not None:
        from r1data.exam import ExamConfig, exam_rows

        seen |= {r["problem"] for r in exam_rows(cfg.exam.to(ExamConfig))}
    return seen


def _harvest(cfg: PipelineConfig) -> dict:
    """The self-harvested cold start; the harvest's runs are resampled when its settings or
    base model changed (a rerun with the same ones resumes what the store holds)."""
    from r1data.harvest import HarvestConfig, harvest
    from r1data.models import resolve

    cs = cfg.cold_start
    hc = cs.harvest.to(HarvestConfig, model=resolve(cs.model))
    store = Store(cfg.store)
    old = (store.read_manifest("export", hc.name) or {}).get("config")
    if old is not None and old != hc.model_dump():
        print(f"harvest settings changed: dropping runs {hc.name!r}, {hc.name + '-r1'!r}")
        for run in (hc.name, f"{hc.name}-r1"):
            store.drop_run(run)
    out = cold_data_dir(cfg)
    shutil.rmtree(out, ignore_errors=True)
    return harvest(store, hc, out, exclude=held_out(cfg), progress=False)


@stage("cold_data", reads=lambda cfg: [("prompts",)],
       done=lambda cfg: (cold_data_dir(cfg) / "dataset_dict.json").exists())
def cold_start_data(cfg: PipelineConfig) -> dict:
    """The cold start's SFT rows in the R1 format, none of them a task or exam prompt: a given
    folder, the base model's own verified samples (harvest), or written worked solutions."""
    from r1data.coldstart import write_cold_start

    cs = cfg.cold_start
    if cs.data:
        _need(Path(cs.data) / "dataset_dict.json", "cold_start.data is not a dataset folder")
        return {"out": cs.data}
    if cs.harvest is not None:
        return _harvest(cfg)
    return write_cold_start(cold_data_dir(cfg), cs.synth.kinds, cs.synth.n, seed=cs.synth.seed,
                            level=cs.synth.level, exclude=held_out(cfg))


@stage("cold_start", reads=lambda cfg: [cold_data_dir(cfg)],
       done=lambda cfg: _has_model(cfg.cold_dir()))
def cold_start_sft(cfg: PipelineConfig) -> dict:
    """SFT of the base model on the worked solutions: it starts from readable <think> answers."""
    from r1data.models import resolve

    cs = cfg.cold_start
    return _train_sft(cold_data_dir(cfg), resolve(cs.model), cfg.cold_dir(), cs)


# --- R1 stage 2: reasoning RL (R1-Zero) -----------------------------------------------------------
def exam_steps(r) -> list[int]:
    """The steps after which the policy is examined (rl.exam_every): every N, and the last."""
    if not r.exam_every:
        return []
    return [*range(r.exam_every, r.max_steps, r.exam_every), r.max_steps]


def _train_grpo(data: Path, model: str, out: Path, r) -> dict:
    """One GRPO stage (R1-Zero, reasoning RL, second RL) into a fresh folder, in one run. With
    `exam_every`, the trainer saves every that many steps (save_every), so the policy's weights
    after each are in step_dir(out, N)/model for the exam (exam_steps: the same steps)."""
    from r1data.trainers.grpo import GRPOConfig, train_grpo

    shutil.rmtree(out, ignore_errors=True)
    last = train_grpo(r.to(GRPOConfig, data=str(data), model=model, out=str(out),
                           save_every=r.exam_every, save_weights=True), progress=False)
    return {"model": str(out / "model"), **last}


def _trained(out: Path, r) -> bool:
    """A GRPO stage's outputs: the policy, and with exam_every each step's weights the exam
    reads (deleting one re-runs the stage rather than failing its exam)."""
    return _has_model(out) and all(_has_model(step_dir(out, s)) for s in exam_steps(r))


@stage("rl_data", reads=lambda cfg: [("prompts",)],
       done=lambda cfg: (cfg.rl_data_dir() / "dataset_dict.json").exists())
def export_rl_prompts(cfg: PipelineConfig) -> dict:
    """The task prompts as a GRPO dataset (RL needs no teacher samples), split by prompt id."""
    from r1data.export import export_prompts

    return export_prompts(Store(cfg.store), cfg.rl_data_dir(), where=_task_where(cfg),
                          sources=cfg.generate.sources, test_size=cfg.export.test_size)


def _model_read(start: str | Path) -> list:
    """A model the flow trained (a Path) is stamped into the key; a named base model is not."""
    return [start] if isinstance(start, Path) else []


@stage("rl", reads=lambda cfg, start: [("prompts",), *_model_read(start)],
       done=lambda cfg, start: _trained(cfg.policy_dir(), cfg.rl))
def reasoning_rl(cfg: PipelineConfig, start: str | Path) -> dict:
    """GRPO on verifiable rewards from `start`: the cold start (R1), the base model (R1-Zero)."""
    from r1data.models import resolve

    return _train_grpo(cfg.rl_data_dir(), resolve(str(start)), cfg.policy_dir(), cfg.rl)


# --- R1 stage 3: rejection sampling, then SFT -----------------------------------------------------
def _generate_config(cfg: PipelineConfig, teacher: Path | None):
    """The teacher's sampling settings; a teacher the flow trained is sampled as it was trained."""
    from r1data.config import GenerateConfig
    from r1data.models import resolve

    g = cfg.generate
    system = g.system_prompt or None
    if teacher is not None:
        _need(teacher / "config.json", "the teacher this flow trains is missing")
        if "system_prompt" not in g.model_fields_set:
            system = None  # trained on user turns alone, sampled the same way
    return g.to(GenerateConfig, model=str(teacher) if teacher else resolve(g.model),
                system_prompt=system)


def _task_where(cfg: PipelineConfig) -> str:
    """generate.where over the task prompts only: never the exam's, the harvest's or an
    evaluation's prompts (keys.TASK_PROMPTS), which stages add to the store as they run."""
    where = cfg.generate.where
    return f"({where}) AND {TASK_PROMPTS}" if where else TASK_PROMPTS


def _generate_where(cfg: PipelineConfig) -> str:
    """The prompts the teacher samples: task prompts; in r1_pipeline the held-out ones stay
    unseen until the evaluation."""
    where = _task_where(cfg)
    if cfg.flow != "r1_pipeline":
        return where
    from r1data.export import not_test_sql

    return f"{where} AND {not_test_sql(cfg.export.test_size)}"


def _adaptive(cfg: PipelineConfig):
    """generate.adaptive as the library's AdaptiveConfig (None: full sampling); the band and K
    it leaves unset are the flow's select section's, so sampling stops where selection would."""
    from r1data.adaptive import AdaptiveConfig

    a = cfg.generate.adaptive
    if a is None:
        return None
    band = {k: getattr(cfg.select, k) for k in ("min_pass_rate", "max_pass_rate", "k")
            if k not in a.model_fields_set}
    return a.to(AdaptiveConfig, **band)


def reset_if_teacher_changed(cfg: PipelineConfig, teacher: Path | None) -> bool:
    """Samples of a teacher the flow has since retrained are stale: drop that run (and its
    verdicts) so it is sampled again; the stamp of the teacher is kept beside the run."""
    if teacher is None:
        return False
    store, run = Store(cfg.store), cfg.generate.run
    stamp = folder_stamp(teacher)
    old = store.read_manifest("teacher", run)
    stale = old is not None and old != stamp and run in store.runs()
    if stale:
        print(f"teacher {teacher} was retrained: dropping the stale samples of run {run!r}")
        store.drop_run(run)
    store.write_manifest("teacher", run, stamp)
    return stale


def generated(cfg: PipelineConfig, *_) -> bool:
    return (Store(cfg.store).read_manifest("generate", cfg.generate.run) or {}).get(
        "status") == "complete"


@task(name="generate_part", **RETRIES)
def generate_part(cfg: PipelineConfig, teacher: Path | None, part: int) -> dict:
    """One part of the prompts (scale-out); `generate_samples` then checks all are done."""
    from r1data.generate import generate, select_prompts

    store, g = Store(cfg.store), cfg.generate
    ids = sorted(p["prompt_id"] for p in select_prompts(store, where=_generate_where(cfg),
                                                        sources=g.sources, limit=g.limit))
    mine = ids[part::g.partitions]
    if not mine:
        return {"part": part, "prompts": 0}
    gc = _generate_config(cfg, teacher)
    if gc.base_url:  # spread the parts over the servers
        k = part % len(gc.base_url)
        gc.base_url = gc.base_url[k:] + gc.base_url[:k]
    quoted = ", ".join(f"'{i}'" for i in mine)
    rep = generate(store, gc, g.run, where=f"prompt_id IN ({quoted})", progress=False,
                   adaptive=_adaptive(cfg))
    return {"part": part, **asdict(rep)}


@stage("generate", reads=lambda cfg, teacher: [("prompts",), *_model_read(teacher)],
       done=generated)
def generate_samples(cfg: PipelineConfig, teacher: Path | None) -> dict:
    """The teacher (a named model, or one this flow trained) samples n answers per prompt."""
    from r1data.generate import generate

    g = cfg.generate
    rep = generate(Store(cfg.store), _generate_config(cfg, teacher), g.run,
                   where=_generate_where(cfg), sources=g.sources, limit=g.limit, progress=False,
                   adaptive=_adaptive(cfg))
    return asdict(rep)


@stage("filter", reads=lambda cfg: [("samples", cfg.generate.run)],
       done=lambda cfg: (Store(cfg.store).read_manifest("filter", cfg.generate.run) or {}).get(
           "status") == "complete")
def filter_samples(cfg: PipelineConfig) -> dict:
    """The verifiers: correct, readable (R1 format), in the target language."""
    from r1data.filtering import FilterConfig, filter_run

    return asdict(filter_run(Store(cfg.store), cfg.generate.run, cfg.filter.to(FilterConfig),
                             progress=False))


def _curated(cfg: PipelineConfig) -> bool:
    return bool(shard_names(cfg.store, "curated", cfg.select.name))


@stage("select", reads=lambda cfg: [("verdicts", cfg.generate.run)], done=_curated)
def select_samples(cfg: PipelineConfig) -> dict:
    """At most k verified samples per prompt, deduplicated and decontaminated."""
    from r1data.selection import SelectConfig, select

    return asdict(select(Store(cfg.store), cfg.generate.run, cfg.select.name,
                         cfg.select.to(SelectConfig)))


def _export(cfg: PipelineConfig, out: Path, fmt: str) -> dict:
    from r1data.export import export

    store = Store(cfg.store)
    if not store.read("curated", cfg.select.name, ["prompt_id"]).num_rows:
        # A funnel that keeps nothing is a result (e.g. an untrained teacher never closes
        # </think>), not a failure: the report says so.
        return {"out": None, "skipped": "no sample passed the filters"}
    return export(store, cfg.select.name, out, fmt=fmt, test_size=cfg.export.test_size,
                  plain_share=cfg.export.plain_share)


@stage("export", reads=lambda cfg: [("curated", cfg.select.name)],
       done=lambda cfg: (cfg.export_dir() / "README.md").exists())
def export_curated(cfg: PipelineConfig) -> dict:
    """The curated samples as a dataset (SFT or GRPO), split by prompt id."""
    return _export(cfg, cfg.export_dir(), cfg.export.format)


@stage("sft", reads=lambda cfg: [("curated", cfg.select.name)],
       done=lambda cfg: _has_model(cfg.sft_dir()))
def sft_on_curated(cfg: PipelineConfig) -> dict:
    """R1 stage 3: the base model fine-tuned on the rejection-sampled reasoning data."""
    from r1data.models import resolve

    _need(cfg.export_dir() / "README.md",
          "nothing to fine-tune on: the RL policy's curated set is empty")
    return _train_sft(cfg.export_dir(), resolve(cfg.cold_start.model), cfg.sft_dir(), cfg.sft)


# --- R1 stage 4: RL for all scenarios -------------------------------------------------------------
def rl2_data(cfg: PipelineConfig) -> Path:
    """Stage 4's prompts: the task prompts, mixed with general ones when rl2.general is set."""
    return cfg.rl2_data_dir() if cfg.rl2 and cfg.rl2.general is not None else cfg.rl_data_dir()


@stage("rl2_data", reads=lambda cfg: [cfg.rl_data_dir()],
       done=lambda cfg: (cfg.rl2_data_dir() / "dataset_dict.json").exists())
def mixed_rl_prompts(cfg: PipelineConfig) -> dict:
    """R1 §2.3.4: the reasoning prompts (their split kept) plus general instruction prompts,
    split by prompt id; the general test side is the instruction exam."""
    from r1data.general import GeneralPrompts, mixed_rl_data

    return mixed_rl_data(cfg.rl_data_dir(), cfg.rl2_data_dir(),
                         cfg.rl2.general.to(GeneralPrompts), test_size=cfg.export.test_size,
                         overwrite=True)


@stage("rl2", reads=lambda cfg, start: [("prompts",), start, *(
    [cfg.rl2_data_dir()] if cfg.rl2 and cfg.rl2.general is not None else [])],
       done=lambda cfg, start: _trained(cfg.policy2_dir(), cfg.rl2))
def second_rl(cfg: PipelineConfig, start: Path) -> dict:
    """GRPO from the stage-3 model with general rewards (language, repetition; with
    rl2.general also instruction following) beside accuracy."""
    return _train_grpo(rl2_data(cfg), str(start), cfg.policy2_dir(), cfg.rl2)


# --- distillation ---------------------------------------------------------------------------------
@stage("export_eval", reads=lambda cfg: [("curated", cfg.select.name)],
       done=lambda cfg: (cfg.eval_data_dir() / "README.md").exists())
def export_exam(cfg: PipelineConfig) -> dict:
    """The same curated prompts in GRPO form: its test split is the student's exam."""
    return _export(cfg, cfg.eval_data_dir(), "grpo")


@stage("student", reads=lambda cfg: [("curated", cfg.select.name)],
       done=lambda cfg: _has_model(cfg.student_dir()))
def distill_student(cfg: PipelineConfig) -> dict:
    """SFT of a student on the teacher's curated samples (R1 §2.4)."""
    from r1data.models import resolve

    _need(cfg.export_dir() / "README.md", "nothing to distil: the teacher's curated set is empty")
    return _train_sft(cfg.export_dir(), resolve(cfg.student.model), cfg.student_dir(),
                      cfg.student)


# --- evaluation -----------------------------------------------------------------------------------
@stage("eval", reads=lambda cfg, model, data, run: [data, model],
       done=lambda cfg, model, data, run: Store(cfg.store).read_manifest("eval", run) is not None)
def evaluate_model(cfg: PipelineConfig, model: Path, data: Path, run: str) -> dict:
    """The R1 protocol (k samples, pass@1, cons@k) for `model` on the test split of `data` (the
    train split when there is none), as evaluation run `run`."""
    from r1data.evaluate import evaluate

    split = "test" if (data / "test").exists() else "train"
    # the task runs again only when the model, the data or the settings changed: old samples
    # of the run are stale
    store = Store(cfg.store)
    store.drop_run(run)
    return evaluate(store, str(model), data, k=cfg.eval.k, split=split, run=run,
                    max_tokens=cfg.eval.max_tokens, max_model_len=cfg.eval.max_model_len,
                    progress=False)


def _model_ref(model: str | Path) -> str | Path:
    """A model for cache keys: a folder the flow trained by its weights, a base model by name
    (resolved when prepared)."""
    if isinstance(model, Path):
        return model
    from r1data.models import resolve

    try:
        return Path(resolve(model)) if Path(resolve(model)).is_dir() else model
    except InputError:
        return model


def _exam_manifests(cfg: PipelineConfig, who: str) -> list[dict | None]:
    from r1data.exam import run_name

    store = Store(cfg.store)
    return [store.read_manifest("eval", run_name(who, s)) for s in (True, False)]


def examined(cfg: PipelineConfig, model: str | Path, who: str) -> bool:
    """Both exam runs of `who` are in the store, for this exam config and this model."""
    from r1data.exam import ExamConfig
    from r1data.models import resolve

    want = asdict(cfg.exam.to(ExamConfig))
    try:
        name = resolve(str(model))
    except InputError:
        return False
    return all(m is not None and m.get("exam") == want and m.get("model") == name
               for m in _exam_manifests(cfg, who))


@stage("exam", reads=lambda cfg, model, who: [_model_ref(model)], done=examined)
def exam_model(cfg: PipelineConfig, model: str | Path, who: str) -> dict:
    """The held-out exam (r1data.exam) for one model, runs exam-<who>-suffix / -plain: pass@1
    with its 95% interval, R1-format rate and last answer, with and without the R1 suffix. A
    base model (by name) already examined with these settings in this store is not re-run."""
    from r1data.exam import ExamConfig, evaluate_exam, run_name, scores
    from r1data.models import resolve

    store, ec = Store(cfg.store), cfg.exam.to(ExamConfig)
    runs = [run_name(who, s) for s in (True, False)]
    if not isinstance(model, Path) and examined(cfg, model, who):
        return scores(store, runs, ec.bootstrap)
    for run in runs:  # the task runs again only when the model or the exam changed
        store.drop_run(run)
    return evaluate_exam(store, resolve(str(model)), who, ec, progress=False)


@stage("ifexam", reads=lambda cfg, model, who: [model, cfg.rl2_data_dir()],
       done=lambda cfg, model, who: Store(cfg.store).read_manifest(
           "eval", f"ifexam-{who}") is not None)
def instruction_exam_model(cfg: PipelineConfig, model: Path, who: str) -> dict:
    """Instruction following (r1data.general) on the general prompts stage 4 never trains on,
    run ifexam-<who>: before stage 4 (the stage-3 model) and after it."""
    from r1data.general import instruction_exam

    g, store = cfg.rl2.general, Store(cfg.store)
    store.drop_run(f"ifexam-{who}")
    return instruction_exam(store, str(model), cfg.rl2_data_dir(), run=f"ifexam-{who}",
                            k=g.exam_k, max_tokens=g.exam_max_tokens, seed=g.seed)
