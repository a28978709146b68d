"""Property tests: whatever reasoning precedes it, the final marker decides; shots are deterministic."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evalscope.eval.benchmarks._common import select_shots
from evalscope.eval.scoring.extract import extract_choice, extract_math_answer

WORDS = st.sampled_from(
    [
        "A",
        "B",
        "C",
        "D",
        "(A)",
        "**B**",
        "option",
        "C.",
        "is",
        "wrong",
        "answer",
        "ANSWER: A",
        "答案：C",
        "\\boxed{D}",
        "<think>",
        "</think>",
        "the answer is (B)",
        "\n",
        "$",
        "maybe",
        "I",
        "a",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(WORDS, max_size=40),
    st.sampled_from("ABCD"),
    st.sampled_from(["ANSWER: {}", "答案：{}", "**ANSWER: {}**", "ANSWER: ({})"]),
)
def test_final_marker_wins(prefix: list[str], letter: str, fmt: str) -> None:
    text = " ".join(prefix) + "\n\n" + fmt.format(letter)
    assert extract_choice(text, "ABCD") == letter


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["7", "\\boxed{3}", "the answer is 9", "x", "\n", "1,000"]), max_size=30),
    st.integers(-(10**6), 10**6),
)
def test_final_box_wins(prefix: list[str], n: int) -> None:
    text = " ".join(prefix) + f"\nSo the final result is \\boxed{{{n}}}."
    assert extract_math_answer(text) == str(n)


def test_select_shots_first_k_and_seeded() -> None:
    pool = list(range(10))
    assert select_shots(pool, 3, {}) == [0, 1, 2]
    a = select_shots(pool, 3, {"few_shot_random": True, "few_shot_seed": 7}, "k")
    b = select_shots(pool, 3, {"few_shot_random": True, "few_shot_seed": 7}, "k")
    assert a == b and len(set(a)) == 3
    assert select_shots(pool, 0, {}) == []
