"""The verifiers, written down once: each check's batch function, its reward and its columns.

`r1data filter --filters` takes the `check` names, `r1data train grpo --reward` the reward
names. Adding a verifier: its batch function in verdicts.py (the one implementation), its
reward wrapper in rewards.py, one entry here. The code reward is named by module path, so
rewards and the sandboxed code verifier never import each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from r1data.errors import ConfigError
from r1data.filters import rewards as R
from r1data.filters import verdicts as V


@dataclass(frozen=True)
class Verifier:
    check: str | None  # a `r1data filter --filters` name; None: a reward only
    batch: Callable  # the batch function in verdicts.py both paths call
    name: str  # the reward's name (`--reward NAME:WEIGHT`, get_reward)
    reward: R.Reward  # its wrapper in rewards.py: dataset columns in, one value a completion
    columns: tuple[str, ...]  # verdict columns the check writes
    needs: tuple[str, ...]  # dataset columns the reward reads (GRPO passes them as kwargs)


VERIFIERS: tuple[Verifier, ...] = (
    Verifier("correct", V.correct_batch, "accuracy", R.accuracy_reward, ("answer", "correct"),
             ("answer", "domain", "meta", "tests", "entry_point", "numbers", "target")),
    Verifier("format", V.format_batch, "format", R.format_reward,
             ("format_ok", "format_reason"), ("domain", "finish_reason")),
    Verifier(None, V.format_batch, "repetition", R.repetition_reward, ("repetition",), ()),
    Verifier("language", V.language_batch, "language", R.make_language_reward(),
             ("lang", "lang_prob", "lang_consistency"), ("target_language",)),
    Verifier(None, V.instructions_batch, "instructions", R.instructions_reward, (),
             ("instruction_id_list", "kwargs")),
)
CHECKS: tuple[str, ...] = tuple(v.check for v in VERIFIERS if v.check)
# Checks that run only when asked for: the LLM judge needs a judge model (filters/judge.py,
# run over a whole run by r1data.judging; its reward is the `judge:MODEL` factory).
OPT_IN_CHECKS: tuple[str, ...] = ("judge",)
# Which failing check names a rejected sample (its reject_reason): R1 drops malformed samples
# (truncated, no <think>, repetition) before it asks whether they are right, then language;
# the LLM judge last. The one statement of that order: verdict_rows and the tests read it here.
REJECT_ORDER: tuple[str, ...] = ("format", "correct", "language", *OPT_IN_CHECKS)


def reject_reason(failed: dict[str, str | None], checks) -> str | None:
    """The sample's reject_reason: the reason of the first check in REJECT_ORDER that is in
    `checks` (those that decide keep) and failed (a reason, not None); None keeps it."""
    return next((failed[c] for c in REJECT_ORDER if c in checks and failed.get(c)), None)


# The verifiers' rewards, and rewards that are no verdict (a length penalty).
REWARDS: dict[str, R.Reward] = {v.name: v.reward for v in VERIFIERS} | {
    "length": R.make_length_reward()}
# Rewards whose module is imported on first use ("module:function").
LAZY_REWARDS = {"code": "r1data.filters.code:code_reward"}
JUDGE_REWARD = ("r1data.judging", "make_judge_reward")  # `judge:MODEL[@URL]`


def get_reward(name: str) -> R.Reward:
    """A registered reward by name: a key of REWARDS or LAZY_REWARDS, or `rm:PATH` (a learned
    reward model). Unknown names raise ConfigError listing the known ones. Configurable
    rewards are built by their factories (make_length_reward, make_language_reward)."""
    if name.startswith("rm:"):
        return R.make_reward_model_reward(name[3:])
    if name.startswith("judge:"):  # a stage starts the judge's engine: named by module path
        return getattr(importlib.import_module(JUDGE_REWARD[0]), JUDGE_REWARD[1])(name[6:])
    if name in LAZY_REWARDS:
        module, fn = LAZY_REWARDS[name].split(":")
        try:
            return getattr(importlib.import_module(module), fn)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            raise ConfigError(f"reward {name!r} needs {module}") from None
    try:
        return REWARDS[name]
    except KeyError:
        known = ", ".join(sorted([*REWARDS, *LAZY_REWARDS, "rm:PATH", "judge:MODEL[@URL]"]))
        raise ConfigError(f"unknown reward {name!r}; known: {known}") from None
