"""R1-format parsing shared by the store and every verifier: split the think block, find the answer.

Model text is hostile: everything here is linear-time string scanning, mostly of the text's
tail. No pattern has nested or adjacent quantifiers over the same characters; patterns that
must end at the end of a text are matched on the reversed text from its start (Python's `search`
for `...$` retries at every offset: quadratic on a long run of what the pattern accepts).
"""

from __future__ import annotations

import re

from r1data.chat import split_think  # noqa: F401 - the verifiers' import of it

TAIL = 20_000  # fallbacks look only at the end of a completion (answers come last)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)[:\s]*(.+?)(?:\.\s|\.$|\n|$)",
    re.IGNORECASE)
_BOLD = re.compile(r"\*\*([^*\n]{1,200})\*\*")
# The trailing number of a phrase, matched on the reversed phrase: "3/4." -> "3/4"
_TRAILING_NUMBER_REV = re.compile(r"\W*((?:\d+\s*/\s*)?\d+\.?[\d,]*-?)")
# The last whole expression of prose: LaTeX commands, digits, operators, braces, one space
# between such tokens, a comma only inside 1,000, a point only before a digit. Each token
# starts with a different character, so the scan is linear.
_MATH_RUN = re.compile(r"(?:\\[A-Za-z]+|\d+|[{}^_()+\-*/=<>!|]|\.(?=\d)|,(?=\d{3}(?!\d))|"
                       r" (?=[\d\\{}^_()+\-*/=<>|]))++")  # possessive: no backtrack stack
_DIGIT = re.compile(r"\d")
_DANGLING_REV = re.compile(  # reversed: what may dangle at the end of a run
    r"(?:[ \-({^_+*/]|(?:txet|fbtxet|mrhtam|xobm|dauq|dauqq|todc|semit)\\)*+")
_LAST_NUMBER_REV = re.compile(r"\d+(?:\.\d+)?-?")
_ONE_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_CHOICE_LEAD = re.compile(r"^\(?[A-E]\)\s")  # "(C) 12": the letter decides a multiple choice
# Between boxes that form one answer list: "and", "or", commas, \quad, math delimiters.
_BOX_GAP = re.compile(r"^(?:\\quad|\\qquad|\\text\{\s*(?:and|or|,)\s*\}|and|or|[\s,;$]|"
                      r"\\[()\[\]])*$")
_FINAL_IS = re.compile(r"final answer\s*(?:is|:)", re.IGNORECASE)
# Inline and display math, last one wins: $...$, $$...$$, \(...\), \[...\]
_MATH_OPEN = re.compile(r"\\\(|\\\[|\$\$|(?<!\\)\$")
_MATH_CLOSE = {"\\(": "\\)", "\\[": "\\]", "$$": "$$", "$": "$"}


def _closers(tail: str) -> dict[int, int]:
    """Position of each `{` -> its matching `}`, in one pass (unbalanced ones are absent)."""
    match: dict[int, int] = {}
    stack: list[int] = []
    for m in re.finditer(r"[{}]", tail):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            match[stack.pop()] = m.start()
    return match


