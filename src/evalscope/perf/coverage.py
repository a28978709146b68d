"""What a stage's latency statistics leave out, so that no number leans one way (see docs/metrics.md).

Two things are kept here, next to (not inside) the latency histograms of :class:`~evalscope.perf.aggregate.
Aggregator`:

- **Requests incomplete at the deadline.** When a ``--duration`` stage ends, requests still running are
  cancelled, and open-loop arrivals that were due but still waiting for a concurrency slot are never sent.
  Leaving both out would keep only the requests fast enough to finish: survivorship bias, strongest under
  overload. They are counted, they fail every goodput SLO (they are in goodput's denominator), and for each one
  ``deadline - scheduled`` is recorded: a *lower bound* of its latency from schedule (the real value is larger).
- **Goodput criteria that are undefined for a request** (TPOT of a one-token reply, ITL of a one-event
  stream, TTFT of an empty reply). Such a criterion is *not met*: a request is good only when every SLO was
  measured and held. The count of each undefined criterion is reported, and so is the number of requests that
  the old rule ("undefined passes") would have counted as good.

May import: ``perf.histogram`` only (the aggregator imports this module).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from evalscope.perf.histogram import Metric


def _new_metric() -> Metric:
    return Metric()


class Coverage:
    """Counters and one histogram for what the latency statistics exclude; mergeable like the aggregator."""

    __slots__ = ("in_flight", "lower_bound", "queued", "slo_undefined", "undefined_only")

    def __init__(self) -> None:
        self.in_flight = 0  # cancelled by the end of a --duration stage
        self.queued = 0  # open loop: due before the deadline, never sent (no free slot under the cap)
        self.lower_bound = _new_metric()  # deadline - scheduled, for both kinds
        self.slo_undefined: dict[str, int] = {}  # per SLO: successes for which the metric was undefined
        self.undefined_only = 0  # met every defined SLO, failed only on undefined ones

    @property
    def incomplete(self) -> int:
        return self.in_flight + self.queued

    def add_in_flight(self, scheduled_ns: int, deadline_ns: int) -> None:
        """A request cancelled at the stage deadline (it was scheduled at ``scheduled_ns``)."""
        self.in_flight += 1
        self.lower_bound.record(deadline_ns - scheduled_ns)

    def add_queued(self, scheduled_ns: int, deadline_ns: int) -> None:
        """An open-loop arrival due before the deadline that never got a slot (never sent)."""
        self.queued += 1
        self.lower_bound.record(deadline_ns - scheduled_ns)

    def slo_good(self, values: dict[str, float | None], slos_ns: dict[str, float]) -> bool:
        """True when every SLO is defined for this request and met; counts undefined criteria."""
        good = True
        undefined = False
        for k, lim in slos_ns.items():
            v = values[k]
            if v is None:
                undefined = True
                self.slo_undefined[k] = self.slo_undefined.get(k, 0) + 1
            elif v > lim:
                good = False
        if undefined and good:
            self.undefined_only += 1
        return good and not undefined

    # ---- merging --------------------------------------------------------------------------------------

    def merge(self, other: Coverage) -> None:
        self.in_flight += other.in_flight
        self.queued += other.queued
        self.lower_bound.merge(other.lower_bound)
        for k, v in other.slo_undefined.items():
            self.slo_undefined[k] = self.slo_undefined.get(k, 0) + v
        self.undefined_only += other.undefined_only

    def to_state(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight,
            "queued": self.queued,
            "lower_bound": self.lower_bound.to_state(),
            "slo_undefined": dict(self.slo_undefined),
            "undefined_only": self.undefined_only,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any] | None) -> Coverage:
        c = cls()
        if d:
            c.in_flight = int(d.get("in_flight", 0))
            c.queued = int(d.get("queued", 0))
            c.lower_bound = Metric.from_state(d.get("lower_bound") or {})
            c.slo_undefined = {str(k): int(v) for k, v in (d.get("slo_undefined") or {}).items()}
            c.undefined_only = int(d.get("undefined_only", 0))
        return c


def add_to_summary(out: dict[str, Any], agg: Any, percentiles: tuple[float, ...] = ()) -> None:
    """Add the coverage block to a stage summary and put incomplete requests into goodput's denominator."""
    cov: Coverage = agg.coverage
    out["requests"]["incomplete_at_deadline"] = cov.incomplete
    out["incomplete_at_deadline"] = {
        "requests": cov.incomplete,
        "in_flight": cov.in_flight,
        "queued": cov.queued,
        # lower bounds: each of these requests took at least this long from its scheduled time
        "latency_from_schedule_lower_bound": cov.lower_bound.stats(percentiles),
    }
    g = out.get("goodput")
    if g:
        denominator = agg.succeeded + agg.failed + cov.incomplete
        g["denominator"] = denominator
        g["ratio"] = (agg.good / denominator) if denominator else None
        g["incomplete_at_deadline"] = cov.incomplete
        g["slo_undefined"] = dict(cov.slo_undefined)
        g["failed_only_on_undefined"] = cov.undefined_only


def past_deadline(deadline_ns: int | None, aborted: bool) -> bool:
    """Whether requests cancelled now were cut off by the stage deadline (not by an abort or a Ctrl-C)."""
    return deadline_ns is not None and not aborted and time.perf_counter_ns() >= deadline_ns


def count_queued(
    cov: Coverage,
    due_ns: int,
    arrivals: Iterator[int],
    t0_ns: int,
    deadline_ns: int,
    claim: Callable[[], bool] | None = None,
) -> None:
    """Open loop, the deadline passed while waiting for a slot: the waiting arrival (due at ``due_ns``) and every
    later one due before the deadline were offered but never sent. ``claim()`` says whether the schedule has a
    further arrival (``--number`` not reached); None: unbounded."""
    due = due_ns
    while due < deadline_ns:
        cov.add_queued(due, deadline_ns)
        if claim is not None and not claim():
            return
        due = t0_ns + next(arrivals)


def up_to(limit: int | None, used: int) -> Callable[[], bool] | None:
    """A ``claim`` for :func:`count_queued`: true while ``used`` (counting each call) stays below ``limit``."""
    if limit is None:
        return None
    n = [used]

    def claim() -> bool:
        n[0] += 1
        return n[0] < limit

    return claim
