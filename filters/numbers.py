"""Exact rationals from answer text: integers, decimals, fractions, mixed numbers, percents.

Most math answers are numbers. Deciding them here, in the caller's process with Fraction and
fully anchored regexes that cannot backtrack, makes their verdict independent of machine load
(no worker, no time budget) and linear in the text's length, at any length.

Rules, written once:
- Percent is a unit: a trailing `%` / `\\%` is dropped, so `12.5\\%` equals `12.5` and `50\\%`
  equals `50` (not 0.5), as math-verify judges `28\\%` against `28`.
- When either side is written as a decimal, both are compared rounded to DECIMAL_PLACES
  (math-verify's float_rounding: `0.333333` answers `\\frac13`, `0.333` does not); otherwise
  exactly.
- `1,000` and `1 000` are one number when every group after the first has three digits;
  `3\\frac{1}{2}` and `3 1/2` are mixed numbers (7/2) when the fraction is proper.
- Numbers beyond MAX_EXACT_DIGITS digits are compared by their canonical digits when both sides
  are plain decimals (a 100,000-digit answer is checked, never parsed into an int); a huge
  fraction is not decided here (None: unverified).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

DECIMAL_PLACES = 6
MAX_EXACT_DIGITS = 4000  # below CPython's int-from-str limit (4300); beyond: digit comparison

_REPLACE = (("\\$", ""), ("$", ""), ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""),
            ("\\left", ""), ("\\right", ""), ("\\displaystyle", ""), ("{,}", ","),
            ("\\!", ""), ("\\,", " "), ("\\;", " "), ("\\ ", " "), ("~", " "),
            ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\cfrac", "\\frac"),
            ("\u2212", "-"), ("\\%", "%"))
# Integer part: plain digits, comma thousands or space thousands; each form is tried once.
_DECIMAL = re.compile(r"(\d+|[1-9]\d{0,2}(?:,\d{3})+|\d{1,3}(?: \d{3})+)?(?:\.(\d+))?")
_TEX_FRAC = r"\\frac ?(?:\{ ?([-+]?\d+) ?\}|(\d)) ?(?:\{ ?(\d+) ?\}|(\d))"
_FRAC = re.compile(_TEX_FRAC + r"|([-+]?\d+) ?/ ?(\d+)")
_MIXED = re.compile(r"(\d+) ?(?:" + _TEX_FRAC + r"| (\d+) ?/ ?(\d+))")


class Exact(NamedTuple):
    """A number as written: its value (None beyond MAX_EXACT_DIGITS), or its canonical digits
    (sign, integer digits, fraction digits) when it is a plain decimal; decimal: has a point."""
    value: Fraction | None
    digits: str | None
    decimal: bool


def _clean(s: str) -> str:
    s = " ".join(s.split())
    for a, b in _REPLACE:
        if a in s:
            s = s.replace(a, b)
    s = s.strip()
    while len(s) > 2 and s[0] == "{" and s[-1] == "}" and s.count("{") == 1:
        s = s[1:-1].strip()
    s = s.rstrip(".").rstrip()  # "5." ends a sentence
    if s.endswith("%"):
        s = s[:-1].rstrip()
    return s


def _digits(neg: bool, whole: str, frac: str) -> str:
    whole, frac = whole.lstrip("0") or "0", frac.rstrip("0")
    sign = "-" if neg and (whole != "0" or frac) else ""
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def exact(text: str) -> Exact | None:
    """The exact number the text writes, or None when it is not one of the forms above."""
    s = _clean(str(text))
    neg = s[:1] == "-"
    if s[:1] in "-+":
        s = s[1:].lstrip()
    if not s:
        return None
    m = _DECIMAL.fullmatch(s)
    if m and (m.group(1) or m.group(2)):
        whole = (m.group(1) or "0").replace(",", "").replace(" ", "")
        frac = m.group(2) or ""
        digits = _digits(neg, whole, frac)
        if len(whole) + len(frac) > MAX_EXACT_DIGITS:
            return Exact(None, digits, bool(frac))
        value = Fraction(int(whole + frac), 10 ** len(frac))
        return Exact(-value if neg else value, digits, bool(frac))
    if len(s) > 2 * MAX_EXACT_DIGITS:
        return None  # a fraction this long is not decided here
    m = _FRAC.fullmatch(s)
    if m:
        g = m.groups()
        num, den = (g[0] or g[1], g[2] or g[3]) if (g[0] or g[1]) else (g[4], g[5])
        value = _ratio(num, den)
    else:
        m = _MIXED.fullmatch(s)
        if not m:
            return None
        g = m.groups()
        num, den = (g[1] or g[2], g[3] or g[4]) if (g[1] or g[2]) else (g[5], g[6])
        value = _ratio(num, den) if len(g[0]) <= MAX_EXACT_DIGITS else None
        if value is None or num.startswith(("-", "+")) or value >= 1:
            return None  # 3\frac{5}{2} is not a mixed number: leave it to sympy
        value = int(g[0]) + value
    if value is None:
        return None
    return Exact(-value if neg else value, None, False)


def _ratio(num: str, den: str) -> Fraction | None:
    if len(num) + len(den) > MAX_EXACT_DIGITS:
        return None  # not decided here (int() of >4300 digits raises; its cost is quadratic)
    return Fraction(int(num), int(den)) if int(den) else None


def same(g: Exact, a: Exact) -> bool | None:
    """Equal as numbers by the rules above; None when the sizes forbid deciding it here."""
    if g.value is None or a.value is None:
        if g.digits is not None and a.digits is not None:
            return g.digits == a.digits
        return None
    if g.decimal or a.decimal:
        return round(g.value, DECIMAL_PLACES) == round(a.value, DECIMAL_PLACES)
    return g.value == a.value
