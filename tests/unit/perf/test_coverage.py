"""What the latency statistics leave out: requests incomplete at the deadline, undefined SLO criteria."""

from __future__ import annotations

import itertools

import pytest
from tests.unit.perf.test_aggregate import ok_record

from evalscope.engine.records import ErrorInfo, RequestRecord
from evalscope.perf.aggregate import Aggregator
from evalscope.perf.coverage import count_queued, past_deadline, up_to
from evalscope.perf.summary import stage_summary

MS = 1_000_000


def _summary(agg: Aggregator) -> dict:
    return stage_summary(agg, stage=0, parallel=1, concurrency_cap=1, rate=None, number=None, client={})


def test_undefined_tpot_is_not_met() -> None:
    """A one-token reply has no TPOT: under a TPOT SLO it is not good (it used to count as good)."""
    agg = Aggregator(0, slos_ms={"ttft": 500, "tpot": 50})
    agg.add(ok_record(1, 0, 100 * MS, [], tokens=1))  # 1 token: TPOT undefined
    agg.add(ok_record(2, 0, 100 * MS, [10 * MS] * 4))  # good
    agg.add(ok_record(3, 0, 900 * MS, [], tokens=1))  # TTFT too slow and TPOT undefined
    assert agg.good == 1
    g = _summary(agg)["goodput"]
    assert g["slo_undefined"] == {"tpot": 2}
    assert g["failed_only_on_undefined"] == 1  # request 1: good under the old rule
    assert g["ratio"] == pytest.approx(1 / 3)


def test_undefined_itl_of_one_event_stream_is_not_met() -> None:
    agg = Aggregator(0, slos_ms={"itl": 50})
    agg.add(ok_record(1, 0, 100 * MS, [], tokens=8))  # 8 tokens in one event: no gap, ITL undefined
    assert agg.good == 0
    assert agg.coverage.slo_undefined == {"itl": 1}


def test_metrics_without_slo_are_not_counted_as_undefined() -> None:
    agg = Aggregator(0, slos_ms={"ttft": 500})
    agg.add(ok_record(1, 0, 100 * MS, [], tokens=1))
    assert agg.good == 1 and agg.coverage.slo_undefined == {}


def test_incomplete_requests_in_goodput_denominator_with_lower_bounds() -> None:
    agg = Aggregator(0, slos_ms={"e2e": 1000})
    for i in range(3):
        agg.add(ok_record(i, 0, 100 * MS, [10 * MS]))
    agg.add(RequestRecord(9, "error", 0, 0, end_ns=1, error=ErrorInfo("http_status", "x", 500)))
    deadline = 2000 * MS
    agg.coverage.add_in_flight(500 * MS, deadline)  # 1500 ms from schedule at least
    agg.coverage.add_queued(1900 * MS, deadline)  # 100 ms at least
    s = _summary(agg)
    assert s["requests"]["incomplete_at_deadline"] == 2
    inc = s["incomplete_at_deadline"]
    assert (inc["requests"], inc["in_flight"], inc["queued"]) == (2, 1, 1)
    lb = inc["latency_from_schedule_lower_bound"]
    assert lb["count"] == 2
    assert lb["min"] == pytest.approx(100.0) and lb["max"] == pytest.approx(1500.0)
    g = s["goodput"]
    assert g["good"] == 3 and g["denominator"] == 6
    assert g["ratio"] == pytest.approx(3 / 6)  # was 3 / 4: the incomplete ones left out
    # and the latency table itself holds only the finished requests
    assert s["e2e_latency"]["count"] == 3


def test_coverage_survives_merge_and_state() -> None:
    a = Aggregator(0, slos_ms={"tpot": 10})
    b = Aggregator(0, slos_ms={"tpot": 10})
    a.coverage.add_in_flight(0, 10 * MS)
    b.coverage.add_queued(5 * MS, 10 * MS)
    b.add(ok_record(1, 0, MS, [], tokens=1))
    a.merge(Aggregator.from_state(b.to_state()))
    c = a.coverage
    assert (c.in_flight, c.queued, c.incomplete) == (1, 1, 2)
    assert c.lower_bound.count == 2
    assert c.slo_undefined == {"tpot": 1} and c.undefined_only == 1


def test_count_queued_stops_at_deadline_and_number() -> None:
    agg = Aggregator(0)
    arrivals = iter(range(0, 100 * MS, 10 * MS))  # offsets 0, 10, ... ms
    next(arrivals)  # the first (0) was sent
    next(arrivals)  # the second (10 ms) is the one that waited for a slot
    count_queued(agg.coverage, 10 * MS, arrivals, 0, 55 * MS)  # 10..50 ms are due before 55 ms
    assert agg.coverage.queued == 5
    agg2 = Aggregator(0)
    count_queued(agg2.coverage, 10 * MS, itertools.count(20 * MS, 10 * MS), 0, 55 * MS, up_to(4, 1))
    assert agg2.coverage.queued == 3  # --number 4, one already dispatched


def test_past_deadline() -> None:
    assert past_deadline(0, aborted=False)
    assert not past_deadline(0, aborted=True)
    assert not past_deadline(None, aborted=False)
