"""Arena statistics: Bradley-Terry by Newton's method, bootstrap intervals, online Elo, the length-controlled
win rate (a logistic GLM fitted by IRLS) and mean scores with intervals. numpy only.

Games are reduced to sufficient statistics before fitting: under Bradley-Terry (with a first-position term)
the likelihood depends on the games only through, per ordered pair (first, second), the summed weight and the
summed score of the first. A bootstrap round then costs one weighted sum of per-question tables, not a pass
over the games. Scores are 1 (first wins), 0.5 (tie), 0 (second wins): ties count as half a win, as in
Chatbot Arena.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Elo points per logit: a rating gap of 400 means 10:1 odds.
ELO_PER_LOGIT = 400.0 / math.log(10.0)

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BTFit:
    """A Bradley-Terry fit: ratings on the Elo scale (anchor at ``base``) and the first-position effect."""

    ratings: Array
    position: float  # logit added to the first position (0 when not fitted)
    iterations: int
    converged: bool


def _sigmoid(x: Array) -> Array:
    out: Array = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


def pair_tables(
    first: Sequence[int], second: Sequence[int], score: Sequence[float], weight: Sequence[float], k: int
) -> tuple[Array, Array]:
    """(W, S): k x k tables of summed weight and summed weighted first-position score per ordered pair."""
    w_tab = np.zeros((k, k))
    s_tab = np.zeros((k, k))
    f = np.asarray(first, dtype=np.intp)
    g = np.asarray(second, dtype=np.intp)
    w = np.asarray(weight, dtype=np.float64)
    np.add.at(w_tab, (f, g), w)
    np.add.at(s_tab, (f, g), w * np.asarray(score, dtype=np.float64))
    return w_tab, s_tab


def bt_loglik(theta: Array, beta: float, w_tab: Array, s_tab: Array, ridge: float = 0.0) -> float:
    """Log-likelihood of logit-scale strengths ``theta`` and position term ``beta`` (minus the ridge)."""
    eta = theta[:, None] - theta[None, :] + beta
    # s log p + (w - s) log(1 - p), written stably: log p = -log1p(e^-eta)
    ll = -(s_tab * np.logaddexp(0.0, -eta) + (w_tab - s_tab) * np.logaddexp(0.0, eta)).sum()
    return float(ll - 0.5 * ridge * float(theta @ theta))


def fit_bt(
    w_tab: Array,
    s_tab: Array,
    anchor: int = 0,
    position: bool = False,
    ridge: float = 1e-6,
    base: float = 1000.0,
    tol: float = 1e-10,
    max_iter: int = 200,
    start: BTFit | None = None,
) -> BTFit:
    """Maximum-likelihood Bradley-Terry strengths by Newton's method with step halving.

    ``w_tab[i, j]`` games had ``i`` first and ``j`` second, scoring ``s_tab[i, j]`` for ``i``. Strength of
    ``anchor`` is fixed at 0 (rating ``base``); with ``position`` a common first-position logit is fitted too.
    ``ridge`` (a tiny Gaussian prior on the strengths) keeps a model that won or lost every game finite.
    ``start``: a previous fit to start from (bootstrap rounds start at the full fit).
    """
    k = w_tab.shape[0]
    free = [i for i in range(k) if i != anchor]
    n = len(free) + (1 if position else 0)
    theta = np.zeros(k)
    beta = 0.0
    if n == 0:
        return BTFit(np.full(k, base), 0.0, 0, True)

    def unpack(x: Array) -> tuple[Array, float]:
        th = np.zeros(k)
        th[free] = x[: len(free)]
        return th, float(x[-1]) if position else 0.0

    x = np.zeros(n)
    if start is not None:
        theta = (start.ratings - base) / ELO_PER_LOGIT
        beta = start.position if position else 0.0
        x = np.append(theta[free], beta) if position else theta[free].copy()
    ll = bt_loglik(theta, beta, w_tab, s_tab, ridge)
    converged = False
    it = 0
    keep = np.array(free + ([k] if position else []), dtype=np.intp)
    full_h = np.zeros((k + 1, k + 1))
    full_g = np.zeros(k + 1)
    for it in range(1, max_iter + 1):  # noqa: B007 - reported
        eta = theta[:, None] - theta[None, :] + beta
        p = _sigmoid(eta)
        resid = s_tab - w_tab * p  # d ll / d eta
        info = w_tab * p * (1.0 - p)  # - d2 ll / d eta2
        row_r, col_r = resid.sum(axis=1), resid.sum(axis=0)
        row_i, col_i = info.sum(axis=1), info.sum(axis=0)
        # gradient wrt theta_i: sum_j resid[i, j] - sum_j resid[j, i]; the last slot is the position term
        full_g[:k] = row_r - col_r - ridge * theta
        full_g[k] = row_r.sum()
        # negative Hessian: -(info + info.T) off the diagonal, row + column sums on it
        full_h[:k, :k] = -(info + info.T)
        full_h[np.arange(k), np.arange(k)] = row_i + col_i - 2.0 * np.diag(info) + ridge
        full_h[:k, k] = full_h[k, :k] = row_i - col_i
        full_h[k, k] = info.sum()
        grad = full_g[keep]
        hess = full_h[np.ix_(keep, keep)]
        if float(np.max(np.abs(grad))) < tol:
            converged = True
            break
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        t = 1.0
        while True:
            cand = x + t * step
            th, be = unpack(cand)
            new_ll = bt_loglik(th, be, w_tab, s_tab, ridge)
            if new_ll >= ll - 1e-12 or t < 1e-8:
                break
            t *= 0.5
        x, theta, beta, ll = cand, th, be, new_ll
    return BTFit(base + ELO_PER_LOGIT * theta, beta, it, converged)


def bootstrap_bt(
    w_q: Array,
    s_q: Array,
    rounds: int,
    seed: int,
    anchor: int = 0,
    position: bool = False,
    ridge: float = 1e-6,
    base: float = 1000.0,
) -> Array:
    """Ratings of ``rounds`` refits on questions resampled with replacement (``w_q``: Q x k x k tables).

    All rounds are fitted at once: Newton steps on a stack of small systems, started at the full fit, with
    step halving per round where the likelihood would fall (rounds that do not converge in 100 steps are
    refitted one by one).
    """
    q, k = w_q.shape[0], w_q.shape[1]
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, q, size=q), minlength=q) for _ in range(rounds)]).astype(
        np.float64
    )
    w = np.tensordot(counts, w_q, axes=1)  # R x k x k
    s = np.tensordot(counts, s_q, axes=1)
    full = fit_bt(w_q.sum(axis=0), s_q.sum(axis=0), anchor=anchor, position=position, ridge=ridge, base=base)
    free = np.array([i for i in range(k) if i != anchor], dtype=np.intp)
    keep = np.append(free, k) if position else free
    theta = np.tile((full.ratings - base) / ELO_PER_LOGIT, (rounds, 1))
    beta = np.full(rounds, full.position if position else 0.0)

    def loglik(th: Array, be: Array) -> Array:
        eta = th[:, :, None] - th[:, None, :] + be[:, None, None]
        ll = -(s * np.logaddexp(0.0, -eta) + (w - s) * np.logaddexp(0.0, eta)).sum(axis=(1, 2))
        out: Array = ll - 0.5 * ridge * (th * th).sum(axis=1)
        return out

    ll = loglik(theta, beta)
    done = np.zeros(rounds, dtype=bool)
    idx = np.arange(k)
    for _ in range(100):
        eta = theta[:, :, None] - theta[:, None, :] + beta[:, None, None]
        p = _sigmoid(eta)
        resid = s - w * p
        info = w * p * (1.0 - p)
        row_r, col_r = resid.sum(axis=2), resid.sum(axis=1)
        row_i, col_i = info.sum(axis=2), info.sum(axis=1)
        g = np.zeros((rounds, k + 1))
        g[:, :k] = row_r - col_r - ridge * theta
        g[:, k] = row_r.sum(axis=1)
        h = np.zeros((rounds, k + 1, k + 1))
        h[:, :k, :k] = -(info + info.transpose(0, 2, 1))
        h[:, idx, idx] = row_i + col_i - 2.0 * info[:, idx, idx] + ridge
        h[:, :k, k] = h[:, k, :k] = row_i - col_i
        h[:, k, k] = info.sum(axis=(1, 2))
        grad = g[:, keep]
        done |= np.max(np.abs(grad), axis=1) < 1e-10
        if done.all():
            break
        hess = h[:, keep][:, :, keep]
        step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        step[done] = 0.0
        t = np.ones(rounds)
        for _half in range(30):
            th = theta.copy()
            th[:, free] += t[:, None] * step[:, : len(free)]
            be = beta + (t * step[:, -1] if position else 0.0)
            new_ll = loglik(th, be)
            bad = new_ll < ll - 1e-12
            if not bad.any():
                break
            t = np.where(bad, t * 0.5, t)
        theta, beta, ll = th, be, new_ll
    out: Array = base + ELO_PER_LOGIT * theta
    for r in np.flatnonzero(~done):
        out[r] = fit_bt(w[r], s[r], anchor=anchor, position=position, ridge=ridge, base=base).ratings
    return out


def percentile_ci(samples: Array, level: float) -> tuple[Array, Array]:
    """Equal-tailed percentile interval of each column."""
    a = (1.0 - level) / 2.0
    lo: Array = np.quantile(samples, a, axis=0)
    hi: Array = np.quantile(samples, 1.0 - a, axis=0)
    return lo, hi


def online_elo(
    games: Sequence[tuple[int, int, float]], k_models: int, k: float = 32.0, init: float = 1000.0
) -> Array:
    """The original tool's sequential Elo (K=32, scale 400, base 10) over games in the given order."""
    r = np.full(k_models, init)
    for a, b, s in games:
        ea = 1.0 / (1.0 + 10.0 ** ((r[b] - r[a]) / 400.0))
        r[a] += k * (s - ea)
        r[b] += k * ((1.0 - s) - (1.0 - ea))
    return r


