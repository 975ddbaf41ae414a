"""The held-out exam: task families and phrasings that no training stage ever sees.

A model that learnt the R1 recipe, not its templates, must do well on problems worded unlike
its training data. So the exam holds out whole reasoning-gym families and whole word-problem
templates (checked by the number-masked n-gram test of `leaks`), and every model a flow makes
is scored on it with the R1 protocol (k samples at T 0.6, top-p 0.95), with and without the R1
user suffix: a model that writes the format only when told to has not learnt it.

The families are ones SmolLM2-135M gets right at least sometimes (one-digit chain sums and
products, a few animals' legs, one-step stories): an exam every model fails proves nothing.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from r1data.config import R1_USER_SUFFIX, GenerateConfig
from r1data.errors import ConfigError, InputError
from r1data.store import Store

# reasoning-gym families held out of every training stage, with small-number settings.
EXAM_GYM: dict[str, dict] = {
    "chain_sum": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 1},
    "products": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
    "leg_counting": {"min_animals": 1, "max_animals": 2, "min_instances": 1,
                     "max_instances": 3},
}
# Word-problem templates held out of every training stage ({a} {b} one digit, {c} too).
EXAM_TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "story": [
        ("add", "There are {a} birds on a fence and {b} more birds land beside them. How many "
                "birds sit on the fence?"),
        ("add", "Tom scored {a} points in the first game and {b} points in the second game. "
                "What was his total score?"),
        ("sub", "A shelf held {a} jars until somebody carried {b} jars away. How many jars "
                "are on the shelf?"),
        ("sub", "A pond had {a} ducks. After {b} ducks flew off, how many ducks stayed?"),
        ("mul", "Every one of {a} children brought {b} cookies to school. How many cookies "
                "were brought altogether?"),
        ("mul", "A train pulls {a} wagons and each wagon carries {b} crates. What is the "
                "number of crates on the train?"),
    ],
    "verbal": [
        ("add_mul", "Start with {a}. Add {b}, then multiply the result by {c}. What number do "
                    "you get?"),
        ("mul_add", "Multiply {a} by {b} and then add {c} to the product. What is the "
                    "outcome?"),
        ("add_sub", "Think of {a}, increase it by {b}, and then decrease it by {c}. Which "
                    "number results?"),
    ],
}
FAMILIES = (*EXAM_GYM, *EXAM_TEMPLATES)


def _story_answer(op: str, a: int, b: int, c: int) -> int:
    return {"add": a + b, "sub": a - b, "mul": a * b, "add_mul": (a + b) * c,
            "mul_add": a * b + c, "add_sub": a + b - c}[op]


def template_rows(family: str, n: int, seed: int) -> list[dict]:
    """n distinct problems from one held-out template family, reproducible from the seed."""
    rng = random.Random(f"exam:{family}:{seed}")
    rows, seen = [], set()
    for _ in range(n * 50):
        if len(rows) == n:
            break
        t = rng.randrange(len(EXAM_TEMPLATES[family]))
        op, text = EXAM_TEMPLATES[family][t]
        a, b, c = rng.randint(1, 9), rng.randint(1, 9), rng.randint(1, 9)
        if op == "sub":
            a, b = max(a, b), min(a, b)
        if op == "add_sub":
            c = min(c, a + b)
        problem = text.format(a=a, b=b, c=c)
        if problem in seen:
            continue
        seen.add(problem)
        rows.append({"problem": problem, "answer": str(_story_answer(op, a, b, c)),
                     "meta": {"family": family, "template": f"{family}{t}"}})
    return rows


def gym_rows(name: str, n: int, seed: int, settings: dict) -> list[dict]:
    """n distinct problems of a reasoning-gym generator with the given settings (its own
    seeding; small-number settings repeat problems, so it draws more and keeps the first n)."""
    try:
        import reasoning_gym
    except ImportError:
        raise InputError("reasoning-gym is not installed: pip install 'r1data[gym]'",
                         path=f"gym:{name}") from None
    try:
        data = reasoning_gym.create_dataset(name, size=n * 4, seed=seed, **settings)
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"unknown reasoning-gym dataset or setting ({e})",
                         path=f"gym:{name}") from None
    rows: dict[str, dict] = {}
    for e in data:
        q = e["question"].strip()
        if q not in rows and len(rows) < n:
            rows[q] = {"problem": q, "answer": str(e["answer"]),
                       "meta": {"family": name, "template": name}}
    return list(rows.values())


@dataclass
class ExamConfig:
    per_family: int = 24  # prompts per family: 5 families -> 120 (the quickstart uses 13 -> 65)
    seed: int = 2026  # the exam's own seed; training stages never use the exam families anyway
    families: list[str] = field(default_factory=lambda: list(FAMILIES))
    k: int = 8  # samples per prompt (R1 used 64; >= 8 gives a usable pass@1)
    max_tokens: int = 256
    engine_seed: int = 0
    bootstrap: int = 2000  # resamples of the prompts for the 95% interval

    def __post_init__(self):
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise ConfigError(f"unknown exam family(ies) {unknown}; known: {', '.join(FAMILIES)}")
        if self.per_family < 1 or self.k < 1:
            raise ConfigError("exam per_family and k must be at least 1")


def exam_rows(cfg: ExamConfig | None = None) -> list[dict]:
    """The exam's prompts as rows of the prompts table, source exam/<family>."""
    from r1data.prompts import prompt_id

    cfg = cfg or ExamConfig()
    rows = []
    for fam in cfg.families:
        made = (gym_rows(fam, cfg.per_family, cfg.seed, EXAM_GYM[fam]) if fam in EXAM_GYM
                else template_rows(fam, cfg.per_family, cfg.seed))
        for r in made:
            source = f"exam/{fam}"
            rows.append({"prompt_id": prompt_id(source, r["problem"]), "source": source,
                         "problem": r["problem"], "answer": r["answer"], "domain": "math",
                         "tests": None, "meta": json.dumps(r["meta"])})
    return rows


