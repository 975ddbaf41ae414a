"""Gopher repetition rules over a whole column at once (Arrow + NumPy, no Python loop per word).

Same rules and thresholds as `readability.repetition_stats` (which stays the scalar reference):
duplicate paragraph/line fractions, top 2-4-gram character fractions, duplicated 5-10-gram
character fractions. Words are whitespace-separated tokens; n-grams are rolling hashes over the
batch's word ids, grouped per document, and only n-grams that can still repeat are grouped.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from r1data.filters import readability as R

_P1, _P2 = np.uint64(1_000_003), np.uint64(0x9E3779B97F4A7C15)
# RE2 classes for what Python's str.splitlines breaks at and what its `\s` matches (RE2's own
# \s is ASCII), so columnar code splits lines and paragraphs exactly as Python does.
_LINE_BREAK = r"[\n\x0b\x0c\r\x1c\x1d\x1e\x85\x{2028}\x{2029}]"
SPACE = (r"[\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}"
          r"\x{2029}\x{202f}\x{205f}\x{3000}]")
_PARA_BREAK = rf"\n{SPACE}*\n"


def _tokens(texts: pa.Array, pattern: str | None = None, regex: bool = False):
    """(doc index per token, token id, token length) of every non-empty token."""
    if pattern is None:
        lists = pc.utf8_split_whitespace(texts)
    elif regex:
        lists = pc.split_pattern_regex(texts, pattern)
    else:
        lists = pc.split_pattern(texts, pattern)
    flat = pc.utf8_trim_whitespace(pc.list_flatten(lists)) if pattern else pc.list_flatten(lists)
    doc = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    lengths = pc.utf8_length(flat).to_numpy(zero_copy_only=False)
    keep = lengths > 0
    ids = pc.dictionary_encode(flat).indices.to_numpy(zero_copy_only=False).astype(np.uint64)
    return doc[keep], ids[keep], lengths[keep].astype(np.float64)


def _doc_key(doc: np.ndarray, key: np.ndarray) -> np.ndarray:
    """One 64-bit key per (doc, key) pair, so NumPy's fast 1-D unique does the grouping."""
    with np.errstate(over="ignore"):
        return key * _P2 + doc.astype(np.uint64) * _P1 + np.uint64(7)


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first index, group of each key, size) of the groups of equal keys, as np.unique's
    return_index/inverse/counts, but from an unstable sort: several times faster."""
    order = keys.argsort(kind="quicksort")
    ordered = keys[order]
    new = np.empty(len(keys), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    first = np.minimum.reduceat(order, starts) if len(starts) else starts
    counts = np.diff(np.append(starts, len(keys)))
    inverse = np.empty(len(keys), dtype=np.intp)
    inverse[order] = np.cumsum(new) - 1
    return first, inverse, counts


def _first_seen(doc: np.ndarray, key: np.ndarray) -> np.ndarray:
    """True where (doc, key) appears for the first time in order."""
    first = _groups(_doc_key(doc, key))[0]
    mask = np.zeros(len(key), dtype=bool)
    mask[first] = True
    return mask


def _dup_fractions(doc, ids, lengths, n_docs):
    """Per doc: (duplicated item fraction, duplicated character fraction)."""
    if len(ids) == 0:
        return np.zeros(n_docs), np.zeros(n_docs)
    dup = ~_first_seen(doc, ids)
    count = np.bincount(doc, minlength=n_docs)
    chars = np.bincount(doc, weights=lengths, minlength=n_docs)
    dcount = np.bincount(doc, weights=dup, minlength=n_docs)
    dchars = np.bincount(doc, weights=lengths * dup, minlength=n_docs)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(dcount / count), np.nan_to_num(dchars / chars)


def _repeated(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Groups of equal keys that occur at least twice: (member indices, group of each member,
    first index of each group, size of each group). One unstable sort; all else is
    proportional to the repeated keys, a small part of all n-grams."""
    order = keys.argsort(kind="quicksort")
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]  # same[j]: sorted j + 1 equals sorted j
    in_repeat = np.zeros(len(keys), dtype=bool)
    in_repeat[1:] |= same
    in_repeat[:-1] |= same
    at = np.flatnonzero(in_repeat)
    members = order[at]
    new = np.ones(len(at), dtype=bool)
    new[1:] = ~same[at[1:] - 1]
    starts = np.flatnonzero(new)
    first = np.minimum.reduceat(members, starts) if len(starts) else starts
    counts = np.diff(np.append(starts, len(at)))
    return members, np.cumsum(new) - 1, first, counts


