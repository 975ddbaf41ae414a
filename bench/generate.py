"""Generation throughput: `r1data generate` beside raw `vllm.LLM.generate`, one engine, one run.

Both sides get the same prompts (synthetic arithmetic/expression problems in the R1 chat
format) and sampling parameters on one `vllm.LLM`; raw vLLM is given every prompt at once (its
best case), r1data streams them through `generate()` into a fresh store, shards and all.
Two cases: (a) uniform short answers (a small max_tokens every sample reaches), (b) long-tailed
lengths (a max_tokens large enough that the shortest and longest samples differ >= 10x; the
spread is measured and printed). Sides alternate (raw, r1data, raw, r1data, ...) and the median
of the per-pair ratios is reported, since other jobs on a shared machine move wall time.

    python bench/generate.py --model models/smollm2            # SmolLM2-135M, both cases
    python bench/generate.py --model /tmp/tiny --pairs 1       # quick check on a tiny model
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

CASES = {  # name -> (prompts, n, max_tokens)
    "uniform": (16, 16, 32),
    "long_tail": (8, 8, 512),
}


def make_store(root: Path, prompts: int):
    from r1data.prompts import ingest_synth
    from r1data.store import Store

    store = Store(root)
    ingest_synth(store, ["arithmetic", "expression"], (prompts + 1) // 2, 0, 1)
    return store


def raw_side(engine, cfg, store) -> tuple[float, list[int]]:
    """Seconds and output lengths of one `LLM.generate` call over every prompt."""
    from vllm import SamplingParams

    from r1data.generate import build_messages, select_prompts

    tok = engine.llm.get_tokenizer()
    texts = [tok.apply_chat_template(build_messages(p["problem"], p["domain"], cfg),
                                     tokenize=False, add_generation_prompt=True)
             for p in select_prompts(store)]
    params = SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_tokens=cfg.max_tokens)
    t = time.perf_counter()
    outs = engine.llm.generate(texts, params, use_tqdm=False)
    seconds = time.perf_counter() - t
    return seconds, [len(o.token_ids) for out in outs for o in out.outputs]


def r1data_side(engine, cfg, store, run: str) -> tuple[float, list[int]]:
    from r1data.generate import generate

    t = time.perf_counter()
    rep = generate(store, cfg, run, engine=engine, progress=False)
    seconds = time.perf_counter() - t
    lengths = store.read("samples", run, columns=["num_tokens"]).column(0).to_pylist()
    assert rep.samples_written == len(lengths)
    return seconds, lengths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/smollm2")
    ap.add_argument("--pairs", type=int, default=2, help="raw/r1data pairs per case")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = ap.parse_args()

    from r1data.config import GenerateConfig
    from r1data.engines import VllmEngine

    base = GenerateConfig(model=str(Path(args.model).resolve()), max_model_len=1024,
                          shard_prompts=2)
    engine = VllmEngine(base)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for case in args.cases:
                prompts, n, max_tokens = CASES[case]
                cfg = base.model_copy(update={"n": n, "max_tokens": max_tokens})
                store = make_store(Path(tmp) / case, prompts)
                raw_side(engine, cfg.model_copy(update={"max_tokens": 4}), store)  # warm-up
                ratios, rows = [], []
                for k in range(args.pairs):
                    rs, rl = raw_side(engine, cfg, store)
                    ds, dl = r1data_side(engine, cfg, store, f"{case}-{k}")
                    raw_tps, r1_tps = sum(rl) / rs, sum(dl) / ds
                    ratios.append(r1_tps / raw_tps)
                    rows.append((raw_tps, r1_tps, rl + dl))
                    print(f"{case} pair {k}: raw {raw_tps:.0f} tok/s ({sum(rl)} tokens, "
                          f"{rs:.1f} s), r1data {r1_tps:.0f} tok/s ({sum(dl)} tokens, "
                          f"{ds:.1f} s), ratio {ratios[-1]:.3f}", flush=True)
                lengths = [x for *_, ls in rows for x in ls]
                print(f"{case}: {prompts} prompts x n={n}, max_tokens={max_tokens}; sample "
                      f"lengths min {min(lengths)} median {statistics.median(lengths):.0f} max "
                      f"{max(lengths)} (spread {max(lengths) / max(min(lengths), 1):.0f}x); "
                      f"median raw {statistics.median(r[0] for r in rows):.0f} tok/s, r1data "
                      f"{statistics.median(r[1] for r in rows):.0f} tok/s; median ratio "
                      f"{statistics.median(ratios):.3f}", flush=True)
    finally:
        engine.close()


if __name__ == "__main__":
    main()
