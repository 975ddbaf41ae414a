"""The R1 chat format: what generation adds, evaluation and export read back the same way."""

import pytest

from r1data.chat import (
    R1_USER_SUFFIX,
    boxed,
    chat_messages,
    completion_text,
    join_think,
    problem_of,
    split_think,
    strip_suffix,
    user_text,
)
from r1data.errors import InputError


def test_suffix_only_where_the_answer_is_boxed():
    assert user_text("2+3?", "math") == "2+3?" + R1_USER_SUFFIX
    assert user_text("2+3?", "countdown").endswith(R1_USER_SUFFIX)
    assert user_text("def f():", "code") == "def f():"
    assert strip_suffix(user_text("2+3?", "math")) == "2+3?"


def test_eval_prompt_round_trips_to_the_generated_prompt():
    """An exported GRPO prompt, read back by eval, gives the prompt generation builds: the
    suffix appears once."""
    exported = chat_messages("2+3?", "math")
    again = chat_messages(problem_of(exported), "math", system_prompt="sys")
    assert again == [{"role": "system", "content": "sys"}, *exported]
    assert again[-1]["content"].count(R1_USER_SUFFIX) == 1
    with pytest.raises(InputError, match="no user message"):
        problem_of([{"role": "system", "content": "x"}])


def test_think_block_round_trip():
    text = join_think("step 1", "so " + boxed(5))
    assert split_think(text) == ("step 1", "so \\boxed{5}")
    assert split_think("a</think> b") == ("a", "b")  # opening tag in the prompt
    assert split_think(" no tags ") == (None, "no tags")
    assert join_think(None, " 5 ") == "5"


def test_completion_text_of_string_and_chat():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": "y"}]) == "y"
    with pytest.raises(InputError, match="int"):
        completion_text(3)
