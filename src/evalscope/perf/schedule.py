"""When requests are sent: closed loop with N slots, or open loop at a rate with absolute arrival times.

Open-loop arrivals are absolute offsets from the start of the stage (``t0 + offset``), never "sleep the gap
after the previous send": sleeping relative gaps lets every late wake-up push all later requests back (drift),
and a client that waits for a free slot before it *schedules* the next request hides the server's queueing
from the latency numbers (coordinated omission). Here the intended time is fixed in advance; the engine
records the real send time, and ``sent - scheduled`` (queue time) shows any lateness, whatever its cause.

May import: nothing from evalscope.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np

_clock = time.perf_counter_ns

#: Wake this early and yield-spin to the due time: event-loop timers are only ~1 ms precise.
SPIN_NS = 1_000_000


def arrival_offsets_ns(
    rate: float, burstiness: float = 1.0, seed: int = 0, constant: bool = False, batch: int = 1024
) -> Iterator[int]:
    """Endless absolute offsets (ns from the stage start) of open-loop arrivals; the first is 0.

    Inter-arrival gaps are gamma distributed with shape ``burstiness`` and mean ``1/rate`` (shape 1 is a
    Poisson process; below 1 burstier, above 1 more regular); ``constant`` gives evenly spaced arrivals.
    Gaps are drawn in batches from a seeded generator, so a seed reproduces the schedule exactly.
    """
    if rate <= 0:
        raise ValueError("rate must be > 0")
    mean_ns = 1e9 / rate
    rng = np.random.default_rng(seed)
    t = 0.0
    yield 0
    while True:
        if constant:
            gaps = np.full(batch, mean_ns)
        else:
            gaps = rng.gamma(burstiness, mean_ns / burstiness, batch)
        for g in gaps:
            t += float(g)
            yield int(t)


async def sleep_until(due_ns: int) -> None:
    """Sleep until the monotonic clock reaches ``due_ns``: a timer for the bulk, then a cooperative spin."""
    delay = due_ns - _clock()
    if delay > SPIN_NS:
        await asyncio.sleep((delay - SPIN_NS) / 1e9)
    while _clock() < due_ns:  # noqa: ASYNC110 - a deliberate cooperative spin for sub-ms precision
        await asyncio.sleep(0)


SLOT_FREE = 0  # a slot was free at once
SLOT_WAITED = 1  # the concurrency cap was reached; a slot freed up later
SLOT_DEADLINE = 2  # the stage's deadline passed while waiting: stop dispatching


async def acquire_slot(sem: asyncio.Semaphore, deadline_ns: int | None) -> int:
    """Take a concurrency slot, waiting at most until ``deadline_ns``; returns ``SLOT_*``.

    Waiting counts as a cap wait: in open loop it means the server was slower than the offered load, and the
    request's queue time (sent - scheduled) shows it.
    """
    if not sem.locked():
        await sem.acquire()
        return SLOT_FREE
    if deadline_ns is None:
        await sem.acquire()
        return SLOT_WAITED
    try:
        await asyncio.wait_for(sem.acquire(), max(0.0, (deadline_ns - time.perf_counter_ns()) / 1e9))
    except TimeoutError:
        return SLOT_DEADLINE
    return SLOT_WAITED
