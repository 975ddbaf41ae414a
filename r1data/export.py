"""Export a curated set as a Hugging Face DatasetDict (train/test) with a dataset card.

The split is by prompt (a hash of prompt_id), so no problem appears in both train and test. Rows
are streamed from the store a batch at a time (long R1 traces: memory follows the batch).
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

from r1data.chat import chat_messages, drop_suffix, join_think
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


BATCH_CHARS = 4_000_000  # trace text read and written at a time (~150 R1 traces of 26k)
_PROMPT_COLUMNS = ("source", "problem", "answer", "domain", "tests", "meta")


def curated_samples(store: Store, curated: str) -> tuple[list[dict], list[Path]]:
    """The set's samples in (prompt_id, sample_idx) order with their prompt's columns and where
    each sits (`at`: index into the returned shards, row number): everything but the traces,
    which are read a batch at a time (`batches`, in `store_order`). A prompt's columns are
    fetched once and shared by its samples' rows (code tests run to many kB, n samples each)."""
    from r1data import query

    picked = store.shards("curated", curated)
    con = query.connect(store)
    runs = [r for (r,) in con.execute(
        "SELECT DISTINCT run FROM read_parquet(?, union_by_name = true) WHERE curated = ?",
        [[str(p) for p in picked], curated]).fetchall()] if picked else []
    shards = [p for run in sorted(runs) for p in store.shards("samples", run)]
    if not shards:
        raise InputError(f"curated set {curated!r} is empty or missing (run `r1data select`)",
                         path=str(store.root))
    con.read_parquet([str(p) for p in picked], union_by_name=True).create_view("picked")
    con.read_parquet([str(p) for p in shards], union_by_name=True, filename=True,
                     file_row_number=True).create_view("run_samples")
    prompts = {r[0]: dict(zip(_PROMPT_COLUMNS, r[1:], strict=True)) for r in con.execute(f"""
        SELECT prompt_id, {", ".join(_PROMPT_COLUMNS)} FROM prompts
        WHERE prompt_id IN (SELECT prompt_id FROM picked WHERE curated = ?)""",
        [curated]).fetchall()}
    index = {str(p): i for i, p in enumerate(shards)}
    cur = con.execute("""
        SELECT c.prompt_id, c.sample_idx, c.run, s.filename, s.file_row_number
        FROM picked AS c
        JOIN run_samples AS s USING (run, prompt_id, sample_idx)
        WHERE c.curated = ? AND c.prompt_id IN (SELECT prompt_id FROM prompts)
        ORDER BY prompt_id, sample_idx""", [curated])
    rows = [prompts[pid] | {"prompt_id": pid, "sample_idx": i, "run": run,
                            "at": (index[name], row)}
            for pid, i, run, name, row in cur.fetchall()]
    if not rows:
        raise InputError(f"curated set {curated!r} is empty or missing (run `r1data select`)",
                         path=str(store.root))
    return rows, shards


def store_order(samples: list[dict]) -> list[dict]:
    """The samples in the order they sit in the store (shard, row), in which `batches` reads
    each row group once. Deterministic: the same store gives the same order. A prompt's
    samples stay together as generate wrote them (a shard holds whole prompts)."""
    return sorted(samples, key=lambda r: r["at"])


def _sft_row(r: dict, text: dict, plain_share: float = 0.0) -> dict:
    return {"messages": [*drop_suffix(chat_messages(r["problem"], r["domain"]), plain_share),
                         {"role": "assistant",
                          "content": assistant_text(text["reasoning"], text["final"],
                                                    text["completion"])}],
            "prompt_id": r["prompt_id"], "source": r["source"], "domain": r["domain"]}


def _grpo_row(r: dict) -> dict:
    return {"prompt": chat_messages(r["problem"], r["domain"]),
            "answer": r["answer"] or "", "domain": r["domain"],
            "tests": r["tests"] or "", "meta": r["meta"] or "",
            "prompt_id": r["prompt_id"], "source": r["source"]}


def one_per_prompt(samples: list[dict]) -> list[dict]:
    """GRPO: one row per prompt (its first sample); the policy samples its own completions."""
    seen: set[str] = set()
    return [r for r in samples if not (r["prompt_id"] in seen or seen.add(r["prompt_id"]))]


