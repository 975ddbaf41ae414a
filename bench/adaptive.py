"""Adaptive sampling beside full R1 sampling: tokens spent and the curated set, same prompts.

One engine, one store (kept in --work, so a rerun samples nothing it already has), the same
prompts and teacher: `full` samples n per prompt; each `--real` config samples in rounds
(r1data.adaptive) and stops prompts once decided. Runs are filtered on correctness alone and
selected with one SelectConfig; the bench reports each run's tokens, the prompts each curated
set keeps, their overlap and whether K per prompt agrees.

`--replay P` needs no sampling: samples are exchangeable, so sampling in rounds is
statistically the same as reading a prefix of a random order of the full run's n verified
samples. For every config it replays the stop rule over P seeded orders per prompt and applies
selection's own per-prompt rule (the band on the pass rate of the samples read, exact and near
duplicates out, the policy, K) to what was read. Its noise floor says what ">= 95% of the same
prompts" can mean: how much of the full run's selection a second draw of n (bootstrap) or a
disjoint half keeps. The machine may be shared: the bench reports counts, not speed.

    python bench/adaptive.py --model runs/learning/teacher/model --prompts 48 --n 64 \
        --max-tokens 64 --work /tmp/s6/adaptive --replay 200 --real default
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections import Counter
from pathlib import Path

KINDS = "arithmetic,word,expression"  # pass rates spread: easy sums to multi-step words


def curated_counts(store, name: str) -> dict[str, int]:
    """prompt id -> samples the curated set keeps of it."""
    rows = store.read("curated", name, columns=["prompt_id"]).to_pylist()
    return dict(Counter(r["prompt_id"] for r in rows))


def run_tokens(store, run: str, prompts: set[str] | None = None) -> tuple[int, int]:
    """(tokens, samples) of a run as stored (of these prompts): right on a rerun that sampled
    nothing new."""
    rows = [r["num_tokens"] for r in store.read("samples", run, columns=[
        "prompt_id", "num_tokens"]).to_pylist() if prompts is None or r["prompt_id"] in prompts]
    return sum(rows), len(rows)


def parse_config(text: str, base: dict) -> tuple[str, dict]:
    """`default`, or NAME=JSON of AdaptiveConfig fields over the bench's band and K."""
    if text == "default":
        return text, dict(base)
    name, _, body = text.partition("=")
    return name, {**base, **json.loads(body)}


# --- replay ---------------------------------------------------------------------------------

def load_full(store, run: str, n: int) -> dict[str, list[dict]]:
    """prompt id -> the run's samples with their verdict (keep = verified correct), for the
    prompts that hold all n (a run still being written has some that do not yet)."""
    samples = store.read("samples", run, columns=[
        "prompt_id", "sample_idx", "completion", "num_tokens"]).to_pylist()
    keep = {(r["prompt_id"], r["sample_idx"]): bool(r["keep"]) for r in store.read(
        "verdicts", run, columns=["prompt_id", "sample_idx", "keep"]).to_pylist()}
    out: dict[str, list[dict]] = {}
    for r in samples:
        if (r["prompt_id"], r["sample_idx"]) in keep:
            out.setdefault(r["prompt_id"], []).append(
                {**r, "pos": r["sample_idx"], "keep": keep[r["prompt_id"], r["sample_idx"]]})
    return {pid: v for pid, v in out.items() if len(v) == n}


def selected_k(read: list[dict], sel) -> int:
    """K selection keeps of these samples of one prompt (0: not selected), by select's own
    per-prompt rule: the band on their pass rate, then `_keep` (duplicates, policy, K)."""
    from r1data.selection import SelectReport, _Cand, _keep

    correct = [s for s in read if s["keep"]]
    rate = len(correct) / len(read)
    if not correct or not sel.min_pass_rate <= rate <= sel.max_pass_rate:
        return 0
    correct.sort(key=lambda s: (s["num_tokens"], s["pos"]))  # select's order: shortest first
    cands = [_Cand(s["pos"], rate, hash((s["pos"], sel.seed)), 0, i)
             for i, s in enumerate(correct)]
    texts = {(0, i): s["completion"] for i, s in enumerate(correct)}
    return len(_keep(cands, texts, sel, SelectReport("", "")))


def replay_prompt(order: list[dict], acfg, n: int) -> tuple[list[dict], str]:
    """The samples an adaptive run reads of one prompt in this order, and why it stopped."""
    from r1data.adaptive import decide, distinct_kept

    for r in acfg.plan(n):
        read = order[:r]
        correct = [s for s in read if s["keep"]]
        texts = [s["completion"] for s in sorted(correct, key=lambda s: (s["num_tokens"],
                                                                          s["pos"]))]
        why = decide(len(correct), r, distinct_kept(texts), acfg, last=r >= n)
        if why:
            return read, why
    raise AssertionError("the last round always decides")


def shuffled(samples: list[dict], rng: random.Random) -> list[dict]:
    """The same samples in a random order: what an adaptive run reads is a prefix of it."""
    return [{**s, "pos": i} for i, s in enumerate(rng.sample(samples, len(samples)))]


