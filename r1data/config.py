"""Typed stage configs with the DeepSeek-R1 defaults; each is saved with the output it produced."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from r1data.chat import R1_SYSTEM_PROMPT, R1_USER_SUFFIX
from r1data.errors import ConfigError

DEFAULT_TEACHER = "smollm2"  # a model `r1data models prepare` builds offline


class GenerateConfig(BaseModel):
    """Teacher sampling: R1 §2.3.3 samples 64 per prompt at temperature 0.6, top-p 0.95."""

    model: str  # local HF folder, a prepared model name, or a hub id where a hub is reachable
    engine: Literal["vllm", "openai"] = "vllm"
    n: int = Field(64, ge=1, le=1024)  # samples per prompt
    temperature: float = Field(0.6, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)  # R1 used 32,768; small default for CPU machines
    seed: int = 0  # engine seed (vLLM: LLM(seed=...)); recorded on every row
    system_prompt: str | None = R1_SYSTEM_PROMPT
    user_suffix: str = R1_USER_SUFFIX
    shard_prompts: int = Field(8, ge=1)  # prompts per Parquet shard (a kill loses at most one)
    # vllm engine
    max_model_len: int | None = None
    dtype: str = "auto"  # the model's; fp32 on a CPU without bf16 units (engines.engine_dtype)
    enforce_eager: bool | None = None  # None: eager on CPU (12 s start vs 70-90 s compile)
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    # openai engine
    base_url: list[str] = Field(default_factory=list)  # one or more servers, round-robin
    api_key: str = "EMPTY"
    served_model: str | None = None  # model name the server knows, if not `model`
    concurrency: int = Field(8, ge=1)
    timeout: float = Field(600.0, gt=0)  # seconds per request
    retries: int = Field(4, ge=0)

    @field_validator("model")
    @classmethod
    def _model_nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("model is empty")
        return v

    @field_validator("system_prompt")
    @classmethod
    def _empty_is_none(cls, v: str | None) -> str | None:
        return v or None  # "" (from a flag or YAML) means no system turn


def field_defaults(cls) -> dict:
    """name -> default of a pydantic model's or a dataclass's fields (required ones left out):
    the CLI's --help and its options read them here instead of re-typing them."""
    import dataclasses

    if dataclasses.is_dataclass(cls):
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out
    return {k: f.get_default(call_default_factory=True) for k, f in cls.model_fields.items()
            if not f.is_required()}


def signature_defaults(fn) -> dict:
    """name -> default of a library function's keyword arguments (export, evaluate)."""
    import inspect

    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def load_config(cls: type[BaseModel], path: str | Path | None = None, *,
                fallbacks: dict | None = None, **overrides) -> BaseModel:
    """fallbacks < YAML file < overrides -> config, with one-line errors naming the file and
    field. An override of None is "not given" (a CLI flag left out), so the YAML's value stays:
    callers pass only what the user set, never the flag defaults."""
    data: dict = dict(fallbacks or {})
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of field: value")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"{path or 'config'}: field {loc!r}: {err['msg']}") from None
