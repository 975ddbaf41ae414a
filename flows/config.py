"""One YAML file describes a pipeline; validated up front with file- and field-named errors.

Each section takes its fields and defaults from the library config of its stage (GenerateConfig,
FilterConfig, SelectConfig, SFTConfig, GRPOConfig; export and evaluate's arguments), so a
default is written once, there; the flows add only what they chain or name (run, out, model).
Values a small example needs (few steps, short answers on a CPU) are in its YAML.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from r1data.adaptive import AdaptiveConfig
from r1data.coldstart import write_cold_start
from r1data.config import DEFAULT_TEACHER, GenerateConfig, signature_defaults
from r1data.errors import ConfigError
from r1data.evaluate import evaluate
from r1data.exam import ExamConfig
from r1data.export import export
from r1data.filtering import FilterConfig
from r1data.general import GeneralPrompts
from r1data.harvest import TRAIN_GYM, HarvestConfig
from r1data.selection import SelectConfig
from r1data.synth import synth_prompts
from r1data.trainers.grpo import GRPOConfig
from r1data.trainers.sft import SFTConfig

FLOWS = ("curate", "r1_zero", "distill", "r1_pipeline")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in the YAML is an error, not ignored


class _Section(_Strict):
    """A YAML section over a library config: `library_section` gives it the library's fields,
    types, bounds and defaults (written once, there); `to` builds the library's config."""

    def to(self, library: type, **chained):
        """The library config of this section, with what the flow chains (data, model, out)."""
        names = [f.name for f in dataclasses.fields(library)] if dataclasses.is_dataclass(
            library) else list(library.model_fields)
        own = {k: getattr(self, k) for k in names if k in type(self).model_fields}
        return library(**{**own, **chained})

    def _check(self, library: type, **chained) -> None:
        """Build the library config once, so its own checks (validators, __post_init__) fail
        at load time, with the YAML field named, not when the stage runs."""
        try:
            self.to(library, **chained)
        except ValidationError as e:
            raise ValueError(e.errors()[0]["msg"].removeprefix("Value error, ")) from None
        except ConfigError as e:
            raise ValueError(str(e)) from None


def library_section(base: type[_Section], library: type, *, drop: tuple[str, ...] = ()):
    """`base` (the flow's own fields) plus every field of `library` (a pydantic model or a
    dataclass) except `drop` and those `base` redefines."""
    skip = set(drop) | set(base.model_fields)
    if dataclasses.is_dataclass(library):
        hints = typing.get_type_hints(library)
        fields = {f.name: (hints[f.name], Field(default=f.default) if f.default_factory is
                           dataclasses.MISSING else Field(default_factory=f.default_factory))
                  for f in dataclasses.fields(library) if f.name not in skip}
    else:
        fields = {k: (f.annotation, copy.deepcopy(f)) for k, f in library.model_fields.items()
                  if k not in skip}
    return create_model(base.__name__.lstrip("_"), __base__=base, __doc__=base.__doc__,
                        __module__=__name__, **fields)


def _default(fn, name: str):
    return signature_defaults(fn)[name]


class SynthPrompts(_Strict):
    """Seeded verifiable prompts (r1data.synth.synth_prompts)."""

    kinds: list[str] = list(_default(synth_prompts, "kinds"))
    n: int = _default(synth_prompts, "n")  # prompts per kind
    level: int = _default(synth_prompts, "level")
    seed: int = _default(synth_prompts, "seed")


class AddPrompts(_Strict):
    path: str  # file, save_to_disk folder, humaneval, champ or gym:<name>
    source: str | None = None
    map: dict[str, str] = {}
    domain: str = "math"


class PromptsStage(_Strict):
    synth: SynthPrompts | None = None
    add: list[AddPrompts] = []


class _AdaptiveStage(_Section):
    """`generate.adaptive:` (AdaptiveConfig's fields; band and K default to selection's)."""

    def model_post_init(self, _ctx) -> None:
        self._check(AdaptiveConfig)


AdaptiveStage = library_section(_AdaptiveStage, AdaptiveConfig)


class _GenerateStage(_Section):
    """Rejection sampling: the teacher samples n answers per prompt (GenerateConfig's fields)."""

    model: str = DEFAULT_TEACHER  # the teacher, unless the flow trains it
    run: str = "teacher"  # the samples' run name in the store
    limit: int | None = None
    where: str | None = None  # SQL over `prompts`
    sources: list[str] | None = None
    # Scale-out: the prompts are split into this many parts, each a task on the task runner
    # (Dask workers; with the openai engine each part talks to the next base_url).
    partitions: int = Field(1, ge=1)
    # Adaptive sampling (r1data.adaptive): rounds of samples, a prompt stops once selection's
    # verdict on it is decided; null: every prompt gets all n samples.
    adaptive: AdaptiveStage | None = None


GenerateStage = library_section(_GenerateStage, GenerateConfig)


