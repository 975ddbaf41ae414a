"""R1's second RL stage, "RL for all scenarios" (§2.3.4): the reasoning prompts mixed with
general instruction prompts, and an exam of instruction following before and after it.

General prompts come from the seeded IFEval-style generator (r1data.ifgen) and, optionally,
IFBench's test prompts. They are split by prompt id like every r1data dataset: the train side
is RL data, the test side the instruction exam, never trained on. The exam samples each held-out
prompt k times and reports the instruction-level rate (share of instructions followed, IFEval's
"loose" average) and the prompt-level rate (all of a prompt's instructions followed), graded by
the same `instructions` reward the RL optimises.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from r1data.chat import chat_messages, problem_of
from r1data.errors import InputError
from r1data.store import Store


@dataclass
class GeneralPrompts:
    ifgen: int = 64  # seeded IFEval-style prompts (r1data.ifgen)
    ifbench: bool = False  # also IFBench's 294 test prompts (mostly judged: few ids checkable)
    seed: int = 0


def general_rows(cfg: GeneralPrompts) -> list[dict]:
    """The general prompts as GRPO rows (prompt, answer, domain, tests, meta, prompt_id,
    source), without touching the store."""
    from r1data.ifgen import ifgen_prompts
    from r1data.prompts import ifbench_rows, prompt_id

    rows = ifgen_prompts(cfg.ifgen, seed=cfg.seed) if cfg.ifgen else []
    rows += ifbench_rows() if cfg.ifbench else []
    return [{"prompt": chat_messages(r["problem"], r["domain"]), "answer": "",
             "domain": r["domain"], "tests": "", "meta": r["meta"] or "",
             "prompt_id": prompt_id(r["source"], r["problem"]), "source": r["source"]}
            for r in rows]


def mixed_rl_data(reasoning: str | Path, out: str | Path, cfg: GeneralPrompts, *,
                  test_size: float = 0.1, overwrite: bool = False) -> dict:
    """reasoning's GRPO dataset (train/test) plus the general prompts, each split by prompt id
    (the general test side is the instruction exam); counts by split and kind."""
    import datasets

    from r1data.export import _in_test, replacing

    try:
        dd = datasets.load_from_disk(str(reasoning))
    except (FileNotFoundError, ValueError) as e:
        raise InputError(f"not a dataset folder ({str(e).splitlines()[0]})",
                         path=str(reasoning)) from None
    splits = {s: dd[s].to_list() for s in dd} if isinstance(dd, datasets.DatasetDict) else \
        {"train": dd.to_list()}
    general = general_rows(cfg)
    counts = {f"reasoning_{s}": len(v) for s, v in splits.items()}
    for r in general:
        splits.setdefault("test" if _in_test(r["prompt_id"], test_size) else "train",
                          []).append(r)
    for s in splits:
        counts[f"general_{s}"] = sum(r["domain"] == "general" for r in splits[s])
    cols = ("prompt", "answer", "domain", "tests", "meta", "prompt_id", "source")
    out_dd = datasets.DatasetDict({s: datasets.Dataset.from_list(
        [{c: "" if r.get(c) is None else r[c] for c in cols} for r in v])
        for s, v in splits.items() if v})
    with replacing(out, overwrite=overwrite, what="prompts") as staging:
        out_dd.save_to_disk(str(staging))
    return {"out": str(out), **counts}


def instruction_exam(store: Store, model: str, data: str | Path, *, run: str, k: int = 4,
                     max_tokens: int = 512, split: str = "test", seed: int = 0,
                     engine=None, progress: bool = False) -> dict:
    """Sample the general prompts of data[split] k times with `model` (T=0.6, top-p 0.95, no
    system prompt) and grade them with the instructions reward; the result (also the eval
    manifest of `run`): prompts, samples, instruction_rate (mean share of a sample's
    instructions followed) and prompt_rate (share of samples that follow all of them)."""
    import datasets

    from r1data.config import GenerateConfig
    from r1data.filters.rewards import get_reward
    from r1data.generate import generate
    from r1data.prompts import IngestReport, add_rows, prompt_id

    dd = datasets.load_from_disk(str(data))
    rows = [r for r in (dd[split] if split in dd else []) if r["domain"] == "general"
            and json.loads(r["meta"] or "{}").get("instruction_id_list")]
    if not rows:
        raise InputError(f"no general prompts with instructions in split {split!r}",
                         path=str(data))
    source = f"eval/ifexam-{Path(data).name}"  # eval/: not a task prompt (flows keys)
    prompts = [{"source": source, "problem": problem_of(r["prompt"]), "answer": None,
                "domain": "general", "tests": None, "meta": r["meta"]} for r in rows]
    for p in prompts:
        p["prompt_id"] = prompt_id(source, p["problem"])
    add_rows(store, prompts, IngestReport(source=source, read=len(prompts)))
    gen = GenerateConfig(model=model, n=k, max_tokens=max_tokens, seed=seed, system_prompt=None)
    generate(store, gen, run, sources=[source], engine=engine, progress=progress)
    meta = {p["prompt_id"]: p["meta"] for p in prompts}
    samples = [s for s in store.read("samples", run, columns=["prompt_id", "completion"])
               .to_pylist() if s["prompt_id"] in meta]
    scores = get_reward("instructions")([s["completion"] for s in samples],
                                        meta=[meta[s["prompt_id"]] for s in samples])
    scores = [x for x in scores if x is not None]
    result = {"run": run, "model": model, "prompts": len(prompts), "samples": len(scores),
              "instruction_rate": round(sum(scores) / len(scores), 4) if scores else None,
              "prompt_rate": round(sum(x == 1.0 for x in scores) / len(scores), 4)
              if scores else None, "k": k,
              "created_at": dt.datetime.now(dt.UTC).isoformat()}
    store.write_manifest("eval", run, result | {"data": str(data), "split": split,
                                                "general": "instructions"})
    return result
