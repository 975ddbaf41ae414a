"""One YAML file describes a pipeline; validated up front with file- and field-named errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from r1data.chat import R1_SYSTEM_PROMPT, R1_USER_SUFFIX
from r1data.errors import ConfigError

FLOWS = ("curate", "r1_zero", "distill", "r1_pipeline")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in the YAML is an error, not ignored


class SynthPrompts(_Strict):
    kinds: list[str] = ["arithmetic", "expression", "countdown"]
    n: int = 16  # prompts per kind
    level: int = 1
    seed: int = 0


class AddPrompts(_Strict):
    path: str  # file, save_to_disk folder, humaneval, champ or gym:<name>
    source: str | None = None
    map: dict[str, str] = {}
    domain: str = "math"


class PromptsStage(_Strict):
    synth: SynthPrompts | None = None
    add: list[AddPrompts] = []


class GenerateStage(_Strict):
    model: str = "smollm2"
    run: str = "teacher"
    engine: Literal["vllm", "openai"] = "vllm"
    n: int = 64
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int = 0
    limit: int | None = None
    where: str | None = None
    sources: list[str] | None = None
    base_url: list[str] = []
    shard_prompts: int = 8
    # Scale-out: the prompts are split into this many parts, each a task on the task runner
    # (Dask workers; with the openai engine each part talks to the next base_url).
    partitions: int = Field(1, ge=1)
    max_model_len: int | None = None
    system_prompt: str | None = R1_SYSTEM_PROMPT  # "" for none
    user_suffix: str = R1_USER_SUFFIX


class FilterStage(_Strict):
    checks: list[str] = ["correct", "format", "language"]
    target_language: str = "en"
    min_consistency: float = 0.9
    timeout: float = 5.0


class SelectStage(_Strict):
    name: str = "curated"
    k: int = 4
    policy: Literal["shortest", "random", "diverse"] = "shortest"
    min_pass_rate: float = 0.0
    max_pass_rate: float = 1.0
    decontaminate: list[str] = []


class ExportStage(_Strict):
    format: Literal["sft", "grpo"] = "sft"
    out: str | None = None  # default: <store>/../exports/<select.name>-<format>
    test_size: float = 0.1


class StudentStage(_Strict):
    """distill: SFT of a student on the exported teacher samples."""

    model: str = "smollm2"  # the student to fine-tune
    out: str | None = None  # default: <store>/../students/<name>
    max_steps: int | None = None
    epochs: float = 2.0
    batch_size: int = 8
    lr: float = 1e-4
    warmup_steps: int = 10
    max_len: int = 1024
    bf16: bool = True  # autocast (fast on CPUs with AMX and on GPUs); fp32 master weights


class EvalStage(_Strict):
    """distill: the R1 protocol on the held-out prompts (test split of the export)."""

    k: int = 64
    max_tokens: int = 1024
    max_model_len: int | None = None


class ColdStartStage(StudentStage):
    """R1 stage 1: SFT of the base model on a few worked solutions in the R1 format, so the
    teacher (or the RL policy) starts from readable <think> answers."""

    model: str = "smollm2"  # the base model
    data: str | None = None  # an SFT folder (`messages`); default: synthetic worked solutions
    synth: SynthPrompts = SynthPrompts(n=64, seed=1000)  # disjoint from the store's prompts
    out: str | None = None  # default: <store>/../policies/<name>-cold
    max_steps: int | None = 16
    epochs: float = 1.0
    lr: float = 1.5e-4
    warmup_steps: int = 4
    max_len: int = 512


class RLStage(_Strict):
    """r1_zero: GRPO straight from a base model on verifiable prompts (R1-Zero); r1_pipeline:
    reasoning RL from the cold start (`rl`) and the second, all-scenario RL (`rl2`)."""

    model: str = "smollm2"
    out: str | None = None  # default: <store>/../policies/<name>
    rewards: dict[str, float] = {"accuracy": 1.0, "format": 0.2}
    num_generations: int = 16  # R1: 16
    prompts_per_step: int = 4
    max_steps: int = 100
    max_completion_length: int = 256
    temperature: float = 1.0
    lr: float = 1e-6
    beta: float = 0.0
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = "dapo"


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
    eval: EvalStage = EvalStage()
    cold_start: ColdStartStage | None = None  # distill/curate: cold-start the teacher first
    sft: StudentStage = StudentStage()  # r1_pipeline stage 3: SFT of the base on curated data
    rl2: RLStage = RLStage(rewards={"accuracy": 1.0, "format": 0.2, "language": 0.1,
                                    "repetition": 0.1})

    def model_post_init(self, _ctx) -> None:
        """Models the pipeline trains are chained, not named twice: say which one wins."""
        chained = {"r1_pipeline": ["generate", "rl", "sft", "rl2"]}.get(self.flow, [])
        if self.cold_start is not None and self.flow in ("curate", "distill"):
            chained = ["generate"]
        for stage in chained:
            if "model" in getattr(self, stage).model_fields_set:
                raise ValueError(f"{stage}.model is chained by the {self.flow} flow "
                                 "(set cold_start.model for the base model)")
        if self.flow == "r1_pipeline" and self.cold_start is None:
            self.cold_start = ColdStartStage()

    def _out(self, out: str | None, folder: str, name: str) -> Path:
        """A stage's `out`, else <store>/../<folder>/<name>."""
        return Path(out) if out else Path(self.store).parent / folder / name

    def cold_dir(self) -> Path:
        return self._out((self.cold_start or ColdStartStage()).out, "policies",
                         f"{self.name}-cold")

    def sft_dir(self) -> Path:
        return self._out(self.sft.out, "policies", f"{self.name}-sft")

    def policy2_dir(self) -> Path:
        return self._out(self.rl2.out, "policies", f"{self.name}-rl2")

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
        raise ConfigError(f"{path}: {where}{err['msg']}") from None
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
