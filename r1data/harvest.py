"""Self-harvested cold start (R1 stage 1, the R1 way): the base model's own verified reasoning.

DeepSeek-R1 collected its cold-start data by prompting the model, keeping readable outputs and
post-processing them into `<think>` … `</think>` + answer. Done data-centrically with r1data's
own stages: sample the base model many times per prompt (generate), keep the samples whose
final answer verifies (filter: correct), rewrite each into the R1 format — the model's own
reasoning inside the think block, then the verified answer boxed — as a new run of the store,
run the readability, repetition and language filters on it (filter), drop exact and near
duplicates (select), and export the survivors as SFT rows (export). Templates written by hand
teach a trigger; thousands of the model's own phrasings across many task families teach a habit.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, Field

from r1data.chat import drop_suffix
from r1data.config import R1_SYSTEM_PROMPT, R1_USER_SUFFIX, GenerateConfig
from r1data.errors import InputError
from r1data.store import SAMPLES_SCHEMA, Store, check_name

# reasoning-gym families the harvest trains on (none of them is in r1data.exam.EXAM_GYM),
# with settings a 135M model can sometimes solve: a family it never solves yields no rows.
TRAIN_GYM: dict[str, dict] = {
    "basic_arithmetic": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 1,
                         "operators": ("+", "-", "*"), "allow_parentheses": False,
                         "allow_negation": False},
    "simple_equations": {"min_terms": 2, "max_terms": 2, "min_value": 1, "max_value": 9,
                         "operators": ("+", "-"), "operators_weights": [0.5, 0.5]},
    "gcd": {"min_value": 1, "max_value": 20},
    "lcm": {"min_value": 1, "max_value": 10},
    "number_sequence": {"min_terms": 4, "max_terms": 5, "min_value": 1, "max_value": 10,
                        "max_complexity": 1},
}


class HarvestConfig(BaseModel):
    """What to sample, how to keep it, and how the SFT rows are shaped."""

    model: str  # the base model whose own reasoning becomes the cold start
    name: str = "harvest"  # run names <name> (raw samples), <name>-r1 (rewritten)
    synth_kinds: list[str] = Field(default_factory=lambda: ["arithmetic", "expression",
                                                            "word"])
    synth_n: int = Field(32, ge=0)  # prompts per synthetic kind
    synth_level: int = 1
    gym: dict[str, int] = Field(default_factory=lambda: {f: 16 for f in TRAIN_GYM})
    seed: int = 5000  # prompt seed (the quickstart's curation prompts use 0, its cold start 1000)
    n: int = Field(16, ge=1)  # samples per prompt: a weak model is right on a few of them
    max_tokens: int = Field(192, ge=16)
    system_prompt: str | None = R1_SYSTEM_PROMPT  # base SmolLM2 answers best with it
    k: int = Field(4, ge=1)  # distinct rows kept per prompt
    near_dup_threshold: float = 0.7  # Jaccard of 5-gram shingles: stricter than curation's 0.9
    plain_share: float = Field(0.5, ge=0, le=1)  # user turns without the R1 suffix: the
    # format must become a habit, not a reaction to the suffix
    seed_rows: int = Field(0, ge=0)  # hand-written worked solutions per synthetic kind, too
    engine_seed: int = 0


def add_prompts(store: Store, cfg: HarvestConfig) -> list[str]:
    """The harvest's training prompts (sources harvest/<family>); returns the sources."""
    from r1data.exam import gym_rows
    from r1data.prompts import IngestReport, add_rows, prompt_id
    from r1data.synth import synth_prompts

    rows = []
    for r in synth_prompts(cfg.synth_kinds, cfg.synth_n, seed=cfg.seed,
                           level=cfg.synth_level) if cfg.synth_n else []:
        rows.append(r | {"source": r["source"].replace("synth/", "harvest/")})
    for fam, n in cfg.gym.items():
        if fam not in TRAIN_GYM:
            raise InputError(f"not a harvest family (known: {', '.join(TRAIN_GYM)})",
                             path=f"gym:{fam}")
        for r in gym_rows(fam, n, cfg.seed, TRAIN_GYM[fam]):
            rows.append({"source": f"harvest/{fam}", "problem": r["problem"],
                         "answer": r["answer"], "domain": "math", "tests": None,
                         "meta": json.dumps(r["meta"])})
    for r in rows:
        r["prompt_id"] = prompt_id(r["source"], r["problem"])
    add_rows(store, rows, IngestReport(source="harvest", read=len(rows)))
    return sorted({r["source"] for r in rows})


