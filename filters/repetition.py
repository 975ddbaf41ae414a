"""Gopher repetition rules over a whole column at once (Arrow + NumPy, no Python loop per word).

Same rules and thresholds as `readability.repetition_stats` (which stays the scalar reference):
duplicate paragraph/line fractions, top 2-4-gram character fractions, duplicated 5-10-gram
character fractions. Words are whitespace-separated tokens; n-grams are hashed per document.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from r1data.filters import readability as R

_P1, _P2 = np.uint64(1_000_003), np.uint64(0x9E3779B97F4A7C15)


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


def _first_seen(doc: np.ndarray, key: np.ndarray) -> np.ndarray:
    """True where (doc, key) appears for the first time in order."""
    _, first = np.unique(_doc_key(doc, key), return_index=True)
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


def _ngrams(doc, ids, n):
    """Start index, doc and hash of every n-gram that stays inside one document."""
    m = len(ids) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * _P1 + (ids[k:k + m] + np.uint64(1)) * _P2
    same = doc[:m] == doc[n - 1:n - 1 + m]
    starts = np.nonzero(same)[0]
    return starts, doc[starts], h[starts]


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

    pdoc, pids, plen = _tokens(arr, r"\n\s*\n", regex=True)
    para_frac, para_chars = _dup_fractions(pdoc, pids, plen, n_docs)
    ldoc, lids, llen = _tokens(arr, "\n")
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
    for n, limit in R.TOP_NGRAM_FRAC:
        starts, gdoc, h = _ngrams(doc, ids, n)
        frac = np.zeros(n_docs)
        if len(h):
            _, first, counts = np.unique(_doc_key(gdoc, h), return_index=True,
                                         return_counts=True)
            # the most common n-gram of each doc (ties: the one seen first), as Counter does
            order = np.lexsort((first, -counts, gdoc[first]))
            top_doc = gdoc[first][order]
            is_top = np.r_[True, top_doc[1:] != top_doc[:-1]]
            pick = order[is_top]
            gstart = starts[first[pick]]
            gchars = csum[gstart + n] - csum[gstart]
            value = np.where(counts[pick] >= 2, gchars * counts[pick], 0.0)
            frac[gdoc[first[pick]]] = value / total[gdoc[first[pick]]]
        flag(long_enough & (frac > limit), f"top_{n}gram")
    dup10 = np.zeros(n_docs)
    for n, limit in R.DUP_NGRAM_FRAC:
        starts, gdoc, h = _ngrams(doc, ids, n)
        covered = np.zeros(len(ids) + 1)
        if len(h):
            dup_starts = starts[~_first_seen(gdoc, h)]
            np.add.at(covered, dup_starts, 1)
            np.add.at(covered, dup_starts + n, -1)
        mask = np.cumsum(covered)[:len(ids)] > 0
        frac = np.bincount(doc, weights=wlen * mask, minlength=n_docs) / total
        if n == 10:
            dup10 = np.where(nwords >= 10, frac, 0.0)
        flag(long_enough & (frac > limit), f"duplicated_{n}gram")
    score = np.maximum(line_chars, dup10)
    return [(reasons[i], float(score[i])) for i in range(n_docs)]