def resampled(samples: list[dict], rng: random.Random) -> list[dict]:
    """n samples drawn with replacement: a fresh run of the prompt, as far as one run tells."""
    return [{**s, "pos": i} for i, s in enumerate(rng.choices(samples, k=len(samples)))]


def replay(full: dict[str, list[dict]], acfg, sel, perms: int, seed: int, draw) -> dict:
    """Share of tokens, same prompts and same K of adaptive against full over `perms` replayed
    runs (run j reads draw j of every prompt); `draw` makes a prompt's order of samples."""
    n = min(len(v) for v in full.values())
    base = {pid: selected_k(s, sel) for pid, s in full.items()}
    chosen = {pid for pid, k in base.items() if k}
    total = sum(s["num_tokens"] for v in full.values() for s in v)
    rng = random.Random(seed)
    runs = [{"tokens": 0, "same": 0, "same_k": 0, "extra": 0} for _ in range(perms)]
    stops: Counter = Counter()
    stop_tokens: Counter = Counter()
    lost: Counter = Counter()
    for pid, samples in sorted(full.items()):
        for j in range(perms):
            read, why = replay_prompt(draw(samples, rng), acfg, n)
            k = selected_k(read, sel)
            tokens = sum(s["num_tokens"] for s in read)
            stops[why] += 1
            stop_tokens[why] += tokens
            run = runs[j]
            run["tokens"] += tokens
            if pid in chosen and k:
                run["same"] += 1
                run["same_k"] += k == base[pid]
            elif pid in chosen:
                lost[pid] += 1
            elif k:
                run["extra"] += 1
    shares = sorted(r["tokens"] / total for r in runs)
    same = sorted(r["same"] / max(len(chosen), 1) for r in runs)
    return {
        "token_share_mean": round(sum(shares) / perms, 3),
        "token_share_p95": round(shares[int(0.95 * (perms - 1))], 3),
        "same_prompts_mean": round(sum(same) / perms, 4),
        "same_prompts_p05": round(same[int(0.05 * (perms - 1))], 3),
        "runs_meeting_95": round(sum(s >= 0.95 for s in same) / perms, 3),
        "same_k_of_same": round(sum(r["same_k"] for r in runs) / max(
            sum(r["same"] for r in runs), 1), 4),
        "extra_prompts_mean": round(sum(r["extra"] for r in runs) / perms, 2),
        "stops_per_run": {k: round(v / perms, 2) for k, v in sorted(stops.items())},
        "token_share_by_stop": {k: round(v / perms / total, 3)
                                for k, v in sorted(stop_tokens.items())},
        "most_lost": [f"{pid}:{c / perms:.2f}" for pid, c in lost.most_common(5)]}


def noise_floor(full: dict[str, list[dict]], sel, draws: int, seed: int) -> dict:
    """How much of the full run's selection another draw keeps: a bootstrap draw of n (a
    second full run, as far as one run can tell) and a disjoint half (n/2 each)."""
    base = {pid: selected_k(s, sel) for pid, s in full.items()}
    chosen = {pid for pid, k in base.items() if k}
    rng = random.Random(seed)
    boot, halves, boot_k = [], [], []
    for _ in range(draws):
        same = same_k = agree = 0
        for pid, samples in full.items():
            k = selected_k(resampled(samples, rng), sel)
            if pid in chosen and k:
                same += 1
                same_k += k == base[pid]
            order = shuffled(samples, rng)
            h = len(order) // 2
            agree += bool(selected_k(order[:h], sel)) == bool(selected_k(order[h:], sel))
        boot.append(same / max(len(chosen), 1))
        boot_k.append(same_k / max(same, 1))
        halves.append(agree / len(full))
    boot.sort()
    return {"bootstrap_same_prompts_mean": round(sum(boot) / draws, 4),
            "bootstrap_same_prompts_p05": round(boot[int(0.05 * (draws - 1))], 3),
            "bootstrap_runs_meeting_95": round(sum(b >= 0.95 for b in boot) / draws, 3),
            "bootstrap_same_k": round(sum(boot_k) / draws, 4),
            "halves_agree_mean": round(sum(halves) / draws, 4)}


