"""Arena statistics against independent references: Bradley-Terry vs scipy's optimiser (to 1e-6), the
online Elo by hand, the length-controlled GLM on data whose wins come from length alone, verdict parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalscope.arena import stats
from evalscope.arena.verdict import (
    DEFAULT_TEMPLATES,
    pairwise_prompt,
    parse_pairwise,
    parse_single,
)

scipy_optimize = pytest.importorskip("scipy.optimize")
scipy_special = pytest.importorskip("scipy.special")


def _random_games(seed: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 1, k)
    first = rng.integers(0, k, n)
    second = (first + rng.integers(1, k, n)) % k
    p = scipy_special.expit(strength[first] - strength[second] + 0.3)
    u = rng.random(n)
    score = np.where(u < p - 0.1, 1.0, np.where(u < p + 0.1, 0.5, 0.0))
    return first, second, score


def _scipy_bt(first: np.ndarray, second: np.ndarray, score: np.ndarray, k: int, position: bool) -> np.ndarray:
    """Independent MLE: per-game negative log-likelihood and gradient, minimised by BFGS."""

    def unpack(x: np.ndarray) -> tuple[np.ndarray, float]:
        theta = np.concatenate([[0.0], x[: k - 1]])
        return theta, (x[-1] if position else 0.0)

    def nll(x: np.ndarray) -> float:
        theta, beta = unpack(x)
        eta = theta[first] - theta[second] + beta
        return float(
            -np.sum(score * scipy_special.log_expit(eta) + (1 - score) * scipy_special.log_expit(-eta))
        )

    def grad(x: np.ndarray) -> np.ndarray:
        theta, beta = unpack(x)
        eta = theta[first] - theta[second] + beta
        r = score - scipy_special.expit(eta)
        g = np.zeros(k)
        np.add.at(g, first, r)
        np.add.at(g, second, -r)
        out = -g[1:]
        return np.append(out, -r.sum()) if position else out

    x0 = np.zeros(k - 1 + (1 if position else 0))
    res = scipy_optimize.minimize(nll, x0, jac=grad, method="BFGS", options={"gtol": 1e-12, "maxiter": 10000})
    theta, beta = unpack(res.x)
    return np.append(theta, beta)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("position", [False, True])
def test_bt_matches_scipy_to_1e6(seed: int, position: bool) -> None:
    k = 6
    first, second, score = _random_games(seed, k, 3000)
    w, s = stats.pair_tables(first, second, score, np.ones(len(score)), k)
    fit = stats.fit_bt(w, s, anchor=0, position=position, ridge=0.0)
    assert fit.converged
    ref = _scipy_bt(first, second, score, k, position)
    theta = (fit.ratings - 1000.0) / stats.ELO_PER_LOGIT
    assert np.max(np.abs(theta - ref[:k])) < 1e-6
    assert np.max(np.abs(fit.ratings - (1000.0 + stats.ELO_PER_LOGIT * ref[:k]))) < 1e-6 * stats.ELO_PER_LOGIT
    if position:
        assert abs(fit.position - ref[k]) < 1e-6


def test_bt_anchor_and_separated_data_stay_finite() -> None:
    w = np.array([[0.0, 5.0], [0.0, 0.0]])
    s = np.array([[0.0, 5.0], [0.0, 0.0]])  # model 0 won every game
    fit = stats.fit_bt(w, s, anchor=1)
    assert fit.ratings[1] == 1000.0
    assert math.isfinite(fit.ratings[0]) and fit.ratings[0] > 1500


def test_online_elo_by_hand() -> None:
    r = stats.online_elo([(0, 1, 1.0), (1, 0, 0.5)], 2)
    # game 1: equal ratings, expected 0.5 -> +16 / -16
    a, b = 1016.0, 984.0
    eb = 1 / (1 + 10 ** ((a - b) / 400))
    b2 = b + 32 * (0.5 - eb)
    a2 = a + 32 * (0.5 - (1 - eb))
    assert r[0] == pytest.approx(a2) and r[1] == pytest.approx(b2)


def test_length_controlled_removes_a_pure_length_effect() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    diff = rng.normal(60, 80, n)  # the model is longer on average
    p = scipy_special.expit(1.5 * np.tanh(diff / np.std(diff)))  # it wins by length alone
    score = (rng.random(n) < p).astype(float)
    res = stats.length_controlled(score, diff)
    assert res["win_rate"] is not None and res["win_rate"] > 0.6
    assert res["lc_win_rate"] == pytest.approx(0.5, abs=0.04)
    assert res["length_coef"] == pytest.approx(1.5, abs=0.2)


def test_fit_logistic_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    x = np.column_stack([np.ones(500), rng.normal(size=500)])
    y = rng.random(500)  # fractional outcomes
    coef = stats.fit_logistic(x, y)

    def nll(c: np.ndarray) -> float:
        eta = x @ c
        return float(-np.sum(y * scipy_special.log_expit(eta) + (1 - y) * scipy_special.log_expit(-eta)))

    ref = scipy_optimize.minimize(nll, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    assert np.max(np.abs(coef - ref)) < 1e-5


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Reasoning... [[A>>B]]", "A>>B"),
        ("[[ b > a ]]", "B>A"),
        ("first [[A=B]] then again [[A=B]]", "A=B"),
        ("[[A>B]] no wait [[B>A]]", None),  # contradictory
        ("A is better", None),
        ("[[A>>>B]]", None),
        ("[[7]]", None),
    ],
)
def test_parse_pairwise(text: str, want: str | None) -> None:
    assert parse_pairwise(text) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Rating: [[7]]", 7),
        ("[[10]]", 10),
        ("[[7.0]]", 7),
        ("[[0]]", None),
        ("[[11]]", None),
        ("7/10", None),
        ("[[3]] ... [[8]]", None),
    ],
)
def test_parse_single(text: str, want: int | None) -> None:
    assert parse_single(text) == want


def test_prompt_keeps_braces_in_answers() -> None:
    p = pairwise_prompt(DEFAULT_TEMPLATES, "Q {x}?", None, "use {answer_b}", "b")
    assert "use {answer_b}" in p and "[The Start of Assistant B's Answer]\nb\n" in p


@pytest.mark.parametrize("position", [False, True])
def test_batched_bootstrap_equals_round_by_round_fits(position: bool) -> None:
    rng = np.random.default_rng(9)
    q, k = 40, 4
    w_q = rng.integers(0, 2, (q, k, k)).astype(float)
    for t in range(q):
        np.fill_diagonal(w_q[t], 0.0)
    w_q[:5, 3, :] = 0.0  # a sparse corner: some rounds barely see model 3
    s_q = w_q * rng.choice([0.0, 0.5, 1.0], size=(q, k, k))
    boot = stats.bootstrap_bt(w_q, s_q, 50, seed=4, anchor=1, position=position)
    r = np.random.default_rng(4)
    for i in range(50):
        c = np.bincount(r.integers(0, q, size=q), minlength=q).astype(float)
        one = stats.fit_bt(
            np.tensordot(c, w_q, axes=1), np.tensordot(c, s_q, axes=1), anchor=1, position=position
        )
        assert np.max(np.abs(one.ratings - boot[i])) < 1e-6
