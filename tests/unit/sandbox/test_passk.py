"""pass@k: the unbiased estimator against closed-form values and its aggregation."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evalscope.eval.scoring.passk import (
    aggregate_pass_at_k,
    ks_for,
    pass_at_k,
    pass_at_k_exact,
    per_problem_pass_at_k,
)


def closed_form(n: int, c: int, k: int) -> Fraction:
    """1 - C(n-c, k) / C(n, k) in exact rational arithmetic."""
    if n - c < k:
        return Fraction(1)
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


# (n, c, k) -> exact value worked out by hand
HAND = [
    ((1, 0, 1), Fraction(0)),
    ((1, 1, 1), Fraction(1)),
    ((10, 3, 1), Fraction(3, 10)),  # pass@1 = c/n
    ((5, 1, 2), Fraction(2, 5)),  # 1 - C(4,2)/C(5,2) = 1 - 6/10
    ((5, 2, 2), Fraction(7, 10)),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    ((10, 0, 5), Fraction(0)),
    ((10, 6, 5), Fraction(1)),  # n - c = 4 < k = 5
    ((4, 1, 4), Fraction(1)),
    ((20, 2, 10), 1 - Fraction(math.comb(18, 10), math.comb(20, 10))),
]


@pytest.mark.parametrize(("nck", "want"), HAND)
def test_hand_values(nck: tuple[int, int, int], want: Fraction) -> None:
    assert pass_at_k(*nck) == pytest.approx(float(want), abs=1e-12)


def test_table_equals_closed_form() -> None:
    for n in range(1, 41):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(float(closed_form(n, c, k)), abs=1e-12), (n, c, k)
                assert pass_at_k_exact(n, c, k) == pytest.approx(float(closed_form(n, c, k)), abs=1e-12)


def test_pass_at_1_is_fraction_correct() -> None:
    for n in (1, 7, 200):
        for c in range(n + 1):
            assert pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)


def test_large_n_is_stable() -> None:
    # C(2000, 1000) overflows a float; the product form does not.
    v = pass_at_k(2000, 3, 1000)
    assert v == pytest.approx(float(closed_form(2000, 3, 1000)), abs=1e-12)
    assert 0.0 <= pass_at_k(10_000, 1, 100) <= 1.0
    assert pass_at_k(10_000, 1, 100) == pytest.approx(0.01, abs=1e-12)


@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_property_matches_exact(nck: tuple[int, int, int]) -> None:
    n, c, k = nck
    got = pass_at_k(n, c, k)
    assert 0.0 <= got <= 1.0
    assert got == pytest.approx(float(closed_form(n, c, k)), abs=1e-9)


@given(st.integers(2, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n - 1))))
def test_monotone_in_k(nck: tuple[int, int, int]) -> None:
    n, c, k = nck
    assert pass_at_k(n, c, k + 1) >= pass_at_k(n, c, k) - 1e-12


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 1, 0), (3, 1, 4)])
def test_invalid_inputs(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_aggregate_over_problems() -> None:
    table = [(10, 0), (10, 1), (10, 5), (10, 10)]
    got = aggregate_pass_at_k(table, [1, 5, 10])
    for k in (1, 5, 10):
        want = sum(float(closed_form(n, c, k)) for n, c in table) / len(table)
        assert got[k] == pytest.approx(want, abs=1e-12)
    assert got[1] == pytest.approx((0 + 0.1 + 0.5 + 1.0) / 4)
    assert got[10] == pytest.approx(3 / 4)


def test_aggregate_skips_k_above_some_n() -> None:
    got = aggregate_pass_at_k([(5, 1), (3, 1)], [1, 3, 5])
    assert set(got) == {1, 3}
    assert aggregate_pass_at_k([], [1]) == {}


def test_ks_for_and_per_problem() -> None:
    assert ks_for(1) == [1]
    assert ks_for(10, [1, 5, 10, 20]) == [1, 5, 10]
    assert ks_for(4, [10]) == [1]
    pp = per_problem_pass_at_k({"a": (4, 2), "b": (1, 1)}, 2)
    assert set(pp) == {"a"}
    assert pp["a"] == pytest.approx(float(closed_form(4, 2, 2)))
