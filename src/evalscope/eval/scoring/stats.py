"""Small statistics shared by benchmark aggregation."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_with_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n)); (0, 0) for no values."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    m = math.fsum(values) / n
    if n == 1:
        return m, 0.0
    var = math.fsum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var / n)
