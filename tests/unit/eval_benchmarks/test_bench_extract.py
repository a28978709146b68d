"""Adversarial tests of answer extraction (MCQ letters, multi-select, math answers, BBH phrases)."""

from __future__ import annotations

import pytest

from evalscope.eval.scoring.extract import (
    extract_after_phrase,
    extract_choice,
    extract_choice_detailed,
    extract_choices,
    extract_math_answer,
    last_boxed,
    last_number,
    strip_reasoning,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ANSWER: B", "B"),
        ("answer: c", "C"),
        ("ANSWER: (B)", "B"),
        ("ANSWER: [B]", "B"),
        ("ANSWER: **B**", "B"),
        ("**ANSWER: B**", "B"),
        ("**Answer:** B", "B"),
        ("**ANSWER**: B", "B"),
        ("ANSWER: B.", "B"),
        ("ANSWER: B) blue whale", "B"),
        ("ANSWER: \\boxed{B}", "B"),
        ("ANSWER: $B$", "B"),
        ("ANSWER: $\\boxed{B}$", "B"),
        ("ANSWER: \\text{B}", "B"),
        ("Final Answer: B", "B"),
        ("ANSWER:\n\nB", "B"),
        ("ANSWER: Option B", "B"),
        ("答案：C", "C"),
        ("答案:C", "C"),
        ("答案： **C**", "C"),
        ("最终答案是：C", "C"),
        ("答案是D", "D"),
    ],
)
def test_marker_formats(text: str, expected: str) -> None:
    got = extract_choice_detailed(text, "ABCD")
    assert got.letter == expected
    assert got.method == "marker"


def test_reasoning_mentioning_other_letters_does_not_fool_it() -> None:
    text = (
        "Option A is wrong because of X. (C) is tempting, and the answer is not D.\n"
        "B fits all constraints.\n\nANSWER: B"
    )
    assert extract_choice(text) == "B"


def test_last_marker_wins() -> None:
    assert extract_choice("ANSWER: A\nWait, I made an error.\nANSWER: C") == "C"
    assert extract_choice("First ANSWER: (A), then 答案：D") == "D"


def test_invalid_letter_in_last_marker_falls_back_to_earlier_valid_marker() -> None:
    # "E" is not an option of a 4-option question; the earlier valid marker is used
    assert extract_choice("ANSWER: B\n\nANSWER: E", "ABCD") == "B"
    assert extract_choice("ANSWER: E", "ABCD") is None


def test_only_valid_letters_count() -> None:
    assert extract_choice("ANSWER: F", "ABCDE") is None
    assert extract_choice("ANSWER: F", "ABCDEF") == "F"


def test_reasoning_block_is_stripped() -> None:
    text = "<think>The answer is A. ANSWER: A</think>\nANSWER: C"
    assert extract_choice(text) == "C"
    assert strip_reasoning("<think>x</think>y") == "y"
    assert strip_reasoning("no think") == "no think"
    # the reasoning's marker is not used even when the visible part has no marker
    assert extract_choice("<think>ANSWER: A</think>I am not sure.") is None


def test_no_marker_is_unparsed_without_fallback() -> None:
    got = extract_choice_detailed("I think it might be B or C.", "ABCD", fallback=False)
    assert got.letter is None and not got.parsed and got.method == "none"
    assert extract_choice("I think it might be B or C.") is None


def test_pronoun_i_is_not_option_i() -> None:
    letters = "ABCDEFGHIJ"
    assert extract_choice("ANSWER: I think it is B", letters) is None  # unparsed, never option I
    assert extract_choice("ANSWER: I'm sure: C", letters) is None
    assert extract_choice("ANSWER: I", letters) == "I"
    assert extract_choice("ANSWER: (I) because", letters) == "I"


def test_article_a_is_not_option_a() -> None:
    assert extract_choice("The answer: a cat sat on the mat.") is None
    assert extract_choice("A good question. Hard to say.") is None
    assert extract_choice("Answer: a") == "A"  # a delimited lower-case letter is accepted


@pytest.mark.parametrize(
    ("text", "expected", "method"),
    [
        ("Thus the correct answer is (B).", "B", "fallback:answer_is"),
        ("The answer is **C** because ...", "C", "fallback:answer_is"),
        ("正确答案是B", "B", "marker"),
        ("正确选项为B", "B", "fallback:zh_answer"),
        ("So we get $\\boxed{D}$", "D", "fallback:boxed"),
        ("B", "B", "fallback:bare"),
        ("(B)", "B", "fallback:bare"),
        ("**B**", "B", "fallback:bare"),
        ("B. Paris is the capital", "B", "fallback:bare"),
        ("Option A is wrong, the answer is not clear", None, "none"),
        ("The answer is a tricky one: C or D", None, "none"),
    ],
)
def test_fallbacks(text: str, expected: str | None, method: str) -> None:
    got = extract_choice_detailed(text, "ABCD")
    assert (got.letter, got.method) == (expected, method)


def test_multi_select() -> None:
    assert extract_choices("A is false.\nANSWER: B, D", "ABCDE") == frozenset("BD")
    assert extract_choices("ANSWER: A and C", "ABCDE") == frozenset("AC")
    assert extract_choices("ANSWER: (A), (C), (E)", "ABCDE") == frozenset("ACE")
    assert extract_choices("ANSWER: **B**", "ABCDE") == frozenset("B")
    assert extract_choices("ANSWER: A, C because B is wrong", "ABCDE") is None
    assert extract_choices("ANSWER: A, Z", "ABCDE") is None
    assert extract_choices("no marker", "ABCDE") is None
    assert extract_choices("ANSWER: A\nANSWER: B, C", "ABCDE") == frozenset("BC")


# -------------------------------------------------------------------------------------------- math


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{1,000}", "1,000"),
        ("\\boxed{5.0}", "5.0"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("first \\boxed{3} then \\boxed{4}", "4"),
        ("\\boxed 5", "5"),
        ("$\\boxed 5$.", "5"),
        ("\\fbox{x^{2}}", "x^{2}"),
        ("\\boxed{\\text{(B)}}", "\\text{(B)}"),
        ("The answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("Therefore, the final answer is 42.", "42"),
        ("ANSWER: 17", "17"),
        ("We have 3 apples and 1,234 pears", "1234"),
        ("<think>\\boxed{9}</think> so \\boxed{7}", "7"),
        ("no numbers at all", None),
        ("unbalanced \\boxed{3 and the answer is 5", "5"),
    ],
)
def test_math_extraction(text: str, expected: str | None) -> None:
    assert extract_math_answer(text) == expected


def test_boxed_helpers() -> None:
    assert last_boxed("\\boxed{a{b{c}}d}") == "a{b{c}}d"
    assert last_boxed("nothing") is None
    assert last_number("total -3.5 then 2,000") == "2000"
    assert last_number("") is None


def test_after_phrase() -> None:
    text = "So the answer is (A) maybe.\nActually, so the answer is **(B)**."
    assert extract_after_phrase(text) == "(B)"
    assert extract_after_phrase("So the answer is No.") == "No"
    assert extract_after_phrase("no phrase") is None