def batch_rows(shards: list[Path], fmt: str) -> int:
    """Rows a batch: about BATCH_CHARS of trace text (sft), 4096 prompts (grpo)."""
    from r1data.store import rows_per_batch

    # the reasoning repeats the completion
    return 4096 if fmt == "grpo" else rows_per_batch(shards, BATCH_CHARS // 2)


def batches(samples: list[dict], shards: list[Path], fmt: str, plain_share: float = 0.0
            ) -> Iterator[list[dict]]:
    """The dataset rows of `samples`, in their order, a batch of about BATCH_CHARS of trace
    text at a time: an export never holds the set whole. sft: `samples` in store_order (the
    traces are streamed shard by shard, each row group decoded once: store.stream_rows)."""
    from itertools import islice

    from r1data.store import stream_rows

    size = batch_rows(shards, fmt)
    if fmt == "grpo":  # no trace text: prompts only
        for i in range(0, len(samples), size):
            yield [_grpo_row(r) for r in samples[i:i + size]]
        return
    texts = stream_rows(shards, (r["at"] for r in samples), ["completion", "reasoning", "final"])
    for i in range(0, len(samples), size):
        part = samples[i:i + size]
        got = dict(islice(texts, len(part)))
        yield [_sft_row(r, got[r["at"]], plain_share) for r in part]


def rows_for(store: Store, curated: str, fmt: str) -> list[dict]:
    """Every row of the export as one list, in (prompt_id, sample_idx) order (for small sets:
    harvest's cold start)."""
    samples, shards = curated_samples(store, curated)
    if fmt == "grpo":
        samples = one_per_prompt(samples)
        return [r for b in batches(samples, shards, fmt) for r in b]
    order = sorted(range(len(samples)), key=lambda i: samples[i]["at"])
    read = (r for b in batches([samples[i] for i in order], shards, fmt) for r in b)
    rows: list[dict] = [{}] * len(samples)
    for i, row in zip(order, read, strict=True):
        rows[i] = row
    return rows


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


class _SplitWriter:
    """One split's two files: the Arrow file its save_to_disk folder names (state.json, written
    by datasets for a one-row stand-in) and `parquet`, a row group of at least `group_rows` rows
    at a time. Export reads the set once and hands each batch's rows to their split's writer, so
    a row group of the store is decoded once for train and test together."""

    def __init__(self, folder: Path, parquet: Path, features, group_rows: int):
        import pyarrow.parquet as pq
        from datasets.arrow_writer import ArrowWriter

        (data,) = json.loads((folder / "state.json").read_text())["_data_files"]
        self.target = folder / data["filename"]
        self.tmp = self.target.with_name(f".{self.target.name}.tmp")
        self.schema = features.arrow_schema
        self.arrow = ArrowWriter(features=features, path=str(self.tmp))
        short = [c for c in ("prompt_id", "source", "domain") if c in self.schema.names]
        self.pw = pq.ParquetWriter(parquet, self.schema, use_dictionary=short)
        self.group_rows, self.pending = group_rows, []

    def add(self, rows: list[dict]) -> None:
        self.pending += rows
        if len(self.pending) >= self.group_rows:
            self._flush()

    def _flush(self) -> None:
        """One row group (readers decode a group whole: about a batch of text)."""
        import pyarrow as pa

        if self.pending:
            table = pa.Table.from_pylist(self.pending, schema=self.schema)
            self.arrow.write_table(table)
            self.pw.write_table(table)
            self.pending = []

    def close(self) -> None:
        self._flush()
        self.pw.close()
        self.arrow.finalize()
        self.arrow.close()
        os.replace(self.tmp, self.target)


def export(store: Store, curated: str, out: str | Path, *, fmt: Literal["sft", "grpo"] = "sft",
           test_size: float = 0.1, push_to_hub: str | None = None, private: bool = True,
           overwrite: bool = False, plain_share: float = 0.0) -> dict:
    """Write DIR (save_to_disk), DIR/data/<split>.parquet and DIR/README.md; optionally push.
    DIR must be empty, absent or an earlier export unless `overwrite`. `plain_share` (sft): the
    share of rows whose user turn goes without the R1 suffix, so that a model trained on them
    writes the format unasked (chat.drop_suffix).

    The rows are streamed from the store a batch at a time into both files (the datasets
    library writes its folder's metadata for a one-row stand-in of each split, whose Arrow
    file is then replaced by the streamed one): memory follows the batch, not the set."""
    import datasets

    check_name("curated", curated)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (sft or grpo)")
    if not 0 <= test_size < 1:
        raise InputError("test size must be in [0, 1)")
    if not 0 <= plain_share <= 1:
        raise InputError("plain share must be in [0, 1]")
    samples, shards = curated_samples(store, curated)
    if fmt == "grpo":
        samples = one_per_prompt(samples)
    ids = sorted({r["prompt_id"] for r in samples})
    test_ids = {p for p in ids if _in_test(p, test_size)}
    if test_size > 0 and len(ids) > 1 and not test_ids:  # small sets still get a test prompt
        test_ids = {ids[0]}
    if len(test_ids) == len(ids):
        test_ids = set()
    splits = {"train": [r for r in samples if r["prompt_id"] not in test_ids],
              "test": [r for r in samples if r["prompt_id"] in test_ids]}
    # An empty split saves as 0 shards that load_from_disk cannot read back: leave it out.
    splits = {s: v for s, v in splits.items() if v}
    # the features from a stand-in of the first row (its types; no trace read for it)
    first = _grpo_row(samples[0]) if fmt == "grpo" else \
        _sft_row(samples[0], {"completion": "", "reasoning": None, "final": None})
    features = datasets.Dataset.from_list([first]).features
    out = Path(out)
    counts = {s: len(v) for s, v in splits.items()}
    card = dataset_card(store, curated, fmt, counts)
    if fmt == "sft":  # each split in store order, both read in one pass (each group once)
        samples = store_order(samples)
    with store.lock("export", curated), replacing(out, overwrite=overwrite) as staging:
        datasets.DatasetDict({s: datasets.Dataset.from_list([first], features=features)
                              for s in splits}).save_to_disk(str(staging))
        (staging / "data").mkdir()
        group = batch_rows(shards, fmt)
        writers = {s: _SplitWriter(staging / s, staging / "data" / f"{s}.parquet", features,
                                   group) for s in splits}
        for batch in batches(samples, shards, fmt, plain_share):
            for s, w in writers.items():
                w.add([r for r in batch if (r["prompt_id"] in test_ids) == (s == "test")])
        for w in writers.values():
            w.close()
        (staging / "README.md").write_text(card)
    if push_to_hub:
        datasets.load_from_disk(str(out)).push_to_hub(push_to_hub, private=private)
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
