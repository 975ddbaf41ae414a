"""Adaptive sampling: sample a prompt in rounds and stop once selection's verdict on it is known.

R1 samples 64 per prompt, but a prompt that is always right (too easy) or never right (too
hard) relative to selection's pass-rate band is decided after a few samples. After each round
the samples are verified with the same batch verifier as `r1data filter` and the rewards
(`correct_batch`), and a prompt stops once the verdict full sampling would reach is known:
by default (`bound = "predictive"`) the Jeffreys (Beta) posterior of its pass rate predicts
the count of correct samples the full budget would hold, and a prompt stops as too hard (too
easy) when that count is unlikely to reach the band, or as enough when it holds selection's K
distinct correct samples, its rate so far is inside the band and likely to stay there. Stops
out of the band need more confidence than "enough": a wrong too-hard stop loses a prompt, a
wrong "enough" stop keeps one full sampling would not. Undecided prompts get the next block of
sample indices (dense per prompt).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from r1data.config import field_defaults
from r1data.errors import ConfigError
from r1data.selection import SelectConfig
from r1data.store import Store

STOPS = ("too_easy", "too_hard", "enough", "budget")
_SELECT = field_defaults(SelectConfig)  # band and K are selection's, written once there


class AdaptiveConfig(BaseModel):
    """Rounds are cumulative sample counts per prompt; the last is capped at (and padded to)
    GenerateConfig.n, so a prompt never decided ends with the full R1 budget."""

    # Finer than doubling: a prompt stops at the first round that decides it, so steps of 8-16
    # save tokens (bench/adaptive.py's replay: a tenth fewer than 8,16,32,64, same prompts).
    rounds: list[int] = Field(default_factory=lambda: [8, 16, 24, 32, 48, 64])
    # "predictive": the Beta-binomial prediction of the full budget's count of correct samples
    # (Jeffreys prior) against the band's counts; "wilson": a Wilson score bound of the rate.
    bound: Literal["predictive", "wilson"] = "predictive"
    # Confidence of a too-hard / too-easy stop: predictive, the probability that the full
    # budget's pass rate also falls outside the band; wilson, each one-sided bound's.
    confidence: float = Field(0.975, gt=0.5, lt=1.0)
    # Confidence of an "enough" stop (K distinct correct, rate inside the band): looser, as a
    # wrong one keeps a prompt full sampling would drop, it never loses one.
    enough_confidence: float = Field(0.7, gt=0.5, lt=1.0)
    min_samples: int = Field(16, ge=1)  # before a too-hard / too-easy stop
    min_pass_rate: float = _SELECT["min_pass_rate"]
    max_pass_rate: float = _SELECT["max_pass_rate"]
    k: int = Field(_SELECT["k"], ge=1)
    timeout: float = Field(5.0, gt=0)  # seconds per verification (as FilterConfig's)

    @field_validator("rounds")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if not v or v != sorted(set(v)) or v[0] < 1:
            raise ValueError("rounds must be increasing positive sample counts, e.g. 8,16,32,64")
        return v

    @model_validator(mode="after")
    def _check(self) -> AdaptiveConfig:
        if not 0 <= self.min_pass_rate <= self.max_pass_rate <= 1:
            raise ValueError("pass-rate band must satisfy 0 <= min <= max <= 1")
        return self

    def plan(self, n: int) -> list[int]:
        """Cumulative samples per round for a run of n samples per prompt."""
        return [r for r in self.rounds if r < n] + [n]


def parse_rounds(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--rounds {text!r}: expected comma-separated integers") from None


def wilson(correct: int, total: int, confidence: float) -> tuple[float, float]:
    """One-sided Wilson score bounds (lower, upper) of a pass rate at `confidence` each."""
    if total == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(confidence)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def beta_binomial(m: int, a: float, b: float) -> list[float]:
    """P(X = x), x = 0..m, of X ~ BetaBinomial(m, a, b): the correct samples among m more
    when the pass rate's posterior is Beta(a, b)."""
    if m == 0:
        return [1.0]  # exactly: the verdict of a prompt read in full is its count's
    lg = math.lgamma
    base = lg(m + 1) - lg(a + b + m) + lg(a + b) - lg(a) - lg(b)
    return [math.exp(base - lg(x + 1) - lg(m - x + 1) + lg(a + x) + lg(b + m - x))
            for x in range(m + 1)]


def band_counts(n: int, lo: float, hi: float) -> tuple[int, int]:
    """The least and most correct of n whose rate selection keeps (lo <= c/n <= hi)."""
    inside = [c for c in range(n + 1) if lo <= c / n <= hi]
    return (inside[0], inside[-1]) if inside else (n + 1, -1)


