"""vLLM throughput in bf16 vs fp32 on this machine's CPU: why `dtype: auto` is fp32 on CPUs
without bf16 units (r1data/engines.py engine_dtype). Each dtype in its own engine start, the
same prompts and sampling parameters, fixed lengths (ignore_eos), timed after a warm-up.

    python bench/dtype.py --model models/smollm2 --dtypes bfloat16 float32
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def one(model: str, dtype: str, prompts: int, n: int, tokens: int) -> dict:
    """One engine start in this process: tokens/s of a batch of prompts x n fixed-length samples."""
    from r1data.engines import configure_vllm_env

    configure_vllm_env(local_model=True)
    from vllm import LLM, SamplingParams

    llm = LLM(model=model, dtype=dtype, seed=0, enforce_eager=True, max_model_len=1024)
    texts = [f"Question {i}: what is {i} plus {2 * i + 3}? Explain step by step."
             for i in range(prompts)]
    llm.generate(texts[:2], SamplingParams(max_tokens=8), use_tqdm=False)  # warm-up
    sp = SamplingParams(n=n, temperature=0.6, top_p=0.95, max_tokens=tokens, ignore_eos=True)
    t = time.perf_counter()
    out = llm.generate(texts, sp, use_tqdm=False)
    dt = time.perf_counter() - t
    toks = sum(len(c.token_ids) for o in out for c in o.outputs)
    return {"dtype": dtype, "tokens": toks, "seconds": round(dt, 1),
            "tokens_per_s": round(toks / dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/smollm2")
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child: run one dtype, print JSON
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(args.model, args.one, args.prompts, args.n, args.tokens)))
        return
    print("| vLLM dtype | tokens | seconds | tokens/s |\n|---|---|---|---|")
    for d in args.dtypes:  # a process each: vLLM binds the process's threads and memory
        out = subprocess.run([sys.executable, __file__, "--one", d, "--model", args.model,
                              "--prompts", str(args.prompts), "--n", str(args.n),
                              "--tokens", str(args.tokens)], capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"bench/dtype.py: {d} failed: {out.stderr.strip().splitlines()[-1:]}")
        r = json.loads(line[7:])
        print(f"| {r['dtype']} | {r['tokens']:,} | {r['seconds']} | {r['tokens_per_s']} |",
              flush=True)


if __name__ == "__main__":
    main()
