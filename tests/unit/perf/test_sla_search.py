"""SLA criteria, margins and the searches (driven by synthetic probe results), the over-saturation rule."""

from __future__ import annotations

import math
from typing import Any

import pytest

from evalscope.errors import ConfigError
from evalscope.perf.config import make_config
from evalscope.perf.probe import oversaturated
from evalscope.perf.sla import (
    ProbeResult,
    constraint_search,
    judge,
    maximise,
    mean_ci,
    metric_value,
    parse_groups,
    percentile_of,
)


def _summary(ttft_p99: float, rps: float = 10.0, error_rate: float = 0.0) -> dict[str, Any]:
    return {
        "requests": {"error_rate": error_rate},
        "throughput": {"requests_per_s": rps, "output_tokens_per_s": 10 * rps},
        "ttft": {"mean": ttft_p99 / 2, "p50": ttft_p99 / 2, "p99": ttft_p99, "p995": ttft_p99 * 1.1},
    }


def test_metric_names_and_units() -> None:
    s = _summary(400.0)
    assert metric_value(s, "p99_ttft") == 400.0
    assert metric_value(s, "avg_ttft") == 200.0
    assert metric_value(s, "p99.5_ttft") == pytest.approx(440.0)
    assert metric_value(s, "tps") == 100.0
    assert metric_value(s, "success_rate") == 1.0
    assert percentile_of("p999_e2e_latency") == 99.9
    (c,) = parse_groups([{"p99_ttft": "<=0.5s"}])[0]
    assert c.op == "<=" and c.target == 500.0
    assert parse_groups([{"error_rate": "<1%"}])[0][0].target == pytest.approx(0.01)


def test_and_inside_groups_or_across() -> None:
    groups = parse_groups([{"p99_ttft": "<=500", "rps": ">=20"}, {"error_rate": "<=0.01"}])
    r = ProbeResult(1.0, runs=[_summary(400.0, rps=10.0, error_rate=0.5)])
    judge(r, groups)
    assert r.groups == [False, False] and not r.met  # rps too low in group 1, errors in group 2
    r = ProbeResult(1.0, runs=[_summary(900.0, rps=10.0, error_rate=0.0)])
    judge(r, groups)
    assert r.groups == [False, True] and r.met
    assert r.margin == pytest.approx(1.0)  # the best group's margin: (0.01 - 0) / 0.01


def test_repeats_judge_on_the_pessimistic_end() -> None:
    groups = parse_groups([{"p99_ttft": "<=500"}])
    r = ProbeResult(1.0, runs=[_summary(v) for v in (450.0, 480.0, 510.0)])
    judge(r, groups)
    st = r.metrics["p99_ttft"]
    assert st["mean"] == pytest.approx(480.0) and st["ci95"] > 0
    assert not r.met  # mean 480 meets, the worst run (510) does not
    r = ProbeResult(1.0, runs=[_summary(v) for v in (450.0, 480.0, 499.0)])
    judge(r, groups)
    assert r.met  # every run met, whatever the width of a 3-run interval
    assert mean_ci([1.0])["ci95"] is None


@pytest.mark.parametrize(
    "bad",
    [
        "[{",
        '[{"p99_bogus": "<=1"}]',
        '[{"p99_ttft": "about 5"}]',
        "[]",
        '[{"tps": "max", "p99_ttft": "<=5"}]',
    ],
)
def test_bad_sla_params_are_one_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as exc:
        make_config(sla_auto_tune=True, sla_params=bad)
    assert "--sla-params" in str(exc.value) and "\n" not in str(exc.value)


def test_option_conflicts() -> None:
    with pytest.raises(ConfigError, match="needs --sla-params"):
        make_config(sla_auto_tune=True)
    with pytest.raises(ConfigError, match="drop --rate"):
        make_config(sweep=3, rate=5)
    with pytest.raises(ConfigError, match="needs --goodput"):
        make_config(sla_auto_tune=True, sla_params='[{"goodput": "max"}]')
    cfg = make_config(
        sla_auto_tune=True, sla_params='{"p99_ttft": "<=5"}', sla_num_runs=3, sla_resolution="5%"
    )
    assert cfg.sla_repeats == 3 and cfg.sla_resolution == 0.05
    assert cfg.sla_params == [{"p99_ttft": "<=5"}]


def _drive(search: Any, fn: Any) -> tuple[dict[str, Any], list[float]]:
    """Run a search generator against ``fn(value) -> p99_ttft``; returns its answer and the values tried."""
    groups = parse_groups([{"p99_ttft": "<=300"}])
    tried = []
    try:
        x = next(search)
        while True:
            tried.append(x)
            r = ProbeResult(x, runs=[_summary(fn(x))])
            judge(r, groups)
            x = search.send(r)
    except StopIteration as stop:
        return stop.value, tried


def _queue_like(x: float) -> float:
    """A latency curve that blows up near a capacity of 13.8 (like M/D/c): threshold 300 at x = 12.0."""
    return math.inf if x >= 13.8 else 100.0 + 200.0 * (12.0 / x) ** 0 * (1.8 / (13.8 - x)) ** 1


def test_constraint_search_brackets_then_interpolates_to_the_resolution() -> None:
    answer, tried = _drive(constraint_search(1.0, 1000.0, 0.02, integer=False), _queue_like)
    lo, hi = answer["largest_met"], answer["smallest_failed"]
    assert lo <= 12.0 < hi and (hi - lo) <= 0.02 * lo
    assert tried[:4] == [1.0, 2.0, 4.0, 8.0]  # doubling first
    assert len(tried) < 16  # interpolation, not a scan


def test_constraint_search_integer_and_edges() -> None:
    answer, _ = _drive(constraint_search(1, 64, 0.02, integer=True), lambda p: 100.0 + 30.0 * p)
    assert (answer["largest_met"], answer["smallest_failed"]) == (6, 7)
    answer, tried = _drive(constraint_search(1, 64, 0.02, integer=True), lambda p: 1000.0)
    assert answer["largest_met"] is None and tried == [1]
    answer, _ = _drive(constraint_search(1, 64, 0.02, integer=True), lambda p: 1.0)
    assert answer["largest_met"] == 64 and answer["smallest_failed"] is None


def test_maximise_finds_the_peak() -> None:
    def score(x: float) -> dict[str, Any]:
        s = _summary(100.0)
        s["throughput"]["output_tokens_per_s"] = 1000.0 - (x - 37.0) ** 2
        return s

    search = maximise(1, 4096, 0.02, True, "tps", 1.0)
    x = next(search)
    try:
        while True:
            r = ProbeResult(x, runs=[score(x)])
            judge(r, [])
            x = search.send(r)
    except StopIteration as stop:
        answer = stop.value
    assert abs(answer["best"] - 37) <= 2


def test_oversaturation_rule() -> None:
    # arrivals 20/s, completions 10/s: the queue grows by 10/s
    grow = [(t / 2, 10 * t, 5 * t, 5 * t, 100.0, 200.0) for t in range(20)]
    assert oversaturated(grow, 20.0) is not None
    steady = [(t / 2, 10 * t, 10 * t - 3, 3, 100.0, 200.0) for t in range(20)]
    assert oversaturated(steady, 20.0) is None
    assert oversaturated(grow[:8], 20.0) is None  # too early to judge