def fit_logistic(
    x: Array, y: Array, w: Array | None = None, tol: float = 1e-10, max_iter: int = 100
) -> Array:
    """Logistic regression by IRLS: ``y`` in [0, 1] (fractional outcomes allowed), optional weights."""
    n, d = x.shape
    wt = np.ones(n) if w is None else w
    coef = np.zeros(d)
    for _ in range(max_iter):
        p = _sigmoid(x @ coef)
        v = wt * p * (1.0 - p) + 1e-12
        grad = x.T @ (wt * (y - p)) - 1e-8 * coef
        hess = (x * v[:, None]).T @ x + 1e-8 * np.eye(d)
        step = np.linalg.solve(hess, grad)
        coef = coef + step
        if float(np.max(np.abs(step))) < tol:
            break
    return coef


def length_controlled(
    score: Array, len_diff: Array, position: Array | None = None
) -> dict[str, float | None]:
    """AlpacaEval-2-style length-controlled win rate of a model against the baseline.

    ``score``: the model's score per game (1, 0.5, 0); ``len_diff``: its answer length minus the baseline's
    (tokens); ``position``: +1 when the model was shown first, -1 second (None: positions fixed). The GLM is
    ``logit P(win) = b0 + b1 * tanh(len_diff / sd(len_diff)) [+ b2 * position]`` and the LC win rate is
    ``sigmoid(b0)``: the win rate had both answers the same length and no position favoured.
    """
    n = len(score)
    if n == 0:
        return {"win_rate": None, "lc_win_rate": None, "length_coef": None, "games": 0}
    cols = [np.ones(n)]
    sd = float(np.std(len_diff))
    if sd > 0:
        cols.append(np.tanh(len_diff / sd))
    if position is not None and float(np.std(position)) > 0:
        cols.append(position.astype(np.float64))
    coef = fit_logistic(np.column_stack(cols), score.astype(np.float64))
    return {
        "win_rate": float(np.mean(score)),
        "lc_win_rate": float(_sigmoid(np.array([coef[0]]))[0]),
        "length_coef": float(coef[1]) if sd > 0 else None,
        "games": n,
    }


def mean_ci(values: Array, rounds: int, seed: int, level: float) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of ``values``."""
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(rounds, len(values)))
    means = values[idx].mean(axis=1)
    a = (1.0 - level) / 2.0
    return float(values.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))
