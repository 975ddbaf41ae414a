"""`r1data eval`: the R1 protocol (k samples at T=0.6, top-p 0.95) with results kept in the store.

The evaluation is an ordinary generate + filter run, so SQL compares models side by side
(`r1data query --report eval`).
"""

from __future__ import annotations

from pathlib import Path

from r1data.chat import problem_of
from r1data.config import GenerateConfig
from r1data.errors import InputError
from r1data.store import Store


def ingest_eval_set(store: Store, data: str | Path, split: str) -> tuple[str, int]:
    """Add a GRPO-format dataset (prompt, answer, domain) as prompts of source eval/<name>."""
    import datasets

    from r1data.prompts import IngestReport, add_rows, normalise

    path = Path(data)
    try:
        dd = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise InputError(f"not a dataset folder ({str(e).splitlines()[0]})", path=str(path)) \
            from None
    ds = dd[split] if isinstance(dd, datasets.DatasetDict) and split in dd else (
        dd if isinstance(dd, datasets.Dataset) else None)
    if ds is None:
        raise InputError(f"no split {split!r} (has {', '.join(dd)})", path=str(path))
    missing = {"prompt", "answer"} - set(ds.column_names)
    if missing:
        raise InputError(f"missing column(s) {sorted(missing)} (export with --format grpo)",
                         path=str(path), field=sorted(missing)[0])
    if len(ds) == 0:
        raise InputError("dataset split is empty", path=str(path))
    source = f"eval/{path.name}"
    records = ((i, {"problem": problem_of(r["prompt"]), "answer": r["answer"],
                    "domain": r.get("domain") or "math", "tests": r.get("tests") or None})
               for i, r in enumerate(ds, start=1))
    rep = IngestReport(source=source)
    rows = normalise(records, source=source, where=str(path), report=rep)
    add_rows(store, rows, rep)
    return source, rep.read


_GEN = GenerateConfig.model_fields  # eval samples as the teacher does: R1's n, max_tokens


def evaluate(store: Store, model: str, data: str | Path, *, k: int = _GEN["n"].default,
             split: str = "test", run: str | None = None,
             max_tokens: int = _GEN["max_tokens"].default, seed: int = _GEN["seed"].default,
             engine=None,
             max_model_len: int | None = None, system_prompt: str | None = None,
             progress: bool = True) -> dict:
    """Generate k samples per prompt, verify them, and return pass@1, cons@k and pass@k.

    No system prompt by default: DeepSeek's usage notes for R1 put every instruction in the
    user turn, and the trainers fine-tune on user turns alone."""
    from r1data import query
    from r1data.filtering import FilterConfig, filter_run
    from r1data.generate import generate

    source, n = ingest_eval_set(store, data, split)
    run = run or f"eval-{Path(model).name}-{Path(data).name}"
    cfg = GenerateConfig(model=model, n=k, max_tokens=max_tokens, seed=seed,
                         max_model_len=max_model_len, system_prompt=system_prompt)
    generate(store, cfg, run, sources=[source], engine=engine, progress=progress)
    filter_run(store, run, FilterConfig(checks=["correct"]), progress=progress)
    rows = query.run(store, query.report_sql("eval")).pl()
    result = rows.filter(rows["run"] == run).to_dicts()[0]
    store.write_manifest("eval", run, result | {"model": model, "data": str(data),
                                                "split": split})
    return result
