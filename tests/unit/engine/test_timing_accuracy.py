"""At 64 concurrent streams the engine's TTFT and per-event times agree with the simulator's send times.

The simulator runs in its own process (SimProcess) and records perf_counter_ns (CLOCK_MONOTONIC, shared by
all processes) just before handing each chunk to the kernel; the client's receive time minus that send time
is the client's added latency (loopback transfer + event-loop delay + parse). The median must stay below
1 ms. A 2-core machine shared with other work can deschedule either process for a few ms at a time, so the
load is run up to three times and the best attempt counts: a client that really adds a millisecond fails all.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from typing import Any

import pytest

from evalscope.engine import Client, Request, RequestRecord, run
from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("any_transport")]


def one_attempt(tag: str) -> tuple[float, float, str]:
    cfg = SimConfig(ttft_ms=100, itl_ms=10, output_tokens=50, seed=3)
    # Simulator and client on separate CPUs when there are two (as `evalscope selftest` does), so the figure
    # is the client's added latency, not two processes taking turns on one core.
    allowed = sorted(os.sched_getaffinity(0))
    apart = len(allowed) >= 2
    with SimProcess(cfg, cpus={allowed[0]} if apart else None) as sim:
        if apart:
            os.sched_setaffinity(0, set(allowed[1:]))

        async def drive() -> list[RequestRecord]:
            async with Client(sim.url, "sim-model", send_request_id=True) as c:
                return await asyncio.gather(
                    *(c.send(Request(request_id=f"{tag}-{i}", prompt="hi", max_tokens=50)) for i in range(64))
                )

        try:
            recs = run(drive())
        finally:
            os.sched_setaffinity(0, set(allowed))
        truth = {t["request_id"]: t for t in sim.fetch_truth()}
    assert all(r.ok for r in recs), [r.error for r in recs if not r.ok][:3]
    first_deltas: list[float] = []
    event_deltas: list[float] = []
    for r in recs:
        t = truth[str(r.request_id)]
        assert r.completion_tokens == t["completion_tokens"] == 50
        assert r.first_token_ns is not None
        first_deltas.append((r.first_token_ns - t["first_token_ns"]) / 1e6)
        chunk_ns = t["chunk_ns"]
        assert len(chunk_ns) == len(r.event_ns)
        event_deltas.extend((a - b) / 1e6 for a, b in zip(r.event_ns, chunk_ns, strict=True))
    # Receive after send on one clock: a negative delta would mean the two clocks differ.
    assert min(first_deltas) >= 0 and min(event_deltas) >= 0
    med_first, med_event = statistics.median(first_deltas), statistics.median(event_deltas)
    return med_first, med_event, f"{tag}: TTFT median +{med_first:.3f} ms, events median +{med_event:.3f} ms"


def test_engine_times_match_simulator_truth_at_64_streams(machine_load: Any) -> None:
    notes = []
    for attempt in range(3):
        med_first, med_event, note = one_attempt(f"a{attempt}")
        notes.append(note)
        if med_first < 1.0 and med_event < 1.0:
            return
    # Whether a miss is the client's fault is decided by the machine's other load, measured outside the tool
    # (test_client_added_latency.py's floor catches a client that is late on every event whatever the load).
    busy, busy_note = machine_load.foreign_share()
    if busy > 0.25:
        pytest.skip(f"machine busy: {busy_note} (> 25%); " + "; ".join(notes))
    raise AssertionError("client-added latency median >= 1 ms in every attempt: " + "; ".join(notes))
