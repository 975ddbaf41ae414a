"""R1-format parsing shared by the store and every verifier: split the think block, find the answer.

Model text is hostile: everything here is linear-time string scanning, bounded to the text's tail.
"""

from __future__ import annotations

import re

TAIL = 20_000  # fallbacks look only at the end of a completion (answers come last)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*[:\s]*(.+?)(?:\.\s|\.$|\n|$)",
    re.IGNORECASE)
_BOLD = re.compile(r"\*\*([^*\n]{1,200})\*\*")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def split_think(completion: str) -> tuple[str | None, str]:
    """(reasoning, final): inside <think>…</think>, and after it; no </think> -> (None, all).

    The opening tag may be missing: R1-style chat templates put `<think>` in the prompt.
    """
    end = completion.rfind("</think>")
    if end < 0:
        return None, completion.strip()
    start = completion.find("<think>")
    begin = start + len("<think>") if 0 <= start < end else 0
    return completion[begin:end].strip(), completion[end + len("</think>"):].strip()


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{…} or \\fbox{…} with balanced braces (or `\\boxed 5`)."""
    matches = list(_BOX.finditer(text[-TAIL:]))
    tail = text[-TAIL:]
    for m in reversed(matches):
        i = m.end()
        if i < len(tail) and tail[i] == "{":
            depth, j = 0, i
            while j < len(tail):
                c = tail[j]
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        return tail[i + 1:j].strip()
                j += 1
            continue  # unbalanced: try an earlier box
        word = re.match(r"[^\s$]+", tail[i:])
        if word:
            return word.group(0)
    return None


def extract_answer(text: str | None) -> str | None:
    """The final answer: last box, then <answer>, "the answer is X", **X**, then the last number."""
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed:
        return boxed
    tail = text[-TAIL:]
    tags = _ANSWER_TAG.findall(tail)
    if tags and tags[-1].strip():
        return tags[-1].strip()
    found = _ANSWER_IS.findall(tail)
    if found:
        ans = found[-1].strip().strip("*$ ").rstrip(".")
        if ans:
            return ans
    bold = _BOLD.findall(tail)
    if bold:
        return bold[-1].strip()
    nums = _NUMBER.findall(tail)
    return nums[-1].rstrip(",") if nums else None
