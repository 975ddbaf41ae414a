"""Export a curated set as a Hugging Face DatasetDict (train/test) with a dataset card.

The split is by prompt (a hash of prompt_id), so no problem appears in both train and test.
An export folder carries a `.r1data-export` marker: r1data replaces a folder it wrote (built
beside it, then swapped in by rename) and refuses any other non-empty folder unless told to
overwrite, so a user's folder is never emptied by a mistyped --out.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from r1data.chat import chat_messages, join_think
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
        return [{"messages": [*chat_messages(r["problem"], r["domain"]),
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
        out.append({"prompt": chat_messages(r["problem"], r["domain"]),
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
        *near_dup_lines(store, curated, sel.get("counts", {})),
        "## Funnel (samples)", "", "| source | outcome | samples | fraction |", "|---|---|---|---|",
        *[f"| {r['source']} | {r['outcome']} | {r['samples']} | {r['fraction']} |"
          for r in funnel.to_dicts()], "",
        "## Splits", "", *[f"- {s}: {n} rows" for s, n in counts.items()], "",
    ]
    return "\n".join(lines)


def near_dup_lines(store: Store, curated: str, counts: dict) -> list[str]:
    """The card's near-duplicate section: selection's cross-prompt counts and how many of the
    set's prompts near-duplicate another prompt of the store (found at ingest)."""
    from r1data import query

    dup_prompts = query.run(store, f"""
        SELECT count(DISTINCT c.prompt_id) FROM prompt_clusters AS c
        JOIN curated AS k USING (prompt_id)
        WHERE k.curated = '{curated}' AND c.prompt_id <> c.cluster""").fetchall()[0][0]
    return ["## Near-duplicates (MinHash-LSH)", "",
            f"- samples near-duplicating a kept sample of another prompt: "
            f"{counts.get('near_dup_cross_prompt', 0)} in {counts.get('near_dup_clusters', 0)} "
            f"clusters ({counts.get('dropped_cross_prompt', 0)} dropped; view `sample_clusters`)",
            f"- prompts of the set near-duplicating an earlier prompt: {dup_prompts} "
            "(found at ingest; view `prompt_clusters`)", ""]


MARKER = ".r1data-export"
# What an export of r1data before the marker held: such a folder may be replaced too.
_OLD_EXPORT = {"dataset_dict.json", "README.md", "data", "train", "test"}


def _ours(out: Path) -> bool:
    names = {p.name for p in out.iterdir()}
    return not names or MARKER in names or ("dataset_dict.json" in names and names <= _OLD_EXPORT)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


@contextlib.contextmanager
def replacing(out: str | Path, *, overwrite: bool = False, what: str = "export"
              ) -> Iterator[Path]:
    """Yield a sibling staging folder to build an export in, then put it in place of `out`.

    A non-empty `out` that r1data did not write is refused (with --overwrite it is replaced);
    the old export is swapped out in one rename, so a kill at any moment leaves either the old
    or the new export at `out`, never a mix; a failed build removes its staging folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", path=str(out))
    if out.is_dir() and not overwrite and not _ours(out):
        raise InputError(f"folder is not empty and was not written by r1data (no {MARKER}); "
                         "choose another folder or pass --overwrite to replace it",
                         path=str(out))
    tag = uuid.uuid4().hex[:8]
    staging = out.with_name(f".{out.name}.r1data-{tag}.partial")
    old = out.with_name(f".{out.name}.r1data-{tag}.old")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        yield staging
        (staging / MARKER).write_text(json.dumps({"what": what}) + "\n")
        if out.is_dir():
            if _exchange(staging, out):
                staging, old = old, staging  # the old export now sits at `staging`'s name
            else:
                os.rename(out, old)
                os.rename(staging, out)
        else:
            os.rename(staging, out)
    except OSError as e:
        raise InputError(f"cannot write ({errno.errorcode.get(e.errno or 0, 'OSError')}: "
                         f"{e.strerror or e})", path=str(out)) from None
    finally:
        for leftover in (staging, old):
            shutil.rmtree(leftover, ignore_errors=True)


def export(store: Store, curated: str, out: str | Path, *, fmt: Literal["sft", "grpo"] = "sft",
           test_size: float = 0.1, push_to_hub: str | None = None, private: bool = True,
           overwrite: bool = False) -> dict:
    """Write DIR (save_to_disk), DIR/data/<split>.parquet and DIR/README.md; optionally push.
    DIR must be empty, absent or an earlier export unless `overwrite`."""
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
    counts = {s: len(ds) for s, ds in dd.items()}
    card = dataset_card(store, curated, fmt, counts)
    with store.lock("export", curated), replacing(out, overwrite=overwrite) as staging:
        dd.save_to_disk(str(staging))
        (staging / "data").mkdir()
        for s, ds in dd.items():
            pq.write_table(ds.data.table, staging / "data" / f"{s}.parquet")
        (staging / "README.md").write_text(card)
    if push_to_hub:
        dd.push_to_hub(push_to_hub, private=private)
        from huggingface_hub import HfApi

        HfApi().upload_file(path_or_fileobj=str(out / "README.md"), path_in_repo="README.md",
                            repo_id=push_to_hub, repo_type="dataset")
    return {"out": str(out), "format": fmt, **counts}


def export_prompts(store: Store, out: str | Path, *, where: str | None = None,
                   sources: list[str] | None = None, test_size: float = 0.1,
                   overwrite: bool = False) -> dict:
    """Prompts alone as a GRPO dataset (R1-Zero needs no teacher samples), split by prompt."""
    import datasets

    from r1data.generate import select_prompts

    picked = {p["prompt_id"] for p in select_prompts(store, where=where, sources=sources)}
    rows = [{"prompt": chat_messages(r["problem"], r["domain"]),
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
    with replacing(out, overwrite=overwrite, what="prompts") as staging:
        dd.save_to_disk(str(staging))
    return {"out": str(out), **{k: len(v) for k, v in dd.items()}}
