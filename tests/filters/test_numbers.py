"""Exact numbers (filters/numbers.py): the forms read without sympy, and the rules between them."""

from fractions import Fraction

import pytest

from r1data.filters.numbers import MAX_EXACT_DIGITS, exact, same


@pytest.mark.parametrize("text,value", [
    ("12", 12), ("-12", -12), ("+12", 12), ("\u221212", -12), ("12.50", Fraction(25, 2)),
    (".5", Fraction(1, 2)), ("5.", 5), ("1,000", 1000), ("1,234,567.5", Fraction(2469135, 2)),
    ("1 000 000", 10**6), ("1\\,000", 1000), ("1{,}000", 1000), ("\\$18.90", Fraction(189, 10)),
    ("$\\frac{3}{4}$", Fraction(3, 4)), ("\\dfrac{3}{4}", Fraction(3, 4)),
    ("\\frac12", Fraction(1, 2)),
    ("\\frac{-3}{4}", Fraction(-3, 4)), ("-\\frac{3}{4}", Fraction(-3, 4)), ("3/4", Fraction(3, 4)),
    ("- 3 / 4", Fraction(-3, 4)), ("3\\frac{1}{2}", Fraction(7, 2)), ("3 1/2", Fraction(7, 2)),
    ("-2\\frac{1}{4}", Fraction(-9, 4)), ("12.5\\%", Fraction(25, 2)), ("12.5 %", Fraction(25, 2)),
    ("{7}", 7), ("\\left(5\\right)", None),
])
def test_exact_forms(text, value):
    got = exact(text)
    assert (got.value if got else None) == value


@pytest.mark.parametrize("text", [
    "2,74", "1,2", "12,34,567", "x", "2x", "3\\frac{5}{2}", "\\frac{1}{0}", "1/0", "1e5", "",
    "\\sqrt{2}", "1.2.3", "--1", "3 1/2/4", "(1, 2)",
])
def test_not_exact_numbers_are_left_to_the_other_tiers(text):
    assert exact(text) is None


@pytest.mark.parametrize("gold,answer,expected", [
    ("\\frac13", "0.333333", True),  # a decimal side: compared at 6 places
    ("\\frac13", "0.3333", False),
    ("0.1234567", "0.1234568", True),
    ("\\frac{1}{3}", "\\frac{2}{6}", True),  # no decimal: exact
    ("1000000001", "1000000000", False),
])
def test_rounding_rule(gold, answer, expected):
    assert same(exact(gold), exact(answer)) is expected


def test_beyond_the_exact_digits_plain_numbers_compare_by_digits():
    n = "1" + "0" * (MAX_EXACT_DIGITS + 10)
    assert exact(n).value is None and exact(n).digits == n
    assert same(exact(n), exact("000" + n + ".000")) is True
    assert same(exact(n), exact(n + "1")) is False
    assert same(exact(n), exact("-" + n)) is False
    assert exact(f"\\frac{{{n}}}{{3}}") is None  # a huge fraction is not decided here
    assert same(exact(n), exact("5")) is not True
