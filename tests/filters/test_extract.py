"""Answer extraction (filters/extract.py): the think split, boxes, answer phrases, math spans and
the last whole expression, all in linear time on hostile text."""


import pytest

from r1data.filters.extract import (
    TAIL,
    extract_answer,
    last_boxed,
    last_expression,
    last_tag,
    math_spans,
    split_think,
)
from r1data.filters.math import is_correct
from tests.filters.timing import best_seconds


def test_extraction_and_split():
    assert split_think("<think>a</think>b") == ("a", "b")
    assert split_think("a</think> b") == ("a", "b")  # opening tag in the prompt
    assert split_think("no tags") == (None, "no tags")
    assert extract_answer("\\boxed{\\frac{1}{2}} and later \\boxed{3}") == "3"
    assert extract_answer("\\boxed{a{b}c}") == "a{b}c"
    assert extract_answer("\\boxed{2} then \\boxed{unbalanced") == "2"
    assert extract_answer("Answer: 17") == "17"
    assert extract_answer("nothing here") is None


def test_linear_helpers():
    spans = math_spans("cost \\$5, then $x$ and $$y$$ and \\(z\\) and \\[w\\]")
    assert [c for _, _, c in spans] == ["x", "y", "z", "w"]
    assert last_tag("<answer>1</answer> <answer> 2 </answer>") == "2"
    assert last_tag("<answer>unclosed") is None
    assert extract_answer("We get $x = 3$ and then $y = 4$.") == "y = 4"
    assert extract_answer("**Final Answer**\n\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"


PROSE = "Let me go over the whole computation once more to be sure that it is right: "


@pytest.mark.parametrize("ending,want", [
    ("so the ratio is \\frac{8}{5}", "\\frac{8}{5}"),
    ("so the ratio is \\dfrac{8}{5}.", "\\dfrac{8}{5}"),
    ("thus x = \\frac{8}{5} \\text{ cm} in the end", "\\frac{8}{5}"),
    ("the side is \\sqrt{2} units long", "\\sqrt{2}"),
    ("its circumference is 2\\pi for this circle", "2\\pi"),
    ("the probability is 3/4 (after simplifying)", "3/4"),
    ("the temperature fell to -3.5 degrees", "-3.5"),
    ("he earned 1,000 dollars over the summer", "1,000"),
    ("the total is 5 + 9 = 14 books", "14"),
    ("First 5, then 9 more, so 14 books in total", "14"),
    ("the area is 12 \\text{ cm}^2 in all", "12"),
    ("the answer comes from (3 + 4) then", "(3 + 4)"),
    ("no digits in this sentence at all", None),
])
def test_the_last_whole_expression_not_the_last_digit_run(ending, want):
    assert extract_answer(PROSE + ending) == want


@pytest.mark.parametrize("ending,gold", [
    ("so the answer works out to \\frac{8}{5}", "1.6"),
    ("so the answer works out to \\frac{8}{5} for the problem", "8/5"),
    ("and the final ratio we get is 8/5", "\\frac{8}{5}"),
    ("so we get -\\frac{3}{4} here", "-0.75"),
    ("which gives 2\\sqrt{2} in the end", "\\sqrt{8}"),
])
def test_unboxed_answers_ending_in_an_expression_are_correct(ending, gold):
    assert is_correct("<think>work</think>\n" + PROSE + ending, gold)


def test_boxes_and_numbers_longer_than_the_tail_are_read_whole():
    big = "3" * (3 * TAIL)
    assert last_boxed("x \\boxed{" + big + "} done") == big
    assert extract_answer("words \\boxed{" + big + "}") == big
    assert last_expression("so we get 1" + "0" * TAIL + "5") == "1" + "0" * TAIL + "5"
    assert extract_answer("\\boxed{1} " + "x " * TAIL) == "1"  # a box far back beats prose



@pytest.mark.timeout(300)
@pytest.mark.parametrize("make", [
    lambda n: "The answer is" + " " * n + "x",  # once \s*[:\s]*: quadratic
    lambda n: "The answer is 5" + " " * n + "x",  # once \s*\W*$ after the number: cubic
    lambda n: "The answer is " + "1," * (n // 2) + "x",
    lambda n: "1/" * (n // 2),
    lambda n: ".1" * (n // 2),
    lambda n: "123 " * (n // 4) + "x",
    lambda n: "\\frac{1}{" * (n // 8),
    lambda n: "}" * n + "1",
    lambda n: "**" * (n // 2),
    lambda n: "\\boxed{" * (n // 7),
])
def test_extraction_is_linear_on_hostile_text(make):
    small, large = best_seconds(extract_answer, make(100_000)), best_seconds(extract_answer,
                                                                     make(1_000_000))
    assert large < 40 * small + 3.0, (small, large)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("make", [
    lambda n: "x 1" + " -" * (n // 2),  # dangling operators once trimmed one per pass
    lambda n: "so 1 " + "\\text" * (n // 5),
    lambda n: "so 1" + ")" * n,
    lambda n: "so " + "(1" * (n // 2),
    lambda n: "so " + "{1" * (n // 2),
    lambda n: "The answer is " + "1 " * (n // 2),
    lambda n: "**" + "1" * (n - 4) + "**",
])
def test_extraction_is_linear_within_the_tail(make):
    """Shapes whose cost shows only inside the last TAIL characters, where the fallbacks look."""
    small, large = (best_seconds(extract_answer, make(n)) for n in (TAIL // 10, TAIL - 100))
    assert large < 40 * small + 1.0, (small, large)


TEMPLATES = [
    "After simplifying, the ratio of the two areas comes out as {f}",
    "Dividing both sides by the coefficient, we find x = {f} for the unknown",
    "So the probability that both events happen is {f}.",
    "Putting everything together the value should be {f} which I double checked",
    "Therefore the slope of the line through the two points is {f}, as required",
    "Hence each friend receives {f} of the pizza in the end",
]
FRACTIONS = [(8, 5), (3, 7), (11, 4), (1, 9), (22, 7), (5, 12), (13, 8), (2, 3)]


@pytest.mark.parametrize("template", TEMPLATES)
def test_unboxed_fraction_endings_are_not_read_as_their_denominator(template):
    """The issue's class: 11 of 46 unboxed answers ending in \\\\frac{a}{b} were read as b."""
    for a, b in FRACTIONS:
        for f in (f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{a}}}{{{b}}}", f"{a}/{b}"):
            text = "<think>work</think>\n" + PROSE + template.format(f=f)
            assert is_correct(text, f"\\frac{{{a}}}{{{b}}}"), text
            assert not is_correct(text, str(b)), text
