"""Survivorship bias: a saturated --duration stage accounts for every arrival of its schedule (issue 11 item 4).

The simulator needs ~0.8 s per request and ``--parallel 4`` caps what is in flight, so capacity (~5 req/s) is
below the offered 25 req/s: at the deadline requests are still running and arrivals are waiting for a slot.
Every arrival due before the deadline must be either a record (finished, failed or cancelled) or counted as
queued, and the requests cut off must be in goodput's denominator.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from evalscope.perf.runner import run_perf
from evalscope.perf.schedule import arrival_offsets_ns
from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.integration]

RATE, DURATION, SEED = 25.0, 2.0, 7


def _arrivals_before_deadline() -> int:
    offsets = arrival_offsets_ns(RATE, 1.0, SEED)  # stage 0 uses seed + 0
    return sum(1 for _ in itertools.takewhile(lambda off: off < DURATION * 1e9, offsets))


def _check(st: dict[str, Any]) -> None:
    r = st["requests"]
    inc = st["incomplete_at_deadline"]
    assert r["failed"] == 0
    assert inc["in_flight"] >= 1, inc
    assert inc["in_flight"] == r["cancelled"]  # nothing else cancelled them
    assert inc["queued"] >= 1, inc
    assert r["incomplete_at_deadline"] == inc["in_flight"] + inc["queued"]
    # every arrival of the schedule is accounted for
    assert r["sent"] + inc["queued"] == _arrivals_before_deadline()
    lb = inc["latency_from_schedule_lower_bound"]
    assert lb["count"] == inc["requests"]
    assert lb["min"] >= 0 and lb["max"] <= DURATION * 1000 + 1
    g = st["goodput"]
    assert g["denominator"] == r["succeeded"] + r["failed"] + r["incomplete_at_deadline"]
    assert g["ratio"] == pytest.approx(g["good"] / g["denominator"])
    assert g["ratio"] < r["succeeded"] / (r["succeeded"] + r["failed"])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("workers", [1, 2])
def test_saturated_duration_stage_counts_incomplete(tmp_path: Path, workers: int) -> None:
    with SimProcess(SimConfig(ttft_ms=700, itl_ms=20, output_tokens=4)) as sim:
        summary = run_perf(
            url=sim.url,
            rate=RATE,
            parallel=[4],
            duration=DURATION,
            goodput={"e2e": 5000},
            outputs_dir=str(tmp_path),
            live=False,
            seed=SEED,
            workers=workers,
        )
    assert summary["status"] == "completed"
    _check(summary["stages"][0])


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.filterwarnings("ignore")  # Ray's own modules warn
def test_saturated_duration_stage_counts_incomplete_with_ray(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with SimProcess(SimConfig(ttft_ms=700, itl_ms=20, output_tokens=4)) as sim:
            summary = run_perf(
                url=sim.url,
                rate=RATE,
                parallel=[4],
                duration=DURATION,
                goodput={"e2e": 5000},
                outputs_dir=str(tmp_path),
                live=False,
                seed=SEED,
                ray="local",
            )
    finally:
        ray.shutdown()
    assert summary["status"] == "completed"
    assert summary["stages"][0]["client"]["backend"] == "ray"
    _check(summary["stages"][0])
