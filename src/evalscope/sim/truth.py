"""What the simulator really did, per request, so tests can check a client against ground truth.

Send times are ``time.perf_counter_ns()`` taken just before a chunk is handed to the transport. On Linux that
is CLOCK_MONOTONIC, so a client in another process on the same machine can compare its own receive times with
them directly. Per-chunk data lives in ``array`` buffers (8 bytes per chunk), not Python objects.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

import numpy as np

from evalscope.sim.config import FAULT_KINDS

#: Lag histogram resolution: bucket i holds lags in [i, i+1) microseconds; the last bucket is overflow.
LAG_BUCKETS = 100_000


@dataclass(slots=True)
class TruthRecord:
    """One request as the simulator served it.

    ``chunk_ns`` / ``due_ns`` / ``chunk_tokens`` are parallel: for each token-bearing chunk, when it was
    handed to the transport, when it was scheduled, and how many tokens it carried.
    """

    request_id: str
    seq: int
    endpoint: str
    model: str
    stream: bool
    arrival_ns: int
    status: int = 200
    fault: str | None = None
    outcome: str = "pending"
    prompt_tokens: int = 0
    planned_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int | None = None
    first_token_ns: int | None = None
    end_ns: int | None = None
    chunk_ns: array[int] = field(default_factory=lambda: array("q"))
    due_ns: array[int] = field(default_factory=lambda: array("q"))
    chunk_tokens: array[int] = field(default_factory=lambda: array("i"))
    finalised: bool = field(default=False, repr=False)  # counted in the stats already (not exported)
    #: when the kernel received the request's first read (SO_TIMESTAMPNS, moved onto perf_counter_ns); None
    #: when unknown (uvloop). ``arrival_ns - kernel_arrival_ns`` is the simulator's own lateness in reading it.
    kernel_arrival_ns: int | None = None
    #: with the capacity model (``max_batch`` / ``kv_budget_tokens``): time spent in the wait queue before
    #: admission, on the ideal timeline (its schedule starts at ``arrival_ns + queue_ns``); None without it
    queue_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (arrays become lists)."""
        return {
            "request_id": self.request_id,
            "seq": self.seq,
            "endpoint": self.endpoint,
            "model": self.model,
            "stream": self.stream,
            "arrival_ns": self.arrival_ns,
            "kernel_arrival_ns": self.kernel_arrival_ns,
            "queue_ns": self.queue_ns,
            "status": self.status,
            "fault": self.fault,
            "outcome": self.outcome,
            "prompt_tokens": self.prompt_tokens,
            "planned_tokens": self.planned_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_tokens": self.cached_tokens,
            "first_token_ns": self.first_token_ns,
            "end_ns": self.end_ns,
            "chunk_ns": self.chunk_ns.tolist(),
            "due_ns": self.due_ns.tolist(),
            "chunk_tokens": self.chunk_tokens.tolist(),
        }


class TruthStore(OrderedDict[str, TruthRecord]):
    """Insertion-ordered records capped at ``max_records`` (oldest evicted in O(1)); 0 keeps nothing."""

    def __init__(self, max_records: int) -> None:
        super().__init__()
        self.max_records = max_records

    def add(self, rec: TruthRecord) -> None:
        """Store ``rec`` under its request id, evicting the oldest records beyond the cap."""
        if self.max_records <= 0:
            return
        if rec.request_id in self:  # a reused request id: keep arrival order for ``since``
            del self[rec.request_id]
        self[rec.request_id] = rec
        while len(self) > self.max_records:
            self.popitem(last=False)

    def since(self, seq: int) -> list[TruthRecord]:
        """Records whose ``seq`` is greater than ``seq`` (records are kept in arrival order)."""
        out: list[TruthRecord] = []
        for rec in reversed(self.values()):
            if rec.seq <= seq:
                break
            out.append(rec)
        out.reverse()
        return out


class Stats:
    """Counters of everything served, plus a 1 µs-resolution histogram of send lag behind schedule."""

    __slots__ = (
        "by_endpoint",
        "by_status",
        "chunks",
        "client_closed",
        "completion_tokens",
        "faults",
        "lag_hist",
        "lag_max_ns",
        "lag_sum_ns",
        "prompt_tokens",
        "requests",
        "since_ns",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        self.since_ns = perf_counter_ns()
        self.requests = 0
        self.by_endpoint: dict[str, int] = {}
        self.by_status: dict[int, int] = {}
        self.faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.client_closed = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.chunks = 0
        self.lag_sum_ns = 0
        self.lag_max_ns = 0
        self.lag_hist = array("q", bytes(8 * (LAG_BUCKETS + 1)))

    def lag_percentiles_us(self, qs: tuple[float, ...]) -> list[float | None]:
        """Approximate quantiles (0..1) of chunk lag in microseconds (bucket upper edges).

        numpy's cumulative sum keeps this well under a millisecond: the stats endpoint runs inside the
        server's event loop, and a slow scan would itself delay every stream.
        """
        if self.chunks == 0:
            return [None for _ in qs]
        cum = np.cumsum(np.frombuffer(self.lag_hist, dtype=np.int64))
        total = int(cum[-1])
        return [float(min(LAG_BUCKETS, int(np.searchsorted(cum, q * total)) + 1)) for q in qs]

    def snapshot(self, active: int, truth_records: int) -> dict[str, Any]:
        """A JSON-ready view of the counters."""
        p50, p90, p99 = self.lag_percentiles_us((0.5, 0.9, 0.99))
        return {
            # the window these counters cover, measured by the server: a client reading rates from two
            # snapshots needs no assumption about how long its requests queued
            "window_s": (perf_counter_ns() - self.since_ns) / 1e9,
            "requests": self.requests,
            "active": active,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "faults": dict(self.faults),
            "client_closed": self.client_closed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "chunks": self.chunks,
            "lag": {
                "mean_us": (self.lag_sum_ns / self.chunks / 1000.0) if self.chunks else None,
                "p50_us": p50,
                "p90_us": p90,
                "p99_us": p99,
                "max_us": self.lag_max_ns / 1000.0,
            },
            "truth_records": truth_records,
        }
