"""MinHash-LSH libraries side by side on 1M samples: datasketch vs rensa (r1data.neardup's choice).

Data: synthetic R1-style completions (~60 words from a 2,000-word vocabulary, seeded), of which
a tenth are planted near-duplicates of an earlier sample (5% of the words replaced: Jaccard of
word 5-grams ~0.6-0.8) and a tenth exact copies with one word changed (~0.9). Both libraries get
the same shingles (r1data.neardup.shingles), 128 permutations, the same LSH bands and the same
threshold; each candidate pair is then confirmed by the estimated Jaccard. Quality: recall of
the planted pairs whose true Jaccard is >= the threshold, and false pairs (below it by 0.1+).

    python bench/minhash.py --n 1000000           # both libraries, one run
    python bench/minhash.py --n 100000 --only rensa

The machine is shared: compare the ratio of the two libraries in one run, not absolute times.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import time


def make_docs(n: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int]]]:
    """n texts and the planted (original, copy) pairs."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(2000)]
    docs: list[str] = []
    planted: list[tuple[int, int]] = []
    for i in range(n):
        if i > 10 and rng.random() < 0.2:
            j = rng.randrange(i)
            words = docs[j].split()
            rate = 0.05 if rng.random() < 0.5 else 1 / len(words)
            words = [rng.choice(vocab) if rng.random() < rate else w for w in words]
            docs.append(" ".join(words))
            planted.append((j, i))
        else:
            docs.append(" ".join(rng.choices(vocab, k=rng.randint(40, 80))))
    return docs, planted


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


CHUNK = 50_000  # documents shingled at a time: 1M shingle lists at once need ~6 GB


def chunks(docs: list[str], n: int):
    from r1data.neardup import shingles

    for i in range(0, len(docs), CHUNK):
        yield [shingles(d, n) for d in docs[i:i + CHUNK]]


def run_datasketch(docs: list[str], cfg, bands: int) -> set[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(num_perm=cfg.num_perm, params=(bands, cfg.num_perm // bands))
    hashes = []
    for sets in chunks(docs, cfg.ngram):
        hashes += MinHash.bulk(([s.encode() for s in toks] for toks in sets),
                               num_perm=cfg.num_perm, seed=cfg.seed)
    with lsh.insertion_session() as session:
        for i, m in enumerate(hashes):
            session.insert(i, m, check_duplication=False)
    pairs = set()
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j < i and hashes[j].jaccard(m) >= cfg.threshold:
                pairs.add((j, i))
    return pairs


def run_rensa(docs: list[str], cfg, bands: int) -> set[tuple[int, int]]:
    from rensa import RMinHash, RMinHashLSH

    hashes = []
    for sets in chunks(docs, cfg.ngram):
        hashes += RMinHash.from_token_sets(sets, num_perm=cfg.num_perm, seed=cfg.seed)
    lsh = RMinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, num_bands=bands)
    lsh.insert_many(hashes)
    pairs = set()
    for i, cands in enumerate(lsh.query_all(hashes)):
        m = hashes[i]
        for j in cands:
            if j < i and hashes[j].jaccard(m) >= cfg.threshold:
                pairs.add((j, i))
    return pairs


def main() -> None:
    from r1data.neardup import NearDupConfig, lsh_bands, shingles

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--only", choices=["datasketch", "rensa"])
    args = ap.parse_args()
    cfg = NearDupConfig(threshold=0.8)
    bands = lsh_bands(cfg.threshold, cfg.num_perm)
    t = time.perf_counter()
    docs, planted = make_docs(args.n)
    true_j = {(a, b): jaccard(set(shingles(docs[a], cfg.ngram)), set(shingles(docs[b],
                                                                              cfg.ngram)))
              for a, b in planted}
    print(f"{args.n:,} docs, {len(planted):,} planted pairs, made in "
          f"{time.perf_counter() - t:.1f} s; {cfg.num_perm} perms, {bands} bands, "
          f"threshold {cfg.threshold}", flush=True)
    true_pairs = {p for p, j in true_j.items() if j >= cfg.threshold}
    clear_pairs = {p for p, j in true_j.items() if j >= cfg.threshold + 0.05}
    results = {}
    for name, fn in (("rensa", run_rensa), ("datasketch", run_datasketch)):
        if args.only and name != args.only:
            continue
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        pairs = fn(docs, cfg, bands)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        found, clear = len(pairs & true_pairs), len(pairs & clear_pairs)
        false = sum(1 for a, b in pairs if jaccard(set(shingles(docs[a], cfg.ngram)), set(
            shingles(docs[b], cfg.ngram))) < cfg.threshold - 0.1)
        results[name] = wall
        print(f"{name:>10}: {wall:7.1f} s wall, {cpu:7.1f} s CPU, {args.n / wall:9,.0f} docs/s;"
              f" recall {found}/{len(true_pairs)} = {found / max(1, len(true_pairs)):.3f}, "
              f"at J >= threshold + 0.05 {clear / max(1, len(clear_pairs)):.3f}; "
              f"{len(pairs):,} pairs, {false} false (true Jaccard < threshold - 0.1); "
              f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f}"
              " GB", flush=True)
    if len(results) == 2:
        print(f"rensa is {results['datasketch'] / results['rensa']:.1f}x faster (wall)")


if __name__ == "__main__":
    main()
