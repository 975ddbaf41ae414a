"""Typed stage configs with the DeepSeek-R1 defaults; each is saved with the output it produced."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from r1data.chat import R1_SYSTEM_PROMPT, R1_USER_SUFFIX
from r1data.errors import ConfigError


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
    dtype: str = "auto"
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


def load_config(cls: type[BaseModel], path: str | Path | None = None, **overrides) -> BaseModel:
    """YAML file + overrides -> config, with one-line errors naming the file and field."""
    data: dict = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"{path or 'config'}: field {loc!r}: {err['msg']}") from None
