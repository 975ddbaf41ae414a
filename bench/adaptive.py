"""Adaptive sampling beside full R1 sampling: tokens spent and the curated set, same prompts.

One engine, one store, two runs of the same prompts and teacher: `full` samples n per prompt,
`adaptive` samples in rounds (r1data.adaptive) and stops prompts once decided. Both are filtered
on correctness alone (an untrained teacher never writes the R1 format, so the format check
would keep nothing) and selected with one SelectConfig; the bench reports the tokens of each
run, the prompts each curated set keeps, their overlap and whether K per prompt agrees. The
machine may be shared: it reports counts, not speed.

    python bench/adaptive.py --model models/smollm2 --prompts 16 --n 64 --max-tokens 64
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path


def curated_counts(store, name: str) -> dict[str, int]:
    rows = store.read("curated", name, columns=["prompt_id"]).to_pylist()
    return dict(Counter(r["prompt_id"] for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/smollm2")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--kinds", default="arithmetic,word")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", default="8,16,32,64")
    ap.add_argument("--confidence", type=float, nargs="+", default=[0.95, 0.8])
    ap.add_argument("--min-pass-rate", type=float, default=0.1)
    ap.add_argument("--max-pass-rate", type=float, default=0.9)
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()

    from r1data.adaptive import AdaptiveConfig, parse_rounds
    from r1data.config import GenerateConfig
    from r1data.engines import make_engine
    from r1data.filtering import FilterConfig, filter_run
    from r1data.generate import generate
    from r1data.prompts import ingest_synth
    from r1data.selection import SelectConfig, select
    from r1data.store import Store

    root = Path(tempfile.mkdtemp(prefix="bench-adaptive-"))
    store = Store(root / "store")
    kinds = args.kinds.split(",")
    ingest_synth(store, kinds, -(-args.prompts // len(kinds)), seed=0, level=1)
    cfg = GenerateConfig(model=str(Path(args.model).resolve()), n=args.n,
                         max_tokens=args.max_tokens)
    sel = SelectConfig(k=args.k, min_pass_rate=args.min_pass_rate,
                       max_pass_rate=args.max_pass_rate)
    fcfg = FilterConfig(checks=["correct"])
    engine = make_engine(cfg)
    out: dict = {"prompts": args.prompts, "n": args.n, "max_tokens": args.max_tokens,
                 "band": [args.min_pass_rate, args.max_pass_rate], "k": args.k}
    try:
        full = generate(store, cfg, "full", limit=args.prompts, engine=engine, progress=False)
        filter_run(store, "full", fcfg, progress=False)
        select(store, "full", "cur-full", sel)
        base = curated_counts(store, "cur-full")
        out["full"] = {"tokens": full.tokens, "samples": full.samples_written,
                       "selected_prompts": len(base)}
        for conf in args.confidence:
            acfg = AdaptiveConfig(rounds=parse_rounds(args.rounds), confidence=conf,
                                  min_pass_rate=args.min_pass_rate,
                                  max_pass_rate=args.max_pass_rate, k=args.k)
            run = f"adaptive-{conf}"
            rep = generate(store, cfg, run, limit=args.prompts, engine=engine, progress=False,
                           adaptive=acfg)
            filter_run(store, run, fcfg, progress=False)
            select(store, run, f"cur-{run}", sel)
            got = curated_counts(store, f"cur-{run}")
            same = set(got) & set(base)
            stopped = store.read_manifest("generate", run)["adaptive"]["stopped"]
            out[run] = {
                "tokens": rep.tokens, "samples": rep.samples_written,
                "token_share": round(rep.tokens / max(full.tokens, 1), 3),
                "selected_prompts": len(got), "same_prompts": len(same),
                "share_of_full_selected": round(len(same) / max(len(base), 1), 3),
                "same_k": sum(got[p] == base[p] for p in same), "stopped": stopped}
    finally:
        engine.close()
    print(json.dumps(out, indent=1))  # noqa: T201 - a bench reports on stdout


if __name__ == "__main__":
    main()