def sample(store, cfg, sel, fcfg, band: dict, args) -> dict:
    """The full run (resumed, or nothing to do) and each --real adaptive run, filtered and
    selected: their tokens, selections and overlap."""
    from r1data.adaptive import AdaptiveConfig
    from r1data.engines import make_engine
    from r1data.filtering import filter_run
    from r1data.generate import generate
    from r1data.selection import select

    out: dict = {}
    full_done = (store.read_manifest("generate", "full") or {}).get("status") == "complete"
    engine = make_engine(cfg) if args.real or not full_done else None
    try:
        generate(store, cfg, "full", limit=args.prompts, engine=engine, progress=False)
        filter_run(store, "full", fcfg, progress=False)
        select(store, "full", "cur-full", sel)
        base = curated_counts(store, "cur-full")
        tokens, samples = run_tokens(store, "full")
        out["full"] = {"tokens": tokens, "samples": samples, "selected_prompts": len(base)}
        for text in args.real:
            name, fields = parse_config(text, band)
            acfg = AdaptiveConfig(**fields)
            run = f"adaptive-{name}"
            generate(store, cfg, run, limit=args.real_prompts or args.prompts, engine=engine,
                     progress=False, adaptive=acfg)
            filter_run(store, run, fcfg, progress=False)
            select(store, run, f"cur-{run}", sel)
            got = curated_counts(store, f"cur-{run}")
            ran = set(store.read_manifest("generate", run)["adaptive"]["decisions"])
            base = {p: k for p, k in curated_counts(store, "cur-full").items() if p in ran}
            tokens = run_tokens(store, "full", ran)[0]  # full's, on the same prompts
            same = set(got) & set(base)
            tok, smp = run_tokens(store, run)
            stopped = store.read_manifest("generate", run)["adaptive"]["stopped"]
            out[run] = {
                "config": acfg.model_dump(exclude={"timeout"}),
                "prompts": len(ran), "full_tokens": tokens, "full_selected": len(base),
                "tokens": tok, "samples": smp, "token_share": round(tok / max(tokens, 1), 3),
                "selected_prompts": len(got), "same_prompts": len(same),
                "share_of_full_selected": round(len(same) / max(len(base), 1), 3),
                "same_k": sum(got[p] == base[p] for p in same), "stopped": stopped}
    finally:
        if engine is not None:
            engine.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/smollm2")
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--kinds", default=KINDS)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--min-pass-rate", type=float, default=0.1)
    ap.add_argument("--max-pass-rate", type=float, default=0.9)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--work", help="the bench's store lives here (default: a new temp dir)")
    ap.add_argument("--replay", type=int, default=0, metavar="P",
                    help="replay each config over P orders of the full run's samples")
    ap.add_argument("--real", nargs="*", default=[], metavar="CONFIG",
                    help="configs to run for real: `default` or NAME='{json fields}'")
    ap.add_argument("--real-prompts", type=int, metavar="N",
                    help="the real adaptive runs take the first N prompts (default: all)")
    ap.add_argument("--configs", nargs="*", default=["default"], metavar="CONFIG",
                    help="configs to replay: `default` or NAME='{json fields}'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replay-only", action="store_true",
                    help="sample nothing: replay the prompts --work's full run holds in full")
    ap.add_argument("--replay-from", nargs="*", default=[], metavar="WORK",
                    help="more bench dirs (same teacher and settings) whose full run's other "
                         "prompts join the replay")
    args = ap.parse_args()

    from r1data.adaptive import AdaptiveConfig
    from r1data.config import GenerateConfig
    from r1data.filtering import FilterConfig, filter_run
    from r1data.prompts import ingest_synth
    from r1data.selection import SelectConfig
    from r1data.store import Store

    root = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-adaptive-"))
    store = Store(root / "store")
    kinds = args.kinds.split(",")
    if not store.shards("prompts"):
        ingest_synth(store, kinds, -(-args.prompts // len(kinds)), seed=0, level=1)
    cfg = GenerateConfig(model=str(Path(args.model).resolve()), n=args.n,
                         max_tokens=args.max_tokens)
    sel = SelectConfig(k=args.k, min_pass_rate=args.min_pass_rate,
                       max_pass_rate=args.max_pass_rate)
    band = {"min_pass_rate": args.min_pass_rate, "max_pass_rate": args.max_pass_rate,
            "k": args.k}
    fcfg = FilterConfig(checks=["correct"], workers=1)
    out: dict = {"prompts": args.prompts, "kinds": kinds, "n": args.n,
                 "max_tokens": args.max_tokens, "band": [args.min_pass_rate,
                                                         args.max_pass_rate], "k": args.k}
    if not args.replay_only:
        out.update(sample(store, cfg, sel, fcfg, band, args))
    if args.replay:
        full: dict[str, list[dict]] = {}
        for st in [store] + [Store(Path(w) / "store", create=False) for w in args.replay_from]:
            if st.read_manifest("generate", "full") is None:  # --replay-only into a new --work
                continue
            filter_run(st, "full", fcfg, progress=False)  # the shards written since
            full = load_full(st, "full", args.n) | full  # a prompt's first store wins
        if not args.replay_only and not args.replay_from:
            check = {p: k for p in full if (k := selected_k(full[p], sel))}
            assert check == curated_counts(store, "cur-full"), "replay's selection != select"
        out["replayed"] = {"prompts": len(full), "tokens": sum(
            s["num_tokens"] for v in full.values() for s in v)}
        out["noise_floor"] = noise_floor(full, sel, args.replay, args.seed)
        out["replay"] = {}
        for text in args.configs:
            name, fields = parse_config(text, band)
            acfg = AdaptiveConfig(**fields)
            out["replay"][name] = {
                "same_samples": replay(full, acfg, sel, args.replay, args.seed, shuffled),
                "fresh_draw": replay(full, acfg, sel, args.replay, args.seed, resampled)}
    # vLLM logs to stdout too, so the report is also kept whole beside the store
    (root / "result.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))  # noqa: T201 - a bench reports on stdout


if __name__ == "__main__":
    main()
