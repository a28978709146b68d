"""The client's send side, measured against the simulator's kernel receive stamp of each request.

Every latency the client reports starts at ``sent_ns``. Time between that stamp and the request's bytes
reaching the server (a slow request build, a yield before the write) inflates TTFT and end-to-end latency one
for one, and is invisible to a truth comparison that starts at the server's arrival. The simulator stamps the
kernel's receive time of each request (SO_TIMESTAMPNS, independent of its own event loop); on one machine both
are CLOCK_MONOTONIC, so ``kernel arrival - sent`` is the client's send-side delay plus a loopback hop (µs).

At 8 steady closed-loop streams the client writes a request a few hundred µs after stamping it (median
0.3-0.7 ms measured on a loaded 2-core machine); the bound is 1.5 ms on the median, so a client that waits
even 5 ms before writing fails every attempt, while a descheduled moment on a shared machine (which moves the
tail, not the median) does not. Best of three attempts, as in test_timing_accuracy.
"""

from __future__ import annotations

import asyncio
import os
import statistics

import pytest

from evalscope.engine import Client, Request, RequestRecord, run
from evalscope.sim import SimConfig, SimProcess

pytestmark = pytest.mark.timeout(180)

SEND_MEDIAN_LIMIT_MS = 1.5


def one_attempt(tag: str) -> tuple[float, str]:
    cfg = SimConfig(ttft_ms=20, itl_ms=2, output_tokens=10, seed=5)
    allowed = sorted(os.sched_getaffinity(0))
    apart = len(allowed) >= 2
    # The asyncio loop: the simulator reads the kernel's receive stamps only there.
    with SimProcess(cfg, cpus={allowed[0]} if apart else None, loop="asyncio") as sim:
        if apart:
            os.sched_setaffinity(0, set(allowed[1:]))

        async def drive() -> list[RequestRecord]:
            out: list[RequestRecord] = []
            async with Client(sim.url, "sim-model", send_request_id=True) as c:
                await c.prewarm(8)

                async def slot(j: int) -> None:
                    for k in range(8):
                        out.append(
                            await c.send(Request(request_id=f"{tag}-{j}-{k}", prompt="hi", max_tokens=10))
                        )

                await asyncio.gather(*(slot(j) for j in range(8)))
            return out

        try:
            recs = run(drive())
        finally:
            os.sched_setaffinity(0, set(allowed))
        truth = {t["request_id"]: t for t in sim.fetch_truth()}
    assert all(r.ok for r in recs), [r.error for r in recs if not r.ok][:3]
    send: list[float] = []
    for r in recs:
        t = truth[str(r.request_id)]
        k = t["kernel_arrival_ns"]
        assert k is not None, "no kernel receive stamp from the simulator"
        # One clock: the kernel cannot receive before the client stamped; the simulator's loop reads after.
        assert k >= r.sent_ns and t["arrival_ns"] >= k - 100_000
        send.append((k - r.sent_ns) / 1e6)
    med = statistics.median(send)
    return med, f"{tag}: send side median {med:.3f} ms, max {max(send):.3f} ms"


def test_client_writes_the_request_right_after_stamping_it() -> None:
    notes = []
    for attempt in range(3):
        med, note = one_attempt(f"s{attempt}")
        notes.append(note)
        if med < SEND_MEDIAN_LIMIT_MS:
            return
    raise AssertionError(
        f"send-side median >= {SEND_MEDIAN_LIMIT_MS} ms in every attempt: " + "; ".join(notes)
    )