def rewrite(completion: str, answer: str, gold: str) -> tuple[str, bool]:
    """The R1 form of a verified sample: its reasoning up to the line where the verified answer
    last appears (what follows is usually drift) in <think>, then the gold boxed; and whether
    that cut happened (then the text is complete even if the sample ran out of tokens later)."""
    text = completion.replace("<think>", "").replace("</think>", "").strip()
    cut = text.rfind(answer) if answer else -1
    if cut >= 0:
        end = text.find("\n", cut)
        text = text[:end if end >= 0 else len(text)].strip()
    return f"<think>\n{text}\n</think>\n\nThe answer is \\boxed{{{gold}}}.", cut >= 0


# A verified answer must be a value: the math verifier also accepts a restated expression
# ("(6 + 8) \\div 4" for 7/2, the last math span of a model that copied the question).
_VALUE = re.compile(r"^-?(?:\d+(?:\.\d+)?|\d+/\d+|\\frac\{\d+\}\{\d+\})$")


def write_rewritten(store: Store, run: str, out_run: str) -> tuple[int, int]:
    """The correct samples of `run` whose answer is a value, rewritten into the R1 format, as
    run `out_run`; returns (rewritten, dropped because the answer was not a value)."""
    from r1data import query
    from r1data.filters.extract import split_think

    rows = query.run(store, f"""
        SELECT s.*, v.answer AS extracted, p.answer AS gold
        FROM samples AS s JOIN verdicts AS v USING (run, prompt_id, sample_idx)
        JOIN prompts AS p USING (prompt_id)
        WHERE s.run = '{run}' AND v.correct
        ORDER BY s.prompt_id, s.sample_idx""").pl().to_dicts()
    if not rows:
        raise InputError(f"run {run!r} has no correct sample to harvest", path=str(store.root))
    for old in store.shards("samples", out_run):  # a rerun replaces the rewritten run whole
        old.unlink()
    out, not_value = [], 0
    for r in rows:
        if not _VALUE.match((r["extracted"] or "").replace(" ", "")):
            not_value += 1
            continue
        text, cut = rewrite(r["completion"], r["extracted"] or "", r["gold"])
        reasoning, final = split_think(text)
        out.append({k: r.get(k) for k in SAMPLES_SCHEMA.names} | {  # old shards: no round
            "run": out_run, "completion": text, "reasoning": reasoning, "final": final,
            "finish_reason": "stop" if cut else r["finish_reason"]})
    if not out:
        raise InputError(f"run {run!r}: no correct sample answers with a value",
                         path=str(store.root))
    store.write_shard("samples", pa.Table.from_pylist(out, schema=SAMPLES_SCHEMA), out_run,
                      metadata={"r1data_harvest": {"from_run": run}})
    return len(out), not_value


def distinctness(store: Store, run: str, threshold: float = 0.7) -> dict:
    """Of each prompt's correct samples, the share that are exact duplicates and the share
    that are near duplicates (5-gram Jaccard >= threshold) of an earlier one, and the share
    left distinct: a teacher whose samples repeat gives the student one example, many times."""
    from r1data import query
    from r1data.selection import dedup_counts

    rows = query.run(store, f"""
        SELECT s.prompt_id, s.completion FROM samples AS s
        JOIN verdicts AS v USING (run, prompt_id, sample_idx)
        WHERE s.run = '{run}' AND v.correct ORDER BY s.prompt_id, s.sample_idx""").pl()
    per: dict[str, list[str]] = {}
    for pid, text in rows.iter_rows():
        per.setdefault(pid, []).append(" ".join(text.split()))
    prompts = []
    for pid, texts in per.items():
        exact, near, distinct = dedup_counts(texts, threshold)
        prompts.append({"prompt_id": pid, "correct": len(texts), "exact_dup": exact,
                        "near_dup": near, "distinct": distinct})
    n = sum(p["correct"] for p in prompts)

    def share(key: str) -> float:
        return round(sum(p[key] for p in prompts) / n, 4) if n else 0.0

    shares = [p["distinct"] / p["correct"] for p in prompts]
    return {"run": run, "prompts": len(prompts), "correct": n, "exact_dup_rate": share("exact_dup"),
            "near_dup_rate": share("near_dup"), "distinct_rate": share("distinct"),
            "prompts_half_distinct": round(sum(s >= 0.5 for s in shares) / len(shares), 4)
            if shares else 0.0, "per_prompt": prompts}


