"""At 64 concurrent streams the engine's TTFT and per-event times agree with the simulator's send times.

The simulator runs in its own process (SimProcess) and records perf_counter_ns (CLOCK_MONOTONIC, shared by
all processes) just before handing each chunk to the kernel; the client's receive time minus that send time
is the client's added latency (loopback transfer + event-loop delay + parse). On a loaded 2-core machine the
median must stay below 1 ms.
"""

from __future__ import annotations

import asyncio
import statistics

import pytest

from evalscope.engine import Client, Request, run
from evalscope.sim import SimConfig, SimProcess

pytestmark = pytest.mark.timeout(120)


def test_engine_times_match_simulator_truth_at_64_streams() -> None:
    cfg = SimConfig(ttft_ms=100, itl_ms=10, output_tokens=50, seed=3)
    with SimProcess(cfg) as sim:

        async def drive() -> list:
            async with Client(sim.url, "sim-model", send_request_id=True) as c:
                return await asyncio.gather(
                    *(c.send(Request(request_id=f"t{i}", prompt="hi", max_tokens=50)) for i in range(64))
                )

        recs = run(drive())
        truth = {t["request_id"]: t for t in sim.fetch_truth()}
    assert all(r.ok for r in recs)
    first_deltas: list[float] = []
    event_deltas: list[float] = []
    for r in recs:
        t = truth[r.request_id]
        assert r.completion_tokens == t["completion_tokens"] == 50
        first_deltas.append((r.first_token_ns - t["first_token_ns"]) / 1e6)
        chunk_ns = t["chunk_ns"]
        assert len(chunk_ns) == len(r.event_ns)
        event_deltas.extend((a - b) / 1e6 for a, b in zip(r.event_ns, chunk_ns, strict=True))
    assert min(first_deltas) >= 0 and min(event_deltas) >= 0  # receive after send: one clock
    assert statistics.median(first_deltas) < 1.0, statistics.median(first_deltas)
    assert statistics.median(event_deltas) < 1.0, statistics.median(event_deltas)