def add_exam(store: Store, cfg: ExamConfig | None = None) -> list[str]:
    """Put the exam's prompts in the store (idempotent); returns its sources."""
    from r1data.prompts import IngestReport, add_rows

    rows = exam_rows(cfg)
    add_rows(store, rows, IngestReport(source="exam", read=len(rows)))
    return sorted({r["source"] for r in rows})


# --- decontamination: nothing of the exam in any training stage --------------------------------
_DIGITS = re.compile(r"\d+")


def _masked_grams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams with every number masked, so a shared template shows whatever its numbers."""
    from r1data.selection import ngrams, words

    return ngrams(words(_DIGITS.sub(" 0 ", text)), n)


def leaks(exam: list[str], training: list[str], *, n: int = 8, masked_n: int = 6) -> dict:
    """Exam problems found in training texts: verbatim, by a shared word n-gram (the
    selection stage's decontamination test), or by a shared number-masked n-gram (a template)."""
    from r1data.selection import contaminated

    train_set = {t.strip() for t in training}
    exact = [e for e in exam if e.strip() in train_set]
    with tempfile.TemporaryDirectory() as d:  # contaminated() reads eval texts from a file
        path = Path(d) / "training.txt"
        path.write_text("\n".join(" ".join(t.split()) for t in training))
        hit = contaminated({str(i): e for i, e in enumerate(exam)}, [str(path)], n)
    grams: set[tuple[str, ...]] = set()
    for t in training:
        grams |= _masked_grams(t, masked_n)
    template = [e for e in exam if _masked_grams(e, masked_n) & grams]
    return {"exact": exact, "ngram": [exam[int(i)] for i in sorted(hit, key=int)],
            "template": template}


# --- scoring: the R1 protocol, with and without the suffix --------------------------------------
def run_name(label: str, suffix: bool) -> str:
    return f"exam-{label}-{'suffix' if suffix else 'plain'}"


def bootstrap_ci(values: list[float], resamples: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean, resampling prompts (R1 reports per-prompt means)."""
    import numpy as np

    if not values:
        return (0.0, 0.0)
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (round(float(lo), 4), round(float(hi), 4))


def scores(store: Store, runs: list[str], resamples: int = 2000) -> dict[str, dict]:
    """Per run: pass@1 (boxed) with its interval, R1-format rate, last-answer accuracy, and the
    same per family, from sql/exam.sql (whose per-prompt pass values feed the bootstrap)."""
    from r1data import query

    by_family = query.run(store, query.report_sql("exam")).pl().to_dicts()
    out = {}
    for run in runs:
        fams = [r for r in by_family if r["run"] == run]
        if not fams:
            raise InputError(f"run {run!r} has no exam verdicts", path=str(store.root))
        total = next(r for r in fams if r["family"] == "all")
        out[run] = {"prompts": total["prompts"], "k": total["k"],
                    "pass_at_1": total["pass_at_1"],
                    "ci95": bootstrap_ci(total["prompt_pass"], resamples),
                    "format_rate": total["format_rate"], "last_answer": total["last_answer"],
                    "families": {r["family"]: {k: r[k] for k in ("prompts", "pass_at_1",
                                                                 "format_rate", "last_answer")}
                                 for r in fams if r["family"] != "all"}}
    return out


def gain(store: Store, before: str, after: str, resamples: int = 2000) -> dict:
    """pass@1 of run `after` minus run `before` on the same exam prompts, with a 95% paired
    bootstrap interval (the per-prompt differences resampled): two models' intervals may
    overlap while the gain's excludes 0, since both sat the same prompts."""
    from r1data import query

    rows = {r["run"]: r for r in query.run(store, query.report_sql("exam")).pl().to_dicts()
            if r["family"] == "all" and r["run"] in (before, after)}
    for run in (before, after):
        if run not in rows:
            raise InputError(f"run {run!r} has no exam verdicts", path=str(store.root))
    a, b = rows[before], rows[after]
    if a["prompts"] != b["prompts"]:
        raise InputError(f"runs {before!r} and {after!r} sat different exams "
                         f"({a['prompts']} and {b['prompts']} prompts)", path=str(store.root))
    diffs = [y - x for x, y in zip(a["prompt_pass"], b["prompt_pass"], strict=True)]
    return {"before": before, "after": after, "prompts": len(diffs),
            "gain": round(b["pass_at_1"] - a["pass_at_1"], 4),
            "ci95": bootstrap_ci(diffs, resamples)}


def evaluate_exam(store: Store, model: str, label: str, cfg: ExamConfig | None = None, *,
                  engine=None, progress: bool = True) -> dict[str, dict]:
    """Sample the exam k times per prompt with and without the R1 suffix, verify, score, and
    keep the scores in the store (eval manifests exam-<label>-suffix / -plain).

    No system prompt: R1's usage notes put every instruction in the user turn."""
    from r1data.engines import make_engine
    from r1data.filtering import FilterConfig, filter_run
    from r1data.generate import generate

    cfg = cfg or ExamConfig()
    sources = add_exam(store, cfg)
    runs = []
    own = engine is None
    try:
        for suffix in (True, False):
            gcfg = GenerateConfig(model=model, n=cfg.k, max_tokens=cfg.max_tokens,
                                  seed=cfg.engine_seed, system_prompt=None,
                                  user_suffix=R1_USER_SUFFIX if suffix else "")
            engine = engine or make_engine(gcfg)
            run = run_name(label, suffix)
            generate(store, gcfg, run, sources=sources, engine=engine, progress=progress)
            filter_run(store, run, FilterConfig(checks=["correct"]), progress=progress)
            runs.append(run)
    finally:
        if own and engine is not None:
            engine.close()
    result = scores(store, runs, cfg.bootstrap)
    for run, r in result.items():
        store.write_manifest("eval", run, r | {"model": model, "label": label,
                                               "exam": asdict(cfg)})
    return result


def table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown: one line per model, pass@1 [95% CI], format rate and last answer, each with and
    without the suffix (results: label -> evaluate_exam's output)."""
    lines = ["| model | pass@1 suffix [95% CI] | format suffix | last answer suffix | "
             "pass@1 plain [95% CI] | format plain | last answer plain |",
             "|---|---|---|---|---|---|---|"]
    for label, res in results.items():
        cells = []
        for suffix in (True, False):
            r = res[run_name(label, suffix)]
            cells += [f"{r['pass_at_1']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]",
                      f"{r['format_rate']:.3f}", f"{r['last_answer']:.3f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