def _plain(row: dict, share: float) -> dict:
    """Drop the R1 suffix from the user turn of a deterministic share of the rows."""
    return row | {"messages": drop_suffix(row["messages"], share)}


def harvest(store: Store, cfg: HarvestConfig, out: str | Path, *, engine=None,
            exclude: set[str] | frozenset = frozenset(), progress: bool = True) -> dict:
    """Sample -> verify -> rewrite -> filter -> dedup -> SFT rows at `out` (train split), with
    a card holding the funnel; returns the counts. `exclude`: problems that must stay unseen
    (the exam, the prompts curated later)."""
    from r1data.coldstart import cold_start_rows, save_sft_rows
    from r1data.exam import exam_rows
    from r1data.export import dataset_card, rows_for
    from r1data.filtering import FilterConfig, filter_run
    from r1data.generate import generate
    from r1data.selection import SelectConfig, select

    check_name("run", cfg.name)
    raw, r1 = cfg.name, f"{cfg.name}-r1"
    sources = add_prompts(store, cfg)
    gcfg = GenerateConfig(model=cfg.model, n=cfg.n, max_tokens=cfg.max_tokens,
                          seed=cfg.engine_seed, system_prompt=cfg.system_prompt)
    gen = generate(store, gcfg, raw, sources=sources, engine=engine, progress=progress)
    verified = filter_run(store, raw, FilterConfig(checks=["correct"]), progress=progress)
    rewritten, not_value = write_rewritten(store, raw, r1)
    store.write_manifest("generate", r1, {"run": r1, "engine": "rewrite",
                                          "config": gcfg.model_dump(exclude={"api_key"}),
                                          "from_run": raw, "status": "complete"})
    filtered = filter_run(store, r1, FilterConfig(), progress=progress)
    sel = select(store, r1, r1, SelectConfig(k=cfg.k, policy="diverse",
                                             near_dup_threshold=cfg.near_dup_threshold))
    if sel.kept == 0:
        raise InputError(f"no harvested sample passed the filters (run {r1!r})",
                         path=str(store.root))
    held = set(exclude) | {r["problem"] for r in exam_rows()}
    rows = [r for r in rows_for(store, r1, "sft")
            if r["messages"][0]["content"].removesuffix(R1_USER_SUFFIX) not in held]
    seeds = cold_start_rows([k for k in cfg.synth_kinds if k != "word"] or ["arithmetic"],
                            cfg.seed_rows, seed=cfg.seed + 1, exclude=held) \
        if cfg.seed_rows else []
    rows = [_plain({"messages": r["messages"], "source": r["source"], "domain": r["domain"]},
                   cfg.plain_share) for r in rows + seeds]
    dist = distinctness(store, raw, cfg.near_dup_threshold)
    funnel = {"prompts": gen.prompts, "samples": verified.total,
              "verified": verified.kept,
              "dropped_not_a_value": not_value, "rewritten": rewritten,
              "passed_filters": filtered.kept,
              "dropped_by_filters": filtered.dropped, "selection": asdict(sel),
              "seed_rows": len(seeds), "rows": len(rows),
              "plain_rows": sum(not r["messages"][0]["content"].endswith(R1_USER_SUFFIX)
                                for r in rows)}
    summary = {k: v for k, v in dist.items() if k != "per_prompt"}
    card = dataset_card(store, r1, "sft", {"train": len(rows)}) + (
        "\n## Harvest (self-harvested cold start)\n\n"
        f"- base model: `{cfg.model}`; config: `{cfg.model_dump_json()}`\n"
        f"- funnel: `{json.dumps(funnel)}`\n"
        f"- distinctness of the base model's correct samples: `{json.dumps(summary)}`\n")
    save_sft_rows(out, rows, card)
    result = {"out": str(out), "funnel": funnel, "distinct": summary}
    store.write_manifest("export", cfg.name, result | {
        "config": cfg.model_dump(), "created_at": dt.datetime.now(dt.UTC).isoformat()})
    return result
