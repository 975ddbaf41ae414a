"""The R1 chat format, written once: system prompt, user suffix, think block, boxed answer.

Generation, evaluation, export, the cold start and the trainers all build and read R1 turns;
they import them from here so a prompt the teacher saw is the prompt the student trains on.
Core module (it imports only r1data.errors), so verifiers in filters/ may use it too.
"""

from __future__ import annotations

from r1data.errors import InputError

# R1 format: reasoning inside <think>, the answer after it, math boxed (DeepSeek-R1 §2.2, and its
# model card's advice for math: "put your final answer within \boxed{}").
R1_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The Assistant first thinks about the reasoning process step by step and then "
    "gives the user the answer. The reasoning process is enclosed within <think> </think> tags "
    "and the final answer follows it, i.e., <think> reasoning process here </think> final answer "
    "here. For math, put the final answer within \\boxed{}."
)
R1_USER_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."
SUFFIX_DOMAINS = ("math", "countdown")  # domains whose answer is boxed (code is not)
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def user_text(problem: str, domain: str, suffix: str = R1_USER_SUFFIX) -> str:
    """The user turn: the problem, plus R1's "reason step by step … \\boxed{}" where the
    answer is boxed (math, countdown)."""
    return problem + (suffix if domain in SUFFIX_DOMAINS else "")


def strip_suffix(text: str, suffix: str = R1_USER_SUFFIX) -> str:
    """The problem of a user turn (user_text's inverse)."""
    return text.removesuffix(suffix)


def drop_suffix(messages: list[dict], share: float) -> list[dict]:
    """The conversation with the R1 suffix taken off its first user turn for a deterministic
    `share` of conversations (by a hash of that turn). Training rows that all carry the suffix
    teach the format as a reaction to it: measured, a student trained so wrote <think> on 80%
    of unseen problems with the suffix and on none without it."""
    import hashlib

    i = next((j for j, m in enumerate(messages) if m["role"] == "user"), None)
    if i is None or share <= 0:
        return messages
    text = messages[i]["content"]
    if int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0x100000000 >= share:
        return messages
    return [*messages[:i], messages[i] | {"content": strip_suffix(text)}, *messages[i + 1:]]


def chat_messages(problem: str, domain: str, *, system_prompt: str | None = None,
                  user_suffix: str = R1_USER_SUFFIX) -> list[dict]:
    """The prompt as chat messages: an optional system turn, then the user turn."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": user_text(problem, domain, user_suffix)})
    return messages


def prompt_messages(prompt) -> list[dict]:
    """A GRPO prompt column value (a string or chat messages) as chat messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def prompt_text(prompt) -> str:
    """A prompt column value as text: a string or the last user message of a chat."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m.get("content") or "" for m in prompt
                 if isinstance(m, dict) and m.get("role", "user") == "user"]
        return str(users[-1]) if users else ""
    return ""


def problem_of(prompt) -> str:
    """The problem of a GRPO prompt (string or chat) with the R1 suffix taken off, ready for
    `user_text` to add it back once; an error if it has no user turn."""
    if isinstance(prompt, list) and not any(isinstance(m, dict) and m.get("role") == "user"
                                            for m in prompt):
        raise InputError("prompt has no user message", field="prompt")
    return strip_suffix(prompt_text(prompt))


def split_think(text: str) -> tuple[str | None, str]:
    """(reasoning, final): inside <think>…</think>, and after it; no </think> -> (None, all).

    The opening tag may be missing: R1-style chat templates put `<think>` in the prompt.
    """
    end = text.rfind(THINK_CLOSE)
    if end < 0:
        return None, text.strip()
    start = text.find(THINK_OPEN)
    begin = start + len(THINK_OPEN) if 0 <= start < end else 0
    return text[begin:end].strip(), text[end + len(THINK_CLOSE):].strip()


def join_think(reasoning: str | None, final: str | None) -> str:
    """The assistant turn in the R1 format (split_think's inverse); no reasoning -> final."""
    final = (final or "").strip()
    if reasoning is None:
        return final
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{final}"


def boxed(answer) -> str:
    """`\\boxed{answer}`, the form R1 asks for and the math verifier reads first."""
    return f"\\boxed{{{answer}}}"


def completion_text(c) -> str:
    """A completion as text: a string, or the last message of a chat list (TRL passes both)."""
    if isinstance(c, str):
        return c
    if isinstance(c, list) and c and isinstance(c[-1], dict):
        return str(c[-1].get("content") or "")
    if isinstance(c, dict):
        return str(c.get("content") or "")
    raise InputError(f"completion of type {type(c).__name__}", field="completions")
