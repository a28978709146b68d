"""``--strict`` on short runs (issue 10 item 8): no client verdict below a minimum measurement window.

Deterministic by construction: the verdict function is fed the readings of a ~5 ms stage (CPU 200 % of a
core, a handful of loop-lag samples), which made 3 of 6 identical runs exit 5.
"""

from __future__ import annotations

from evalscope.perf.aggregate import Metric
from evalscope.perf.fidelity import verdict
from evalscope.perf.min_window import (
    MIN_JUDGE_WINDOW_S,
    MIN_LOOP_LAG_SAMPLES,
    apply_min_window,
    overall_trust,
    too_short_to_judge,
)


def _lag(n: int, ns: int = 100_000) -> Metric:
    m = Metric()
    for _ in range(n):
        m.record(ns)
    return m


def test_short_stage_is_not_judged() -> None:
    block = verdict(_lag(1), Metric(), 200.0, None, None, None, False)
    assert block["trustworthy"] is False  # what the raw checks say on a 5 ms stage
    block = apply_min_window(block, 0.005, 1)
    assert block["trustworthy"] is None and block["judged"] is False
    assert block["reason"].startswith("too short to judge") and "CPU 200%" in block["reason"]
    assert overall_trust([{"client": block}]) is None


def test_long_enough_stage_keeps_its_verdict() -> None:
    bad = apply_min_window(verdict(_lag(200), Metric(), 200.0, None, None, None, False), 2.0, 200)
    assert bad["trustworthy"] is False and bad["judged"] is True
    good = apply_min_window(verdict(_lag(200), Metric(), 10.0, None, None, None, False), 2.0, 200)
    assert good["trustworthy"] is True
    assert overall_trust([{"client": good}, {"client": bad}]) is False
    assert overall_trust([{"client": good}, {"client": {"trustworthy": None}}]) is True
    assert overall_trust([]) is None


def test_thresholds() -> None:
    assert too_short_to_judge(MIN_JUDGE_WINDOW_S, MIN_LOOP_LAG_SAMPLES) is None
    assert too_short_to_judge(MIN_JUDGE_WINDOW_S * 0.99, 10**6) is not None
    assert too_short_to_judge(60.0, MIN_LOOP_LAG_SAMPLES - 1) is not None
