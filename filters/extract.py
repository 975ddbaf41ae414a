"""R1-format parsing shared by the store and the verifiers (placeholder until the filters land)."""

from __future__ import annotations


def split_think(completion: str) -> tuple[str | None, str]:
    """(reasoning, final): text inside <think>…</think> and after it; no </think> -> (None, all)."""
    end = completion.rfind("</think>")
    if end < 0:
        return None, completion.strip()
    start = completion.find("<think>")
    begin = start + len("<think>") if 0 <= start < end else 0
    return completion[begin:end].strip(), completion[end + len("</think>"):].strip()