class _FilterStage(_Section):
    """The verifiers deciding which samples are kept (FilterConfig's fields)."""


FilterStage = library_section(_FilterStage, FilterConfig)


class _SelectStage(_Section):
    """At most k verified samples per prompt (SelectConfig's fields)."""

    name: str = "curated"  # the curated set's name in the store


SelectStage = library_section(_SelectStage, SelectConfig)


class ExportStage(_Strict):
    """The curated set as a dataset (r1data.export.export)."""

    format: Literal["sft", "grpo"] = _default(export, "fmt")
    out: str | None = None  # default: <store>/../exports/<select.name>-<format>
    test_size: float = _default(export, "test_size")  # share of prompts held out (by id)
    plain_share: float = _default(export, "plain_share")  # sft rows without the R1 suffix


# The flow trains into a fresh folder each time (no resume), in this process (no torchrun).
_RUN_ONLY = ("data", "save_every", "save_weights", "eval_every", "fsdp")


class _StudentStage(_Section):
    """An SFT stage (SFTConfig's fields): the distilled student, the stage-3 SFT of the base."""

    model: str = DEFAULT_TEACHER  # the model to fine-tune
    out: str | None = None  # default: <store>/../students/<name> (sft: policies/<name>-sft)


StudentStage = library_section(_StudentStage, SFTConfig, drop=_RUN_ONLY)


class EvalStage(_Strict):
    """The R1 protocol (r1data.evaluate.evaluate) on the held-out prompts."""

    k: int = _default(evaluate, "k")  # samples per prompt: pass@1 is their mean
    max_tokens: int = _default(evaluate, "max_tokens")
    max_model_len: int | None = _default(evaluate, "max_model_len")


class _HarvestStage(_Section):
    """`cold_start.harvest:` the base model's own verified samples rewritten into the R1 format
    (r1data.harvest; HarvestConfig's fields, the model is cold_start.model)."""

    def model_post_init(self, _ctx) -> None:
        unknown = [f for f in self.gym if f not in TRAIN_GYM]
        if unknown:  # an exam family among them would leak the exam into training
            raise ValueError(f"not a harvest family: {', '.join(unknown)} (known: "
                             f"{', '.join(TRAIN_GYM)})")
        self._check(HarvestConfig, model="base")


HarvestStage = library_section(_HarvestStage, HarvestConfig, drop=("model",))


class _ColdStartStage(_Section):
    """R1 stage 1: SFT of the base model on worked solutions in the R1 format, so the teacher
    (or the RL policy) starts from readable <think> answers (SFTConfig's fields). The data is
    one of: `data` (a folder), `harvest` (the base's own verified samples, the R1 way), or
    `synth` (written worked solutions, the default)."""

    model: str = DEFAULT_TEACHER  # the base model
    data: str | None = None  # an SFT folder (`messages`); default: synthetic worked solutions
    # disjoint from the store's prompts (their problems are excluded too)
    synth: SynthPrompts = SynthPrompts(n=64, seed=_default(write_cold_start, "seed"))
    harvest: HarvestStage | None = None  # self-harvested instead of written (issue 10)
    out: str | None = None  # default: <store>/../policies/<name>-cold

    def model_post_init(self, _ctx) -> None:
        if self.data and self.harvest is not None:
            raise ValueError("cold_start.data and cold_start.harvest are alternatives: "
                             "set one")


ColdStartStage = library_section(_ColdStartStage, SFTConfig, drop=_RUN_ONLY)


class _RLStage(_Section):
    """r1_zero: GRPO straight from a base model on verifiable prompts (R1-Zero); r1_pipeline:
    reasoning RL from the cold start (`rl`) and the second, all-scenario RL (`rl2`)
    (GRPOConfig's fields)."""

    model: str = DEFAULT_TEACHER  # r1_zero's base model
    out: str | None = None  # default: <store>/../policies/<name> (rl2: <name>-rl2)
    # Exam the policy every N steps (needs `exam:`): one GRPO run keeps the policy's weights
    # every N steps in <out>/steps/step-<N>/model (the trainer's save_every), each examined.
    exam_every: int = Field(0, ge=0)


RLStage = library_section(_RLStage, GRPOConfig, drop=_RUN_ONLY)


class _GeneralStage(_Section):
    """`rl2.general:` IFEval-style seeded prompts and optionally IFBench's (GeneralPrompts'
    fields), split by prompt id like the reasoning prompts: the test side is never trained."""

    exam_k: int = Field(4, ge=1)  # samples per instruction-exam prompt
    exam_max_tokens: int = Field(256, ge=1)


GeneralStage = library_section(_GeneralStage, GeneralPrompts)


class _ExamStage(_Section):
    """`exam:` the held-out exam (r1data.exam; ExamConfig's fields) for every model the flow
    makes, with and without the R1 suffix; null (the default): no exam."""

    def model_post_init(self, _ctx) -> None:
        self._check(ExamConfig)