def predicted(correct: int, total: int, budget: int, cfg: AdaptiveConfig
              ) -> tuple[float, float]:
    """(P below the band, P above it) of the pass rate over `budget` samples, of which
    `total` are read and `correct` right, the rest predicted from the Jeffreys posterior."""
    lo_c, hi_c = band_counts(budget, cfg.min_pass_rate, cfg.max_pass_rate)
    pmf = beta_binomial(budget - total, correct + 0.5, total - correct + 0.5)
    below = sum(p for x, p in enumerate(pmf) if correct + x < lo_c)
    above = sum(p for x, p in enumerate(pmf) if correct + x > hi_c)
    return below, above


def decide(correct: int, total: int, distinct_correct: int, cfg: AdaptiveConfig, *,
           last: bool, budget: int | None = None) -> str | None:
    """The reason to stop sampling a prompt now, or None to sample its next round.

    `budget` is the full run's samples per prompt (default: the last round): the predictive
    rule asks how the verdict over all of them would fall."""
    inside = total > 0 and cfg.min_pass_rate <= correct / total <= cfg.max_pass_rate
    if cfg.bound == "wilson":
        lo, hi = wilson(correct, total, cfg.confidence)
        out_ok = last or total >= cfg.min_samples
        if out_ok and hi < cfg.min_pass_rate:
            return "too_hard"
        if out_ok and lo > cfg.max_pass_rate:
            return "too_easy"
        elo, ehi = wilson(correct, total, cfg.enough_confidence)
        if distinct_correct >= cfg.k and cfg.min_pass_rate <= elo and ehi <= cfg.max_pass_rate:
            return "enough"
        return "budget" if last else None
    below, above = predicted(correct, total, max(budget or cfg.rounds[-1], total), cfg)
    if last or total >= cfg.min_samples:
        if below >= cfg.confidence:
            return "too_hard"
        if above >= cfg.confidence:
            return "too_easy"
    if distinct_correct >= cfg.k and inside and 1 - below - above >= cfg.enough_confidence:
        return "enough"
    return "budget" if last else None


class Verifier:
    """Correctness of a run's samples, each verified once (a round re-reads only new ones)."""

    def __init__(self, store: Store, run: str):
        self.store, self.run = store, run
        self.prompts = {r["prompt_id"]: r for r in store.read(
            "prompts", columns=["prompt_id", "problem", "answer", "domain", "tests", "meta"]
        ).to_pylist()}
        self.seen: dict[tuple[str, int], tuple[bool | None, str]] = {}

    def stats(self, prompt_ids: set[str], timeout: float) -> dict[str, tuple[int, int, int]]:
        """prompt id -> (samples, correct, correct ones selection would keep: distinct_kept)."""
        from r1data.filters.verdicts import correct_batch, final_answers

        rows = [r for r in self.store.read("samples", self.run, columns=[
            "prompt_id", "sample_idx", "completion", "final", "num_tokens"]).to_pylist()
            if r["prompt_id"] in prompt_ids]
        new = [r for r in rows if (r["prompt_id"], r["sample_idx"]) not in self.seen]
        if new:
            ps = [self.prompts[r["prompt_id"]] for r in new]
            comps = [r["completion"] for r in new]
            answers = final_answers(comps, [r["final"] for r in new])[1]
            verdicts = correct_batch(
                comps, [p["answer"] for p in ps], [p["domain"] for p in ps], answers=answers,
                metas=[p["meta"] for p in ps], tests=[p["tests"] for p in ps],
                problems=[p["problem"] for p in ps], timeout=timeout)
            for r, v in zip(new, verdicts, strict=True):
                self.seen[(r["prompt_id"], r["sample_idx"])] = (v, r["completion"])
        out: dict[str, tuple[int, int, int]] = {}
        correct: dict[str, list[tuple[int, int, str]]] = {}
        for r in rows:
            pid = r["prompt_id"]
            v, text = self.seen[(pid, r["sample_idx"])]
            n, c, _ = out.get(pid, (0, 0, 0))
            if v is True:
                correct.setdefault(pid, []).append((r["num_tokens"], r["sample_idx"], text))
                c += 1
            out[pid] = (n + 1, c, 0)
        return {pid: (n, c, distinct_kept([t for *_, t in sorted(correct.get(pid, []))]))
                for pid, (n, c, _) in out.items()}


def distinct_kept(texts: list[str], threshold: float = _SELECT["near_dup_threshold"]) -> int:
    """How many of one prompt's correct completions (shortest first) selection would keep
    with no limit on K: exact duplicates (up to whitespace) and near-duplicates of one kept
    before are out. Counting them so, an "enough" stop holds K selection will really keep."""
    from r1data.selection import dedup_counts

    return dedup_counts(texts, threshold)[2]
