"""pass@k: the unbiased estimator of Chen et al. (2021) and its aggregation over problems.

For one problem with ``n`` samples of which ``c`` pass, ``pass@k = 1 - C(n-c, k) / C(n, k)``: the probability
that at least one of ``k`` samples drawn without replacement passes. The ratio of binomials is computed as the
product ``prod_{i=n-c+1}^{n} (1 - k / i)``, which never forms huge binomials and stays accurate for large n.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples, ``c`` correct. Requires ``0 <= c <= n`` and
    ``1 <= k <= n``."""
    if n < 1 or k < 1:
        raise ValueError(f"pass@k needs n >= 1 and k >= 1 (n={n}, k={k})")
    if not 0 <= c <= n:
        raise ValueError(f"correct count c={c} outside 0..n={n}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got n={n}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i)
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_at_k_exact(n: int, c: int, k: int) -> float:
    """The closed form with exact integer binomials (reference for tests; slow for huge n)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def aggregate_pass_at_k(counts: Iterable[tuple[int, int]], ks: Sequence[int]) -> dict[int, float]:
    """Mean pass@k over problems from ``(n, c)`` pairs, for each ``k`` that every problem supports.

    A ``k`` larger than some problem's ``n`` is left out (rather than estimated from too few samples).
    """
    pairs = list(counts)
    out: dict[int, float] = {}
    if not pairs:
        return out
    for k in sorted(set(ks)):
        if k < 1 or any(n < k for n, _ in pairs):
            continue
        out[k] = math.fsum(pass_at_k(n, c, k) for n, c in pairs) / len(pairs)
    return out


def ks_for(repeats: int, k_list: Sequence[int] | None = None) -> list[int]:
    """The k values to report: 1 plus every requested k that is at most ``repeats``."""
    ks = {1}
    for k in k_list or ():
        if 1 <= int(k) <= repeats:
            ks.add(int(k))
    return sorted(ks)


def per_problem_pass_at_k(counts: Mapping[str, tuple[int, int]], k: int) -> dict[str, float]:
    """pass@k of each problem id (problems with fewer than ``k`` samples are skipped)."""
    return {pid: pass_at_k(n, c, k) for pid, (n, c) in counts.items() if n >= k}
