"""Near-duplicates over a whole dataset: MinHash-LSH (Broder 1997; as in the peers' dedup
stages, e.g. datatrove's minhash and the FineWeb/SlimPajama pipelines), by rensa.

The library was chosen by bench/minhash.py (1M samples, beside datasketch: same shingles,
permutations, bands and threshold; see BENCHMARKS.md). This module only shingles the texts and
signs them (`signatures`), picks the LSH bands, confirms LSH candidates by their estimated
Jaccard and joins the confirmed pairs into clusters (`cluster`, union-find). Ingest uses it for
prompts (the same problem reworded, renumbered or from two sources), selection for kept samples
of different prompts (signed a batch at a time, clustered once).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Words and single symbols: "2 + 3" and "2 - 3" must differ (operators carry the problem).
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class NearDupConfig:
    threshold: float = 0.8  # estimated Jaccard of word n-gram shingles; >= means near-duplicate
    ngram: int = 5  # words per shingle (a text shorter than this is one shingle)
    num_perm: int = 128  # MinHash permutations: error of the Jaccard estimate ~ 1/sqrt(128)
    seed: int = 1


# Prompts are short: 3-grams, and a lower bar (a 40-word problem with two words reworded keeps
# ~0.7 of its 3-grams; one renumbered label "Problem 12" -> "13" keeps ~0.85).
PROMPTS = NearDupConfig(threshold=0.6, ngram=3)
# Samples (completions) of different prompts: word 5-grams, as selection's within-prompt pass.
SAMPLES = NearDupConfig(threshold=0.8, ngram=5)


def shingles(text: str, n: int) -> list[str]:
    """Distinct lower-cased n-grams of words and symbols (a shorter text is one shingle;
    no words: none)."""
    words = _TOKEN.findall((text or "").lower())
    if len(words) < n:
        return [" ".join(words)] if words else []
    return list(dict.fromkeys(" ".join(words[i:i + n]) for i in range(len(words) - n + 1)))


def lsh_bands(threshold: float, num_perm: int, fn_weight: float = 0.9) -> int:
    """The band count (a divisor of num_perm) minimising the weighted areas of false positives
    and false negatives around the threshold, as datasketch's _optimal_param does. Misses
    weigh more than its equal weights: every candidate is confirmed by its estimated Jaccard,
    so a false candidate costs a comparison, a miss a duplicate."""
    def area(f, lo: float, hi: float, steps: int = 200) -> float:
        h = (hi - lo) / steps
        return sum(f(lo + (i + 0.5) * h) for i in range(steps)) * h

    best, best_err = 1, float("inf")
    for b in (d for d in range(1, num_perm + 1) if num_perm % d == 0):
        r = num_perm // b
        fp = area(lambda s, b=b, r=r: 1 - (1 - s ** r) ** b, 0.0, threshold)
        fn = area(lambda s, b=b, r=r: (1 - s ** r) ** b, threshold, 1.0)
        err = (1 - fn_weight) * fp + fn_weight * fn
        if err < best_err:
            best, best_err = b, err
    return best


@dataclass(frozen=True)
class Member:
    index: int  # position in the texts given
    cluster: int  # index of the cluster's representative (the lowest index in it)
    similarity: float  # estimated Jaccard to the representative


def signatures(texts: Sequence[str], cfg: NearDupConfig = SAMPLES) -> list:
    """The MinHash (rensa's RMinHash) of each text's shingles, None for a text without words.

    Apart from clustering so that a caller holding many long texts (selection, a batch of
    traces at a time) can keep only the signatures, and cluster them once at the end."""
    from rensa import RMinHash

    sets = [shingles(t, cfg.ngram) for t in texts]
    idx = [i for i, s in enumerate(sets) if s]
    out: list = [None] * len(texts)
    if idx:
        made = RMinHash.from_token_sets([sets[i] for i in idx], num_perm=cfg.num_perm,
                                        seed=cfg.seed)
        for i, h in zip(idx, made, strict=True):
            out[i] = h
    return out


def cluster(hashes: Sequence, cfg: NearDupConfig = SAMPLES, *,
            groups: Sequence[str] | None = None) -> list[Member]:
    """Members of every cluster of two or more near-duplicates among signatures made by
    `signatures` (None joins nothing), by index: LSH candidates confirmed by their estimated
    Jaccard, joined by union-find. With `groups` (say, the prompt of each sample) only pairs
    from different groups join: near-duplicates within a group are the caller's to handle."""
    from rensa import RMinHashLSH

    idx = [i for i, h in enumerate(hashes) if h is not None]
    if len(idx) < 2:
        return []
    sigs = [hashes[i] for i in idx]
    lsh = RMinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm,
                      num_bands=lsh_bands(cfg.threshold, cfg.num_perm))
    lsh.insert_many(sigs)
    pairs = ((a, b) for a, cands in enumerate(lsh.query_all(sigs)) for b in cands
             if b < a and (groups is None or groups[idx[a]] != groups[idx[b]])
             and sigs[a].jaccard(sigs[b]) >= cfg.threshold)
    roots = _components(len(idx), pairs)
    size = Counter(roots)
    return [Member(idx[a], idx[r], 1.0 if a == r else float(sigs[a].jaccard(sigs[r])))
            for a, r in enumerate(roots) if size[r] > 1]


def _components(n: int, pairs: Iterable[tuple[int, int]]) -> list[int]:
    """Union-find: each of n items' component, named by its lowest index, so a cluster's
    representative is the first of its members in the caller's order."""
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [find(a) for a in range(n)]


def clusters(texts: Sequence[str], cfg: NearDupConfig = SAMPLES, *,
             groups: Sequence[str] | None = None) -> list[Member]:
    """`cluster` over the `signatures` of texts held together (ingest: every prompt)."""
    return cluster(signatures(texts, cfg), cfg, groups=groups)
