"""Export a curated set as a Hugging Face DatasetDict (train/test) with a dataset card.

The split is by prompt (a hash of prompt_id), so no problem appears in both train and test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

from r1data.chat import join_think, user_text
from r1data.errors import InputError
from r1data.store import Store, check_name

FORMATS = ("sft", "grpo")


def _in_test(prompt_id: str, test_size: float) -> bool:
    return int(prompt_id[:8], 16) / 0x100000000 < test_size


def not_test_sql(test_size: float) -> str:
    """SQL over `prompts` for the train side of the same split, so held-out prompts can be kept
    out of sampling for training (r1_pipeline) and stay a fair exam."""
    return f"(('0x' || substr(prompt_id, 1, 8))::UBIGINT / 4294967296.0 >= {float(test_size)})"


def assistant_text(reasoning: str | None, final: str | None, completion: str) -> str:
    """The R1 target: reasoning inside <think>, the answer after it."""
    return completion.strip() if reasoning is None else join_think(reasoning, final)


def rows_for(store: Store, curated: str, fmt: str) -> list[dict]:
    from r1data import query

    rel = query.run(store, f"""
        SELECT prompt_id, sample_idx, run, source, problem, answer, domain, tests, meta,
               completion, reasoning, final
        FROM curated WHERE curated = '{curated}' ORDER BY prompt_id, sample_idx""")
    data = rel.pl().to_dicts()
    if not data:
        raise InputError(f"curated set {curated!r} is empty or missing (run `r1data select`)",
                         path=str(store.root))
    if fmt == "sft":
        return [{"messages": [{"role": "user", "content": user_text(r["problem"], r["domain"])},
                              {"role": "assistant",
                               "content": assistant_text(r["reasoning"], r["final"],
                                                         r["completion"])}],
                 "prompt_id": r["prompt_id"], "source": r["source"], "domain": r["domain"]}
                for r in data]
    seen, out = set(), []
    for r in data:  # GRPO: one row per prompt; the policy samples its own completions
        if r["prompt_id"] in seen:
            continue
        seen.add(r["prompt_id"])
        out.append({"prompt": [{"role": "user", "content": user_text(r["problem"], r["domain"])}],
                    "answer": r["answer"] or "", "domain": r["domain"],
                    "tests": r["tests"] or "", "meta": r["meta"] or "",
                    "prompt_id": r["prompt_id"], "source": r["source"]})
    return out


def dataset_card(store: Store, curated: str, fmt: str, counts: dict[str, int]) -> str:
    """README.md with the teacher, sampling parameters, filters and funnel numbers."""
    from r1data import query

    sel = store.read_manifest("select", curated) or {}
    run = sel.get("run")
    gen = (store.read_manifest("generate", run) or {}) if run else {}
    filt = (store.read_manifest("filter", run) or {}) if run else {}
    g = gen.get("config", {})
    funnel = query.run(store, query.report_sql("funnel")).pl()
    if run:
        funnel = funnel.filter(funnel["run"] == run)
    lines = [
        "---", "license: other", f"pretty_name: r1data {curated} ({fmt})",
        "configs:", "- config_name: default", "  data_files:",
        *[f"  - split: {s}\n    path: data/{s}.parquet" for s in counts],
        "---", "", f"# {curated}", "",
        f"DeepSeek-R1-style {fmt.upper()} data exported by r1data from run `{run}`.", "",
        "## Teacher and sampling", "",
        f"- model: `{g.get('model')}` (engine `{gen.get('engine')}`)",
        f"- n={g.get('n')} samples per prompt, temperature={g.get('temperature')}, "
        f"top_p={g.get('top_p')}, max_tokens={g.get('max_tokens')}, seed={g.get('seed')}",
        f"- versions: {json.dumps(gen.get('versions', {}))}", "",
        "## Filters and selection", "",
        f"- filters: `{json.dumps(filt.get('config', {}))}`",
        f"- selection: `{json.dumps(sel.get('config', {}))}`",
        f"- selection counts: `{json.dumps(sel.get('counts', {}))}`", "",
        "## Funnel (samples)", "", "| source | outcome | samples | fraction |", "|---|---|---|---|",
        *[f"| {r['source']} | {r['outcome']} | {r['samples']} | {r['fraction']} |"
          for r in funnel.to_dicts()], "",
        "## Splits", "", *[f"- {s}: {n} rows" for s, n in counts.items()], "",
    ]
    return "\n".join(lines)


def export(store: Store, curated: str, out: str | Path, *, fmt: Literal["sft", "grpo"] = "sft",
           test_size: float = 0.1, push_to_hub: str | None = None, private: bool = True) -> dict:
    """Write DIR (save_to_disk), DIR/data/<split>.parquet and DIR/README.md; optionally push."""
    import datasets
    import pyarrow.parquet as pq

    check_name("curated", curated)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (sft or grpo)")
    if not 0 <= test_size < 1:
        raise InputError("test size must be in [0, 1)")
    rows = rows_for(store, curated, fmt)
    ids = sorted({r["prompt_id"] for r in rows})
    test_ids = {p for p in ids if _in_test(p, test_size)}
    if test_size > 0 and len(ids) > 1 and not test_ids:  # small sets still get a test prompt
        test_ids = {ids[0]}
    if len(test_ids) == len(ids):
        test_ids = set()
    splits = {"train": [r for r in rows if r["prompt_id"] not in test_ids],
              "test": [r for r in rows if r["prompt_id"] in test_ids]}
    # An empty split saves as 0 shards that load_from_disk cannot read back: leave it out.
    features = datasets.Dataset.from_list(rows[:1]).features
    dd = datasets.DatasetDict({s: datasets.Dataset.from_list(v, features=features)
                               for s, v in splits.items() if v})
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    dd.save_to_disk(str(staging))
    (staging / "data").mkdir()
    for s, ds in dd.items():
        pq.write_table(ds.data.table, staging / "data" / f"{s}.parquet")
    counts = {s: len(ds) for s, ds in dd.items()}
    (staging / "README.md").write_text(dataset_card(store, curated, fmt, counts))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    if push_to_hub:
        dd.push_to_hub(push_to_hub, private=private)
        from huggingface_hub import HfApi

        HfApi().upload_file(path_or_fileobj=str(out / "README.md"), path_in_repo="README.md",
                            repo_id=push_to_hub, repo_type="dataset")
    return {"out": str(out), "format": fmt, **counts}


def export_prompts(store: Store, out: str | Path, *, where: str | None = None,
                   sources: list[str] | None = None, test_size: float = 0.1) -> dict:
    """Prompts alone as a GRPO dataset (R1-Zero needs no teacher samples), split by prompt."""
    import datasets

    from r1data.generate import select_prompts

    picked = {p["prompt_id"] for p in select_prompts(store, where=where, sources=sources)}
    rows = [{"prompt": [{"role": "user", "content": user_text(r["problem"], r["domain"])}],
             "answer": r["answer"] or "", "domain": r["domain"], "tests": r["tests"] or "",
             "meta": r["meta"] or "", "prompt_id": r["prompt_id"], "source": r["source"]}
            for r in store.read("prompts").to_pylist() if r["prompt_id"] in picked]
    if not rows:
        raise InputError("no prompts match", path=str(store.root))
    test = [r for r in rows if _in_test(r["prompt_id"], test_size)]
    train = [r for r in rows if not _in_test(r["prompt_id"], test_size)] or test
    splits = {"train": train, "test": test if train is not test else []}
    out = Path(out)
    dd = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items() if v})
    shutil.rmtree(out, ignore_errors=True)
    dd.save_to_disk(str(out))
    return {"out": str(out), **{k: len(v) for k, v in dd.items()}}