ExamStage = library_section(_ExamStage, ExamConfig)


class _SecondRLStage(_RLStage):
    """r1_pipeline stage 4, RL for all scenarios: rewards for readability and language beside
    accuracy (R1 §2.3.4), whether or not the section names other GRPO settings."""

    rewards: dict[str, float] = {"accuracy": 1.0, "format": 0.2, "language": 0.1,
                                 "repetition": 0.1}
    # General instruction prompts mixed into the reasoning prompts (r1data.general): the RL
    # data of stage 4 and its instruction exam (before and after); null: math prompts only.
    general: GeneralStage | None = None


SecondRLStage = library_section(_SecondRLStage, GRPOConfig, drop=_RUN_ONLY)


class PipelineConfig(_Strict):
    name: str
    flow: Literal["curate", "r1_zero", "distill", "r1_pipeline"] = "curate"
    store: str
    task_runner: Literal["local", "dask", "ray"] = "local"
    dask_workers: int = Field(2, ge=1)
    prompts: PromptsStage = PromptsStage()
    generate: GenerateStage = GenerateStage()
    filter: FilterStage = FilterStage()
    select: SelectStage = SelectStage()
    export: ExportStage = ExportStage()
    student: StudentStage = StudentStage()
    rl: RLStage = RLStage()
    eval: EvalStage | None = EvalStage()  # null: no R1 evaluation on the held-out task prompts
    cold_start: ColdStartStage | None = None  # distill/curate: cold-start the teacher first
    sft: StudentStage = StudentStage()  # r1_pipeline stage 3: SFT of the base on curated data
    rl2: SecondRLStage | None = SecondRLStage()  # r1_pipeline stage 4; null: skipped
    exam: ExamStage | None = None  # every model the flow makes, on the held-out exam

    def model_post_init(self, _ctx) -> None:
        """Models the pipeline trains are chained, not named twice: say which one wins."""
        chained = {"r1_pipeline": ["generate", "rl", "sft", "rl2"]}.get(self.flow, [])
        if self.cold_start is not None and self.flow in ("curate", "distill"):
            chained = ["generate"]
        for stage in chained:
            if getattr(self, stage) is not None and "model" in getattr(
                    self, stage).model_fields_set:
                raise ValueError(f"{stage}.model is chained by the {self.flow} flow "
                                 "(set cold_start.model for the base model)")
        if self.flow == "r1_pipeline" and self.cold_start is None:
            self.cold_start = ColdStartStage()
        if (self.rl.exam_every or self.rl2 and self.rl2.exam_every) and self.exam is None:
            raise ValueError("rl.exam_every / rl2.exam_every need an exam: section")

    def _out(self, out: str | None, folder: str, name: str) -> Path:
        """A stage's `out`, else <store>/../<folder>/<name>."""
        return Path(out) if out else Path(self.store).parent / folder / name

    def cold_dir(self) -> Path:
        return self._out((self.cold_start or ColdStartStage()).out, "policies",
                         f"{self.name}-cold")

    def sft_dir(self) -> Path:
        return self._out(self.sft.out, "policies", f"{self.name}-sft")

    def policy2_dir(self) -> Path:
        return self._out((self.rl2 or SecondRLStage()).out, "policies", f"{self.name}-rl2")

    def policy_dir(self) -> Path:
        return self._out(self.rl.out, "policies", self.name)

    def student_dir(self) -> Path:
        return self._out(self.student.out, "students", self.name)

    def export_dir(self) -> Path:
        return self._out(self.export.out, "exports",
                         f"{self.select.name}-{self.export.format}")

    def eval_data_dir(self) -> Path:
        """The curated prompts in GRPO form: the student's exam (distill)."""
        return Path(str(self.export_dir()) + "-eval")

    def rl_data_dir(self) -> Path:
        """The task prompts as a GRPO dataset (r1_zero, r1_pipeline)."""
        return Path(str(self.export_dir()) + "-rl")

    def rl2_data_dir(self) -> Path:
        """Stage 4's data: the task prompts mixed with general ones (rl2.general)."""
        return Path(str(self.export_dir()) + "-rl2")


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and validate; every error names the file and the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        cfg = PipelineConfig(**data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        where = f"field {loc!r}: " if loc else ""
        raise ConfigError(f"{path}: {where}{err['msg'].removeprefix('Value error, ')}") from None
    base = path.parent
    if not Path(cfg.store).is_absolute():  # paths in the file are relative to the file
        cfg.store = str((base / cfg.store).resolve())
    for stage in (cfg.export, cfg.student, cfg.rl, cfg.cold_start, cfg.sft, cfg.rl2):
        if stage is not None and stage.out and not Path(stage.out).is_absolute():
            stage.out = str((base / stage.out).resolve())
    cs = cfg.cold_start
    if cs is not None and cs.data and not Path(cs.data).is_absolute():
        cs.data = str((base / cs.data).resolve())
    return cfg