def _boxes(tail: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every balanced \\boxed{…}/\\fbox{…} (or `\\boxed 5`)."""
    out = []
    closers: dict[int, int] | None = None
    for m in _BOX.finditer(tail):
        i = m.end()
        if i < len(tail) and tail[i] == "{":
            if closers is None:
                closers = _closers(tail)
            j = closers.get(i)
            if j is not None:  # unbalanced boxes are skipped
                out.append((m.start(), j + 1, tail[i + 1:j].strip()))
            continue
        word = re.match(r"[^\s$]+", tail[i:i + 200])
        if word:
            out.append((m.start(), i + word.end(), word.group(0)))
    return out


def _group(tail: str, boxes: list[tuple[int, int, str]]) -> str:
    """The last box, with the boxes before it that only "and", commas or \\quad separate."""
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        if not _BOX_GAP.match(tail[prev[1]:group[0][0]]):
            break
        group.insert(0, prev)
    return ", ".join(dict.fromkeys(b[2] for b in group))  # \\boxed{6} \\boxed{6} is one 6


def _tail(text: str) -> str:
    """The text's last TAIL characters, or from its last box on when that box opens earlier
    (a 1 MB boxed answer is read whole, not by what ends its tail)."""
    if len(text) <= TAIL:
        return text
    k = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    return text[k:] if 0 <= k < len(text) - TAIL else text[-TAIL:]


def last_boxed(text: str) -> str | None:
    """The last box's content; boxes joined only by "and", commas or \\quad form one list."""
    tail = _tail(text)
    boxes = _boxes(tail)
    return _group(tail, boxes) if boxes else None


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every balanced box in the text's tail (offsets in the tail);
    a gold answer may box each part."""
    return _boxes(_tail(text))


def math_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of each $…$, $$…$$, \\(…\\), \\[…\\] span, in linear time: a
    delimiter whose closer never comes is scanned for once, not once per opening."""
    if "$" not in text and "\\" not in text:  # every delimiter holds one; a C-speed exit
        return []
    out = []
    missing: set[str] = set()  # closers absent from the rest of the text
    pos = 0
    while True:
        m = _MATH_OPEN.search(text, pos)
        if m is None:
            return out
        closer = _MATH_CLOSE[m.group()]
        j = -1 if closer in missing else text.find(closer, m.end())
        while closer == "$" and j > 0 and text[j - 1] == "\\":  # \\$ is a dollar sign
            j = text.find(closer, j + 1)
        if j < 0:
            missing.add(closer)
            pos = m.end()
            continue
        out.append((m.start(), j + len(closer), text[m.end():j]))
        pos = j + len(closer)


def last_math(text: str) -> str | None:
    """Content of the last non-empty inline or display math span."""
    spans = [c.strip() for _, _, c in math_spans(text[-TAIL:])]
    spans = [c for c in spans if c]
    return spans[-1] if spans else None


def last_tag(text: str, tag: str = "answer") -> str | None:
    """Content of the last <tag>…</tag> (stripped), found from the end in linear time."""
    end = text.rfind(f"</{tag}>")
    start = text.rfind(f"<{tag}>", 0, end) if end >= 0 else -1
    return text[start + len(tag) + 2:end].strip() if start >= 0 else None


def _said(ans: str) -> str | None:
    """The answer inside a "the answer is …" phrase: its number, math span or short text."""
    ans = ans.strip()
    for _ in range(3):  # "Answer: The final answer is 7." -> "7"
        inner = _ANSWER_IS.findall(ans)
        if not inner or inner[-1].strip() == ans:
            break
        ans = inner[-1].strip()
    if _CHOICE_LEAD.match(ans):
        return ans.rstrip(" .")
    math = last_math(ans)
    closed = ans.rstrip(" .").endswith(("$", "\\)", "\\]"))
    number = _TRAILING_NUMBER_REV.match(ans[::-1])
    if number and not (math and closed):
        return number.group(1)[::-1].lstrip(",")
    if math:
        return math
    numbers = _ONE_NUMBER.findall(ans)
    if len(numbers) == 1 and len(ans) <= 120:  # "Jane started 3 hours ago" -> "3"
        return numbers[0]
    return ans.strip("*$ ").rstrip(".") or None


def _last_said(text: str) -> str | None:
    """The answer of the last "the answer is …" phrase in text (None: no such phrase)."""
    found = _ANSWER_IS.findall(text)
    return _said(found[-1]) if found else None


def extract_answer(text: str | None) -> str | None:
    """Last box (unless a later "final answer is X" overrides it), <answer>, "the answer is
    X", last math span, **X**, a bare expression, or the last number: weak models rarely box,
    so the fallbacks are what sees their answers."""
    if not text:
        return None
    tail = _tail(text)
    boxes = _boxes(tail)
    boxed = _group(tail, boxes) if boxes else None
    if boxed:
        final = list(_FINAL_IS.finditer(tail, boxes[-1][1]))
        said = _last_said(tail[final[-1].start():]) if final else None
        return said if said and re.search(r"\d", said) else boxed
    tag = last_tag(tail)
    if tag:
        return tag
    said = _last_said(tail)
    if said:
        return said
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
    return last_expression(text)


def _balanced(s: str) -> bool:
    if len(s) > 10_000:  # too long to be an answer sympy sees; counts suffice, at C speed
        return s.count("{") == s.count("}") and s.count("(") == s.count(")")
    depth = {"{": 0, "(": 0}
    for ch in s:
        if ch in "{(":
            depth[ch] += 1
        elif ch in "})":
            depth["{" if ch == "}" else "("] -= 1
            if min(depth.values()) < 0:
                return False
    return not any(depth.values())


def _trim(run: str) -> str | None:
    """The answer inside a run of math tokens: after its last `=`, without dangling operators
    or unmatched brackets; its last number when the brackets cannot be made to match."""
    run = run.rsplit("=", 1)[-1].strip(" +*/^_<>|!")
    # a unit or word that follows: "\\frac{8}{5} \\text{" -> "\\frac{8}{5}", in one pass
    run = run[:len(run) - _DANGLING_REV.match(run[::-1]).end()]
    for _ in range(8):
        if _balanced(run):
            return run or None
        if run[-1:] in ")}" and run.count(run[-1]) > run.count("({"[run[-1] == "}"]):
            run = run[:-1].rstrip()
        elif run[:1] in "({":
            run = run[1:].lstrip()
        else:
            break
    if _balanced(run) and run:
        return run
    number = _LAST_NUMBER_REV.search(run[::-1])
    return number.group()[::-1] if number else None


def _last_run(text: str, start: int) -> re.Match | None:
    last = None
    for m in _MATH_RUN.finditer(text, start):
        if _DIGIT.search(m.group()) and m.group().lstrip()[:1] not in "}^_)":
            last = m  # "}^2" ends a unit (\\text{ cm}^2), not an expression
    return last


def last_expression(text: str) -> str | None:
    """The last whole mathematical expression with a digit in it: `\\frac{8}{5}`, `2\\pi`,
    `-3.5`, `1,000`, `3/4`, the value after `= ` in `5 + 9 = 14` (never the last digit run of
    a fraction). One that reaches back past the tail is read whole, so a long number is never
    cut to its last digits."""
    start = max(0, len(text) - TAIL)
    last = _last_run(text, start)
    if last is not None and last.start() == start > 0:
        last = _last_run(text, 0)  # linear too; only for a run the tail cut
    return _trim(last.group()) if last else None