def _ngram_groups(doc: np.ndarray, ids: np.ndarray, max_n: int):
    """Yield (n, start, doc, members, group, first, counts) for n = 2..max_n: the n-grams
    starting at `start` (in `doc`) that repeat in their document, grouped as by _repeated.

    Only n-grams that can repeat are hashed and sorted: an n-gram repeats only if the
    (n-1)-grams at its start and one word later both do, so each pass sorts fewer keys.
    """
    one = (ids + np.uint64(1)) * _P2  # rolling polynomial hash: h_n = h_{n-1} * P1 + one
    h = one
    can_repeat = np.ones(len(ids), dtype=bool)
    for n in range(2, max_n + 1):
        m = max(0, len(ids) - n + 1)
        with np.errstate(over="ignore"):
            h = h[:m] * _P1 + one[n - 1:n - 1 + m]
        cand = can_repeat[:m] & can_repeat[1:m + 1] & (doc[:m] == doc[n - 1:n - 1 + m])
        start = np.flatnonzero(cand)
        gdoc = doc[start]
        members, group, first, counts = _repeated(_doc_key(gdoc, h[start]))
        can_repeat = np.zeros(m, dtype=bool)
        can_repeat[start[members]] = True
        yield n, start, gdoc, members, group, first, counts


def _top_fraction(n, start, gdoc, first, counts, csum, total, n_docs) -> np.ndarray:
    """Per doc: characters of its most common repeated n-gram (ties: seen first) times its
    count, over the doc's characters; 0 when no n-gram repeats (as Counter.most_common)."""
    frac = np.zeros(n_docs)
    if len(first) == 0:
        return frac
    order = np.lexsort((first, -counts, gdoc[first]))
    top_doc = gdoc[first][order]
    pick = order[np.r_[True, top_doc[1:] != top_doc[:-1]]]
    gstart = start[first[pick]]
    docs = gdoc[first[pick]]
    frac[docs] = (csum[gstart + n] - csum[gstart]) * counts[pick] / total[docs]
    return frac


def _dup_ngram_fraction(n, start, members, group, first, doc, wlen, total, n_docs
                        ) -> np.ndarray:
    """Per doc: characters of words covered by an n-gram seen earlier in it, over its
    characters (Gopher's duplicated n-gram fraction)."""
    dup_starts = start[members[members != first[group]]]
    if len(dup_starts) == 0:
        return np.zeros(n_docs)
    size = len(doc) + 1
    covered = (np.bincount(dup_starts, minlength=size)
               - np.bincount(dup_starts + n, minlength=size))
    mask = np.cumsum(covered)[:len(doc)] > 0
    return np.bincount(doc, weights=wlen * mask, minlength=n_docs) / total


def repetition_batch(texts: list[str]) -> list[tuple[str | None, float]]:
    """(first Gopher rule broken or None, score) per text, as readability.repetition_stats."""
    n_docs = len(texts)
    if n_docs == 0:
        return []
    arr = pa.array(texts, type=pa.large_string())
    reasons: list[str | None] = [None] * n_docs

    def flag(mask, reason):
        for i in np.nonzero(mask)[0]:
            if reasons[i] is None:
                reasons[i] = reason

    pdoc, pids, plen = _tokens(arr, _PARA_BREAK, regex=True)
    para_frac, para_chars = _dup_fractions(pdoc, pids, plen, n_docs)
    ldoc, lids, llen = _tokens(arr, _LINE_BREAK, regex=True)
    line_frac, line_chars = _dup_fractions(ldoc, lids, llen, n_docs)
    flag(para_frac > R.DUP_PARA_FRAC, "dup_para_frac")
    flag(para_chars > R.DUP_PARA_CHAR_FRAC, "dup_para_char_frac")
    flag(line_frac > R.DUP_LINE_FRAC, "dup_line_frac")
    flag(line_chars > R.DUP_LINE_CHAR_FRAC, "dup_line_char_frac")

    doc, ids, wlen = _tokens(arr)
    nwords = np.bincount(doc, minlength=n_docs)
    total = np.bincount(doc, weights=wlen, minlength=n_docs)
    total[total == 0] = 1
    long_enough = nwords >= R.MIN_WORDS_FOR_NGRAMS
    csum = np.concatenate([[0.0], np.cumsum(wlen)])
    top_limits, dup_limits = dict(R.TOP_NGRAM_FRAC), dict(R.DUP_NGRAM_FRAC)
    top, dup = {}, {}
    max_n = max(10, *dup_limits, *top_limits)
    for n, start, gdoc, members, group, first, counts in _ngram_groups(doc, ids, max_n):
        if n in top_limits:
            top[n] = _top_fraction(n, start, gdoc, first, counts, csum, total, n_docs)
        if n in dup_limits or n == 10:
            dup[n] = _dup_ngram_fraction(n, start, members, group, first, doc, wlen, total,
                                         n_docs)
    for n, limit in R.TOP_NGRAM_FRAC:
        flag(long_enough & (top[n] > limit), f"top_{n}gram")
    for n, limit in R.DUP_NGRAM_FRAC:
        flag(long_enough & (dup[n] > limit), f"duplicated_{n}gram")
    dup10 = np.where(nwords >= 10, dup[10], 0.0)
    score = np.maximum(line_chars, dup10)
    return list(zip(reasons, score.tolist(), strict=True))
