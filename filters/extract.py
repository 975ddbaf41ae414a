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
_NUMBER = re.compile(r"-?(?:\d{1,3}(?: \d{3})+(?![\d,.])|\d[\d,]*(?:\.\d+)?|\.\d+)(?:/\d+)?")
_TRAILING_NUMBER = re.compile(r"(-?[\d,]*\.?\d+)\s*\W*$")
_BOX_GAP = re.compile(r"^[\s,;]*(?:\\quad|\\qquad|\\text\{\s*(?:and|or|,)\s*\}|and|or|,|\s)*$")
# Inline and display math, last one wins: $...$, $$...$$, \(...\), \[...\]
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\$)(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]",
                   re.DOTALL)
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


def _boxes(tail: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every balanced \\boxed{…}/\\fbox{…} (or `\\boxed 5`)."""
    out = []
    for m in _BOX.finditer(tail):
        i = m.end()
        if i < len(tail) and tail[i] == "{":
            depth = 0
            for j in range(i, len(tail)):
                if tail[j] == "{":
                    depth += 1
                elif tail[j] == "}":
                    depth -= 1
                    if depth == 0:
                        out.append((m.start(), j + 1, tail[i + 1:j].strip()))
                        break
            continue  # unbalanced: skipped
        word = re.match(r"[^\s$]+", tail[i:])
        if word:
            out.append((m.start(), i + word.end(), word.group(0)))
    return out


def last_boxed(text: str) -> str | None:
    """The last box's content; boxes joined only by "and", commas or \\quad form one list."""
    boxes = _boxes(text[-TAIL:])
    if not boxes:
        return None
    tail = text[-TAIL:]
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        if not _BOX_GAP.match(tail[prev[1]:group[0][0]]):
            break
        group.insert(0, prev)
    return ", ".join(b[2] for b in group)


def last_math(text: str) -> str | None:
    """Content of the last inline or display math span."""
    spans = [next(g for g in m.groups() if g is not None).strip()
             for m in _MATH.finditer(text[-TAIL:])]
    spans = [s for s in spans if s]
    return spans[-1] if spans else None


def extract_answer(text: str | None) -> str | None:
    """Last box, <answer>, "the answer is X", last math span, **X**, a bare expression, or
    the last number: weak models rarely box, so the fallbacks are what sees their answers."""
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
        ans = found[-1].strip()
        for _ in range(3):  # "Answer: The final answer is 7." -> "7"
            inner = _ANSWER_IS.findall(ans)
            if not inner or inner[-1].strip() == ans:
                break
            ans = inner[-1].strip()
        number = _TRAILING_NUMBER.search(ans)
        math = last_math(ans)
        if number and not (math and ans.rstrip(" .").endswith("$")):
            return number.group(1)
        ans = math if math else ans.strip("*$ ").rstrip(".")
        if ans:
            return ans
    math = last_math(tail)
    if math:
        return math
    bold = _BOLD.findall(tail)
    if bold:
        return bold[-1].strip()
    short = tail.strip()
    if len(short) <= 60 and len(re.findall(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", "",
                                                                       short))) < 2:
        return short.rstrip(".")  # a bare expression such as \frac{10}{9}
    nums = _NUMBER.findall(tail)
    return nums[-1].rstrip(",") if nums else None
