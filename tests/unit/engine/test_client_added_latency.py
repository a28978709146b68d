"""The client's added latency on both sides, measured against the simulator's own stamps.

Send side: every latency the client reports starts at ``sent_ns``. Time between that stamp and the request's
bytes reaching the server (a slow request build, a yield before the write) inflates TTFT and end-to-end
latency one for one, and is invisible to a truth comparison that starts at the server's arrival. The
simulator stamps the kernel's receive time of each request (SO_TIMESTAMPNS, independent of its own event
loop); on one machine both are CLOCK_MONOTONIC, so ``kernel arrival - sent`` is the client's send-side delay
plus a loopback hop (µs). Receive side: client receive time of each event minus the simulator's send time.

Two kinds of bound. The *floor* (10th percentile) holds on any machine: other load delays some stamps, never
all of them, while a client that waits before writing or stamps its reads late shifts every request, so a 5 ms
send delay or a 3 ms receive delay fails every attempt. The *median* bounds are the accuracy claim and are
checked only when the machine's other load (measured from /proc/stat, outside the tool) is low; the skip
states the figure.
"""

from __future__ import annotations

import asyncio
import os
import statistics

import pytest

from evalscope.engine import Client, Request, RequestRecord, run
from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("any_transport")]

FLOOR_LIMIT_MS = 1.0
SEND_MEDIAN_LIMIT_MS = 1.0
RECV_MEDIAN_LIMIT_MS = 1.0
BUSY_LIMIT = 0.25
CLOCK_SLACK_NS = (
    50_000  # realtime-to-monotonic conversion error of the kernel receive stamp (see one_attempt)
)


def _p(a: list[float], q: float) -> float:
    s = sorted(a)
    return s[min(len(s) - 1, int(q * len(s)))]


def one_attempt(tag: str) -> tuple[list[float], list[float]]:
    """(send side ms per request, receive delta ms per event) at 8 steady closed-loop streams."""
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
    recv: list[float] = []
    for r in recs:
        t = truth[str(r.request_id)]
        k = t["kernel_arrival_ns"]
        assert k is not None, "no kernel receive stamp from the simulator"
        # One clock: the kernel cannot receive before the client stamped; the simulator's loop reads after.
        # The kernel stamps CLOCK_REALTIME and the simulator moves it onto the monotonic clock; on a VM that
        # conversion was seen 7 us off (CI, builtin transport: it stamps right before the write), hence the slack.
        assert k >= r.sent_ns - CLOCK_SLACK_NS and t["arrival_ns"] >= k - 100_000
        send.append(max(0, k - r.sent_ns) / 1e6)
        assert len(t["chunk_ns"]) == len(r.event_ns)
        recv.extend((a - b) / 1e6 for a, b in zip(r.event_ns, t["chunk_ns"], strict=True))
    assert min(recv) >= 0
    return send, recv


def _note(tag: str, send: list[float], recv: list[float]) -> str:
    return (
        f"{tag}: send p10 {_p(send, 0.1):.3f} median {statistics.median(send):.3f} max {max(send):.3f} ms; "
        f"receive p10 {_p(recv, 0.1):.3f} median {statistics.median(recv):.3f} ms"
    )


def test_client_added_latency_floor_on_both_sides() -> None:
    notes = []
    for attempt in range(3):
        send, recv = one_attempt(f"f{attempt}")
        notes.append(_note(f"f{attempt}", send, recv))
        if _p(send, 0.1) < FLOOR_LIMIT_MS and _p(recv, 0.1) < FLOOR_LIMIT_MS:
            return
    raise AssertionError(
        f"client-added latency p10 >= {FLOOR_LIMIT_MS} ms in every attempt: " + "; ".join(notes)
    )


def test_client_added_latency_median_on_a_quiet_machine(machine_load: object) -> None:
    send, recv = one_attempt("m")
    busy, busy_note = machine_load.foreign_share()  # type: ignore[attr-defined]
    note = _note("m", send, recv)
    if busy > BUSY_LIMIT:
        pytest.skip(f"machine busy: {busy_note} (> {BUSY_LIMIT:.0%}); {note}")
    assert statistics.median(send) < SEND_MEDIAN_LIMIT_MS, note
    assert statistics.median(recv) < RECV_MEDIAN_LIMIT_MS, note
