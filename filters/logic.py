"""Countdown (TinyZero): reach the target with the given numbers, each at most once.

The model's expression is evaluated by a whitelist over Python's AST with exact fractions;
nothing is ever passed to eval, and size, depth and magnitude are capped. Every value, given
numbers and constants included, stays within MAX_ABS, so a target beyond it is unreachable and
judged False at once, whatever its size (a 5,000-digit target is never turned into an int).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from fractions import Fraction

from r1data.filters.extract import last_boxed, last_tag, split_think

MAX_CHARS = 200
MAX_NODES = 64
MAX_ABS = 10**12
MAX_DIGITS = len(str(MAX_ABS))  # a longer integer is beyond MAX_ABS: never parsed
_ALLOWED = set("0123456789+-*/×÷() .")
_ARITH = re.compile(r"[-(\d][\d\s+\-*/×÷().]*")


class UnsafeExpression(ValueError):
    """The text is not a small arithmetic expression over integers."""


def _eval(node: ast.AST, used: list[int]) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body, used)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        if abs(node.value) > MAX_ABS:
            raise UnsafeExpression("value too large")
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, used)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = _eval(node.left, used), _eval(node.right, used)
        if isinstance(node.op, ast.Div):
            if b == 0:
                raise UnsafeExpression("division by zero")
            r = a / b
        else:
            r = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}[type(node.op)]
        if abs(r) > MAX_ABS:
            raise UnsafeExpression("value too large")
        return r
    raise UnsafeExpression(f"{type(node).__name__} is not allowed")


def _plain(expr: str) -> str:
    """LaTeX and unicode operators as ASCII arithmetic."""
    for a, b in (("\\times", "*"), ("\\div", "/"), ("\\cdot", "*"), ("×", "*"), ("÷", "/"),
                 ("\\left", ""), ("\\right", ""), ("$", "")):
        expr = expr.replace(a, b)
    return expr.strip()


def safe_eval(expr: str) -> tuple[Fraction, list[int]]:
    """(value, integers used) of + - * / ( ) over integers; UnsafeExpression otherwise."""
    expr = _plain(expr)
    if not expr or len(expr) > MAX_CHARS or not set(expr) <= _ALLOWED:
        raise UnsafeExpression("not a plain arithmetic expression")
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        raise UnsafeExpression("does not parse") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise UnsafeExpression("expression too long")
    used: list[int] = []
    return _eval(tree, used), used


def countdown_expression(completion: str) -> str | None:
    """The equation the model proposes: <answer>, \\boxed{}, else the last line with digits."""
    final = split_think(completion)[1]
    cand = last_tag(final)
    cand = cand if cand is not None else last_boxed(final)
    if cand is None:
        lines = [ln for ln in final.splitlines() if re.search(r"\d\s*[-+*/×÷]\s*\(?\d", ln)]
        cand = lines[-1] if lines else None
    if cand is None:
        return None
    cand = _plain(cand)
    if "=" in cand:  # "3 + 4 * 5 = 23" or "23 = 3 + 4 * 5": keep the side with operators
        sides = [s for s in cand.split("=") if re.search(r"[-+*/×÷]", s)]
        cand = sides[0] if sides else cand.split("=")[0]
    # Prose around it ("So we get 4 * 7 + 9"): keep the longest arithmetic run.
    runs = [r.strip() for r in _ARITH.findall(cand) if re.search(r"[-+*/×÷]", r)]
    return max(runs, key=len) if runs else cand.strip().rstrip(".")


def clamp_int(text: str | int) -> int:
    """An integer from its digits, or +-(MAX_ABS + 1) when it is longer than any reachable
    value: safe for json.loads(parse_int=...) and for a gold written as 5,000 digits."""
    if isinstance(text, int):
        return text if abs(text) <= MAX_ABS else (MAX_ABS + 1) * (1 if text > 0 else -1)
    s = str(text).strip()
    digits = s.lstrip("+-").lstrip("0")
    if len(digits) > MAX_DIGITS:
        return -(MAX_ABS + 1) if s.startswith("-") else MAX_ABS + 1
    return int(s)


def countdown_correct(completion: str, numbers: list[int], target: int | str, *,
                      use_all: bool = False) -> bool:
    """Uses only the given numbers (each at most once) and evaluates exactly to the target.

    use_all: every given number exactly once, as TinyZero's countdown reward demands.
    A target or a given number beyond MAX_ABS cannot be reached or used: False.
    """
    try:
        target = clamp_int(target)
    except ValueError:
        return False
    if abs(target) > MAX_ABS:
        return False
    expr = countdown_expression(completion)
    if expr is None:
        return False
    try:
        value, used = safe_eval(expr)
    except UnsafeExpression:
        return False
    if Counter(used) - Counter(numbers):  # some number used more often than given
        return False
    if use_all and Counter(used) != Counter(numbers):
        return False
    return value == target
