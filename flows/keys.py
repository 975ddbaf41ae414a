"""Cache keys of the flow stages: a rerun skips what is done and redoes what changed.

A stage's key is the part of the config it depends on (STAGE_SECTIONS), the task prompts by id,
and the store shards and trained models or datasets it reads. So changing `eval.k` re-runs the
evaluations, not the cold start, and retrained weights or rewritten data invalidate what follows.

The task prompts are the ones the flow curates and trains on: not the evaluations' (eval/...),
the exam's (exam/...) nor the harvest's own (harvest/...), which stages add as they run; they
never change a key and never reach generate or the RL data (TASK_PROMPTS).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from r1data.flows.config import PipelineConfig

# SQL over `prompts`: the task prompts, without those the stages add for themselves.
NOT_TASK = ("eval/", "exam/", "harvest/")
TASK_PROMPTS = " AND ".join(f"source NOT LIKE '{p}%'" for p in NOT_TASK)
# The configuration each stage depends on. What a stage reads from earlier stages is in its
# `reads` (stages.py): ("prompts",) the task prompts, (table, part) shards, a Path a model or
# dataset folder.
STAGE_SECTIONS = {
    "prompts": ["prompts"], "cold_data": ["cold_start"], "cold_start": ["cold_start"],
    "generate": ["generate", "export"], "filter": ["filter"], "select": ["select"],
    "export": ["select", "export"], "export_eval": ["select", "export"],
    "student": ["export", "student"], "eval": ["export", "eval"],
    "eval_student": ["export", "eval"], "rl_data": ["generate", "export"], "rl": ["rl"],
    "sft": ["export", "sft", "cold_start"], "rl2": ["rl2"], "rl2_data": ["rl2", "export"],
}
# Tasks named after what they examine (exam_base, exam_student, exam_rl-step10, ifexam_sft):
# the exam settings are all they depend on beside the model they read.
PREFIX_SECTIONS = {"exam_": ["exam"], "ifexam_": ["rl2"]}


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def shard_names(store_root: str, table: str, part: str | None = None) -> list[str]:
    """The data shards of a table (or one run of it); none before the store exists."""
    from r1data.store import Store

    return Store(store_root).shard_names(table, part) if Path(store_root).is_dir() else []


def folder_stamp(folder: Path) -> list | None:
    """A model's or dataset's identity for cache keys (its weight or Arrow files): retrained
    weights or rewritten data invalidate what follows."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*/*.arrow")) or \
        [folder / "config.json"]
    return [[str(f.relative_to(folder)), f.stat().st_mtime_ns, f.stat().st_size]
            for f in files if f.exists()] or None


def stage_config(stage: str, cfg: PipelineConfig) -> dict:
    dump = cfg.model_dump()
    sections = STAGE_SECTIONS.get(stage) or next(
        (v for p, v in PREFIX_SECTIONS.items() if stage.startswith(p)), list(dump))
    out = {"flow": cfg.flow, "name": cfg.name, **{k: dump[k] for k in sections}}
    if stage == "cold_data" and cfg.exam is not None:  # the harvest excludes the exam's
        # problems: which ones they are matters, not how they are sampled (exam.k)
        out["exam_prompts"] = {k: dump["exam"][k] for k in ("families", "per_family", "seed")}
    return out


def prompts_stamp(store_root: str) -> str | None:
    """The task prompts by id: evaluations, the exam and the harvest add their own (NOT_TASK),
    which must not invalidate the stages that train on the task prompts."""
    from r1data import query
    from r1data.store import Store

    if not shard_names(store_root, "prompts"):
        return None
    ids = query.run(Store(store_root, create=False), "SELECT prompt_id FROM prompts WHERE "
                    f"{TASK_PROMPTS} ORDER BY prompt_id").fetchall()
    return fingerprint([i[0] for i in ids])


def stage_key(stage: str, cfg: dict, store_root: str, reads: list) -> str:
    """Config + the task prompts, the shards (tuples), the models or datasets (paths) and the
    named models (strings: a base model by name) a stage reads."""
    state = [folder_stamp(r) if isinstance(r, Path) else r if isinstance(r, str)
             else prompts_stamp(store_root) if r == ("prompts",)
             else shard_names(store_root, *r) for r in reads]
    return f"r1data-{stage}-{fingerprint(stage, cfg, store_root, state)}"
